"""The kernel registry: which function computes matmul, conv2d or pooling on each device.

Ops never call a heavy kernel directly. They ask the table of the array's device,
``kernels_for(array).matmul(a, b)``, and the table holds the *selected* implementation of
each kernel. Several implementations can be registered under one name (a NumPy reference,
a Numba kernel, a BLAS call, a CUDA kernel); ``use_kernel`` picks one globally, and a
benchmark can pick one for a block of code with ``kernel_choice``.

Kernels are plain functions from arrays to arrays: they know nothing of tensors or autograd.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["KernelTable", "register_kernel", "use_kernel", "kernel_choice", "kernels_for", "tables"]


class KernelTable:
    """The kernels of one device type, each selected implementation as an attribute."""

    def __init__(self, device_type: str) -> None:
        self.device_type = device_type
        self.impls: dict[str, dict[str, Callable]] = {}
        self.selected: dict[str, str] = {}

    def register(self, name: str, impl: str, fn: Callable, default: bool = False) -> None:
        self.impls.setdefault(name, {})[impl] = fn
        if default or name not in self.selected:
            self.select(name, impl)

    def select(self, name: str, impl: str) -> None:
        choices = self.impls.get(name)
        if not choices:
            raise KeyError(f"no kernel named {name!r} on {self.device_type}")
        if impl not in choices:
            raise ValueError(
                f"kernel {name!r} on {self.device_type} has no implementation {impl!r}; choose one of {sorted(choices)}"
            )
        self.selected[name] = impl
        setattr(self, name, choices[impl])

    def __getattr__(self, name: str):
        # Only reached when no implementation was registered under ``name``.
        raise NotImplementedError(f"no {name!r} kernel is registered for device type {self.device_type!r}")


tables: dict[str, KernelTable] = {"cpu": KernelTable("cpu"), "cuda": KernelTable("cuda")}


def register_kernel(device_type: str, name: str, impl: str, fn: Callable, default: bool = False) -> None:
    """Add an implementation of kernel ``name`` for ``device_type`` ('cpu' or 'cuda')."""
    tables[device_type].register(name, impl, fn, default)


def use_kernel(name: str, impl: str, device_type: str = "cpu") -> None:
    """Select the implementation of kernel ``name`` used from now on, e.g. ``use_kernel('matmul', 'blas')``."""
    tables[device_type].select(name, impl)


@contextlib.contextmanager
def kernel_choice(name: str, impl: str, device_type: str = "cpu") -> Iterator[None]:
    """Use implementation ``impl`` of kernel ``name`` inside a ``with`` block."""
    table = tables[device_type]
    previous = table.selected.get(name)
    table.select(name, impl)
    try:
        yield
    finally:
        if previous is not None:
            table.select(name, previous)


_cpu_table = tables["cpu"]


def kernels_for(array: object) -> KernelTable:
    """The kernel table for the device an array lives on."""
    if type(array) is np.ndarray:
        return _cpu_table
    if type(array).__module__.startswith("cupy"):
        return tables["cuda"]
    return _cpu_table
