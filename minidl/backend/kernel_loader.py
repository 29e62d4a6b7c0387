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
    ):
        register_kernel("cpu", name, "reference", getattr(ref, name))
    register_kernel("cpu", "matmul", "blas", _lazy("cpu", "matmul", "blas", "cpu.matmul", "matmul"), default=True)
    register_kernel(
        "cpu",
        "log_softmax_nll",
        "numba",
        _lazy("cpu", "log_softmax_nll", "numba", "cpu.softmax", "log_softmax_nll"),
        default=True,
    )
    register_kernel("cpu", "erf", "numba", _lazy("cpu", "erf", "numba", "cpu.special", "erf"))
