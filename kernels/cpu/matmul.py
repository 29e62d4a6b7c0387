"""CPU matmul: through BLAS (NumPy), with a Numba kernel for rank-1 products ('blas'), and
the default that keeps every parallel loop on Numba's thread pool ('auto').

When the contracted dimension has length 1, ``a @ b`` is an outer product, the weight
gradient of every linear layer at batch size 1. BLAS runs it as a GEMM with k = 1 (about
185 us for 256 x 784 here) and NumPy's broadcast multiply as a strided loop (about 36 us); a
two-thread Numba loop writes the same 200k products in about 4 us.
"""

from __future__ import annotations

import numba
import numpy as np

from . import gemm


@numba.njit(parallel=True, cache=True)
def _outer_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for i in numba.prange(a.shape[0]):
        ai = a[i]
        for j in range(b.shape[0]):
            out[i, j] = ai * b[j]


@numba.njit(cache=True)
def _outer_into_serial(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for i in range(a.shape[0]):
        ai = a[i]
        for j in range(b.shape[0]):
            out[i, j] = ai * b[j]


# Below this many outputs, waking a second thread costs more than it saves (a 10 x 256
# product: 1.3 us on two threads, 0.2 us on one).
PARALLEL_FROM = 1 << 17


def outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a[:, None] * b[None, :]`` for 1-D float arrays of one dtype."""
    out = np.empty((a.shape[0], b.shape[0]), dtype=a.dtype)
    kernel = _outer_into if out.size >= PARALLEL_FROM else _outer_into_serial
    kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    return out


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` with NumPy's semantics; 2-D rank-1 products go to the Numba kernel.

    Other 2-D products call ``np.dot``, which reaches BLAS with less dispatch than the
    ``matmul`` ufunc (about half a microsecond per call, which a batch-1 step notices).
    """
    if a.ndim == 2 and b.ndim == 2:
        if a.shape[1] == 1 and a.dtype == b.dtype and a.dtype.kind == "f":
            return outer(a[:, 0], b[0])
        return np.dot(a, b)
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1:
        return np.multiply(a, b)
    return np.matmul(a, b)


# OpenBLAS runs a product with m n k at most this on the calling thread (its
# SMP_THRESHOLD_MIN x GEMM_MULTITHREAD_THRESHOLD); above it, it wakes its own threads.
BLAS_SERIAL_MNK = 65536 * 4


def matmul_auto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` on one thread pool: the Numba GEMM for every product that OpenBLAS would
    run on several threads, BLAS on the calling thread for the rest.

    Why not always BLAS: OpenBLAS keeps its own threads, and after a call they spin for
    tens of milliseconds waiting for more work. On a machine with as many threads as cores,
    a Numba kernel that runs next (a convolution, pooling, the next product) then shares its
    cores with spinning threads: a 64 x 32 x 14 x 14 convolution that takes 1.4 ms alone took
    8 ms right after a 64 x 3136 x 128 product (``benchmarks/kernels.py``, "mixed"). With one
    pool the two run back to back at full speed. Matrix-vector products (one row or one
    column), which are bound by reading the matrix, and non-float dtypes stay on BLAS.
    """
    if a.ndim < 2 or b.ndim < 2:
        return matmul(a, b)
    m, n = a.shape[-2], b.shape[-1]
    if m == 1 or n == 1 or max(a.size * n, b.size * m) <= BLAS_SERIAL_MNK:  # a.size * n = batch * m k n
        return matmul(a, b)
    if a.dtype == b.dtype and (a.dtype == np.float32 or a.dtype == np.float64):
        return gemm.matmul(a, b)
    return matmul(a, b)
