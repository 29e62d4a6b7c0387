"""Special functions NumPy lacks, as Numba loops over the C library's ``erf``.

``erf`` is needed by the exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``. NumPy has no ufunc
for it, and a polynomial approximation (error ~1e-7) would not match torch in float64, so the
loop calls ``math.erf``, which Numba lowers to libm's correctly rounded implementation.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def _erf_into(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.size):
        out[i] = math.erf(x[i])


def erf(x: np.ndarray) -> np.ndarray:
    """Elementwise error function of a float32 or float64 array."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _erf_into(flat, out)
    return out.reshape(x.shape)
