"""Ops that move elements without changing them: reshape, transpose, cat, pad, repeat, ...

Their gradients move the gradient back the same way: the rule of ``reshape`` is a reshape to
the old shape, of ``permute`` the inverse permutation, of ``cat`` slicing ``g`` into pieces,
of ``pad`` padding with the *negated* amounts (which crops), of ``repeat`` summing the copies.

``reshape``, ``squeeze``, ``unsqueeze``, ``flatten`` and ``view`` are all one primitive,
``Reshape``: they differ only in how the new shape is computed. Like ``transpose`` and
``permute`` it returns a view that shares storage (and the version counter) with its input
whenever NumPy can express it without copying.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tensor import Tensor
from . import infer
from . import op as op_layer
from .op import Op, ShapeError, Spec, apply


def _shape_arg(shape: tuple, keep_unknown: bool = False) -> tuple:
    """Accept ``reshape(2, 3)`` as well as ``reshape((2, 3))``. With ``keep_unknown`` (a symbolic
    input), ``None`` -- an unknown size passed on from ``x.shape`` -- stays, inferred like ``-1``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(None if s is None and keep_unknown else int(s) for s in shape)


def _resolve_shape(name: str, old: tuple, new: tuple) -> tuple:
    """Fill in one ``-1`` and check that the element count is unchanged."""
    if new.count(-1) > 1:
        raise ShapeError(f"{name}: only one dimension can be inferred (-1), got shape {new}")
    if any(s is not None and s < -1 for s in new):
        raise ShapeError(f"{name}: invalid shape dimension in {new}")
    if None in old or None in new:  # a static graph's unknown sizes: counted when it runs
        return new
    total = math.prod(old)
    if -1 in new:
        known = math.prod(s for s in new if s != -1)
        if known == 0 or total % known:
            raise ShapeError(f"{name}: shape {new} is invalid for input of size {total} (shape {old})")
        new = tuple(total // known if s == -1 else s for s in new)
    if math.prod(new) != total:
        raise ShapeError(
            f"{name}: shape {new} is invalid for input of size {total} (shape {old}); the number of "
            "elements must stay the same"
        )
    return new


class Reshape(Op):
    name = "Reshape"
    is_view = True

    @staticmethod
    def forward(x, like=None, shape=()):
        if like is not None:
            shape = infer.fill_unknown(shape, like.shape)
        elif None in shape:  # built on a static graph with one unknown size: NumPy infers it
            shape = tuple(-1 if s is None else s for s in shape)
        return x.reshape(shape)

    @staticmethod
    def vjp(ctx, g):
        return (g.reshape(ctx.input_shape(0)),)

    @classmethod
    def infer(cls, x: Spec, like: Any = None, shape: tuple = ()) -> Spec:
        if isinstance(like, Spec):
            shape = infer.fill_unknown(tuple(shape), tuple(like.shape))
        elif like is None and tuple(shape).count(None) + tuple(shape).count(-1) > 1:
            raise ShapeError(
                f"reshape: the target shape {tuple(shape)} of an input of shape {tuple(x.shape)} has more than one "
                "size that is unknown until the graph runs; give the placeholder more known sizes"
            )
        resolved = _resolve_shape("reshape", x.shape, tuple(shape))
        return Spec(tuple(None if s == -1 else s for s in resolved), x.dtype)


class Permute(Op):
    name = "Permute"
    is_view = True

    @staticmethod
    def forward(x, dims):
        return np.transpose(x, dims)

    @staticmethod
    def vjp(ctx, g):
        return (g.permute(tuple(np.argsort(ctx.attrs["dims"]).tolist())),)

    @classmethod
    def infer(cls, x: Spec, dims: tuple) -> Spec:
        if sorted(dims) != list(range(len(x.shape))):
            raise ShapeError(
                f"permute: dims {tuple(dims)} is not a permutation of the {len(x.shape)} dimensions of {x.shape}"
            )
        return Spec(tuple(x.shape[d] for d in dims), x.dtype)


class Contiguous(Op):
    name = "Contiguous"

    @staticmethod
    def forward(x):
        return np.ascontiguousarray(x)

    @staticmethod
    def vjp(ctx, g):
        return (g,)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        return x


class Detach(Op):
    """The same value with no gradient path: what ``detach`` means on a symbolic tensor
    (TensorFlow's ``stop_gradient``). Eager ``detach`` needs no op: it wraps the same array."""

    name = "Detach"
    differentiable = False

    @staticmethod
    def forward(x):
        return x

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        return x


class Clone(Contiguous):
    name = "Clone"

    @staticmethod
    def forward(x):
        return x.copy()


class Flip(Op):
    name = "Flip"

    @staticmethod
    def forward(x, dims):
        return np.flip(x, dims).copy()

    @staticmethod
    def vjp(ctx, g):
        return (g.flip(ctx.attrs["dims"]),)

    @classmethod
    def infer(cls, x: Spec, dims: tuple) -> Spec:
        return x


class Repeat(Op):
    """Tile the tensor ``repeats[i]`` times along dimension ``i`` (torch's ``repeat``).

    The gradient views ``g`` as ``(r0, s0, r1, s1, ...)`` and sums over the ``r`` axes: each
    input element received the gradient of all its copies.
    """

    name = "Repeat"

    @staticmethod
    def forward(x, repeats):
        return np.tile(x, repeats)

    @staticmethod
    def vjp(ctx, g):
        repeats = ctx.attrs["repeats"]
        shape = (1,) * (len(repeats) - len(ctx.input_shape(0))) + tuple(ctx.input_shape(0))
        # (a static graph's one unknown size becomes -1: the reshape infers it when the graph runs)
        split = tuple(-1 if v is None else v for r, s in zip(repeats, shape) for v in (r, s))
        summed = g.reshape(split).sum(tuple(range(0, 2 * len(repeats), 2)))
        return (summed.reshape(ctx.input_shape(0)),)

    @classmethod
    def infer(cls, x: Spec, repeats: tuple) -> Spec:
        if len(repeats) < len(x.shape):
            raise ShapeError(
                f"repeat: number of repeat dims ({len(repeats)}) can not be smaller than the number of "
                f"dimensions of the tensor ({len(x.shape)})"
            )
        shape = (1,) * (len(repeats) - len(x.shape)) + tuple(x.shape)
        return Spec(tuple(None if s is None else s * r for s, r in zip(shape, repeats)), x.dtype)


class Triangle(Op):
    """``tril``/``triu``: keep the elements on one side of diagonal ``k``; ``g`` is masked alike."""

    @classmethod
    def infer(cls, x: Spec, k: int = 0) -> Spec:
        if len(x.shape) < 2:
            raise ShapeError(f"{cls.label}: input tensor must have at least 2 dimensions, got shape {x.shape}")
        return x


class Tril(Triangle):
    name = "Tril"

    @staticmethod
    def forward(x, k=0):
        return np.tril(x, k)

    @staticmethod
    def vjp(ctx, g):
        return (tril(g, ctx.attrs["k"]),)


class Triu(Triangle):
    name = "Triu"

    @staticmethod
    def forward(x, k=0):
        return np.triu(x, k)

    @staticmethod
    def vjp(ctx, g):
        return (triu(g, ctx.attrs["k"]),)


class Cat(Op):
    """Concatenate along ``dim``; the gradient of each input is its slice of ``g``."""

    name = "Cat"

    @staticmethod
    def forward(*arrays, dim):
        return np.concatenate(arrays, axis=dim)

    @staticmethod
    def vjp(ctx, g):
        dim = ctx.attrs["dim"]
        sizes = [ctx.input_shape(i)[dim] for i in range(len(ctx.edges))]
        if None in sizes:
            inputs = ctx.inputs
            return tuple(
                apply(CatPiece, g, *inputs, dim=dim, index=i) if ctx.needs_grad(i) else None for i in range(len(sizes))
            )
        grads, start = [], 0
        for i, size in enumerate(sizes):
            grads.append(g.narrow(dim, start, size) if ctx.needs_grad(i) else None)
            start += size
        return tuple(grads)

    @classmethod
    def infer(cls, *xs: Spec, dim: int) -> Spec:
        first = xs[0].shape
        for i, x in enumerate(xs[1:], 1):
            if len(x.shape) != len(first) or any(
                a != b and a is not None and b is not None for j, (a, b) in enumerate(zip(first, x.shape)) if j != dim
            ):
                raise ShapeError(
                    f"cat: sizes of tensors must match except in dimension {dim}: tensor 0 has shape "
                    f"{tuple(first)} but tensor {i} has shape {tuple(x.shape)}"
                )
        sizes = [x.shape[dim] for x in xs]
        total = None if None in sizes else sum(sizes)
        shape = first[:dim] + (total,) + first[dim + 1 :]
        return Spec(shape, infer.promoted_dtype(*xs))


class CatPiece(Op):
    """Piece ``index`` of ``g``, cut along ``dim`` where ``Cat`` joined ``inputs``: ``Cat``'s rule
    on a static graph whose sizes along ``dim`` are known only when it runs (two batches
    joined), read off the inputs then. The rule of the piece puts it back between zeros."""

    name = "CatPiece"
    is_view = True

    @staticmethod
    def forward(g, *inputs, dim, index):
        start = sum(x.shape[dim] for x in inputs[:index])
        return g[(slice(None),) * dim + (slice(start, start + inputs[index].shape[dim]),)]

    @staticmethod
    def vjp(ctx, gg):
        from .creation import zeros_like

        dim, index = ctx.attrs["dim"], ctx.attrs["index"]
        inputs = ctx.inputs[1:]
        pieces = [gg if i == index else zeros_like(x, dtype=gg.dtype) for i, x in enumerate(inputs)]
        return (cat(pieces, dim),) + (None,) * len(inputs)

    @classmethod
    def infer(cls, g: Spec, *inputs: Spec, dim: int, index: int) -> Spec:
        return Spec(g.shape[:dim] + (inputs[index].shape[dim],) + g.shape[dim + 1 :], g.dtype)


class Pad(Op):
    """Constant padding; ``pad`` lists (before, after) pairs starting from the *last* dimension.

    A negative amount crops. That makes the rule symmetric: the gradient of ``pad(x, p)`` is
    ``pad(g, -p)`` -- the padding is cut away, and cropped borders come back as zeros.
    """

    name = "Pad"

    @staticmethod
    def forward(x, pad, value=0.0):
        crops = []
        widths = []
        for d in range(x.ndim):
            k = x.ndim - 1 - d
            before, after = (pad[2 * k], pad[2 * k + 1]) if 2 * k + 1 < len(pad) else (0, 0)
            crops.append(slice(-before if before < 0 else 0, x.shape[d] + after if after < 0 else None))
            widths.append((builtin_max(before, 0), builtin_max(after, 0)))
        x = x[tuple(crops)]
        if any(w != (0, 0) for w in widths):
            x = np.pad(x, widths, mode="constant", constant_values=value)
        return x

    @staticmethod
    def vjp(ctx, g):
        return (pad(g, tuple(-p for p in ctx.attrs["pad"])),)

    @classmethod
    def infer(cls, x: Spec, pad: tuple, value: float = 0.0) -> Spec:
        if len(pad) % 2 or len(pad) // 2 > len(x.shape):
            raise ShapeError(
                f"pad: padding length must be even and at most twice the number of dimensions "
                f"({len(x.shape)}), got {len(pad)} values"
            )
        shape = list(x.shape)
        for k in range(len(pad) // 2):
            d = len(shape) - 1 - k
            if shape[d] is not None:
                shape[d] += pad[2 * k] + pad[2 * k + 1]
                if shape[d] < 0:
                    raise ShapeError(f"pad: padding {pad} would give dimension {d} a negative size (input {x.shape})")
        return Spec(tuple(shape), x.dtype)


builtin_max = max


# ---- the functions -------------------------------------------------------------------------------


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """The same elements in a new shape (one ``-1`` is inferred); a view when possible."""
    if len(shape) == 1 and infer.is_dynamic(shape[0]):
        if tuple(shape[0]) == tuple(x.shape):
            return x
        return apply(Reshape, x, shape[0].like, shape=tuple(shape[0]))
    shape = _shape_arg(shape, keep_unknown=type(x) is op_layer.SYMBOLIC_TYPE)
    if shape == x.shape:
        return apply(Reshape, x, shape=shape)
    return apply(Reshape, x, shape=_resolve_shape("reshape", x.shape, shape))


def view(x: Tensor, *shape: Any) -> Tensor:
    """Like ``reshape``, but raises instead of copying when the strides do not allow a view."""
    shape = _resolve_shape("view", x.shape, _shape_arg(shape))
    if type(x) is op_layer.SYMBOLIC_TYPE:  # a static graph holds no strides: every value is contiguous
        return apply(Reshape, x, shape=shape)
    try:
        np.reshape(x._data, shape, copy=False)
    except ValueError:
        raise RuntimeError(
            f"view: size {shape} is not compatible with the input's size and stride (at least one "
            "dimension spans across two contiguous subspaces); use .reshape(...) instead"
        ) from None
    return apply(Reshape, x, shape=shape)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` into one."""
    if x.ndim == 0:
        return reshape(x, (1,))
    s = infer.normalize_dim("flatten", start_dim, x.ndim)
    e = infer.normalize_dim("flatten", end_dim, x.ndim)
    if s > e:
        raise ValueError(f"flatten: start_dim ({start_dim}) cannot come after end_dim ({end_dim})")
    merged = x.shape[s : e + 1]
    shape = x.shape[:s] + (None if None in merged else math.prod(merged),) + x.shape[e + 1 :]
    if None in shape:  # a static graph with unknown sizes: let the one unknown be inferred
        if shape.count(None) > 1:
            raise ShapeError(
                f"flatten: input of shape {x.shape} has more than one unknown size around the flattened "
                "dimensions; give the placeholder more known sizes, or reshape explicitly"
            )
        shape = tuple(-1 if d is None else d for d in shape)
    return apply(Reshape, x, shape=shape)


def squeeze(x: Tensor, dim: Any = None) -> Tensor:
    """Drop size-1 dimensions (all of them, or those in ``dim`` that have size 1)."""
    if dim is None:
        dims = tuple(i for i, s in enumerate(x.shape) if s == 1)
    else:
        dims = infer.normalize_dims("squeeze", dim, x.ndim) if x.ndim else ()
    shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return apply(Reshape, x, shape=shape)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dimension at ``dim`` (``-1`` appends)."""
    d = infer.normalize_dim("unsqueeze", dim, x.ndim + 1)
    shape = x.shape[:d] + (1,) + x.shape[d:]
    return apply(Reshape, x, shape=shape)


def permute(x: Tensor, *dims: Any) -> Tensor:
    """Reorder the dimensions: output dimension ``i`` is input dimension ``dims[i]``."""
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise ShapeError(f"permute: number of dims {len(dims)} doesn't match the tensor's {x.ndim} dimensions")
    dims = tuple(infer.normalize_dim("permute", d, x.ndim) for d in dims)
    return apply(Permute, x, dims=dims)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions (a view)."""
    if x.ndim == 0:
        return apply(Reshape, x, shape=())
    d0 = infer.normalize_dim("transpose", dim0, x.ndim)
    d1 = infer.normalize_dim("transpose", dim1, x.ndim)
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return apply(Permute, x, dims=tuple(dims))


def t(x: Tensor) -> Tensor:
    """Transpose a matrix (tensors of up to 2 dimensions), as ``torch.t``."""
    if x.ndim > 2:
        raise ShapeError(f"t: expects a tensor with <= 2 dimensions, but got {x.ndim}; use transpose or .mT")
    return transpose(x, 0, 1) if x.ndim == 2 else x


def T(x: Tensor) -> Tensor:
    """All dimensions reversed (``x.T``)."""
    return apply(Permute, x, dims=tuple(reversed(range(x.ndim))))


def mT(x: Tensor) -> Tensor:
    """The last two dimensions swapped (``x.mT``), for batched matrices."""
    if x.ndim < 2:
        raise ShapeError(f"mT: expects a tensor with at least 2 dimensions, got {x.ndim}")
    return transpose(x, -2, -1)


def expand(x: Tensor, *sizes: Any) -> Tensor:
    """Broadcast to ``sizes`` without copying; ``-1`` keeps a dimension's size."""
    from .reduce import broadcast_to

    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ShapeError(
            f"expand: the number of sizes provided ({len(sizes)}) must be at least the tensor's dimensions ({x.ndim})"
        )
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    if any(s == -1 for s in shape[:lead]):
        raise ShapeError("expand: -1 is not allowed for a new leading dimension")
    return broadcast_to(x, shape)


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    return expand(x, other.shape)


def contiguous(x: Tensor) -> Tensor:
    """A C-contiguous tensor with the same values (``x`` itself if it already is one)."""
    if x._data.flags.c_contiguous:
        return x
    return apply(Contiguous, x)


def clone(x: Tensor) -> Tensor:
    """A copy with its own storage; gradients flow through it unchanged."""
    return apply(Clone, x)


def flip(x: Tensor, dims: Any) -> Tensor:
    """Reverse the order of elements along ``dims`` (a copy, as in torch)."""
    return apply(Flip, x, dims=infer.normalize_dims("flip", dims, x.ndim) if x.ndim else ())


def repeat(x: Tensor, *repeats: Any) -> Tensor:
    return apply(Repeat, x, repeats=_shape_arg(repeats))


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """Lower triangle: elements on and below diagonal ``diagonal``; the rest zero."""
    return apply(Tril, x, k=diagonal)


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """Upper triangle: elements on and above diagonal ``diagonal``; the rest zero."""
    return apply(Triu, x, k=diagonal)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension; dtypes promote as for arithmetic."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    for i, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise TypeError(f"cat: expected a sequence of Tensors, but element {i} is {type(x).__name__}")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ShapeError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    d = infer.normalize_dim("cat", dim, ndim)
    dtype = infer.promoted_dtype(*(Spec(x.shape, x.dtype) for x in tensors))
    tensors = [x if x.dtype is dtype else x.to(dtype) for x in tensors]
    return apply(Cat, *tensors, dim=d)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors of equal shape along a new dimension ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {tuple(x.shape) for x in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: expects each tensor to be equal size, but got shapes {sorted(shapes)}")
    d = infer.normalize_dim("stack", dim, tensors[0].ndim + 1)
    return cat([unsqueeze(x, d) for x in tensors], d)


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """Elements ``start .. start + length`` along ``dim`` (a view)."""
    d = infer.normalize_dim("narrow", dim, x.ndim)
    index = (slice(None),) * d + (slice(start, start + length),)
    return x[index]


def split(x: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Cut into pieces of ``split_size`` (the last may be smaller) or of the listed sizes."""
    d = infer.normalize_dim("split", dim, x.ndim)
    size = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sections = [builtin_min(step, size - s) for s in range(0, size, step)] or [0]
    else:
        sections = [int(s) for s in split_size_or_sections]
        if sum(sections) != size:
            raise ShapeError(
                f"split: split sizes {sections} sum to {sum(sections)} but dimension {d} of the input has size {size}"
            )
    pieces, start = [], 0
    for s in sections:
        pieces.append(narrow(x, d, start, s))
        start += s
    return tuple(pieces)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Cut into ``chunks`` pieces of size ``ceil(n / chunks)`` (the last may be smaller)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    d = infer.normalize_dim("chunk", dim, x.ndim)
    step = -(-x.shape[d] // chunks) or 1
    return split(x, step, d)


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad (or, with negative amounts, crop) the last dimensions: ``pad = (left, right, top, bottom, ...)``."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is implemented, got {mode!r}")
    pad = tuple(int(p) for p in pad)
    return apply(Pad, x, pad=pad, value=value)


builtin_min = min
