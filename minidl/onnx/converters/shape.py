"""Ops that move elements: reshape, permute, cat, pad, flip, repeat, tril/triu, copies; and
the two that make arrays from a runtime shape, ``full_like`` and ``numel``.

The one subtle case is ``reshape``. minidl's shape may hold ``None`` (a size known only when
the graph runs) where ONNX's ``Reshape`` wants ``-1``; ONNX reads a literal ``0`` as "copy
this size from the input" unless ``allowzero=1``, so a genuine zero sets it. With a ``like``
input (a backward rule's ``DynamicShape``), each ``None`` is that tensor's size at the same
position counted from the right, read with ``Shape``/``Gather``.
"""

from __future__ import annotations

from ... import dtypes
from ...ops import creation, shape
from . import converter
from .context import INT64_MIN, Context, Unsupported, onnx_type


@converter(shape.Reshape)
def _reshape(ctx: Context, node) -> None:
    x = ctx.value(node.inputs[0])
    target = tuple(node.attrs.get("shape", ()))
    like = node.inputs[1] if len(node.inputs) > 1 else node.attrs.get("like")
    if like is not None:
        offset = len(ctx.spec(like).shape) - len(target)
        sizes = [(ctx.value(like), i + offset) if s is None else int(s) for i, s in enumerate(target)]
    else:
        sizes = [-1 if s is None else int(s) for s in target]
    zero = 0 in sizes
    if zero and -1 in sizes:
        raise Unsupported(
            f"the target shape {target} has both a zero size and one to infer, which ONNX's Reshape cannot express"
        )
    ctx.emit("Reshape", [x, ctx.shape_tensor(sizes)], ctx.out(node), allowzero=1 if zero else None)


@converter(shape.Permute)
def _permute(ctx: Context, node) -> None:
    ctx.emit("Transpose", [ctx.value(node.inputs[0])], ctx.out(node), perm=[int(d) for d in node.attrs["dims"]])


@converter(shape.Contiguous, shape.Clone, shape.Detach)
def _identity(ctx: Context, node) -> None:
    ctx.emit("Identity", [ctx.value(node.inputs[0])], ctx.out(node))  # ONNX values have no layout or history


@converter(shape.Flip)
def _flip(ctx: Context, node) -> None:
    dims = [int(d) for d in node.attrs["dims"]]
    x = ctx.value(node.inputs[0])
    if not dims:
        ctx.emit("Identity", [x], ctx.out(node))
        return
    k = len(dims)
    # step -1 from the last element (start -1) through the first (end: far below zero)
    inputs = [x, ctx.ints([-1] * k), ctx.ints([INT64_MIN] * k), ctx.ints(dims), ctx.ints([-1] * k)]
    ctx.emit("Slice", inputs, ctx.out(node))


@converter(shape.Repeat)
def _repeat(ctx: Context, node) -> None:
    repeats = [int(r) for r in node.attrs["repeats"]]
    x = ctx.value(node.inputs[0])
    lead = len(repeats) - len(ctx.spec(node.inputs[0]).shape)
    if lead:  # torch's repeat adds the missing leading dimensions first
        x = ctx.unsqueeze(x, list(range(lead)))
    ctx.emit("Tile", [x, ctx.ints(repeats)], ctx.out(node))


@converter(shape.Tril, shape.Triu)
def _triangle(ctx: Context, node) -> None:
    k = ctx.scalar(int(node.attrs.get("k", 0)), dtypes.int64)
    upper = int(node.op is shape.Triu)
    ctx.emit("Trilu", [ctx.value(node.inputs[0]), k], ctx.out(node), upper=upper)


@converter(shape.Cat)
def _cat(ctx: Context, node) -> None:
    ctx.emit("Concat", [ctx.value(v) for v in node.inputs], ctx.out(node), axis=int(node.attrs["dim"]))


@converter(shape.Pad)
def _pad(ctx: Context, node) -> None:
    spec = ctx.spec(node.inputs[0])
    ndim = len(spec.shape)
    pad = [int(p) for p in node.attrs["pad"]]
    begins, ends = [0] * ndim, [0] * ndim
    for k in range(len(pad) // 2):  # minidl lists (before, after) pairs from the last dimension
        begins[ndim - 1 - k], ends[ndim - 1 - k] = pad[2 * k], pad[2 * k + 1]
    value = ctx.scalar(node.attrs.get("value", 0.0), spec.dtype)
    ctx.emit("Pad", [ctx.value(node.inputs[0]), ctx.ints(begins + ends), value], ctx.out(node), mode="constant")


@converter(creation.FullLike)
def _full_like(ctx: Context, node) -> None:
    from onnx import helper

    x = ctx.value(node.inputs[0])
    sizes = node.attrs.get("sizes")
    if sizes is None:
        shape = ctx.shape_of(x)
    else:
        shape = ctx.shape_tensor([(x, s[1]) if type(s) is tuple else int(s) for s in sizes])
    dtype = node.attrs["dtype"]
    fill = helper.make_tensor("value", onnx_type(dtype), [1], [dtype.np.type(node.attrs["value"]).item()])
    ctx.emit("ConstantOfShape", [shape], ctx.out(node), value=fill)


@converter(creation.Numel)
def _numel(ctx: Context, node) -> None:
    x = ctx.value(node.inputs[0])
    dims = [int(d) for d in node.attrs["dims"]]
    if not dims:
        ctx.emit("Identity", [ctx.scalar(1, node.specs[0].dtype)], ctx.out(node))
        return
    sizes = ctx.emit("Gather", [ctx.shape_of(x), ctx.ints(dims)], axis=0)
    count = ctx.reduce("ReduceProd", sizes, (0,), False)
    ctx.cast(count, dtypes.int64, node.specs[0].dtype, ctx.out(node))


@converter(creation.DropoutMask, creation.RandomDraw)
def _random(ctx: Context, node) -> None:
    raise Unsupported(
        "it draws random numbers each time the model runs (dropout in training mode, or rand/randn in the "
        "forward); ONNX inference graphs are deterministic. Call model.eval() before exporting"
    )
