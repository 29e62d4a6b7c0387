"""Devices: where a tensor's array lives, and which array module computes on it.

A minidl tensor stores a plain array: a ``numpy.ndarray`` on the CPU, a ``cupy.ndarray`` on a
CUDA GPU. The device is read off the array's type, so it can never disagree with the data.
Each device names its *array module* (``numpy`` or ``cupy``), through which ops compute.

Nothing here imports CuPy: ``import minidl`` never touches CUDA.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Device", "device", "cpu", "array_module", "device_of"]


class Device:
    """A compute device, ``device(type='cpu')`` or ``device(type='cuda', index=0)``."""

    __slots__ = ("type", "index")

    def __init__(self, type: str, index: int | None = None) -> None:
        self.type = type
        self.index = index

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, Device):
            return NotImplemented
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))


cpu = Device("cpu")


def device(spec: str | Device | None = None) -> Device:
    """Parse ``'cpu'``, ``'cuda'`` or ``'cuda:1'`` (or pass a Device through), as ``torch.device``."""
    if spec is None:
        return cpu
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {spec!r}")
    kind, _, index = spec.partition(":")
    if kind == "cpu":
        return cpu
    if kind == "cuda":
        return Device("cuda", int(index) if index else 0)
    raise ValueError(f"device: unknown device {spec!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def device_of(array: object) -> Device:
    """The device an array lives on, read off its type."""
    if type(array) is np.ndarray:
        return cpu
    mod = type(array).__module__
    if mod.startswith("cupy"):
        return Device("cuda", int(array.device.id))  # type: ignore[attr-defined]
    return cpu


def array_module(array: object):
    """``numpy`` for CPU arrays, ``cupy`` for GPU arrays (imported only when one exists)."""
    if type(array) is np.ndarray:
        return np
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np
