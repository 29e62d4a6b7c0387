"""Reductions, softmax, cumsum, and the two broadcasting ops ``broadcast_to`` / ``sum_to``.

minidl's reductions take ``dim`` (a tuple of normalized axes; ``()`` reduces nothing, as NumPy's
``axis=()``) and ``keepdim``; ONNX's ``Reduce*`` take the same two things. Integer and bool
sums are computed in int64, as NumPy (and torch) do, so their input is cast first.

Composite ones follow minidl's ``forward``:

    logsumexp(x)      m = max x (0 where infinite);  log(sum exp(x - m)) + m
    vector_norm(x, p) p = 1: ReduceL1;  2: ReduceL2;  inf / -inf: max / min of |x|;
                      0: count of nonzeros;  else (sum |x|^p)^(1/p)
    sum_to(x, shape)  ReduceSum over the leading axes and those where ``shape`` has a 1
"""

from __future__ import annotations

import math

from ... import dtypes
from ...ops import reduce
from ...ops.softmax import LogSoftmax, Softmax
from . import converter
from .context import Context, Unsupported


def _input_as(ctx: Context, node, dtype) -> str:
    v = node.inputs[0]
    return ctx.cast(ctx.value(v), ctx.spec(v).dtype, dtype)


@converter(reduce.Sum, reduce.Prod, reduce.Amax, reduce.Amin)
def _reduce(ctx: Context, node) -> None:
    op_type = {reduce.Sum: "ReduceSum", reduce.Prod: "ReduceProd", reduce.Amax: "ReduceMax", reduce.Amin: "ReduceMin"}
    x = _input_as(ctx, node, node.specs[0].dtype)
    dim, keepdim = node.attrs.get("dim", ()), node.attrs.get("keepdim", False)
    ctx.reduce(op_type[node.op], x, tuple(dim), keepdim, ctx.out(node))


@converter(reduce._SumAll)
def _sum_all(ctx: Context, node) -> None:
    x = _input_as(ctx, node, node.specs[0].dtype)
    ndim = len(ctx.spec(node.inputs[0]).shape)
    if ndim == 0:
        ctx.emit("Identity", [x], ctx.out(node))
        return
    ctx.reduce("ReduceSum", x, tuple(range(ndim)), False, ctx.out(node))


@converter(reduce.Argmax, reduce.Argmin)
def _arg_reduce(ctx: Context, node) -> None:
    op_type = "ArgMax" if node.op is reduce.Argmax else "ArgMin"
    x = ctx.value(node.inputs[0])
    ndim = len(ctx.spec(node.inputs[0]).shape)
    dim, keepdim = node.attrs.get("dim"), node.attrs.get("keepdim", False)
    if dim is None:  # over all elements: of the flattened tensor, as NumPy
        flat = ctx.emit("Reshape", [x, ctx.ints([-1])])
        index = ctx.emit(op_type, [flat], axis=0, keepdims=0)
        ctx.emit("Reshape", [index, ctx.ints([1] * ndim if keepdim else [])], ctx.out(node))
        return
    ctx.emit(op_type, [x], ctx.out(node), axis=int(dim), keepdims=int(keepdim))


@converter(reduce.LogSumExp)
def _logsumexp(ctx: Context, node) -> None:
    dtype = node.specs[0].dtype
    x = _input_as(ctx, node, dtype)
    dim, keepdim = tuple(node.attrs.get("dim", ())), node.attrs.get("keepdim", False)
    m = ctx.reduce("ReduceMax", x, dim, True)
    m = ctx.emit("Where", [ctx.emit("IsInf", [m]), ctx.scalar(0, dtype), m])
    total = ctx.reduce("ReduceSum", ctx.emit("Exp", [ctx.emit("Sub", [x, m])]), dim, True)
    if keepdim or not dim:
        ctx.emit("Add", [ctx.emit("Log", [total]), m], ctx.out(node))
    else:
        ctx.squeeze(ctx.emit("Add", [ctx.emit("Log", [total]), m]), list(dim), ctx.out(node))


@converter(reduce.VectorNorm)
def _vector_norm(ctx: Context, node) -> None:
    dtype = node.specs[0].dtype
    x = _input_as(ctx, node, dtype)
    p = node.attrs.get("ord", 2.0)
    dim, keepdim = tuple(node.attrs.get("dim", ())), node.attrs.get("keepdim", False)
    out = ctx.out(node)
    if p == 1:
        ctx.reduce("ReduceL1", x, dim, keepdim, out)
    elif p == 2:
        ctx.reduce("ReduceL2", x, dim, keepdim, out)
    elif p in (math.inf, -math.inf):
        ctx.reduce("ReduceMax" if p > 0 else "ReduceMin", ctx.emit("Abs", [x]), dim, keepdim, out)
    elif p == 0:
        nonzero = ctx.emit("Not", [ctx.emit("Equal", [x, ctx.scalar(0, dtype)])])
        ctx.reduce("ReduceSum", ctx.cast(nonzero, dtypes.bool_, dtype), dim, keepdim, out)
    else:
        powered = ctx.emit("Pow", [ctx.emit("Abs", [x]), ctx.scalar(p, dtype)])
        total = ctx.reduce("ReduceSum", powered, dim, keepdim)
        ctx.emit("Pow", [total, ctx.scalar(1.0 / p, dtype)], out)


@converter(reduce.All, reduce.Any_)
def _all_any(ctx: Context, node) -> None:
    v = node.inputs[0]
    as_int = ctx.cast(ctx.cast(ctx.value(v), ctx.spec(v).dtype, dtypes.bool_), dtypes.bool_, dtypes.int32)
    op_type = "ReduceMin" if node.op is reduce.All else "ReduceMax"
    reduced = ctx.reduce(op_type, as_int, tuple(node.attrs.get("dim", ())), node.attrs.get("keepdim", False))
    ctx.cast(reduced, dtypes.int32, dtypes.bool_, ctx.out(node))


@converter(reduce.Cumsum)
def _cumsum(ctx: Context, node) -> None:
    x = _input_as(ctx, node, node.specs[0].dtype)
    ctx.emit("CumSum", [x, ctx.scalar(int(node.attrs["dim"]), dtypes.int64)], ctx.out(node))


def _target_sizes(ctx: Context, node, unknown_default: int | None) -> list:
    """The ``shape`` attribute with each ``None`` read off the ``like`` input (aligned from the
    right) when the model runs, or ``unknown_default`` where there is no ``like``."""
    shape = tuple(node.attrs.get("shape", ()))
    like = node.inputs[1] if len(node.inputs) > 1 and node.inputs[1] is not None else None
    offset = len(ctx.spec(like).shape) - len(shape) if like is not None else 0
    sizes = []
    for i, s in enumerate(shape):
        if s is not None:
            sizes.append(int(s))
        elif like is not None:
            sizes.append((ctx.value(like), i + offset))
        elif unknown_default is not None:
            sizes.append(unknown_default)
        else:
            raise Unsupported(f"the target shape {shape} has an unknown size and no tensor to read it from")
    return sizes


@converter(reduce.BroadcastTo)
def _broadcast_to(ctx: Context, node) -> None:
    # Expand broadcasts both ways: a 1 in the target keeps the input's size there.
    shape = ctx.shape_tensor(_target_sizes(ctx, node, 1))
    ctx.emit("Expand", [ctx.value(node.inputs[0]), shape], ctx.out(node))


@converter(reduce.SumTo)
def _sum_to(ctx: Context, node) -> None:
    x_spec = ctx.spec(node.inputs[0])
    shape = tuple(node.attrs.get("shape", ()))
    lead = len(x_spec.shape) - len(shape)
    # Summing over an axis of size 1 changes nothing, so an unknown input size needs no test.
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x_spec.shape[lead + i] != 1)
    x = ctx.value(node.inputs[0])
    if not axes:
        ctx.emit("Identity", [x], ctx.out(node))
        return
    summed = ctx.reduce("ReduceSum", x, axes, True, None if lead else ctx.out(node))
    if lead:
        ctx.squeeze(summed, list(range(lead)), ctx.out(node))


@converter(Softmax, LogSoftmax)
def _softmax(ctx: Context, node) -> None:
    op_type = "Softmax" if node.op is Softmax else "LogSoftmax"
    ctx.emit(op_type, [ctx.value(node.inputs[0])], ctx.out(node), axis=int(node.attrs["dim"]))
