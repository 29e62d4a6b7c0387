"""Symbolic tensors: the values a static graph is built from.

A ``SymbolicTensor`` stands for one output of one graph node. It is a ``Tensor`` subclass, so
every method and operator that minidl attaches to ``Tensor`` (``x + y``, ``x.sum()``,
``x.reshape(...)``) also works on it; the op layer notices the symbolic input and, instead of
computing, adds a node to the graph (``minidl/graph/build.py``). That is how one set of ops
serves both modes: the op functions and the ``vjp`` rules are the same Python code, run once
on arrays (eager) or once on symbols (graph building).

Its ``_data`` slot holds a ``SymbolicValue``: shape and dtype, nothing more. Code that only
looks at shapes (``x.shape``, ``x.ndim``, ``x._data.dtype``) keeps working; code that needs
the *values* (``bool(x)``, ``x.item()``, ``np.asarray(x)``) raises a ``TracingError`` that names
the node and the source line, because while a graph is being built there are no values yet.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .. import dtypes
from ..backend.device import Device
from ..tensor import Tensor

__all__ = ["SymbolicTensor", "SymbolicValue", "TracingError", "user_frame"]

_PACKAGE_DIR = __file__.rsplit("/graph/", 1)[0]


class TracingError(RuntimeError):
    """A value was needed while a graph was being built (or a function traced)."""


def user_frame(skip_prefixes: tuple[str, ...] = ()) -> str:
    """``file:line`` of the innermost frame outside minidl: where the user's code called in."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and not filename.startswith(skip_prefixes):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


class _Flags:
    """What ``array.flags`` answers for a symbolic value: treated as contiguous and writeable."""

    c_contiguous = True
    f_contiguous = False
    writeable = True


class SymbolicValue:
    """The ``_data`` of a symbolic tensor: a shape (``None`` for unknown sizes) and a dtype."""

    __slots__ = ("shape", "dtype", "owner")

    flags = _Flags()
    base = None

    def __init__(self, shape: tuple, dtype: np.dtype, owner: Any) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.owner = owner  # the SymbolicTensor, for error messages

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int | None:
        n = 1
        for d in self.shape:
            if d is None:
                return None
            n *= d
        return n

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int | None:
        size = self.size
        return None if size is None else size * self.dtype.itemsize

    def _no_value(self, what: str) -> TracingError:
        owner = self.owner
        return TracingError(
            f"{what} needs the value of the symbolic tensor {owner._describe()}, which does not exist "
            f"while the graph is being built (at {user_frame()}). Keep the computation in minidl ops; "
            "for data-dependent branching use minidl.cond(pred, true_fn, false_fn), or pass the value "
            "as a static (non-tensor) argument"
        )

    def __array__(self, dtype: Any = None, copy: Any = None):
        raise self._no_value("converting to a NumPy array")

    def __bool__(self) -> bool:
        raise self._no_value("Python control flow (bool())")

    def __len__(self) -> int:
        if self.shape and self.shape[0] is not None:
            return self.shape[0]
        raise self._no_value("len()")

    def __getattr__(self, name: str) -> Any:
        raise self._no_value(f"the array attribute .{name}")

    def __getitem__(self, index: Any) -> Any:
        raise self._no_value("indexing the raw array")

    def __repr__(self) -> str:
        return f"SymbolicValue(shape={self.shape}, dtype={self.dtype})"


class SymbolicTensor(Tensor):
    """One output of a graph node, usable wherever a ``Tensor`` is.

    ``_ref`` is the ``Output`` (node, index) it currently names. In-place ops on a symbolic
    tensor (``x.add_(1)``) add a new node and rebind ``_ref``, the single-assignment way of
    saying that the Python variable now holds a new value.
    """

    __slots__ = ("_ref", "_graph")

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - guard
        raise TypeError("symbolic tensors are made by the graph (placeholder, Variable, ops), not directly")

    @staticmethod
    def _make(graph: Any, ref: Any, spec: Any, requires_grad: bool = False) -> SymbolicTensor:
        t = object.__new__(SymbolicTensor)
        t._data = SymbolicValue(spec.shape, spec.dtype.np, t)
        t._rg = requires_grad
        t._grad = None
        t._node = None
        t._vc = None
        t._hooks = None
        t._retains = False
        t._base = None
        t._ref = ref
        t._graph = graph
        return t

    # ---- what the graph knows --------------------------------------------------------------

    @property
    def graph(self) -> Any:
        return self._graph

    @property
    def node(self) -> Any:
        """The graph node that produces this tensor."""
        return self._ref.node

    @property
    def op(self) -> Any:
        return self._ref.node

    @property
    def name(self) -> str:
        """TensorFlow's ``node:index`` name."""
        return self._ref.name

    @property
    def shape(self) -> tuple:
        """The static shape; with unknown sizes, a ``DynamicShape`` that also carries this tensor,
        so that code passing ``x.shape`` on (``g.reshape(x.shape)``, ``broadcast_to(g, x.shape)``,
        the backward rules) builds ops that read the missing sizes off ``x`` when the graph runs."""
        shape = self._data.shape
        if None in shape:
            from ..ops.infer import DynamicShape

            return DynamicShape(shape, self)
        return shape

    @property
    def device(self) -> Device:
        return Device("cpu")

    def get_shape(self) -> tuple:
        return self._data.shape

    def _describe(self) -> str:
        node = self._ref.node
        return f"'{self._ref.name}' ({node.op_label()}, shape {_shape_str(self.shape)}, built at {node.source})"

    # ---- values do not exist yet -------------------------------------------------------------

    def numpy(self) -> np.ndarray:
        raise self._data._no_value(".numpy()")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise self._data._no_value("converting to a NumPy array")

    def item(self) -> Any:
        raise self._data._no_value(".item()")

    def tolist(self) -> Any:
        raise self._data._no_value(".tolist()")

    def __bool__(self) -> bool:
        raise self._data._no_value("Python control flow (bool())")

    def __float__(self) -> float:
        raise self._data._no_value("float()")

    def __int__(self) -> int:
        raise self._data._no_value("int()")

    def __index__(self) -> int:
        raise self._data._no_value("using it as an index (__index__)")

    def __len__(self) -> int:
        if self.shape and self.shape[0] is not None:
            return self.shape[0]
        raise self._data._no_value("len()")

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        rg = ", requires_grad=True" if self._rg else ""
        return f"SymbolicTensor('{self._ref.name}', shape={_shape_str(self.shape)}, dtype={self.dtype}{rg})"

    def is_contiguous(self) -> bool:
        return True

    def numel(self) -> int:
        size = self._data.size
        if size is None:
            raise self._data._no_value("numel() of a tensor with unknown dimensions")
        return size

    # ---- autograd on symbols -----------------------------------------------------------------

    def detach(self) -> Tensor:
        from .build import stop_gradient

        return stop_gradient(self)

    def backward(
        self, gradient: Any = None, retain_graph: Any = None, create_graph: bool = False, inputs: Any = None
    ) -> None:
        """Inside ``minidl.compile``: build the gradient graph and hand each leaf a symbolic ``.grad``."""
        from .trace import symbolic_backward

        symbolic_backward(self, gradient, create_graph, inputs)

    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag and self._data.dtype.kind != "f":
            raise RuntimeError(
                f"only floating-point tensors can require gradients, but {self._describe()} is {self.dtype.name}"
            )
        self._rg = bool(flag)


_BUILD_ERRORS = (ValueError, TypeError, IndexError)  # ShapeError and DTypeError are among them


def _located(name: str, method: Any) -> Any:
    """``method`` for symbolic tensors: an error it raises (a shape that does not fit, found
    before any node is built) also says where the user's code was building the graph."""
    label = name.strip("_")

    def located(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except _BUILD_ERRORS as err:
            message = err.args[0] if err.args else None
            if isinstance(message, str) and "[building " not in message:
                err.args = (f"{message} [building {label} at {user_frame()}]", *err.args[1:])
            raise

    located.__name__ = name
    located.__doc__ = getattr(method, "__doc__", None)
    return located


def locate_message(message: str) -> str:
    """``errors.locate``: a shape or dtype error raised while building a graph -- by a check in
    ``nn.functional`` that runs before any node exists, say -- gets the user's line appended.

    "While building" means: some minidl frame on the stack holds a symbolic tensor. Errors
    raised while a node is being built are located by ``build.infer_specs`` instead (with the
    op's name), so this steps aside there."""
    if "[building " in message:
        return message
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        if frame.f_code.co_name == "infer_specs":
            return message
        for value in frame.f_locals.values():
            if type(value) is SymbolicTensor or (
                type(value) in (tuple, list) and any(type(v) is SymbolicTensor for v in value)
            ):
                return f"{message} [building at {user_frame()}]"
        frame = frame.f_back
    return message


def locate_errors() -> None:
    """Wrap the op methods and operators (``x @ w``, ``x.reshape``) of symbolic tensors with
    ``_located``. Eager tensors keep the plain functions: this costs nothing outside a graph."""
    from ..ops.methods import METHODS

    for name, method in METHODS.items():
        if name not in SymbolicTensor.__dict__:
            setattr(SymbolicTensor, name, _located(name, method))


def _shape_str(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def spec_of_value(value: Any) -> Any:
    """The ``Spec`` of a runtime array (for feed checks and inference fallbacks)."""
    from ..ops.op import Spec

    return Spec(tuple(value.shape), dtypes.from_numpy_dtype(value.dtype))
