"""The Tensor: an array, the device it lives on, and its place in the autograd graph.

A ``Tensor`` wraps one plain array (``numpy.ndarray`` on the CPU, ``cupy.ndarray`` on a GPU)
and adds what differentiation needs:

* ``requires_grad`` -- should gradients flow to this tensor?
* ``grad_fn`` -- the tape ``Node`` that produced it (``None`` for leaves, the tensors a user
  created), through which ``backward`` reaches the inputs;
* ``grad`` -- where a leaf's gradient is accumulated;
* a *version counter*, bumped by every in-place change and shared with views, so that
  backward can tell when a value it saved has been overwritten.

This file defines the data structure and the methods that are not ops. The arithmetic and
every other op (``+``, ``@``, ``sum``, ``reshape``, indexing, ...) are defined once in
``minidl/ops`` and attached to ``Tensor`` as methods by ``minidl/ops/methods.py``, so that
this layer does not depend on the layers above it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import dtypes
from .backend.device import Device, device_of
from .dtypes import DType
from .tape import Node, RemovableHandle

__all__ = ["Tensor"]

_new = object.__new__

# The state of a fresh leaf that does not require grad (``_wrap`` sets the same, unrolled).
_LEAF_DEFAULTS = {
    "_rg": False,
    "_grad": None,
    "_node": None,
    "_vc": None,
    "_hooks": None,
    "_retains": False,
    "_base": None,
}


class Tensor:
    """A multi-dimensional array with reverse-mode automatic differentiation.

    Create tensors with :func:`minidl.tensor` or the factories (``zeros``, ``randn``, ...);
    the constructor ``Tensor(array)`` wraps an existing NumPy array without copying.
    """

    __slots__ = ("_data", "_rg", "_grad", "_node", "_vc", "_hooks", "_retains", "_base", "__weakref__")

    # NumPy must not try to treat a Tensor as an array in ``ndarray + tensor``: with this set,
    # it returns NotImplemented and Python calls ``Tensor.__radd__`` instead.
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if not isinstance(data, np.ndarray) and not type(data).__module__.startswith("cupy"):
            data = np.asarray(data)
        dtypes.from_numpy_dtype(data.dtype)  # a clear error for unsupported dtypes
        self._data = data
        for slot, value in _LEAF_DEFAULTS.items():
            setattr(self, slot, value)
        if requires_grad:
            self.requires_grad = True

    @staticmethod
    def _wrap(data) -> Tensor:
        """Wrap an op's result array: a tensor with no history (the fast path of every op;
        the slots are set one by one because a loop would cost a third of a small op)."""
        t = _new(Tensor)
        t._data = data
        t._rg = False
        t._grad = None
        t._node = None
        t._vc = None
        t._hooks = None
        t._retains = False
        t._base = None
        return t

    @staticmethod
    def _from_node(data, node: Node) -> Tensor:
        """A tensor that requires grad, produced by ``node`` (sharing its version counter)."""
        t = _new(Tensor)
        t._data = data
        t._rg = True
        t._grad = None
        t._node = node
        t._vc = node._out_vc
        t._hooks = None
        t._retains = False
        t._base = None
        return t

    # ---- basic properties --------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> DType:
        return dtypes._FROM_NUMPY[self._data.dtype]

    @property
    def device(self) -> Device:
        return device_of(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the length of one dimension (negative ``dim`` counts from the end)."""
        if dim is None:
            return self._data.shape
        return self._data.shape[_check_dim(dim, self._data.ndim, "size")]

    def numel(self) -> int:
        return int(self._data.size)

    def dim(self) -> int:
        return self._data.ndim

    def element_size(self) -> int:
        return self._data.itemsize

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def stride(self, dim: int | None = None) -> tuple[int, ...] | int:
        """Strides in elements, as torch reports them."""
        strides = tuple(s // self._data.itemsize for s in self._data.strides)
        return strides if dim is None else strides[_check_dim(dim, self._data.ndim, "stride")]

    # ---- autograd properties -----------------------------------------------------------------

    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        flag = bool(flag)
        if self._node is not None:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf tensors; use .detach() to get a "
                "tensor that does not require grad"
            )
        if flag and self._data.dtype.kind != "f":
            raise RuntimeError(
                f"only floating-point tensors can require gradients, but this tensor is "
                f"{self.dtype.name}; convert it first with .float() (or .double())"
            )
        self._rg = flag

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return self, as torch (a no-op on a non-leaf
        that already requires grad)."""
        if self._node is not None and requires_grad:
            return self
        self.requires_grad = requires_grad
        return self

    @property
    def grad_fn(self) -> Node | None:
        return self._node

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(
                    f"assigned grad has shape {tuple(value.shape)} but the tensor has shape {tuple(self.shape)}"
                )
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(f"assigned grad has dtype {value.dtype.name}, but the tensor is {self.dtype.name}")
        self._grad = value

    @property
    def data(self) -> Tensor:
        """A tensor sharing this one's storage, detached from the graph (torch's ``.data``)."""
        t = Tensor._wrap(self._data)
        t._vc = self._version_counter()
        return t

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be set to a Tensor, got {type(value).__name__}")
        self._data = value._data

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's storage has seen (torch's ``_version``)."""
        return self._vc[0] if self._vc is not None else 0

    def _version_counter(self) -> list[int]:
        """The shared counter, created on first need (views and in-place ops share it)."""
        if self._vc is None:
            self._vc = [0]
        return self._vc

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward, as leaves do.

        The engine stores the gradient after the tensor's hooks have run (as torch does), and
        holds the tensor only weakly, so retaining does not keep it alive.
        """
        if self._node is None:
            if not self._rg:
                raise RuntimeError("can't retain_grad on a tensor that does not require grad")
            return
        if self._retains:
            return
        import weakref

        self._retains = True
        self._node.retained = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` whenever this tensor's gradient is computed.

        The hook may return a new gradient to use instead. On a leaf it runs before the
        gradient is accumulated into ``.grad``; on a non-leaf, before its ``grad_fn`` runs.
        """
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._node is not None:
            return self._node.register_hook(hook)
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self._hooks, hook)

    def backward(
        self,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Any = None,
    ) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (see ``minidl.autograd``)."""
        _engine().backward([self], None if gradient is None else [gradient], retain_graph, create_graph, inputs)

    def detach(self) -> Tensor:
        """The same values (shared storage and version counter), cut off from the graph."""
        t = Tensor._wrap(self._data)
        t._vc = self._version_counter()
        return t

    def detach_(self) -> Tensor:
        """Make this tensor a leaf that does not require grad, in place."""
        self._node = None
        self._rg = False
        return self

    # ---- conversion ------------------------------------------------------------------------

    def numpy(self) -> np.ndarray:
        """The underlying NumPy array (shared memory on the CPU, as torch)."""
        if self._rg:
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use tensor.detach().numpy() instead")
        if type(self._data) is not np.ndarray:
            raise TypeError(f"can't convert a {self.device} tensor to NumPy; copy it to the host first with .cpu()")
        return self._data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        arr = self.numpy()
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            if copy is False:
                raise ValueError("__array__: a dtype change needs a copy, but copy=False was given")
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    # ---- DLPack: sharing memory with other array libraries -----------------------------------
    #
    # DLPack is the common exchange format of array libraries (NumPy, torch, CuPy, JAX, ...). A
    # consumer calls ``x.__dlpack_device__()`` to learn where the memory is, then
    # ``x.__dlpack__(...)`` to receive a *capsule*: a small C struct holding the data pointer,
    # shape, strides and dtype, plus a deleter that keeps the producer's buffer alive until the
    # consumer is done with it. Nothing is copied. minidl's storage is a NumPy or CuPy array,
    # which already speaks the protocol, so these methods only add torch's rules on top.

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """Export this tensor as a DLPack capsule, sharing its memory (see ``from_dlpack``).

        As in torch, a tensor that requires grad is refused: the consumer would read (and
        could write) its values behind autograd's back, where no version counter sees the
        write and no gradient flows; ``tensor.detach()`` states that this is intended.
        A view with negative strides (``x[:, ::-1]``) is exported as a contiguous copy, or
        refused when ``copy=False``: DLPack allows negative strides, but several consumers
        (torch among them) cannot represent them and fail hard.
        """
        if self._rg:
            raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
        data = self._data
        if not hasattr(data, "__dlpack__"):
            raise BufferError(
                f"__dlpack__: this {type(self).__name__} holds no values (a symbolic tensor of a graph being "
                "built); only eager tensors can be exported"
            )
        if any(s < 0 for s in data.strides):
            if copy is False:
                raise BufferError(
                    f"__dlpack__: the tensor of shape {tuple(data.shape)} has negative strides {data.strides}, which "
                    "cannot be shared without a copy; call .contiguous() (or .clone()) first, or pass copy=None"
                )
            data = data.copy(order="C")  # NumPy and CuPy alike
            copy = None  # copied already
        # Pass only what the consumer asked for: older producers (NumPy < 2.1, CuPy < 13) know
        # neither ``max_version`` nor ``dl_device`` nor ``copy``.
        kwargs = {"stream": stream}
        for name, value in (("max_version", max_version), ("dl_device", dl_device), ("copy", copy)):
            if value is not None:
                kwargs[name] = value
        return data.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        """``(device type, device id)`` in DLPack's numbering: ``(1, 0)`` for the CPU,
        ``(2, n)`` for CUDA GPU ``n``."""
        if not hasattr(self._data, "__dlpack_device__"):
            raise BufferError(f"__dlpack_device__: this {type(self).__name__} holds no values (a symbolic tensor)")
        return self._data.__dlpack_device__()

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(
                f"item(): a tensor with {self._data.size} elements cannot be converted to a Python "
                "number; only one-element tensors can"
            )
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return _to_host(self._data).tolist()

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def _scalar(self, kind: str) -> Any:
        if self._data.size != 1:
            raise ValueError(
                f"only one-element tensors can be converted to Python scalars ({kind}() of a tensor with "
                f"{self._data.size} elements)"
            )
        return self._data.reshape(()).item()

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self._data.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        from .formatting import format_tensor

        if is_parameter(self):
            return "Parameter containing:\n" + format_tensor(self)
        return format_tensor(self)

    def __reduce_ex__(self, protocol: int):
        raise TypeError(
            "minidl tensors are not pickled; save weights with minidl.save (npz or safetensors) or "
            "convert with .numpy()"
        )

    def __deepcopy__(self, memo: dict) -> Tensor:
        t = Tensor(self._data.copy())
        t._rg = self._rg if self._node is None else False
        if self._grad is not None:
            t._grad = Tensor(self._grad._data.copy())
        if is_parameter(self):
            mark_parameter(t)
        memo[id(self)] = t
        return t


# ---- parameters ----------------------------------------------------------------------------
#
# An ``nn.Parameter`` is a plain Tensor that has been *marked* as a parameter, not an instance
# of a subclass: every op's fast path tests ``type(x) is Tensor`` (an identity check, a few
# nanoseconds), which a subclass would fail. The mark lives in a table keyed by ``id`` that
# holds the tensors weakly, so a parameter that dies leaves no trace; ``isinstance(t,
# nn.Parameter)`` consults it (see ``minidl/nn/parameter.py``).

_parameters: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()


def mark_parameter(t: Tensor) -> None:
    """Mark ``t`` as an ``nn.Parameter``."""
    _parameters[id(t)] = t


def is_parameter(t: Any) -> bool:
    """Was ``t`` created as (or marked as) an ``nn.Parameter``?"""
    return _parameters.get(id(t)) is t


def _engine():
    """The backward engine, which sits above this layer (imported on first use, then cached)."""
    global _engine_module
    if _engine_module is None:
        from .autograd import engine

        _engine_module = engine
    return _engine_module


_engine_module = None


def _check_dim(dim: int, ndim: int, op: str) -> int:
    """Wrap a possibly negative dimension index, or say which range was allowed."""
    lo = -max(ndim, 1)
    hi = max(ndim, 1) - 1
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or not lo <= dim <= hi:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
    return int(dim) % max(ndim, 1)


def _to_host(array: Any) -> np.ndarray:
    if type(array) is np.ndarray:
        return array
    return array.get()
