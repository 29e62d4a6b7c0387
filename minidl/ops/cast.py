"""Changing a tensor's dtype (``to``, ``float``, ``long``, ...) or device (``cpu``, ``cuda``).

A cast between floating dtypes is differentiable: the gradient is cast back to the input's
dtype. A cast to an integer or bool dtype produces a tensor that cannot require grad, so the
graph simply ends there.
"""

from __future__ import annotations

from typing import Any

from .. import dtypes
from ..backend.device import Device, array_module, cpu
from ..backend.device import device as parse_device
from ..dtypes import DType
from ..tensor import Tensor
from .op import Op, Spec, apply


class Cast(Op):
    name = "Cast"

    @staticmethod
    def forward(x, dtype: DType):
        return x.astype(dtype.np)

    @staticmethod
    def vjp(ctx, g):
        return (g.to(ctx.input(0).dtype),)

    @classmethod
    def infer(cls, x: Spec, dtype: DType) -> Spec:
        return Spec(x.shape, dtype)


class ToDevice(Op):
    """Copy between host and GPU memory; the gradient is copied back to the input's device."""

    name = "ToDevice"

    @staticmethod
    def forward(x, device: Device):
        if device.type == "cpu":
            return x.get() if hasattr(x, "get") and not hasattr(x, "__array_interface__") else x
        from ..backend.cuda import to_gpu

        return to_gpu(x, device)

    @staticmethod
    def vjp(ctx, g):
        return (g.to(ctx.input(0).device),)

    @classmethod
    def infer(cls, x: Spec, device: Device) -> Spec:
        return x


def to_dtype(x: Tensor, dtype: Any, copy: bool = False) -> Tensor:
    dtype = dtypes.to_dtype(dtype)
    if x._data.dtype == dtype.np and not copy:
        return x
    return apply(Cast, x, dtype=dtype)


def to_device(x: Tensor, device: Any) -> Tensor:
    target = parse_device(device)
    if x.device == target:
        return x
    return apply(ToDevice, x, device=target)


def to(x: Tensor, *args: Any, dtype: Any = None, device: Any = None, copy: bool = False) -> Tensor:
    """``x.to(dtype)``, ``x.to(device)``, ``x.to(device, dtype)`` or ``x.to(other_tensor)``."""
    for a in args:
        if isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif isinstance(a, (Device, str)) and not (isinstance(a, str) and _is_dtype_name(a)):
            device = a
        else:
            dtype = a
    out = x
    if device is not None:
        out = to_device(out, device)
    if dtype is not None:
        out = to_dtype(out, dtype, copy=copy and out is x)
    elif copy and out is x:
        out = x.clone()
    return out


def _is_dtype_name(s: str) -> bool:
    try:
        dtypes.to_dtype(s)
        return True
    except TypeError:
        return False


def cpu_(x: Tensor) -> Tensor:
    return to_device(x, cpu)


def cuda(x: Tensor, device: Any = None) -> Tensor:
    return to_device(x, "cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))


def type_as(x: Tensor, other: Tensor) -> Tensor:
    return to_dtype(x, other.dtype)


__all__ = ["Cast", "ToDevice", "to", "to_dtype", "to_device", "cpu_", "cuda", "type_as", "array_module"]
