"""Numba kernels for the CPU. Each compiles on first use and is cached on disk (``cache=True``)."""
