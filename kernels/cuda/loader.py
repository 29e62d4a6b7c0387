"""Find, compile and launch the CUDA C kernels of this folder, through CuPy's ``RawModule``.

The ``.cu`` files next to this module ship as package data. Each is compiled by NVRTC (the
runtime compiler CuPy wraps) the first time one of its kernels is needed on a device, once per
device, and the compiled module is kept for the life of the process (CuPy also caches the
binary on disk, so a second process skips the compile).

This module imports CuPy only inside functions: importing ``minidl.kernels.cuda`` works on a
machine without CuPy or a GPU, and only calling a kernel needs them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

#: Every CUDA C source of this package; the compile test builds each one.
SOURCES: tuple[str, ...] = ("matmul.cu", "conv.cu", "pool.cu")

#: NVRTC options. CuPy adds the architecture of the current device itself.
OPTIONS: tuple[str, ...] = ("-std=c++17",)

#: Threads per block of the elementwise-style kernels (im2col, col2im, pooling).
BLOCK = 256
# Cap on the blocks of a grid-stride launch: enough to fill any GPU many times over, small
# enough that a 32-bit index plus the grid stride cannot overflow (the kernels rely on it).
_MAX_BLOCKS = 1 << 20

_DIR = Path(__file__).resolve().parent
_lock = threading.Lock()
_modules: dict[tuple[str, int], Any] = {}
_functions: dict[tuple[str, str, int], Any] = {}
_sm_counts: dict[int, int] = {}


def source_path(name: str) -> Path:
    """The path of CUDA source ``name`` (one of :data:`SOURCES`)."""
    if name not in SOURCES:
        raise ValueError(f"unknown CUDA source {name!r}; the sources are {list(SOURCES)}")
    return _DIR / name


def read_source(name: str) -> str:
    """The text of CUDA source ``name``."""
    return source_path(name).read_text()


def import_cupy() -> Any:
    """Import CuPy, or explain what is missing."""
    try:
        import cupy
    except ImportError as err:
        raise RuntimeError("minidl's CUDA kernels need CuPy and an NVIDIA GPU: pip install 'minidl[gpu]'") from err
    return cupy


def module(name: str) -> Any:
    """The compiled ``RawModule`` of source ``name`` for the current device (compiled on first use)."""
    cp = import_cupy()
    key = (name, cp.cuda.Device().id)
    mod = _modules.get(key)
    if mod is None:
        with _lock:
            mod = _modules.get(key)
            if mod is None:
                mod = cp.RawModule(code=read_source(name), options=OPTIONS)
                _modules[key] = mod
    return mod


def function(source: str, kernel: str) -> Any:
    """Kernel ``kernel`` of ``source``, loaded on the current device."""
    cp = import_cupy()
    key = (source, kernel, cp.cuda.Device().id)
    fn = _functions.get(key)
    if fn is None:
        fn = module(source).get_function(kernel)
        _functions[key] = fn
    return fn


def sm_count() -> int:
    """Streaming multiprocessors of the current device (the GEMM sizes its grids by it)."""
    cp = import_cupy()
    dev = cp.cuda.Device()
    count = _sm_counts.get(dev.id)
    if count is None:
        count = int(dev.attributes["MultiProcessorCount"])
        _sm_counts[dev.id] = count
    return count


def float_suffix(op: str, *arrays: Any) -> str:
    """``'f32'`` or ``'f64'``: the kernel suffix for arrays that all share one float dtype.

    Raises a ``TypeError`` naming the op and the dtypes otherwise.
    """
    dtypes = [np.dtype(a.dtype) for a in arrays]
    if any(d != dtypes[0] for d in dtypes):
        raise TypeError(f"{op} (cuda): all operands must have one dtype, got {', '.join(d.name for d in dtypes)}")
    if dtypes[0] == np.float32:
        return "f32"
    if dtypes[0] == np.float64:
        return "f64"
    raise TypeError(f"{op} (cuda): expected float32 or float64 arrays, got {dtypes[0].name}; cast the input first")


def i32(value: int) -> np.int32:
    """A kernel argument of C type ``int``, refusing values that do not fit."""
    value = int(value)
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"minidl CUDA kernels: {value} does not fit a 32-bit int argument")
    return np.int32(value)


def i64(value: int) -> np.int64:
    """A kernel argument of C type ``long long``."""
    return np.int64(int(value))


def grid_for(total: int, block: int = BLOCK) -> int:
    """Blocks for a grid-stride loop over ``total`` elements (capped; the loop covers the rest)."""
    return max(1, min(-(-total // block), _MAX_BLOCKS))


def launch_elementwise(source: str, kernel: str, total: int, args: tuple) -> None:
    """Launch a grid-stride kernel over ``total`` elements; ``args`` end with the total itself."""
    if total == 0:
        return
    function(source, kernel)((grid_for(total),), (BLOCK,), args)


def pair(value: Any, name: str) -> tuple[int, int]:
    """``(a, b)`` of Python ints from a pair (tuple, list) of integers, or one int for both."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    try:
        a, b = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of ints, got {value!r}") from None
    return int(a), int(b)
