"""Find the ``minidl.kernels`` package and register its kernels in the per-device tables.

In an installed wheel, the top-level ``kernels/`` folder of the repository *is*
``minidl.kernels`` (the build maps it there). In a source checkout run without installing
(``PYTHONPATH=.``), there is no ``minidl/kernels`` folder, so the loader maps the checkout's
``kernels/`` folder to the same name. Either way the kernels are imported as
``minidl.kernels``, one name everywhere.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .registry import register_kernel, tables


def import_kernels() -> ModuleType:
    """Import ``minidl.kernels``, falling back to the checkout's top-level ``kernels/``."""
    try:
        return importlib.import_module("minidl.kernels")
    except ModuleNotFoundError as err:
        if err.name != "minidl.kernels":
            raise
    root = Path(__file__).resolve().parents[2] / "kernels"
    spec = importlib.util.spec_from_file_location(
        "minidl.kernels", root / "__init__.py", submodule_search_locations=[str(root)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"minidl: cannot find the kernels package (looked in {root})")
    module = importlib.util.module_from_spec(spec)
    sys.modules["minidl.kernels"] = module
    spec.loader.exec_module(module)
    return module


def _lazy(device_type: str, name: str, impl: str, module: str, attr: str):
    """A stand-in that imports ``minidl.kernels.<module>`` (and so Numba) on its first call,
    then puts the real kernel in its place in the registry, so later calls go straight to it."""

    def first_call(*args, **kwargs):
        real = getattr(importlib.import_module(f"minidl.kernels.{module}"), attr)
        table = tables[device_type]
        table.impls[name][impl] = real
        if table.selected.get(name) == impl:
            setattr(table, name, real)
        return real(*args, **kwargs)

    first_call.__name__ = attr
    first_call.__qualname__ = f"{module}.{attr}"
    return first_call


def register_cpu_kernels() -> None:
    """Register the NumPy reference kernels, and the Numba-backed ones (imported lazily, so
    that ``import minidl`` does not import Numba until a kernel that needs it runs)."""
    kernels = import_kernels()
    ref = importlib.import_module(f"{kernels.__name__}.reference")
    for name in (
        "matmul",
        "conv2d_forward",
        "conv2d_backward_input",
        "conv2d_backward_weight",
        "max_pool2d_forward",
        "max_pool2d_backward",
        "avg_pool2d_forward",
        "avg_pool2d_backward",
        "log_softmax_nll",
        "index_add",
        "relu_forward",
        "relu_backward",
    ):
        register_kernel("cpu", name, "reference", getattr(ref, name))
    # matmul: 'auto' keeps every parallel loop on Numba's thread pool -- the Numba GEMM for
    # products that OpenBLAS would thread, BLAS on the calling thread for the small and thin
    # ones -- because OpenBLAS's idle threads spin and slow the Numba kernels that follow
    # (benchmarks/results/kernels.md, "mixed"). 'blas', 'numba', 'reference' stay selectable.
    register_kernel("cpu", "matmul", "numba", _lazy("cpu", "matmul", "numba", "cpu.gemm", "matmul"))
    register_kernel("cpu", "matmul", "blas", _lazy("cpu", "matmul", "blas", "cpu.matmul", "matmul"))
    register_kernel("cpu", "matmul", "auto", _lazy("cpu", "matmul", "auto", "cpu.matmul", "matmul_auto"), default=True)
    # convolution and pooling: the Numba kernels win on every measured shape. 'numba' runs a
    # forward convolution (and the input gradient, one too) by Winograd F(2x2, 3x3) where that
    # pays, else by the implicit GEMM; 'implicit' never takes Winograd.
    for name in ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"):
        register_kernel("cpu", name, "numba", _lazy("cpu", name, "numba", "cpu.conv", name), default=True)
    for name in ("conv2d_forward", "conv2d_backward_input"):
        register_kernel("cpu", name, "implicit", _lazy("cpu", name, "implicit", "cpu.conv", f"{name}_implicit"))
    for name in ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"):
        register_kernel("cpu", name, "numba", _lazy("cpu", name, "numba", "cpu.pool", name), default=True)
    register_kernel(
        "cpu",
        "log_softmax_nll",
        "numba",
        _lazy("cpu", "log_softmax_nll", "numba", "cpu.softmax", "log_softmax_nll"),
        default=True,
    )
    register_kernel("cpu", "erf", "numba", _lazy("cpu", "erf", "numba", "cpu.special", "erf"))
    for name in ("relu_forward", "relu_backward"):
        register_kernel("cpu", name, "numba", _lazy("cpu", name, "numba", "cpu.relu", name), default=True)


# kernel name -> module of minidl.kernels.cuda that defines it
CUDA_KERNELS = {
    "matmul": "cuda.matmul",
    "conv2d_forward": "cuda.conv",
    "conv2d_backward_input": "cuda.conv",
    "conv2d_backward_weight": "cuda.conv",
    "max_pool2d_forward": "cuda.pool",
    "max_pool2d_backward": "cuda.pool",
    "avg_pool2d_forward": "cuda.pool",
    "avg_pool2d_backward": "cuda.pool",
    "log_softmax_nll": "cuda.softmax",
    "erf": "cuda.special",
    "index_add": "cuda.index",
}


def register_cuda_kernels() -> None:
    """Register the CUDA kernels ('raw', compiled from ``kernels/cuda/*.cu`` by CuPy) and
    cuBLAS ('cublas', through ``cupy.matmul``) as the reference matmul. Nothing is imported
    until a CUDA tensor calls a kernel, so this costs nothing on a machine without a GPU."""
    for name, module in CUDA_KERNELS.items():
        register_kernel("cuda", name, "raw", _lazy("cuda", name, "raw", module, name))
    register_kernel("cuda", "matmul", "cublas", _lazy("cuda", "matmul", "cublas", "cuda.matmul", "matmul_cublas"))
