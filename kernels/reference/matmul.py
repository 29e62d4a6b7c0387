"""Reference matmul: NumPy's ``matmul`` (BLAS), with one shortcut that matters.

When the contracted dimension has length 1, ``a @ b`` is an outer product. BLAS routes that
through a general GEMM with k = 1, which is several times slower than a broadcast multiply
(a (784, 1) @ (1, 256) product takes ~230 us through ``@`` and ~60 us as ``a * b``). It is
the weight gradient of every linear layer at batch size 1, so it is worth the branch.
"""

from __future__ import annotations

import numpy as np


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` with NumPy's semantics for 1-D, 2-D and batched (broadcast) operands."""
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1:
        return np.multiply(a, b)
    return np.matmul(a, b)
