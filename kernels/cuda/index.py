"""Scatter-add on the GPU: ``out[index] += values`` with repeated positions accumulated.

The counterpart of ``kernels/reference/index.py``; CuPy's ``cupyx.scatter_add`` does the
accumulation with atomic adds.
"""

from __future__ import annotations


def index_add(out, index, values) -> None:
    """In place: ``out[index] += values`` for CuPy arrays."""
    import cupyx

    cupyx.scatter_add(out, index, values)
