"""Reductions: ``sum``, ``mean``, ``prod``, ``amax``, ``logsumexp``, ``norm``, ``var``, ...

A reduction's gradient *broadcasts back*: every input element that fed an output receives
that output's gradient, times how much it contributed. For ``sum`` the factor is 1, so the
rule is "reshape ``g`` to keep the reduced dimensions as size 1, then expand it to the input
shape". ``SumTo`` and ``BroadcastTo`` are that pair of adjoint primitives: broadcasting in
the forward pass means summing in the backward pass, and vice versa.

Rules, with ``G`` the gradient broadcast back to the input shape:

* ``amax``/``amin``: ``G`` shared evenly among the elements equal to the extreme (ties split);
* ``prod``: ``G * prod / x``, computed without dividing by zero (see ``Prod``);
* ``logsumexp``: ``G * exp(x - out)``, i.e. ``G`` times the softmax;
* ``norm`` (p = 2): ``G * x / norm``, zero where the norm is zero;
* ``cumsum``: the reversed cumulative sum of ``g``.

``mean``, ``var``, ``std`` and ``max(dim)`` are compositions of these primitives.
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import DTypeError
from ..tensor import Tensor
from . import arith, infer
from . import op as op_layer
from .op import Op, ShapeError, Spec, apply, unary

MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _dims(name: str, x: Tensor, dim: Any) -> tuple[int, ...]:
    if x.ndim == 0:
        if dim is not None:
            for d in dim if isinstance(dim, (list, tuple)) else (dim,):
                infer.normalize_dim(name, d, 0)
        return ()
    return infer.normalize_dims(name, dim, x.ndim)


def _keep(g: Tensor, in_shape: tuple, dims: tuple[int, ...], keepdim: bool) -> Tensor:
    """Reinsert the reduced dimensions of a gradient as size 1, so that it broadcasts."""
    if keepdim or not dims:
        return g
    shape = infer.reduced_shape(in_shape, dims, True)
    if infer.is_dynamic(in_shape):
        shape = infer.DynamicShape(shape, in_shape.like)
    return g.reshape(shape)


class Reduction(Op):
    """A reduction over ``dim`` (a tuple of normalized dims) with ``keepdim``."""

    @classmethod
    def infer(cls, x: Spec, dim: tuple = (), keepdim: bool = False, **attrs) -> Spec:
        return Spec(infer.reduced_shape(x.shape, dim, keepdim), cls.out_dtype(x.dtype))

    @staticmethod
    def out_dtype(dtype):
        return dtype


class Sum(Reduction):
    name = "Sum"

    @staticmethod
    def forward(x, dim=(), keepdim=False):
        return x.sum(axis=dim, keepdims=keepdim)

    @staticmethod
    def vjp(ctx, g):
        shape = ctx.input_shape(0)
        return (broadcast_to(_keep(g, shape, ctx.attrs["dim"], ctx.attrs["keepdim"]), shape),)

    @staticmethod
    def out_dtype(dtype):
        return dtype if dtype.category == 2 else dtypes.int64


class SumTo(Op):
    """Sum a broadcast array back down to ``shape`` (the gradient of broadcasting)."""

    name = "SumTo"

    @staticmethod
    def forward(x, like=None, shape=()):
        if like is not None:
            shape = infer.fill_unknown(shape, like.shape)
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
        out = x.sum(axis=axes, keepdims=True) if axes else x
        return out.reshape(shape) if lead else out

    @staticmethod
    def vjp(ctx, g):
        return (broadcast_to(g, ctx.input_shape(0)),)

    @classmethod
    def infer(cls, x: Spec, like: Any = None, shape: tuple = ()) -> Spec:
        infer.broadcast_shapes("sum_to", x.shape, shape)
        return Spec(tuple(shape), x.dtype)


class BroadcastTo(Op):
    """Stretch size-1 (and missing leading) dimensions to ``shape``; a read-only view."""

    name = "BroadcastTo"
    is_view = True

    @staticmethod
    def forward(x, like=None, shape=()):
        if like is not None:
            shape = infer.fill_unknown(shape, like.shape)
        return np.broadcast_to(x, shape)

    @staticmethod
    def vjp(ctx, g):
        return (sum_to(g, ctx.input_shape(0)),)

    @classmethod
    def infer(cls, x: Spec, like: Any = None, shape: tuple = ()) -> Spec:
        shape = tuple(shape)
        ok = len(shape) >= len(x.shape) and builtins.all(
            s == t or s == 1 or s is None or t is None for s, t in zip(x.shape[::-1], shape[::-1])
        )
        if not ok:
            raise ShapeError(
                f"expand: the shape {tuple(x.shape)} cannot be expanded to {shape}: each dimension must "
                "match or be 1, and new dimensions can only be added on the left"
            )
        return Spec(shape, x.dtype)


def sum_to(g: Tensor, shape: tuple) -> Tensor:
    """``g`` summed over the dimensions that broadcasting stretched to reach ``g.shape``."""
    if g.shape == shape:
        return g
    if infer.is_dynamic(shape):
        return apply(SumTo, g, shape.like, shape=tuple(shape))
    return apply(SumTo, g, shape=tuple(shape))


def broadcast_to(x: Tensor, shape: Any) -> Tensor:
    """A read-only view of ``x`` broadcast to ``shape`` (torch's ``expand`` without the -1s)."""
    if infer.is_dynamic(shape):
        if x.shape == tuple(shape):
            return x
        return apply(BroadcastTo, x, shape.like, shape=tuple(shape))
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return apply(BroadcastTo, x, shape=shape)


class Prod(Reduction):
    """Product of elements. Its gradient, the product of all the *other* elements, must
    survive zeros in ``x``.

    Without zeros, d prod / d x_i = prod / x_i, one division. With a zero in the slice that
    formula divides 0 by 0, so the rule instead forms, for each i, the slice with x_i replaced
    by 1 (an n x n ``where``) and multiplies it out: prod_{j != i} x_j exactly. Both branches
    are built from differentiable ops, so higher derivatives are right too.
    """

    name = "Prod"

    @staticmethod
    def forward(x, dim=(), keepdim=False):
        return np.prod(x, axis=dim, keepdims=keepdim)

    @staticmethod
    def vjp(ctx, g):
        x = ctx.input(0)
        dims, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
        g = _keep(g, x.shape, dims, keepdim)
        # A static graph's rule is built before the values exist: it takes the zero-safe form.
        if type(x) is not op_layer.SYMBOLIC_TYPE and not bool((x._data == 0).any()):
            return (g * _keep(ctx.output, x.shape, dims, keepdim) / x,)
        return (g * _product_of_others(x, dims),)

    @staticmethod
    def out_dtype(dtype):
        return dtype if dtype.category == 2 else dtypes.int64


def _product_of_others(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """For every element, the product of the other elements of its slice over ``dims``."""
    from .creation import eye

    kept = [d for d in range(x.ndim) if d not in dims]
    order = kept + list(dims)
    moved = x.permute(order) if order != list(range(x.ndim)) else x
    lead = tuple(moved.shape[: len(kept)])
    if None in moved.shape[len(kept) :]:
        raise ShapeError(
            f"prod: the gradient of a product over dimensions {dims} of a tensor of shape {tuple(x.shape)} needs "
            "their sizes, which are unknown until the graph runs; give the placeholder known sizes there"
        )
    n = math.prod(moved.shape[len(kept) :])
    rows = moved.reshape(tuple(-1 if s is None else s for s in lead) + (n,))  # (a graph's unknown size: -1)
    diagonal = eye(n, dtype="bool", device=x.device)
    others = arith.where(diagonal, 1.0, rows.unsqueeze(-2)).prod(-1)
    back = others.reshape(moved.shape)
    inverse = [order.index(d) for d in range(x.ndim)]
    return back.permute(inverse) if order != list(range(x.ndim)) else back


class Extreme(Reduction):
    """``amax``/``amin``: the extreme value over ``dim``; ties share the gradient evenly."""

    reducer = staticmethod(np.amax)

    @classmethod
    def forward(cls, x, dim=(), keepdim=False):
        _check_nonempty(cls.label, x, dim)
        return cls.reducer(x, axis=dim, keepdims=keepdim)

    @staticmethod
    def vjp(ctx, g):
        return (_extreme_grad(ctx, g),)


class Amax(Extreme):
    name = "Amax"
    reducer = staticmethod(np.amax)


class Amin(Extreme):
    name = "Amin"
    reducer = staticmethod(np.amin)


def _check_nonempty(name: str, x, dim) -> None:
    if x.size == 0 and (not dim or builtins.any(x.shape[d] == 0 for d in dim)):
        raise ShapeError(
            f"{name}: cannot reduce over an empty dimension (shape {tuple(x.shape)}); there is no identity"
        )


def _extreme_grad(ctx, g: Tensor) -> Tensor:
    """Share ``g`` evenly among the elements that attain the max (or min), as torch does."""
    x = ctx.input(0)
    dims, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
    y = _keep(ctx.output, x.shape, dims, keepdim)
    g = _keep(g, x.shape, dims, keepdim)
    hit = x == y
    count = hit.sum(dims, keepdim=True)
    return arith.where(hit, g / count, 0.0)


class ArgReduction(Reduction):
    differentiable = False

    @staticmethod
    def out_dtype(dtype):
        return dtypes.int64

    @classmethod
    def infer(cls, x: Spec, dim: int | None = None, keepdim: bool = False) -> Spec:
        if dim is None:
            return Spec((1,) * len(x.shape) if keepdim else (), dtypes.int64)
        return Spec(infer.reduced_shape(x.shape, (dim,), keepdim), dtypes.int64)


class Argmax(ArgReduction):
    name = "Argmax"

    @staticmethod
    def forward(x, dim=None, keepdim=False):
        _check_nonempty("argmax", x, None if dim is None else (dim,))
        return np.argmax(x, axis=dim, keepdims=keepdim)


class Argmin(ArgReduction):
    name = "Argmin"

    @staticmethod
    def forward(x, dim=None, keepdim=False):
        _check_nonempty("argmin", x, None if dim is None else (dim,))
        return np.argmin(x, axis=dim, keepdims=keepdim)


class LogSumExp(Reduction):
    """``log sum exp x``, shifted by the maximum so that no ``exp`` overflows.

    ``logsumexp(x) = m + log sum exp(x - m)`` for any ``m``; with ``m = max x`` every term
    is at most 1. An infinite maximum is replaced by 0 so that ``inf - inf`` never appears.
    """

    name = "LogSumExp"
    float_result = True

    @staticmethod
    def forward(x, dim=(), keepdim=False):
        if x.size == 0:
            return np.log(np.sum(np.exp(x), axis=dim, keepdims=keepdim))
        m = np.amax(x, axis=dim, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.sum(np.exp(x - m), axis=dim, keepdims=True)) + m
        return out if keepdim else np.squeeze(out, axis=dim)

    @staticmethod
    def vjp(ctx, g):
        from .unary import exp

        x = ctx.input(0)
        dims, keepdim = ctx.attrs["dim"], ctx.attrs["keepdim"]
        y = _keep(ctx.output, x.shape, dims, keepdim)
        return (_keep(g, x.shape, dims, keepdim) * exp(x - y),)


class VectorNorm(Reduction):
    """The p-norm ``(sum |x|^p)^(1/p)`` over ``dim``; ``ord`` may be any p > 0, ``inf`` or 0.

    Gradient: ``g * sign(x) |x|^(p-1) / norm^(p-1)`` (for p = 2 simply ``g x / norm``), set
    to zero where the norm is zero so that the zero vector gets a zero gradient, as in torch.
    """

    name = "VectorNorm"
    float_result = True

    @staticmethod
    def forward(x, ord=2.0, dim=(), keepdim=False):
        a = np.abs(x)
        if ord == 1:
            return np.sum(a, axis=dim, keepdims=keepdim)
        if ord == math.inf:
            return np.amax(a, axis=dim, keepdims=keepdim)
        if ord == -math.inf:
            return np.amin(a, axis=dim, keepdims=keepdim)
        if ord == 0:
            return np.sum(a != 0, axis=dim, keepdims=keepdim).astype(x.dtype)
        # Scale by the largest magnitude first, as BLAS's nrm2 does: squaring 1e-200 (or
        # 1e200) would underflow (overflow), but (x / max)^p stays in [0, 1].
        if a.size == 0:
            return np.sum(a, axis=dim, keepdims=keepdim)
        m = np.amax(a, axis=dim, keepdims=True)
        m = np.where((m > 0) & (m < np.inf), m, 1)  # an inf (or nan) entry: no scaling, the sum says inf (nan)
        scaled = a / m
        powered = scaled * scaled if ord == 2 else scaled**ord
        out = np.sum(powered, axis=dim, keepdims=True) ** (1.0 / ord) * m
        return out if keepdim else np.squeeze(out, axis=dim)

    @staticmethod
    def vjp(ctx, g):
        from .unary import abs as abs_
        from .unary import sign

        x = ctx.input(0)
        p, dims, keepdim = ctx.attrs["ord"], ctx.attrs["dim"], ctx.attrs["keepdim"]
        g = _keep(g, x.shape, dims, keepdim)
        y = _keep(ctx.output, x.shape, dims, keepdim)
        if p == 0:
            return (x * 0.0,)
        if p == 1:
            return (g * sign(x),)
        if p in (math.inf, -math.inf):
            a = abs_(x)
            hit = a == y
            return (arith.where(hit, g * sign(x) / hit.sum(dims, keepdim=True), 0.0),)
        safe = arith.where(y == 0, 1.0, y)
        if p == 2:
            return (arith.where(y == 0, 0.0, g * x / safe),)
        a = abs_(x)
        return (arith.where(y == 0, 0.0, g * sign(x) * a ** (p - 1) / safe ** (p - 1)),)


class Cumsum(Op):
    name = "Cumsum"

    @staticmethod
    def forward(x, dim):
        return np.cumsum(x, axis=dim)

    @staticmethod
    def vjp(ctx, g):
        d = ctx.attrs["dim"]
        return (g.flip(d).cumsum(d).flip(d),)

    @classmethod
    def infer(cls, x: Spec, dim: int) -> Spec:
        return Spec(x.shape, x.dtype if x.dtype.category == 2 else dtypes.int64)


class Logical(Reduction):
    differentiable = False

    @staticmethod
    def out_dtype(dtype):
        return dtypes.bool_


class All(Logical):
    name = "All"

    @staticmethod
    def forward(x, dim=(), keepdim=False):
        return np.all(x, axis=dim, keepdims=keepdim)


class Any_(Logical):
    name = "Any"

    @staticmethod
    def forward(x, dim=(), keepdim=False):
        return np.any(x, axis=dim, keepdims=keepdim)


# ---- the functions -------------------------------------------------------------------------------


def sum(x: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (an int, a tuple, or None for all). Integers and bools sum to int64."""
    if dtype is not None:
        x = x.to(dtype)
    if dim is None and not keepdim and isinstance(x, Tensor):
        return unary(_SumAll, x)
    return apply(Sum, x, dim=_dims("sum", x, dim), keepdim=keepdim)


class _SumAll(Sum):
    """``sum()`` over everything: the commonest reduction, given its own short path."""

    @staticmethod
    def forward(x):
        return x.sum()

    @staticmethod
    def vjp(ctx, g):
        return (broadcast_to(g, ctx.input_shape(0)),)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        return Spec((), Sum.out_dtype(x.dtype))


def mean(x: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Arithmetic mean over ``dim``: ``sum / count``. Needs a floating-point tensor, as in torch."""
    if dtype is not None:
        x = x.to(dtype)
    if not x.is_floating_point():
        raise DTypeError(
            f"mean: could not infer the output dtype: the input is {x.dtype.name}, but mean needs a "
            "floating-point tensor; convert with .float() or pass dtype=minidl.float32"
        )
    dims = _dims("mean", x, dim)
    if builtins.any(x.shape[d] is None for d in dims):
        from .creation import numel_of

        return sum(x, dim, keepdim) / numel_of(x, dims)  # the count is known when the graph runs
    count = math.prod(x.shape[d] for d in dims)
    total = sum(x, dim, keepdim)
    return total / count if count else total / 0.0


def prod(x: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    if dtype is not None:
        x = x.to(dtype)
    return apply(Prod, x, dim=_dims("prod", x, dim), keepdim=keepdim)


def var(
    x: Tensor, dim: Any = None, *, correction: float = 1, keepdim: bool = False, unbiased: bool | None = None
) -> Tensor:
    """Variance ``sum (x - mean)^2 / (N - correction)``; ``correction=0`` is the biased one."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    dims = _dims("var", x, dim)
    d = x - mean(x, dim, keepdim=True)
    if builtins.any(x.shape[k] is None for k in dims):
        from .creation import numel_of

        # a static graph's unknown sizes: the count is known when the graph runs
        return sum(d * d, dim, keepdim) / arith.clamp(numel_of(x, dims) - correction, min=0)
    n = math.prod(x.shape[k] for k in dims)
    return sum(d * d, dim, keepdim) / builtins.max(n - correction, 0)


def std(
    x: Tensor, dim: Any = None, *, correction: float = 1, keepdim: bool = False, unbiased: bool | None = None
) -> Tensor:
    """Standard deviation: the square root of ``var``."""
    from .unary import sqrt

    return sqrt(var(x, dim, correction=correction, keepdim=keepdim, unbiased=unbiased))


def amax(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Maximum over ``dim``; ties share the gradient evenly."""
    return apply(Amax, x, dim=_dims("amax", x, dim), keepdim=keepdim)


def amin(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return apply(Amin, x, dim=_dims("amin", x, dim), keepdim=keepdim)


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the maximum (of the flattened tensor when ``dim`` is None)."""
    if dim is None:
        out = apply(Argmax, x.reshape(-1), dim=None, keepdim=False)
        return out.reshape((1,) * x.ndim) if keepdim else out
    return apply(Argmax, x, dim=_dims("argmax", x, dim)[0] if x.ndim else None, keepdim=keepdim)


def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    if dim is None:
        out = apply(Argmin, x.reshape(-1), dim=None, keepdim=False)
        return out.reshape((1,) * x.ndim) if keepdim else out
    return apply(Argmin, x, dim=_dims("argmin", x, dim)[0] if x.ndim else None, keepdim=keepdim)


def max(x: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """``max(x)`` is the largest value; ``max(x, dim)`` is ``(values, indices)``;
    ``max(x, other)`` is the elementwise ``maximum``, as in torch.

    With a dim, the gradient goes to the element whose index is returned (a ``gather``);
    without, it is shared among ties (``amax``).
    """
    if isinstance(dim, Tensor):
        from .arith import maximum

        return maximum(x, dim)
    if dim is None:
        return amax(x)
    indices = argmax(x, dim, keepdim=True)
    return _values_at(x, dim, indices, keepdim)


def min(x: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """The counterpart of ``max``."""
    if isinstance(dim, Tensor):
        from .arith import minimum

        return minimum(x, dim)
    if dim is None:
        return amin(x)
    indices = argmin(x, dim, keepdim=True)
    return _values_at(x, dim, indices, keepdim)


def _values_at(x: Tensor, dim: int, indices: Tensor, keepdim: bool) -> MaxMin:
    if x.ndim == 0:
        return MaxMin(x, indices.reshape(()))
    values = x.gather(dim, indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return MaxMin(values, indices)


def logsumexp(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``dim``, stable for any magnitude of ``x``."""
    if not x.is_floating_point():
        x = x.float()
    return apply(LogSumExp, x, dim=_dims("logsumexp", x, dim), keepdim=keepdim)


def norm(x: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False) -> Tensor:
    """The vector p-norm over ``dim`` (all elements by default); ``'fro'`` is the 2-norm."""
    if p == "fro" or p is None:
        p = 2.0
    if isinstance(p, str):
        raise ValueError(f"norm: unsupported norm type {p!r}; use a number, inf, -inf or 'fro'")
    if not x.is_floating_point():
        raise DTypeError(f"norm: expected a floating-point tensor, got {x.dtype.name}; convert it with .float()")
    return apply(VectorNorm, x, ord=float(p), dim=_dims("norm", x, dim), keepdim=keepdim)


def all(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return apply(All, x, dim=_dims("all", x, dim), keepdim=keepdim)


def any(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return apply(Any_, x, dim=_dims("any", x, dim), keepdim=keepdim)


def cumsum(x: Tensor, dim: int) -> Tensor:
    """Running sum along ``dim``."""
    d = _dims("cumsum", x, dim)
    if not d:
        return x.clone() if x.is_floating_point() else x.long().clone()
    return apply(Cumsum, x, dim=d[0])
