"""In-place ops: ``add_``, ``sub_``, ``mul_``, ``div_``, ``fill_``, ``zero_``, ``copy_``.

Each reuses the out-of-place op's definition through ``apply_inplace``: the result is written
into the tensor's own storage, its version counter is bumped, and (when recording) its
history becomes the op's node. See ``op.apply_inplace`` for why the old value is kept as
the node's input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend.device import array_module
from ..errors import ShapeError
from ..tensor import Tensor
from . import reduce
from .arith import Add, Div, Mul, Sub
from .op import Op, Spec, apply_inplace, broadcast_shapes


class Fill(Op):
    """Every element set to ``value`` (a number, or a 0-d tensor that receives ``sum(g)``)."""

    name = "Fill"
    vjp_reads_input0 = False

    @staticmethod
    def forward(x, value):
        return np.full_like(x, value)

    @staticmethod
    def vjp(ctx, g):
        return (g * 0.0 if ctx.needs_grad(0) else None, g.sum() if ctx.needs_grad(1) else None)

    @classmethod
    def infer(cls, x: Spec, value: Any) -> Spec:
        return x


class Copy(Op):
    """``x`` overwritten by ``src`` (broadcast and cast to ``x``'s shape and dtype)."""

    name = "Copy"
    vjp_reads_input0 = False

    @staticmethod
    def forward(x, src):
        return np.broadcast_to(array_module(x).asarray(src, dtype=x.dtype), x.shape)

    @staticmethod
    def vjp(ctx, g):
        gsrc = reduce.sum_to(g, ctx.input_shape(1)) if ctx.needs_grad(1) else None
        if gsrc is not None and gsrc.dtype is not ctx.input(1).dtype:
            gsrc = gsrc.to(ctx.input(1).dtype)
        return (g * 0.0 if ctx.needs_grad(0) else None, gsrc)

    @classmethod
    def infer(cls, x: Spec, src: Any) -> Spec:
        src_shape = src.shape if isinstance(src, Spec) else ()
        if broadcast_shapes("copy_", src_shape, x.shape) != tuple(x.shape):
            raise ShapeError(
                f"copy_: the source of shape {tuple(src_shape)} cannot be broadcast to the destination "
                f"of shape {tuple(x.shape)}"
            )
        return x


def add_(x: Tensor, other: Any, *, alpha: float = 1) -> Tensor:
    return apply_inplace(Add, x, other if alpha == 1 else other * alpha)


def sub_(x: Tensor, other: Any, *, alpha: float = 1) -> Tensor:
    return apply_inplace(Sub, x, other if alpha == 1 else other * alpha)


def mul_(x: Tensor, other: Any) -> Tensor:
    return apply_inplace(Mul, x, other)


def div_(x: Tensor, other: Any) -> Tensor:
    return apply_inplace(Div, x, other)


def fill_(x: Tensor, value: Any) -> Tensor:
    return apply_inplace(Fill, x, value)


def zero_(x: Tensor) -> Tensor:
    return apply_inplace(Fill, x, 0)


def copy_(x: Tensor, src: Any) -> Tensor:
    """Copy ``src`` into ``x`` (broadcasting, casting to ``x``'s dtype), keeping ``x``'s storage."""
    return apply_inplace(Copy, x, src)
