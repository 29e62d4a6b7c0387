"""Indexing: ``x[index]``, ``x[index] = v``, ``gather`` and ``scatter_add``.

``x[index]`` follows NumPy (and torch): ints, slices, ``None`` and ``...`` select a *view*;
integer arrays and boolean masks (advanced indexing) select a *copy*. The gradient is the
adjoint -- ``g`` scattered back into zeros of the input's shape. With advanced indexing an
element can be picked more than once (``x[[0, 0, 1]]``), and then it must receive the *sum*
of its gradients, so the scatter adds (``np.add.at``) rather than assigns.

Assignment ``x[index] = v`` is the op ``IndexPut`` applied in place: the output equals ``x``
with the indexed positions replaced by ``v``. Its gradient sends ``g`` to ``x`` with those
positions zeroed (their old values were overwritten), and ``g[index]`` to ``v``.

``gather`` and ``scatter_add`` are the same adjoint pair along one dimension.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..backend.device import array_module
from ..backend.registry import kernels_for
from ..errors import DTypeError
from ..tape import grad_state
from ..tensor import Tensor
from . import infer
from . import op as op_layer
from .op import Op, ShapeError, Spec, _check_inplace_allowed, _commit_inplace, apply, explain

_BASIC = (int, slice, type(None), type(Ellipsis))


def normalize_index(index: Any) -> tuple:
    """An index as a tuple of ints, slices, None, Ellipsis and integer arrays.

    Tensors and lists become arrays; boolean masks become the integer coordinates of their
    true elements (one array per masked dimension), which is what NumPy does internally and
    what ``np.add.at`` needs in the backward pass.
    """
    if not isinstance(index, tuple):
        index = (index,)
    out: list[Any] = []
    for item in index:
        if isinstance(item, bool):
            raise IndexError("minidl does not support a Python bool as an index; use a bool tensor mask")
        if isinstance(item, (int, np.integer)):
            out.append(int(item))
            continue
        if isinstance(item, (slice, type(None), type(Ellipsis))):
            out.append(item)
            continue
        if isinstance(item, Tensor):
            arr = item._data
        elif isinstance(item, (list, np.ndarray)):
            arr = np.asarray(item)
            if arr.dtype.kind == "f" and arr.size == 0:
                arr = arr.astype(np.int64)
        else:
            raise IndexError(
                f"invalid index of type {type(item).__name__}; use ints, slices, None, ..., or integer/bool tensors"
            )
        if arr.dtype.kind == "b":
            out.extend(np.nonzero(arr))
        elif arr.dtype.kind in "iu":
            out.append(arr.astype(np.int64, copy=False))
        else:
            raise IndexError(
                f"tensors used as indices must be long, int or bool tensors, got {arr.dtype}; convert the "
                "index with .long()"
            )
    return tuple(out)


def on_device(index: tuple, xp) -> tuple:
    """The index with its integer arrays on the device of the array module ``xp``."""
    if xp is np:
        return index
    return tuple(xp.asarray(i) if hasattr(i, "dtype") and getattr(i, "ndim", 0) else i for i in index)


def is_basic(index: tuple) -> bool:
    return all(isinstance(i, _BASIC) for i in index)


def _index_infer(name: str, x: Spec, index: tuple) -> tuple:
    """The shape ``x[index]`` has, computed by indexing an empty-strided dummy array.

    A static graph's unknown sizes (``None``) are tried at two sizes, just large enough for
    every integer in the index; a result size that differs between the two is unknown too."""
    if None in x.shape:
        n = _stand_in_size(index)
        stand_ins = (Spec(tuple(m if s is None else s for s in x.shape), x.dtype) for m in (n, n + 1))
        sizes = [_index_infer(name, spec, index) for spec in stand_ins]
        return tuple(a if a == b else None for a, b in zip(*sizes))
    dummy = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape=x.shape, strides=(0,) * len(x.shape))
    try:
        return dummy[index].shape
    except IndexError as err:
        raise IndexError(f"{name}: {err} (indexing a tensor of shape {tuple(x.shape)})") from None


def _stand_in_size(index: tuple) -> int:
    """A size for unknown dimensions at which every integer in ``index`` is in range."""
    n = 2
    for item in index:
        bounds = (item.start, item.stop) if isinstance(item, slice) else (item,)
        for b in bounds:
            if isinstance(b, int):
                n = max(n, abs(b) + 1)
            elif isinstance(b, np.ndarray) and b.size:
                n = max(n, int(np.abs(b).max()) + 1)
    return n


class GetItem(Op):
    name = "Index"

    @staticmethod
    def forward(x, index):
        return x[on_device(index, array_module(x))]

    @staticmethod
    def vjp(ctx, g):
        return (index_add_to(g, ctx.attrs["index"], ctx.input_shape(0)),)

    @classmethod
    def infer(cls, x: Spec, index: tuple) -> Spec:
        return Spec(_index_infer("index", x, index), x.dtype)


class BasicGetItem(GetItem):
    """Indexing with ints, slices, None and ``...`` only: the result is a view."""

    is_view = True


class IndexAddTo(Op):
    """Zeros of ``shape`` with ``g`` added at ``index`` (repeated positions accumulate)."""

    name = "IndexAddTo"

    @staticmethod
    def forward(g, like=None, index=(), shape=()):
        if like is not None:  # a static graph's unknown sizes, read off the indexed input
            shape = infer.fill_unknown(shape, like.shape)
        xp = array_module(g)
        out = xp.zeros(shape, dtype=g.dtype)
        if is_basic(index):
            out[index] = g
        else:
            kernels_for(g).index_add(out, on_device(index, xp), g)
        return out

    @staticmethod
    def vjp(ctx, gg):
        return (gg[ctx.attrs["index"]],)

    @classmethod
    def infer(cls, g: Spec, like: Any = None, index: tuple = (), shape: tuple = ()) -> Spec:
        return Spec(tuple(shape), g.dtype)


class IndexPut(Op):
    """``x`` with ``x[index]`` replaced by ``v`` (broadcast); applied in place by ``x[index] = v``."""

    name = "IndexPut"
    vjp_reads_input0 = False

    @staticmethod
    def forward(x, v, index):
        out = x.copy()
        out[on_device(index, array_module(x))] = v
        return out

    @staticmethod
    def forward_inplace(x, v, index):
        x[on_device(index, array_module(x))] = v
        return x

    @staticmethod
    def vjp(ctx, g):
        index = ctx.attrs["index"]
        gx = index_put(g, index, 0.0) if ctx.needs_grad(0) else None
        gv = None
        if ctx.needs_grad(1):
            from .reduce import sum_to

            gv = sum_to(g[index], ctx.input_shape(1))
        return gx, gv

    @classmethod
    def infer(cls, x: Spec, v: Any, index: tuple) -> Spec:
        target = _index_infer("index assignment", x, index)
        shape = infer.shape_of(v)
        if infer.broadcast_shapes("index assignment", shape, target) != tuple(target):
            raise ShapeError(
                f"index assignment: a value of shape {tuple(shape)} cannot be assigned to the indexed "
                f"region of shape {tuple(target)}"
            )
        return x


class Gather(Op):
    """``out[i][j][k] = x[i][index[i][j][k]][k]`` for ``dim = 1`` (and likewise for any dim)."""

    name = "Gather"

    @staticmethod
    def forward(x, index, dim):
        region = tuple(slice(None) if d == dim else slice(0, s) for d, s in enumerate(index.shape))
        return np.take_along_axis(x[region], index, axis=dim)

    @staticmethod
    def vjp(ctx, g):
        from .creation import zeros

        x, index, dim = ctx.input_shape(0), ctx.input(1), ctx.attrs["dim"]
        return (zeros(x, dtype=g.dtype, device=g.device).scatter_add(dim, index, g), None)

    @classmethod
    def infer(cls, x: Spec, index: Spec, dim: int) -> Spec:
        infer.require_integer("gather", index)
        _check_gather_shapes("gather", x.shape, index.shape, dim)
        return Spec(tuple(index.shape), x.dtype)


def _check_gather_shapes(name: str, x: tuple, index: tuple, dim: int) -> None:
    if len(x) != len(index):
        raise ShapeError(
            f"{name}: index tensor must have the same number of dimensions as input ({len(x)}), got {len(index)}"
        )
    for d, (a, b) in enumerate(zip(x, index)):
        if d != dim and a is not None and b is not None and b > a:
            raise ShapeError(
                f"{name}: size of the index {tuple(index)} does not fit the input {tuple(x)} in dimension {d} "
                f"({b} > {a}); the index may be smaller than the input except along dim={dim}"
            )


class ScatterAdd(Op):
    """``out = x`` with ``src`` added at the positions ``index`` names along ``dim``."""

    name = "ScatterAdd"

    @staticmethod
    def forward(x, index, src, dim):
        xp = array_module(x)
        out = x.copy()
        coords = list(xp.ogrid[tuple(slice(s) for s in index.shape)])
        coords[dim] = index
        kernels_for(x).index_add(out, tuple(coords), src[tuple(slice(0, s) for s in index.shape)])
        return out

    @staticmethod
    def vjp(ctx, g):
        index, dim = ctx.input(1), ctx.attrs["dim"]
        gsrc = None
        if ctx.needs_grad(2):
            gsrc = g.gather(dim, index)
            src_shape = ctx.input_shape(2)
            if tuple(src_shape) != tuple(index.shape):
                from .shape import pad

                widths = []
                for s, i in zip(reversed(src_shape), reversed(index.shape)):
                    widths += [0, s - i]
                gsrc = pad(gsrc, widths)
        return (g if ctx.needs_grad(0) else None, None, gsrc)

    @classmethod
    def infer(cls, x: Spec, index: Spec, src: Spec, dim: int) -> Spec:
        infer.require_integer("scatter_add", index)
        _check_gather_shapes("scatter_add", x.shape, index.shape, dim)
        for d, (a, b) in enumerate(zip(src.shape, index.shape)):
            if a is not None and b is not None and b > a:
                raise ShapeError(
                    f"scatter_add: index {tuple(index.shape)} is larger than src {tuple(src.shape)} in dimension {d}"
                )
        return x


# ---- the functions -------------------------------------------------------------------------------


class IndexSlot:
    """In the index template of ``GetItemDynamic``: "the i-th index tensor goes here"."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __eq__(self, other: object) -> bool:
        return type(other) is IndexSlot and other.i == self.i

    def __hash__(self) -> int:
        return hash(("IndexSlot", self.i))

    def __repr__(self) -> str:
        return f"<index {self.i}>"


def _fill_template(template: tuple, arrays: tuple) -> tuple:
    """The index with each slot's array in place; a boolean mask becomes the coordinates of its
    true elements (as ``normalize_index`` does), which is what ``np.add.at`` needs."""
    out: list[Any] = []
    for item in template:
        if type(item) is not IndexSlot:
            out.append(item)
        elif arrays[item.i].dtype.kind == "b":
            out.extend(arrays[item.i].nonzero())
        else:
            out.append(arrays[item.i].astype(np.int64, copy=False))
    return tuple(out)


def _stand_in_index(template: tuple, indices: tuple, n: int) -> tuple:
    """For shape inference: the template filled with zeros, ``n`` long wherever a length is not
    known before the graph runs (an unknown size, the number of true elements of a mask)."""
    out: list[Any] = []
    for item in template:
        if type(item) is not IndexSlot:
            out.append(item)
        elif indices[item.i].dtype.category == 0:
            out.extend(np.zeros(n, np.int64) for _ in indices[item.i].shape)
        else:
            out.append(np.zeros(tuple(n if s is None else s for s in indices[item.i].shape), np.int64))
    return tuple(out)


class GetItemDynamic(Op):
    """``x[index]`` where integer index tensors are inputs, not attributes: how a static graph
    indexes with values it only has at run time (an embedding lookup of fed token ids)."""

    name = "IndexDynamic"

    @staticmethod
    def forward(x, *indices, template):
        return x[on_device(_fill_template(template, indices), array_module(x))]

    @staticmethod
    def vjp(ctx, g):
        indices = ctx.inputs[1:]
        shape = ctx.input_shape(0)
        like = shape.like if infer.is_dynamic(shape) else None  # unknown sizes are read off x
        grad = apply(IndexAddToDynamic, g, like, *indices, template=ctx.attrs["template"], shape=tuple(shape))
        return (grad,) + (None,) * len(indices)

    @classmethod
    def infer(cls, x: Spec, *indices: Spec, template: tuple) -> Spec:
        # Indexed twice with stand-ins of two lengths: a size that differs is unknown until the
        # graph runs (how many elements a mask selects; a size of an index of unknown shape).
        a, b = (_index_infer("index", x, _stand_in_index(template, indices, n)) for n in (2, 3))
        return Spec(tuple(p if p == q else None for p, q in zip(a, b)), x.dtype)


class IndexAddToDynamic(Op):
    """Zeros of ``shape`` with ``g`` added at an index made of runtime index tensors. ``like``
    (or ``None``) is the indexed input, whose sizes fill in the unknown ones of ``shape``."""

    name = "IndexAddToDynamic"

    @staticmethod
    def forward(g, like, *indices, template, shape):
        return IndexAddTo.forward(g, like, index=_fill_template(template, indices), shape=shape)

    @staticmethod
    def vjp(ctx, gg):
        return (apply(GetItemDynamic, gg, *ctx.inputs[2:], template=ctx.attrs["template"]),) + (None,) * (
            len(ctx.inputs) - 1
        )

    @classmethod
    def infer(cls, g: Spec, like: Any, *indices: Spec, template: tuple, shape: tuple) -> Spec:
        return Spec(tuple(shape), g.dtype)


def _getitem_dynamic(x: Tensor, index: Any) -> Tensor:
    items = index if isinstance(index, tuple) else (index,)
    template, tensors = [], []
    for item in items:
        if isinstance(item, Tensor) and type(item) is not Tensor:
            if item.dtype.category == 2:
                raise IndexError(
                    f"index: tensors used as indices must be long, int or bool tensors, got {item.dtype.name}; "
                    "convert the index with .long()"
                )
            template.append(IndexSlot(len(tensors)))
            tensors.append(item)
        else:
            template.extend(normalize_index(item) if isinstance(item, (Tensor, list, np.ndarray)) else (item,))
    return apply(GetItemDynamic, x, *tensors, template=tuple(template))


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]``: NumPy/torch indexing, a view for basic indices and a copy for advanced ones."""
    if op_layer.SYMBOLIC_TYPE is not None and any(
        type(i) is op_layer.SYMBOLIC_TYPE for i in (index if isinstance(index, tuple) else (index,))
    ):
        return _getitem_dynamic(x, index)
    index = normalize_index(index)
    op = BasicGetItem if is_basic(index) else GetItem
    return apply(op, x, index=index)


def index_add_to(g: Tensor, index: tuple, shape: tuple) -> Tensor:
    if infer.is_dynamic(shape):
        return apply(IndexAddTo, g, shape.like, index=index, shape=tuple(shape))
    return apply(IndexAddTo, g, index=index, shape=tuple(shape))


def index_put(x: Tensor, index: Any, value: Any) -> Tensor:
    """Out-of-place ``x[index] = value``."""
    return apply(IndexPut, x, value, index=normalize_index(index) if not isinstance(index, tuple) else index)


def setitem(x: Tensor, index: Any, value: Any) -> None:
    """``x[index] = value`` in place, recorded for autograd as ``IndexPut``."""
    index = normalize_index(index)
    if not isinstance(value, Tensor):
        if isinstance(value, (list, tuple, np.ndarray)):
            value = Tensor(array_module(x._data).asarray(value, dtype=x._data.dtype))
        elif not isinstance(value, (int, float, bool, np.number)):
            raise TypeError(f"index assignment: cannot assign a {type(value).__name__}; use a tensor or a number")
    sym = op_layer.SYMBOLIC_TYPE
    if sym is not None and (
        type(x) is sym or type(value) is sym or (op_layer.graph_building and op_layer.symbolic.lifts((x, value)))
    ):  # building a graph: an IndexPut node, and ``x`` rebound to its result
        op_layer.symbolic.apply_inplace(IndexPut, x, (value,), {"index": index})
        return
    recording = grad_state.enabled and (x._rg or (isinstance(value, Tensor) and value._rg))
    if recording:
        _check_inplace_allowed(IndexPut, x)
    v = value._data if isinstance(value, Tensor) else value
    if isinstance(value, Tensor) and value._data.dtype.kind == "f" and x._data.dtype.kind != "f":
        raise RuntimeError(
            f"index assignment: a {value.dtype.name} value can't be written into a {x.dtype.name} tensor; "
            "convert one of them first"
        )
    try:
        IndexPut.forward_inplace(x._data, v, index)
    except Exception as err:
        raise explain(
            IndexPut,
            (
                x,
                value,
            ),
            {"index": index},
            err,
        ) from err
    _commit_inplace(IndexPut, x, (value,), {"index": index}, x._data, None, recording)


def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """Pick values along ``dim`` at ``index`` (same number of dimensions as ``x``)."""
    if not isinstance(index, Tensor) or index.dtype.category != 1:
        raise DTypeError(
            "gather: index must be an integer tensor (int64); got "
            f"{index.dtype.name if isinstance(index, Tensor) else type(index).__name__}. Convert it with .long()"
        )
    d = infer.normalize_dim("gather", dim, x.ndim)
    _check_gather_shapes("gather", x.shape, index.shape, d)
    return apply(Gather, x, index, dim=d)


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """``x`` plus ``src`` added at the positions ``index`` gives along ``dim``."""
    if not isinstance(index, Tensor) or index.dtype.category != 1:
        raise DTypeError("scatter_add: index must be an integer tensor (int64); convert it with .long()")
    d = infer.normalize_dim("scatter_add", dim, x.ndim)
    if src.dtype is not x.dtype:
        src = src.to(x.dtype)
    return apply(ScatterAdd, x, index, src, dim=d)


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """Rows (or slices along ``dim``) listed by a 1-D integer ``index``."""
    if not isinstance(index, Tensor) or index.ndim > 1 or index.dtype.category != 1:
        raise DTypeError("index_select: index must be a 1-D integer tensor (int64)")
    d = infer.normalize_dim("index_select", dim, x.ndim)
    return getitem(x, (slice(None),) * d + (index.reshape(-1),))


def masked_fill(x: Tensor, mask: Tensor, value: Any) -> Tensor:
    """``value`` where ``mask`` is true, ``x`` elsewhere (``mask`` broadcasts)."""
    from .arith import where

    if not isinstance(mask, Tensor) or mask.dtype is not dtypes.bool_:
        raise DTypeError("masked_fill: mask must be a bool tensor; compare first, for example x > 0")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ShapeError(f"masked_fill: value must be a number or a 0-dimensional tensor, got shape {value.shape}")
        value = value.to(x.dtype)
    else:
        value = float(value) if x.is_floating_point() else int(value)
    out = where(mask, value, x)
    if out.shape != x.shape:
        raise ShapeError(f"masked_fill: mask of shape {mask.shape} would broadcast the input {x.shape} to {out.shape}")
    return out
