"""Shape and dtype inference helpers shared by the ops' ``infer`` rules.

An inference input is a ``Spec`` (shape and dtype of a tensor) or a plain Python value (a
scalar operand or an attribute). ``None`` in a shape stands for a size unknown until run
time (a static-graph placeholder with ``None`` in its shape).
"""

from __future__ import annotations

from typing import Any

from .. import dtypes
from ..dtypes import DType
from ..errors import DTypeError
from .op import ShapeError, Spec, broadcast_shapes


class DynamicShape(tuple):
    """A shape with unknown sizes (``None``) plus a tensor that has that shape at run time.

    In a static graph, a backward rule asking for ``ctx.input_shape(i)`` of an input whose
    batch size is unknown gets one of these: the helpers that take a target shape
    (``broadcast_to``, ``sum_to``, ``reshape``) then pass ``like`` as an extra input, and the
    op reads the missing sizes off it when the graph runs.
    """

    like: Any

    def __new__(cls, shape: tuple, like: Any) -> DynamicShape:
        self = super().__new__(cls, shape)
        self.like = like
        return self


def fill_unknown(shape: tuple, like_shape: tuple) -> tuple:
    """``shape`` with each ``None`` replaced by the size at the same position of ``like_shape``
    (aligned from the right, as broadcasting aligns)."""
    offset = len(like_shape) - len(shape)
    return tuple(like_shape[i + offset] if s is None else s for i, s in enumerate(shape))


def same_shape(a: tuple, b: tuple) -> bool:
    """Whether two shapes are equal, an unknown size (``None``) matching any size."""
    return len(a) == len(b) and all(x == y or x is None or y is None for x, y in zip(a, b))


def is_dynamic(shape: Any) -> bool:
    return type(shape) is DynamicShape and None in shape


def shape_of(x: Any) -> tuple:
    return x.shape if isinstance(x, Spec) else ()


def promotion_kind(x: Any) -> tuple[DType, int]:
    """(dtype, kind) for ``dtypes.result_type``: kind 0 tensor, 1 zero-dim tensor, 2 scalar."""
    if isinstance(x, Spec):
        return x.dtype, (1 if len(x.shape) == 0 else 0)
    return dtypes.scalar_dtype(x), 2


def promoted_dtype(*xs: Any, float_result: bool = False) -> DType:
    dtype = dtypes.result_type(*(promotion_kind(x) for x in xs if x is not None))
    if float_result and dtype.category < 2:
        dtype = dtypes.get_default_dtype()
    return dtype


def elementwise(name: str, *xs: Any, float_result: bool = False, bool_result: bool = False) -> Spec:
    """The spec of an elementwise op: the broadcast shape, and the promoted (or bool) dtype."""
    shape = broadcast_shapes(name, *(shape_of(x) for x in xs if x is not None))
    dtype = dtypes.bool_ if bool_result else promoted_dtype(*xs, float_result=float_result)
    return Spec(shape, dtype)


def require_float(name: str, x: Spec, what: str = "input") -> None:
    if x.dtype.category != 2:
        raise DTypeError(f"{name}: expected a floating-point {what}, got {x.dtype.name}; convert it with .float()")


def require_integer(name: str, x: Spec, what: str = "index") -> None:
    if x.dtype.category != 1:
        raise DTypeError(
            f"{name}: {what} must be an integer tensor (int64 or int32), got {x.dtype.name}; convert it with .long()"
        )


def normalize_dim(name: str, dim: int, ndim: int) -> int:
    """Wrap a negative dimension, or raise an IndexError naming the allowed range."""
    n = max(ndim, 1)
    if isinstance(dim, bool) or not isinstance(dim, int) or not -n <= dim < n:
        raise IndexError(f"{name}: dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def normalize_dims(name: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """``None`` means all dimensions; an int or a tuple of ints is wrapped and de-duplicated."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        dims = tuple(normalize_dim(name, int(d), ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise ValueError(f"{name}: dim {tuple(dim)} names a dimension twice")
        return tuple(sorted(dims))
    return (normalize_dim(name, dim, ndim),)


def reduced_shape(shape: tuple, dims: tuple[int, ...], keepdim: bool) -> tuple:
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ShapeError(message)
