"""Indexing: ``x[index]`` and ``gather``.

``x[index]`` is taken apart into the ONNX steps that do each kind of index item:

1. ``Slice`` all the dimensions that ints and slices select (an int ``i`` keeps ``i:i+1``);
2. ``Squeeze`` the dimensions the ints selected;
3. ``Unsqueeze`` where the index holds ``None``;
4. ``Gather`` along the dimension an integer array indexes (an embedding lookup, a fixed
   list of rows). With NumPy's rule for mixing ints and an array: when they are not
   adjacent in the index, the array's dimensions move to the front (a ``Transpose``).

An index with two or more arrays (NumPy's broadcast "fancy" indexing), or a boolean mask
known only when the model runs, has no such rewrite here and is refused.

``gather(x, dim, index)`` is ``GatherElements``; minidl (like torch) lets ``index`` be smaller
than ``x`` in the other dimensions, so ``x`` is first cut to ``index``'s size there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops import index as index_ops
from . import converter
from .context import INT64_MAX, INT64_MIN, Context, Unsupported

_ARRAY = "array"


def _slice_bounds(item: slice) -> tuple[int, int, int]:
    step = 1 if item.step is None else int(item.step)
    if step > 0:
        start = 0 if item.start is None else int(item.start)
        stop = INT64_MAX if item.stop is None else int(item.stop)
    else:  # ONNX clamps a backward start to the last element and an end below 0 to "before the first"
        start = INT64_MAX if item.start is None else int(item.start)
        stop = INT64_MIN if item.stop is None else int(item.stop)
    return start, stop, step


def convert_getitem(ctx: Context, node, x: str, ndim: int, items: tuple, arrays: dict[int, str]) -> None:
    """``x[items]`` into ``ctx.out(node)``; ``arrays`` maps an item's position to the ONNX name of
    its integer index tensor (those items hold the marker ``_ARRAY``)."""
    consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
    if items.count(Ellipsis) > 1:
        raise Unsupported("an index can only have a single ellipsis ('...')")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (ndim - consumed) + items[at + 1 :]
        arrays = {(p if p < at else p + ndim - consumed - 1): name for p, name in arrays.items()}
    if len(arrays) > 1:
        raise Unsupported("indexing with two or more index arrays (NumPy's broadcast indexing) is not exported")
    if arrays and None in items:
        raise Unsupported("indexing with both an index array and None is not exported")

    cuts: list[tuple[int, int, int, int]] = []  # (start, end, axis, step) of each sliced dimension
    squeeze: list[int] = []
    kept: list[Any] = []  # the items that leave a dimension (slices, arrays) or make one (None), in order
    d = 0
    for pos, it in enumerate(items):
        if it is None:
            kept.append(None)
            continue
        if isinstance(it, (int, np.integer)):
            i = int(it)
            cuts.append((i, INT64_MAX if i == -1 else i + 1, d, 1))
            squeeze.append(d)
        elif isinstance(it, slice):
            start, stop, step = _slice_bounds(it)
            if (start, stop, step) != (0, INT64_MAX, 1):
                cuts.append((start, stop, d, step))
            kept.append("slice")
        else:
            kept.append((_ARRAY, pos))
        d += 1

    out = ctx.out(node)
    steps_left = bool(squeeze) + (None in kept) + bool(arrays)
    if cuts:
        inputs = [x, *(ctx.ints(column) for column in zip(*cuts))]
        x = ctx.emit("Slice", inputs, out if steps_left == 0 else None)
    if squeeze:
        steps_left -= 1
        x = ctx.squeeze(x, squeeze, out if steps_left == 0 else None)
    if None in kept:
        steps_left -= 1
        x = ctx.unsqueeze(x, [i for i, k in enumerate(kept) if k is None], out if steps_left == 0 else None)
    if arrays:
        axis = next(i for i, k in enumerate(kept) if type(k) is tuple)
        pos = kept[axis][1]
        advanced = [p for p, it in enumerate(items) if p in arrays or isinstance(it, (int, np.integer))]
        adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
        index_name = arrays[pos]
        if adjacent or axis == 0:
            ctx.emit("Gather", [x, index_name], out, axis=axis)
        else:  # NumPy puts the array's dimensions first when ints and the array are apart
            gathered = ctx.emit("Gather", [x, index_name], axis=axis)
            k = len(node.specs[0].shape) - (len(kept) - 1) - (ndim - d)
            rank = len(node.specs[0].shape)
            perm = list(range(axis, axis + k)) + [i for i in range(rank) if not axis <= i < axis + k]
            ctx.emit("Transpose", [gathered], out, perm=perm)
    elif not cuts and not squeeze and None not in kept:
        ctx.emit("Identity", [x], out)


@converter(index_ops.GetItem, index_ops.BasicGetItem)
def _getitem(ctx: Context, node) -> None:
    spec = ctx.spec(node.inputs[0])
    items, arrays = [], {}
    for pos, it in enumerate(node.attrs["index"]):
        if isinstance(it, np.ndarray):  # a fixed list of positions: a constant of the model
            arrays[pos] = ctx.const(it.astype(np.int64), "index")
            items.append(_ARRAY)
        else:
            items.append(it)
    convert_getitem(ctx, node, ctx.value(node.inputs[0]), len(spec.shape), tuple(items), arrays)


@converter(index_ops.GetItemDynamic)
def _getitem_dynamic(ctx: Context, node) -> None:
    spec = ctx.spec(node.inputs[0])
    items, arrays = [], {}
    for pos, it in enumerate(node.attrs["template"]):
        if type(it) is index_ops.IndexSlot:
            v = node.inputs[1 + it.i]
            if ctx.spec(v).dtype.category == 0:
                raise Unsupported(
                    "indexing with a boolean mask known only when the model runs selects a data-dependent "
                    "number of elements; use where(mask, x, 0) instead"
                )
            arrays[pos] = ctx.value(v)
            items.append(_ARRAY)
        elif isinstance(it, np.ndarray):
            arrays[pos] = ctx.const(it.astype(np.int64), "index")
            items.append(_ARRAY)
        else:
            items.append(it)
    convert_getitem(ctx, node, ctx.value(node.inputs[0]), len(spec.shape), tuple(items), arrays)


@converter(index_ops.ScatterAdd)
def _scatter_add(ctx: Context, node) -> None:
    # ONNX's ScatterElements with reduction="add" accumulates repeated indices, as minidl's
    # (and torch's) scatter_add does; torch reads only src's region the index covers, which
    # ONNX wants as an updates tensor of exactly the index's shape.
    x_v, index_v, src_v = node.inputs
    dim = int(node.attrs["dim"])
    x, index, src = ctx.value(x_v), ctx.value(index_v), ctx.value(src_v)
    s_shape, i_shape = ctx.spec(src_v).shape, ctx.spec(index_v).shape
    cut = [d for d in range(len(s_shape)) if s_shape[d] is None or s_shape[d] != i_shape[d]]
    if cut:
        sizes = ctx.emit("Gather", [ctx.shape_of(index), ctx.ints(cut)], axis=0)
        src = ctx.emit("Slice", [src, ctx.ints([0] * len(cut)), sizes, ctx.ints(cut)])
    ctx.emit("ScatterElements", [x, index, src], ctx.out(node), axis=dim, reduction="add")


@converter(index_ops.Gather)
def _gather(ctx: Context, node) -> None:
    x_v, index_v = node.inputs
    dim = int(node.attrs["dim"])
    x, index = ctx.value(x_v), ctx.value(index_v)
    x_shape, i_shape = ctx.spec(x_v).shape, ctx.spec(index_v).shape
    cut = [d for d in range(len(x_shape)) if d != dim and (x_shape[d] is None or x_shape[d] != i_shape[d])]
    if cut:  # x's region the index covers: sizes of the index, read when the model runs
        sizes = ctx.emit("Gather", [ctx.shape_of(index), ctx.ints(cut)], axis=0)
        x = ctx.emit("Slice", [x, ctx.ints([0] * len(cut)), sizes, ctx.ints(cut)])
    ctx.emit("GatherElements", [x, index], ctx.out(node), axis=dim)
