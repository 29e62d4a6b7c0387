"""Reductions: ``ReduceSum/Mean/Max/Min/Prod`` and ``ArgMax/ArgMin``.

The axes moved from an attribute to an optional input at opset 13 for ``ReduceSum`` and at
opset 18 for the others. With no axes every dimension is reduced, unless
``noop_with_empty_axes`` is set, in which case the input passes through unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import ops
from ...tensor import Tensor
from ..importer import NodeContext
from . import converter

_AXES_INPUT_SINCE = {"ReduceSum": 13}  # the others: 18

_REDUCE = {
    "ReduceSum": ops.sum,
    "ReduceMean": ops.mean,
    "ReduceMax": ops.amax,
    "ReduceMin": ops.amin,
    "ReduceProd": ops.prod,
}


@converter(*_REDUCE)
def reduce(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    keepdims = bool(ctx.attr("keepdims", 1))
    if ctx.opset < _AXES_INPUT_SINCE.get(ctx.op_type, 18):
        axes = ctx.attr("axes")
    else:
        axes = ctx.ints(1)
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.ndim))
    axes = tuple(a % x.ndim for a in axes) if x.ndim else ()
    if not axes:
        return x
    if ctx.op_type in ("ReduceMax", "ReduceMin") and any(x.shape[a] == 0 for a in axes):
        return _empty_extreme(ctx, x, axes, keepdims)
    out = _REDUCE[ctx.op_type](x, dim=axes, keepdim=keepdims)
    if ctx.op_type in ("ReduceSum", "ReduceProd") and out.dtype is not x.dtype:
        out = out.to(x.dtype)  # ONNX keeps the input's dtype; torch widens integer sums to int64
    return out


def _empty_extreme(ctx: NodeContext, x: Any, axes: tuple, keepdims: bool) -> Any:
    """The max (min) of an empty set is ONNX's identity element, -inf (+inf) or the dtype's
    extreme; torch, and so minidl's ``amax``, refuse instead."""
    shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape) if keepdims or i not in axes)
    np_dtype = x.dtype.np
    low = ctx.op_type == "ReduceMax"
    if np_dtype == np.bool_:
        value = not low
    elif np_dtype.kind == "f":
        value = -np.inf if low else np.inf
    else:
        info = np.iinfo(np_dtype)
        value = info.min if low else info.max
    return Tensor(np.full(shape, value, dtype=np_dtype))


@converter("ArgMax", "ArgMin")
def arg_reduce(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    axis = ctx.attr("axis", 0) % max(x.ndim, 1)
    keepdims = bool(ctx.attr("keepdims", 1))
    fn = ops.argmax if ctx.op_type == "ArgMax" else ops.argmin
    if not ctx.attr("select_last_index", 0):
        return fn(x, dim=axis, keepdim=keepdims)
    # The last index of the extreme is the first one in the reversed tensor.
    n = x.shape[axis]
    return (n - 1) - fn(x.flip(axis), dim=axis, keepdim=keepdims)
