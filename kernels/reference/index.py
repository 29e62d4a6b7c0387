"""Reference scatter-add: ``out[index] += values``, accumulating at repeated positions.

Plain ``out[index] += values`` would apply only one of the additions to a position that the
index names twice; ``np.add.at`` applies them all, which is what the gradient of indexing
needs (an element picked twice receives both gradients).
"""

from __future__ import annotations

import numpy as np


def index_add(out: np.ndarray, index: tuple, values: np.ndarray) -> None:
    """In place: ``out[index] += values`` with repeated positions accumulated."""
    np.add.at(out, index, values)
