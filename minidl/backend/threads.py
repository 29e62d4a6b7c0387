"""How many threads minidl's CPU kernels use: ``minidl.set_num_threads`` / ``get_num_threads``.

The Numba kernels run their ``prange`` loops on Numba's thread pool, whose size this sets
(it cannot exceed the ``NUMBA_NUM_THREADS`` the process started with, by default the number
of CPUs). NumPy's BLAS has its own pool, sized by ``OPENBLAS_NUM_THREADS`` before NumPy is
imported; minidl does not resize it behind the user's back.
"""

from __future__ import annotations

import os


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in minidl's Numba kernels (as ``torch.set_num_threads``)."""
    import numba

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(
            f"set_num_threads: {n} threads requested, but this process allows at most {limit}; start it "
            f"with NUMBA_NUM_THREADS={n} to allow more"
        )
    numba.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads minidl's Numba kernels use."""
    import numba

    try:
        return int(numba.get_num_threads())
    except Exception:
        return os.cpu_count() or 1
