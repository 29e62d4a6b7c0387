"""Shape and indexing ONNX operators, and the ones that make constants.

Most of these take their "what" -- a target shape, axes, slice bounds, pads, split sizes --
as an *input* since some opset (``Reshape`` 5, ``Slice`` 10, ``Squeeze``/``Unsqueeze``/``Split``
13, ``Pad`` 11), and as an attribute before. minidl needs them when the graph is built, so
the converter reads them with ``ctx.const`` (an initializer, a ``Constant``, or something
computed from those at import time).

``Shape``, ``Constant``, ``ConstantOfShape`` and ``Range`` produce eager tensors: their
consumers fold at import time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import ops
from ...tensor import Tensor
from ..importer import NodeContext
from . import converter


def _axis(ctx: NodeContext, axis: int, ndim: int) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise ctx.fail(f"axis {axis} is out of range for a tensor of {ndim} dimensions")
    return axis % ndim if ndim else 0


def _axes_of(ctx: NodeContext, attr_until: int, index: int = 1) -> list[int] | None:
    """Axes given as an attribute (opset < ``attr_until``) or as input ``index`` (since)."""
    if ctx.opset < attr_until:
        return ctx.attr("axes")
    return ctx.ints(index)


@converter("Identity")
def identity(ctx: NodeContext) -> Any:
    return ctx.input(0)


@converter("Reshape")
def reshape(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    shape = ctx.attr("shape") if ctx.opset < 5 else ctx.ints(1)
    allowzero = ctx.attr("allowzero", 0)
    if not allowzero:  # 0 copies the input's size at that position
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(tuple(shape))


@converter("Flatten")
def flatten(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    axis = ctx.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    front, back = x.shape[:axis], x.shape[axis:]
    if None in front and None not in back:
        return x.reshape(-1, math.prod(back))
    return x.reshape(math.prod(front) if None not in front else None, -1)


@converter("Transpose")
def transpose(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    perm = ctx.attr("perm") or list(range(x.ndim))[::-1]
    return x.permute(*perm)


@converter("Squeeze")
def squeeze(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    axes = _axes_of(ctx, 13)
    if axes is None:
        return x.squeeze()
    axes = [_axis(ctx, a, x.ndim) for a in axes]
    for a in axes:
        if x.shape[a] not in (1, None):
            raise ctx.fail(f"cannot squeeze axis {a} of size {x.shape[a]} (input shape {tuple(x.shape)})")
    return x.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))


@converter("Unsqueeze")
def unsqueeze(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    axes = _axes_of(ctx, 13)
    rank = x.ndim + len(axes)
    axes = sorted(_axis(ctx, a, rank) for a in axes)
    shape = list(x.shape)
    for a in axes:  # ascending, so each axis is an index into the final shape
        shape.insert(a, 1)
    return x.reshape(tuple(shape))


@converter("Concat")
def concat(ctx: NodeContext) -> Any:
    tensors = [t for t in ctx.inputs if t is not None]
    return ops.cat(tensors, dim=ctx.attr("axis"))


@converter("Split")
def split(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    axis = _axis(ctx, ctx.attr("axis", 0), x.ndim)
    sizes = ctx.attr("split") if ctx.opset < 13 else ctx.ints(1)
    n = ctx.n_outputs
    if sizes is None:
        total = x.shape[axis]
        if total is None:
            raise ctx.fail("splitting a dimension of unknown size needs explicit split sizes")
        if ctx.opset >= 18 and ctx.attr("num_outputs") is not None:
            n = ctx.attr("num_outputs")
            step = -(-total // n)  # ceil: every piece but the last has this size
            sizes = [min(step, total - i * step) for i in range(n)]
        else:
            sizes = [total // n] * n
    return ops.split(x, list(sizes), dim=axis)


@converter("Slice")
def slice_(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    if ctx.opset < 10:
        starts, ends, axes, steps = ctx.attr("starts"), ctx.attr("ends"), ctx.attr("axes"), None
    else:
        starts, ends, axes, steps = ctx.ints(1), ctx.ints(2), ctx.ints(3), ctx.ints(4)
    axes = list(range(len(starts))) if axes is None else [_axis(ctx, a, x.ndim) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for a, start, end, step in zip(axes, starts, ends, steps):
        if step == 0:
            raise ctx.fail("a slice step of 0")
        # NumPy clamps out-of-range bounds exactly as ONNX specifies, in both directions.
        index[a] = slice(_clamp_int(start), _clamp_int(end), step)
    return x[tuple(index)]


def _clamp_int(v: int) -> int:
    return int(max(min(v, 2**62), -(2**62)))


@converter("Gather")
def gather(ctx: NodeContext) -> Any:
    x, idx = ctx.input(0), ctx.input(1)
    axis = _axis(ctx, ctx.attr("axis", 0), x.ndim)
    n = x.shape[axis]
    idx_shape = tuple(idx.shape)
    if type(ctx.eager_inputs[1]) is Tensor:
        raw = np.asarray(ctx.const(1)).astype(np.int64)
        if n is not None:
            raw = np.where(raw < 0, raw + n, raw)
        flat = Tensor(raw.reshape(-1))
    else:
        idx = idx.long()
        flat = ops.where(idx < 0, idx + n, idx).reshape(-1)
    out = x.index_select(axis, flat)
    return out.reshape(tuple(x.shape[:axis]) + idx_shape + tuple(x.shape[axis + 1 :]))


@converter("Expand")
def expand(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    shape = ctx.ints(1)
    # ONNX's Expand broadcasts both ways: a target size of 1 keeps the input's size.
    target = np.broadcast_shapes(tuple(1 if s is None else s for s in x.shape), tuple(shape))
    rank = len(target)
    padded = (None,) * (rank - x.ndim) + tuple(x.shape)
    target = tuple(p if t == 1 and p is not None else t for p, t in zip(padded, target))
    return ops.broadcast_to(x, target)


@converter("Tile")
def tile(ctx: NodeContext) -> Any:
    return ctx.input(0).repeat(*ctx.ints(1))


@converter("Pad")
def pad(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    mode = ctx.attr("mode", "constant")
    if ctx.opset < 11:
        pads, value, axes = ctx.attr("pads"), ctx.attr("value", 0.0), None
    else:
        pads = ctx.ints(1)
        value = ctx.const(2)
        value = 0 if value is None else np.asarray(value).item()
        axes = ctx.ints(3)
    axes = list(range(x.ndim)) if axes is None else [_axis(ctx, a, x.ndim) for a in axes]
    k = len(axes)
    befores = dict(zip(axes, pads[:k]))
    afters = dict(zip(axes, pads[k:]))
    if mode == "constant":
        # F.pad lists (before, after) pairs from the last dimension backwards.
        flat: list[int] = []
        for d in reversed(range(x.ndim)):
            flat += [befores.get(d, 0), afters.get(d, 0)]
        return ops.shape.pad(x, flat, value=value)
    if mode not in ("reflect", "edge", "wrap"):
        raise ctx.fail(f"unknown pad mode {mode!r}")
    for d in axes:
        x = _pad_axis(ctx, x, d, befores[d], afters[d], mode)
    return x


def _take(x: Any, d: int, sl: slice) -> Any:
    index = [slice(None)] * x.ndim
    index[d] = sl
    return x[tuple(index)]


def _pad_axis(ctx: NodeContext, x: Any, d: int, before: int, after: int, mode: str) -> Any:
    """Pad one axis by concatenating pieces of ``x``: its mirror image (reflect), its edge
    repeated (edge) or its other end (wrap). Negative amounts crop."""
    n = x.shape[d]
    if n is None:
        raise ctx.fail(f"pad mode {mode!r} on a dimension of unknown size")
    if before < 0:
        x, n, before = _take(x, d, slice(-before, None)), n + before, 0
    if after < 0:
        x, n, after = _take(x, d, slice(0, n + after)), n + after, 0
    pieces = []
    if before:
        if mode == "reflect":
            pieces.append(_take(x, d, slice(before, 0, -1)))
        elif mode == "edge":
            pieces.append(ops.cat([_take(x, d, slice(0, 1))] * before, dim=d))
        else:
            pieces.append(_take(x, d, slice(n - before, n)))
    pieces.append(x)
    if after:
        if mode == "reflect":
            stop = n - 2 - after
            pieces.append(_take(x, d, slice(n - 2, stop if stop >= 0 else None, -1)))  # a stop of -1 would wrap
        elif mode == "edge":
            pieces.append(ops.cat([_take(x, d, slice(n - 1, n))] * after, dim=d))
        else:
            pieces.append(_take(x, d, slice(0, after)))
    if mode == "reflect" and max(before, after) >= n:
        raise ctx.fail(f"reflect padding of {max(before, after)} needs a dimension larger than that, got {n}")
    return ops.cat(pieces, dim=d) if len(pieces) > 1 else x


# ---- constants -------------------------------------------------------------------------------------


@converter("Shape")
def shape(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    dims = tuple(x.shape)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    dims = dims[slice(start, end)]
    if None in dims:
        raise ctx.fail(
            f"the shape {tuple(x.shape)} has sizes known only when the graph runs; minidl builds shapes at "
            "import time. Give the input a fixed shape"
        )
    return Tensor(np.array(dims, dtype=np.int64))


@converter("Size")
def size(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    if None in x.shape:
        raise ctx.fail(f"the size of a tensor of shape {tuple(x.shape)} is known only when the graph runs")
    return Tensor(np.array(math.prod(x.shape), dtype=np.int64))


@converter("Constant")
def constant(ctx: NodeContext) -> Any:
    attrs = ctx.attrs
    if "value" in attrs:
        return Tensor(np.array(attrs["value"]))
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return Tensor(np.array(attrs[key], dtype=dtype))
    for key, dtype in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return Tensor(np.array(attrs[key], dtype=dtype).reshape(-1))
    raise ctx.fail(f"unsupported constant attribute(s) {sorted(attrs)}; minidl holds no strings or sparse tensors")


@converter("ConstantOfShape")
def constant_of_shape(ctx: NodeContext) -> Any:
    shape = ctx.ints(0)
    value = ctx.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value)
    return Tensor(np.full(tuple(shape), value.reshape(-1)[0], dtype=value.dtype))


@converter("Range")
def range_(ctx: NodeContext) -> Any:
    start, limit, delta = (np.asarray(ctx.const(i)) for i in range(3))
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return Tensor((start + np.arange(n) * delta).astype(start.dtype))
