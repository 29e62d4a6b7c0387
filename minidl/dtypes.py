"""Data types and PyTorch's type-promotion rules.

This module sits at the bottom of minidl, beside the backend: it knows nothing of tensors.

minidl has five dtypes -- ``float32`` (the default for floating-point data), ``float64``,
``int32``, ``int64`` and ``bool`` -- each a thin wrapper over a NumPy dtype, so that a
tensor's storage is always a plain NumPy (or CuPy) array of that dtype.

Type promotion follows PyTorch, which differs from NumPy in two ways that matter:

1. Python scalars are *weak*: ``int_tensor * 2.5`` is ``float32`` (the default float),
   where NumPy would say ``float64``.
2. Zero-dimensional tensors are weaker than dimensioned ones of the same category:
   ``float32_vector + float64_scalar_tensor`` stays ``float32``.

The algorithm (``result_type``) sorts the operands into three groups -- dimensioned tensors,
zero-dim tensors and Python scalars -- promotes within each group, and then lets a weaker
group win only if it belongs to a higher *category* (bool < integer < floating point).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DType",
    "float32",
    "float64",
    "int32",
    "int64",
    "bool_",
    "get_default_dtype",
    "set_default_dtype",
    "from_numpy_dtype",
    "to_dtype",
    "promote_types",
    "result_type",
]


class DType:
    """A minidl dtype: a name, its NumPy dtype and its promotion category.

    ``category`` orders the kinds: 0 for bool, 1 for integers, 2 for floating point.
    Two dtypes of the same category promote to the wider one.
    """

    __slots__ = ("name", "np", "category", "itemsize")

    def __init__(self, name: str, np_dtype: type, category: int) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.category = category
        self.itemsize = self.np.itemsize

    @property
    def is_floating_point(self) -> bool:
        return self.category == 2

    def __repr__(self) -> str:
        return f"minidl.{self.name}"

    def __reduce__(self) -> str:
        # Dtypes are singletons: copying or pickling one yields the same object.
        return self.name if self.name != "bool" else "bool_"


float32 = DType("float32", np.float32, 2)
float64 = DType("float64", np.float64, 2)
int32 = DType("int32", np.int32, 1)
int64 = DType("int64", np.int64, 1)
bool_ = DType("bool", np.bool_, 0)

ALL_DTYPES = (float32, float64, int32, int64, bool_)
FLOAT_DTYPES = (float32, float64)

# NumPy dtype -> minidl dtype. NumPy dtype objects hash by value, so any equal dtype finds
# its entry (including the array's ``.dtype`` attribute, the common case).
_FROM_NUMPY: dict[np.dtype, DType] = {d.np: d for d in ALL_DTYPES}

_default_float = float32


def get_default_dtype() -> DType:
    """The dtype given to Python floats and float-producing ops on integers (float32)."""
    return _default_float


def set_default_dtype(dtype: DType) -> None:
    """Set the default floating-point dtype (``float32`` or ``float64``), as in torch."""
    global _default_float
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"set_default_dtype: only float32 or float64 can be the default, got {dtype!r}")
    _default_float = dtype
    _promotion_cache.clear()


def from_numpy_dtype(np_dtype: np.dtype) -> DType:
    """The minidl dtype of a NumPy dtype, or a TypeError that says how to convert."""
    try:
        return _FROM_NUMPY[np_dtype]
    except KeyError:
        raise TypeError(
            f"minidl does not support the NumPy dtype {np.dtype(np_dtype)}; supported dtypes are "
            "float32, float64, int32, int64 and bool. Convert first, for example with "
            "array.astype(np.float32) or array.astype(np.int64)."
        ) from None


def to_dtype(dtype: object) -> DType:
    """Accept a minidl dtype, a NumPy dtype/type, or a name such as ``'float32'``."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str):
        for d in ALL_DTYPES:
            if d.name == dtype:
                return d
        if dtype in ("float", "double", "long", "int"):
            return {"float": float32, "double": float64, "long": int64, "int": int32}[dtype]
        raise TypeError(f"unknown dtype name {dtype!r}; use one of float32, float64, int32, int64, bool")
    if dtype is float:
        return _default_float
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    try:
        return from_numpy_dtype(np.dtype(dtype))
    except TypeError:
        raise
    except Exception:
        raise TypeError(f"cannot interpret {dtype!r} as a minidl dtype") from None


def promote_types(a: DType, b: DType) -> DType:
    """The smallest dtype both ``a`` and ``b`` convert to without loss of kind (torch rules).

    Within a category the wider type wins; across categories the higher category wins, so
    ``int64`` with ``float32`` gives ``float32`` (as in torch, unlike NumPy's ``float64``).
    """
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    return a if a.itemsize >= b.itemsize else b


def _promote_group(dtypes: list[DType]) -> DType | None:
    result = None
    for d in dtypes:
        result = d if result is None else promote_types(result, d)
    return result


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
    # A weaker group (``lower``) only matters when it is of a higher category.
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.category == 2:
        return higher
    if higher.category == 0 or lower.category > higher.category:
        return promote_types(higher, lower)
    return higher


def scalar_dtype(value: object) -> DType:
    """The dtype torch gives a Python scalar: bool, int64 or the default float."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    if isinstance(value, (float, np.floating)):
        return _default_float
    raise TypeError(f"expected a number, got {type(value).__name__}")


_promotion_cache: dict[tuple, DType] = {}


def result_type(*operands: tuple[DType, int]) -> DType:
    """Promote operands given as ``(dtype, kind)``; kind 0 = tensor, 1 = 0-d tensor, 2 = scalar.

    >>> result_type((int32, 0), (float32, 2))   # int tensor * Python float
    minidl.float32
    >>> result_type((float32, 0), (float64, 1))  # a 0-d float64 tensor does not widen
    minidl.float32
    """
    key = operands
    hit = _promotion_cache.get(key)
    if hit is not None:
        return hit
    groups: list[list[DType]] = [[], [], []]
    for dtype, kind in operands:
        groups[kind].append(dtype)
    dim, zero, wrapped = (_promote_group(g) for g in groups)
    result = _combine(dim, _combine(zero, wrapped))
    assert result is not None
    _promotion_cache[key] = result
    return result
