"""Making tensors: ``tensor``, ``zeros``, ``arange``, ``randn``, ... and the random generator.

Dtype inference follows torch: Python floats give float32 (the default dtype), ints give
int64, bools give bool; a NumPy array keeps its dtype. Random numbers come from one global
NumPy ``Generator`` that ``manual_seed`` resets, so a seeded program is reproducible (though
its stream differs from torch's: compare models by copying weights, not by seeding both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import dtypes
from ..dtypes import DType
from ..errors import DTypeError
from ..tensor import Tensor
from .op import Op, Spec, apply

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed minidl's random generator (used by rand, randn, randint, dropout, init)."""
    global _rng
    _rng = np.random.default_rng(int(seed))


def generator() -> np.random.Generator:
    """The global random generator (a NumPy ``Generator``)."""
    return _rng


def _make(data: np.ndarray, device: Any, requires_grad: bool) -> Tensor:
    t = Tensor(data)
    if device is not None:
        from .cast import to_device

        t = to_device(t, device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _size(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        shape = tuple(int(s) for s in size)
    except TypeError:
        raise TypeError(f"size must be a sequence of ints, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in size {shape}")
    return shape


def _dtype(dtype: Any, default: DType | None = None) -> DType:
    if dtype is None:
        return default or dtypes.get_default_dtype()
    return dtypes.to_dtype(dtype)


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (a number, nested lists, an array or a tensor)."""
    if isinstance(data, Tensor):
        arr = data._data.copy() if type(data._data) is np.ndarray else data._data.get()
    elif isinstance(data, (np.ndarray, np.generic)):
        arr = np.array(data)
        if dtype is None and arr.dtype not in dtypes._FROM_NUMPY:
            dtypes.from_numpy_dtype(arr.dtype)
    else:
        try:
            arr = np.array(data)
        except ValueError as err:
            raise ValueError(f"tensor: could not make a tensor from {type(data).__name__}: {err}") from None
        if arr.dtype == object:
            raise ValueError(
                "tensor: expected a number or nested sequences of equal length (got a ragged or mixed sequence)"
            )
        if arr.dtype.kind == "f":
            arr = arr.astype(dtypes.get_default_dtype().np)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.size == 0 and arr.dtype.kind != "b":
            arr = arr.astype(dtypes.get_default_dtype().np)
    if dtype is not None:
        arr = arr.astype(dtypes.to_dtype(dtype).np, copy=False)
    return _make(arr, device, requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array (or returns a tensor as is) when it can."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    if isinstance(data, np.ndarray) and (dtype is None or dtypes.to_dtype(dtype).np == data.dtype) and device is None:
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (changes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


# DLPack's device types (``DLDeviceType`` in dlpack.h) that minidl can hold.
_DL_CPU = 1
_DL_CUDA = 2


def from_dlpack(ext_tensor: Any, *, device: Any = None, copy: bool | None = None) -> Tensor:
    """A tensor sharing memory with ``ext_tensor``, any array that speaks DLPack (a NumPy or
    CuPy array, a torch tensor, a minidl tensor, ...): writes through one show in the other.

    The producer's ``__dlpack_device__()`` says where the memory is: CPU memory becomes a
    NumPy array (``numpy.from_dlpack``), CUDA memory a CuPy array (``cupy.from_dlpack``; CuPy
    is imported only then). Shape, strides (so non-contiguous views stay views) and dtype are
    kept; the dtype must be one minidl has (float32/64, int32/64, bool).

    ``copy``, as in torch: ``None`` shares memory when it can, ``True`` always copies,
    ``False`` never copies (and raises where sharing is impossible). ``device`` moves the
    result (a copy) when it names another device.

    A producer may mark its memory read-only (DLPack 1.0 has a flag for it; NumPy sets it for
    a non-writeable array). torch ignores the flag and lets you write anyway; minidl does not
    write into memory it was told not to, and its in-place ops need writeable storage, so by
    default it copies such an array (with a warning), and with ``copy=False`` it refuses.
    """
    if not hasattr(ext_tensor, "__dlpack__") or not hasattr(ext_tensor, "__dlpack_device__"):
        raise TypeError(
            f"from_dlpack: expected an array that implements the DLPack protocol (__dlpack__ and "
            f"__dlpack_device__), such as a NumPy array or a torch tensor; got {type(ext_tensor).__name__}. "
            "For nested lists or numbers use minidl.tensor"
        )
    if copy is not None and not isinstance(copy, bool):
        raise TypeError(f"from_dlpack: copy must be True, False or None, got {copy!r}")
    dev_type, dev_id = (int(v) for v in ext_tensor.__dlpack_device__())
    if dev_type == _DL_CPU:
        xp = np
    elif dev_type == _DL_CUDA:
        try:
            import cupy as xp
        except ImportError:
            raise RuntimeError(
                f"from_dlpack: the array lives on CUDA GPU {dev_id}, and minidl holds GPU tensors as CuPy "
                "arrays, but CuPy is not installed (pip install cupy-cuda13x); or copy the array to the CPU first"
            ) from None
    else:
        raise RuntimeError(
            f"from_dlpack: the array lives on DLPack device type {dev_type} (id {dev_id}); minidl holds only "
            "CPU (1) and CUDA (2) memory, so copy the array to the CPU first"
        )
    try:
        arr = xp.from_dlpack(ext_tensor) if copy is None else xp.from_dlpack(ext_tensor, copy=copy)
    except (BufferError, RuntimeError, TypeError, ValueError) as err:
        what = f"{type(ext_tensor).__name__} of dtype {getattr(ext_tensor, 'dtype', '?')}"
        hint = (
            "; minidl has float32, float64, int32, int64 and bool, so convert it first" if "dtype" in str(err) else ""
        )
        raise type(err)(f"from_dlpack: the {what} could not be imported: {err}{hint}") from None
    if arr.dtype not in dtypes._FROM_NUMPY:
        raise TypeError(
            f"from_dlpack: minidl has no {arr.dtype} dtype (it has float32, float64, int32, int64 and bool); "
            f"convert the {type(ext_tensor).__name__} of shape {tuple(arr.shape)} first, for example with "
            ".float() (torch) or .astype(np.float32) (NumPy)"
        )
    if xp is np and not arr.flags.writeable:
        if copy is False:
            raise BufferError(
                f"from_dlpack: the {type(ext_tensor).__name__} of shape {tuple(arr.shape)} is read-only, and "
                "minidl tensors must be writeable; pass copy=None (or True) to take a copy"
            )
        import warnings

        warnings.warn(
            f"from_dlpack: the {type(ext_tensor).__name__} is read-only, so minidl took a copy (writes to the "
            "tensor will not reach it, nor its later changes the tensor)",
            UserWarning,
            stacklevel=2,
        )
        arr = arr.copy()
    out = Tensor(arr)
    if device is not None and out.device != device:
        if copy is False:
            raise ValueError(
                f"from_dlpack: cannot move the array from {out.device} to {device} without copying; "
                "pass copy=None or copy=True"
            )
        from .cast import to_device

        out = to_device(out, device)
    return out


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    if len(size) == 1 and _is_dynamic(size[0]):
        return _fill_dynamic(size[0], 0, dtype)
    return _make(np.zeros(_size(size), dtype=_dtype(dtype).np), device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    if len(size) == 1 and _is_dynamic(size[0]):
        return _fill_dynamic(size[0], 1, dtype)
    return _make(np.ones(_size(size), dtype=_dtype(dtype).np), device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    if len(size) == 1 and _is_dynamic(size[0]):
        return _fill_dynamic(size[0], 0, dtype)
    return _make(np.empty(_size(size), dtype=_dtype(dtype).np), device, requires_grad)


def _is_dynamic(size: Any) -> bool:
    from .infer import is_dynamic

    return is_dynamic(size)


def _fill_dynamic(shape: Any, value: Any, dtype: Any) -> Tensor:
    """A filled tensor of a static graph's shape with unknown sizes (a ``DynamicShape``, such as
    a backward rule's ``ctx.input_shape``): a ``FullLike`` node that reads the missing sizes off
    the tensor the shape belongs to when the graph runs (aligned from the right)."""
    offset = shape.like.ndim - len(shape)
    sizes = tuple(("dim", i + offset) if s is None else s for i, s in enumerate(shape))
    return apply(FullLike, shape.like, value=value, dtype=_dtype(dtype), sizes=sizes)


def full(
    size: Sequence[int], fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``; the dtype follows the value's kind."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    default = dtypes.scalar_dtype(fill_value) if dtype is None else None
    return _make(np.full(_size((size,)), fill_value, dtype=_dtype(dtype, default).np), device, requires_grad)


def arange(
    start: float,
    end: float | None = None,
    step: float = 1,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Values from ``start`` up to (not including) ``end`` by ``step``; int64 unless a float is given."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    is_float = any(isinstance(v, float) for v in (start, end, step))
    default = dtypes.get_default_dtype() if is_float else dtypes.int64
    n = max(0, math.ceil((end - start) / step))
    data = (start + np.arange(n, dtype=np.float64) * step) if is_float else np.arange(start, end, step)
    return _make(data.astype(_dtype(dtype, default).np), device, requires_grad)


def linspace(
    start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    return _make(np.linspace(start, end, steps).astype(_dtype(dtype).np), device, requires_grad)


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _make(np.eye(n, m, dtype=_dtype(dtype).np), device, requires_grad)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples from [0, 1)."""
    d = _dtype(dtype)
    _require_float("rand", d)
    if _in_graph(device, requires_grad):
        return _graph_draw("uniform", _size(size), d)
    return _make(_rng.random(_size(size), dtype=d.np), device, requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    d = _dtype(dtype)
    _require_float("randn", d)
    if _in_graph(device, requires_grad):
        return _graph_draw("normal", _size(size), d)
    return _make(_rng.standard_normal(_size(size), dtype=d.np), device, requires_grad)


def randint(
    low: int, high: int | None = None, size: Sequence[int] = (), *, dtype: Any = None, device: Any = None
) -> Tensor:
    """Integers uniform in ``[low, high)`` (``randint(high, size)`` starts at 0)."""
    if high is None or isinstance(high, (tuple, list)):
        # randint(high, size): the torch form without ``low``
        if high is not None:
            size = high
        low, high = 0, low
    if _in_graph(device, False):
        return _graph_draw("integers", _size((size,)), _dtype(dtype, dtypes.int64), low, high)
    return _make(
        _rng.integers(low, high, size=_size((size,)), dtype=np.int64).astype(_dtype(dtype, dtypes.int64).np),
        device,
        False,
    )


def randperm(n: int, *, dtype: Any = None, device: Any = None) -> Tensor:
    return _make(_rng.permutation(n).astype(_dtype(dtype, dtypes.int64).np), device, False)


def _require_float(name: str, d: DType) -> None:
    if d.category != 2:
        raise DTypeError(f"{name}: dtype must be floating point, got {d.name}")


class FullLike(Op):
    """An array of ``x``'s shape filled with ``value``: how ``ones_like`` and friends are built
    in a static graph where ``x``'s shape is only known at run time. Eager code never needs it."""

    name = "FullLike"
    differentiable = False

    @staticmethod
    def forward(x, value, dtype, sizes=None):
        shape = x.shape if sizes is None else tuple(x.shape[s[1]] if type(s) is tuple else s for s in sizes)
        return np.full(shape, value, dtype=dtype.np)

    @classmethod
    def infer(cls, x: Spec, value: Any, dtype: DType, sizes: Any = None) -> Spec:
        if sizes is None:
            return Spec(x.shape, dtype)
        return Spec(tuple(x.shape[s[1]] if type(s) is tuple else s for s in sizes), dtype)


def zeros_with_sizes_of(x: Tensor, *sizes: Any, dtype: Any = None) -> Tensor:
    """Zeros of shape ``sizes``, where an entry ``("dim", i)`` means "x's size along dim i".

    In eager code that is just ``zeros``; on a static graph with an unknown batch size it is a
    ``FullLike`` node that reads the size when the graph runs (an RNN's initial state).
    """
    shape = tuple(x.shape[s[1]] if type(s) is tuple else s for s in sizes)
    if None in shape:
        return apply(FullLike, x, value=0, dtype=_dtype(dtype, x.dtype), sizes=tuple(sizes))
    return zeros(*shape, dtype=dtype or x.dtype, device=_device_or_none(x))


class Numel(Op):
    """The number of elements of ``x`` over ``dims``, as a 0-d array of ``x``'s dtype: the count
    that ``mean`` divides by, when a static graph knows it only at run time."""

    name = "Numel"
    differentiable = False

    @staticmethod
    def forward(x, dims):
        return np.asarray(math.prod(x.shape[d] for d in dims), dtype=x.dtype)

    @classmethod
    def infer(cls, x: Spec, dims: tuple) -> Spec:
        return Spec((), x.dtype)


class DropoutMask(Op):
    """Dropout's mask: ``1 / (1 - p)`` where a uniform draw is ``>= p``, else 0, in ``x``'s shape
    and dtype. A random op: ``stateful``, so a graph compiler never merges, folds or reorders
    it, and a compiled step draws the same numbers as the eager step would."""

    name = "DropoutMask"
    differentiable = False
    stateful = True

    @staticmethod
    def forward(x, p):
        from ..backend.device import array_module

        keep = generator().random(x.shape) >= p
        return array_module(x).asarray((keep / (1.0 - p)).astype(x.dtype))

    @classmethod
    def infer(cls, x: Spec, p: float) -> Spec:
        return x


class RandomDraw(Op):
    """``rand``, ``randn`` or ``randint`` as a graph node: a fresh draw from the global generator
    each time the graph runs, by the same calls eager code makes (so a compiled function draws
    the numbers its eager run would). ``stateful``, like dropout's mask. Eager code never
    needs it: it draws at once."""

    name = "RandomDraw"
    differentiable = False
    stateful = True

    @staticmethod
    def forward(kind, shape, dtype, low=0, high=1):
        rng = generator()
        if kind == "uniform":
            return rng.random(shape, dtype=dtype.np)
        if kind == "normal":
            return rng.standard_normal(shape, dtype=dtype.np)
        return rng.integers(low, high, size=shape, dtype=np.int64).astype(dtype.np)

    @classmethod
    def infer(cls, kind: str, shape: tuple, dtype: DType, low: int = 0, high: int = 1) -> Spec:
        return Spec(tuple(shape), dtype)


def _in_graph(device: Any, requires_grad: bool) -> bool:
    """Whether a random tensor made now belongs in a graph being built (inside ``minidl.compile``,
    or in a module running on symbolic inputs), where it must be drawn on every run, not once."""
    from . import op as op_layer

    return bool(op_layer.graph_building) and device is None and not requires_grad


def _graph_draw(kind: str, shape: tuple, dtype: DType, low: int = 0, high: int = 1) -> Tensor:
    from . import op as op_layer

    attrs = {"kind": kind, "shape": shape, "dtype": dtype, "low": low, "high": high}
    return op_layer.symbolic.apply(RandomDraw, (), attrs)


def numel_of(x: Tensor, dims: tuple) -> Tensor:
    return apply(Numel, x, dims=tuple(dims))


def _unknown_size(x: Tensor) -> bool:
    return None in x.shape


def _like(fn):
    def like(x: Tensor, *args: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
        if _unknown_size(x) and fn.__name__ in _FILLS:
            return apply(FullLike, x, value=_FILLS[fn.__name__], dtype=_dtype(dtype, x.dtype))
        return fn(
            *args, x.shape, dtype=dtype or x.dtype, device=device or _device_or_none(x), requires_grad=requires_grad
        )

    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape (and by default dtype and device) of ``x``."
    return like


def _device_or_none(x: Tensor) -> Any:
    return None if x.device.type == "cpu" else x.device


_FILLS = {"zeros": 0, "ones": 1, "empty": 0}
zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(
    x: Tensor, fill_value: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    if _unknown_size(x):
        return apply(FullLike, x, value=fill_value, dtype=_dtype(dtype, x.dtype))
    return full(
        x.shape, fill_value, dtype=dtype or x.dtype, device=device or _device_or_none(x), requires_grad=requires_grad
    )


def randint_like(x: Tensor, low: int, high: int | None = None, *, dtype: Any = None, device: Any = None) -> Tensor:
    return randint(low, high, x.shape, dtype=dtype or x.dtype, device=device or _device_or_none(x))


def new_zeros(x: Tensor, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(*size, dtype=dtype or x.dtype, device=device or _device_or_none(x), requires_grad=requires_grad)


def new_ones(x: Tensor, *size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(*size, dtype=dtype or x.dtype, device=device or _device_or_none(x), requires_grad=requires_grad)


def new_full(x: Tensor, size: Sequence[int], fill_value: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    return full(size, fill_value, dtype=dtype or x.dtype, device=device or _device_or_none(x))


def new_tensor(x: Tensor, data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return tensor(data, dtype=dtype or x.dtype, device=device or _device_or_none(x), requires_grad=requires_grad)
