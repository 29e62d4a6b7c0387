"""What a primitive op is, and how one is applied to tensors (and recorded on the tape).

Every primitive is one subclass of ``Op`` holding three things, and nothing else anywhere in
minidl computes that primitive or its derivative:

``forward(*arrays, **attrs) -> array``
    The computation on raw arrays (NumPy or CuPy), or through a kernel from the registry.
    Ops whose backward needs something the forward computed anyway (the argmax of a
    max-pool) set ``saves = True`` and return ``(array, {name: array})``.

``vjp(ctx, grad) -> tuple``
    The backward rule: given the gradient of the output, return one gradient per input
    (``None`` where an input needs none). It is written with minidl's own differentiable
    ops, never raw NumPy, which is why one rule serves eager ``backward()``, higher-order
    gradients (``create_graph=True`` records the rule itself), and symbolic gradients in
    static graph mode. ``ctx`` is the recorded tape ``Node``.

``infer(*specs, **attrs) -> Spec``
    Shape and dtype of the output from those of the inputs, without computing. The static
    graph builds on it; in eager mode it runs only when a forward fails, to turn NumPy's
    error into one that names the op, the shapes and the fix.

``apply`` runs an op eagerly: it unwraps the input tensors, calls ``forward``, wraps the
result, and -- if grad mode is on and an input requires grad -- records a ``Node``. The
``unary`` and ``binary`` variants do the same with less per-call work, because the
overhead of these few lines is what a small op costs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import dtypes
from ..dtypes import DType
from ..errors import DTypeError, ShapeError
from ..tape import Node, grad_state
from ..tensor import Tensor

_wrap = Tensor._wrap

#: Set by ``minidl.graph`` at import: the symbolic tensor type, and the module that builds
#: graph nodes when an op meets one (``minidl/graph/build.py``). The op layer itself knows
#: nothing of graphs; it only hands such calls over.
SYMBOLIC_TYPE: Any = None
symbolic: Any = None
#: How many graph builds are in progress (a module running on symbolic inputs, a trace).
#: While it is non-zero, ops on eager tensors that belong in the graph -- parameters and
#: buffers -- are built as nodes too, instead of being computed once, now.
graph_building = 0
_ndarray = np.ndarray
_NUMPY_SCALARS = (np.generic,)
_PY_NUMBERS = (int, float, bool)
_FAST_SCALARS = (int, float)


class Spec(NamedTuple):
    """Shape and dtype of a value, for inference. ``None`` in a shape means unknown."""

    shape: tuple
    dtype: DType

    @property
    def ndim(self) -> int:
        return len(self.shape)


def snake_case(name: str) -> str:
    """``BitwiseAnd`` -> ``bitwise_and``: how an op is named in error messages."""
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


class Op:
    """Base class of a primitive. Subclasses override ``forward``, ``vjp`` and ``infer``."""

    #: The op's name: ``<name>Backward`` is its grad_fn's name.
    name: str = "Op"
    #: The name errors use (the function's name, ``bitwise_and``); defaults to ``name`` in snake case.
    label: str = "op"
    #: False for ops whose output never carries a gradient (comparisons, argmax, ...).
    differentiable: bool = True
    #: True if ``forward`` returns ``(out, saved)``; ``saved`` lands in ``ctx.saved``.
    saves: bool = False
    #: True if the output shares memory with input 0 (reshape, transpose, basic indexing).
    is_view: bool = False
    #: True if the op computes in floating point even on integer inputs (``/``, ``exp``).
    float_result: bool = False
    #: Whether ``vjp`` reads the *value* of input 0. Applied in place, such an op must keep a
    #: copy of the old value, since the in-place write overwrites it (``clamp_``, ``mul_``).
    vjp_reads_input0: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "label" not in cls.__dict__:
            cls.label = snake_case(cls.name)

    @staticmethod
    def forward(*arrays: Any, **attrs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def vjp(ctx: Node, grad: Tensor) -> tuple:
        raise NotImplementedError

    @classmethod
    def infer(cls, *specs: Any, **attrs: Any) -> Spec:
        raise NotImplementedError


# ---- the eager path ---------------------------------------------------------------------------


def _version(t: Tensor) -> int:
    vc = t._vc
    return vc[0] if vc is not None else 0


def finish(op: type[Op], out: Any, inputs: tuple, attrs: dict | None) -> Tensor:
    """Wrap a forward result ``out``; record a node if grad mode is on and an input requires grad."""
    saved = None
    if op.saves:
        out, saved = out
    if type(out) is not _ndarray and isinstance(out, _NUMPY_SCALARS):
        out = np.asarray(out)
    if grad_state.enabled and op.differentiable:
        edges = []
        versions = []
        recording = False
        for x in inputs:
            if type(x) is Tensor:
                vc = x._vc
                versions.append(vc[0] if vc is not None else 0)
                if x._rg:
                    edges.append(x._node or x)
                    recording = True
                    continue
            else:
                versions.append(None)
            edges.append(None)
        if recording and out.dtype.kind == "f":
            node = Node(op, inputs, attrs, out, tuple(edges), tuple(versions))
            node.saved = saved
            t = Tensor._from_node(out, node)
            if op.is_view:
                _link_view(t, inputs[0])
                node._out_vc = t._vc
                node._out_version = t._vc[0]
            return t
    t = _wrap(out)
    if op.is_view:
        _link_view(t, inputs[0])
    return t


def _link_view(view: Tensor, base: Tensor) -> None:
    """A view shares its base's version counter, and remembers the base it aliases."""
    view._vc = base._version_counter()
    view._base = base._base if base._base is not None else base


def apply(op: type[Op], *inputs: Any, **attrs: Any) -> Tensor:
    """Run ``op`` on tensors (and constants) now; record it for backward when needed."""
    for x in inputs:
        if type(x) is SYMBOLIC_TYPE:
            return symbolic.apply(op, inputs, attrs)
    if graph_building and symbolic.lifts(inputs):
        return symbolic.apply(op, inputs, attrs)
    arrays = [x._data if type(x) is Tensor else x for x in inputs]
    try:
        out = op.forward(*arrays, **attrs)
    except Exception as err:
        raise explain(op, inputs, attrs, err) from err
    return finish(op, out, inputs, attrs or None)


def unary(op: type[Op], x: Tensor) -> Tensor:
    """``apply`` for a one-input op with no attributes: the shortest path through minidl."""
    if type(x) is SYMBOLIC_TYPE or (graph_building and symbolic.lifts((x,))):
        return symbolic.unary(op, x)
    try:
        out = op.forward(x._data)
    except Exception as err:
        raise explain(op, (x,), {}, err) from err
    if type(out) is not _ndarray:
        if isinstance(out, _NUMPY_SCALARS):
            out = np.asarray(out)
    if x._rg and grad_state.enabled and op.differentiable:
        vc = x._vc
        node = Node(op, (x,), None, out, (x._node or x,), (vc[0] if vc is not None else 0,))
        return Tensor._from_node(out, node)
    return _wrap(out)


def float_unary(op: type[Op], x: Tensor) -> Tensor:
    """A unary op that computes in floating point: integer and bool inputs become float32."""
    if type(x) is SYMBOLIC_TYPE or (graph_building and symbolic.lifts((x,))):
        return symbolic.float_unary(op, x)
    if x._data.dtype.kind != "f":
        x = _wrap(x._data.astype(dtypes.get_default_dtype().np))
    return unary(op, x)


def binary(op: type[Op], a: Any, b: Any) -> Tensor:
    """Apply a two-input elementwise op with torch's type promotion and broadcasting.

    Either side may be a Python number. Tensors of equal floating dtype take the fast path;
    everything else goes through ``promote`` first.
    """
    if graph_building and symbolic.lifts((a, b)):
        return symbolic.binary(op, a, b)
    if type(a) is Tensor:
        x = a._data
        if type(b) is Tensor:
            y = b._data
            if x.dtype is not y.dtype or (op.float_result and x.dtype.kind != "f"):
                x, y = promote(op, a, b)
        elif type(b) in _FAST_SCALARS and x.dtype.kind == "f":
            y = b  # NumPy keeps a float array's dtype with a Python scalar, as torch does
        else:
            if type(b) is SYMBOLIC_TYPE:
                return symbolic.binary(op, a, b)
            a, b = _as_operands(op, a, b)
            x, y = promote(op, a, b)
    elif type(b) is Tensor and type(a) in _FAST_SCALARS and b._data.dtype.kind == "f":
        x, y = a, b._data
    else:
        if type(a) is SYMBOLIC_TYPE or type(b) is SYMBOLIC_TYPE:
            return symbolic.binary(op, a, b)
        a, b = _as_operands(op, a, b)
        x, y = promote(op, a, b)
    try:
        out = op.forward(x, y)
    except Exception as err:
        raise explain(op, (a, b), {}, err) from err
    if type(out) is not _ndarray and isinstance(out, _NUMPY_SCALARS):
        out = np.asarray(out)
    if grad_state.enabled and op.differentiable:
        ea = (a._node or a) if type(a) is Tensor and a._rg else None
        eb = (b._node or b) if type(b) is Tensor and b._rg else None
        if (ea is not None or eb is not None) and out.dtype.kind == "f":
            va = _version(a) if type(a) is Tensor else None
            vb = _version(b) if type(b) is Tensor else None
            node = Node(op, (a, b), None, out, (ea, eb), (va, vb))
            return Tensor._from_node(out, node)
    return _wrap(out)


def _as_operands(op: type[Op], a: Any, b: Any) -> tuple[Any, Any]:
    """Accept Python numbers as weak scalars; convert NumPy scalars and arrays, lists."""
    return _as_operand(op, a), _as_operand(op, b)


def _as_operand(op: type[Op], v: Any) -> Any:
    if type(v) is Tensor or type(v) in _PY_NUMBERS:
        return v
    if isinstance(v, Tensor):
        return v
    if isinstance(v, _NUMPY_SCALARS):
        return v.item()
    if isinstance(v, (np.ndarray, list, tuple)):
        from .creation import tensor

        return tensor(v)
    raise TypeError(f"{op.label}: unsupported operand type {type(v).__name__}; expected a Tensor or a number")


def promote(op: type[Op], a: Any, b: Any) -> tuple[Any, Any]:
    """Cast the arrays of ``a`` and ``b`` to the dtype torch would compute ``op`` in."""
    target = dtypes.result_type(_operand_kind(a), _operand_kind(b))
    if op.float_result and target.category < 2:
        target = dtypes.get_default_dtype()
    return _cast_operand(a, target), _cast_operand(b, target)


def _operand_kind(v: Any) -> tuple[DType, int]:
    if type(v) is Tensor:
        return dtypes._FROM_NUMPY[v._data.dtype], (1 if v._data.ndim == 0 else 0)
    return dtypes.scalar_dtype(v), 2


def _cast_operand(v: Any, target: DType) -> Any:
    if type(v) is Tensor:
        data = v._data
        return data if data.dtype == target.np else data.astype(target.np)
    if target.category == 2:
        return float(v)
    if target.category == 1:
        return int(v)
    return v


# ---- in place ----------------------------------------------------------------------------------


def apply_inplace(op: type[Op], target: Tensor, *others: Any, **attrs: Any) -> Tensor:
    """Compute ``op(target, *others)`` into ``target``'s own storage, and rebase its history.

    The target's old value lives on as input 0 of the new node (sharing the storage and the
    version counter), so a backward rule that needs the old value finds it overwritten and
    raises, instead of silently using the new one.
    """
    if symbolic is not None and (
        type(target) is SYMBOLIC_TYPE
        or any(type(o) is SYMBOLIC_TYPE for o in others)
        or (graph_building and symbolic.lifts((target, *others)))
    ):
        return symbolic.apply_inplace(op, target, others, attrs)
    recording = (
        grad_state.enabled and op.differentiable and (target._rg or any(type(o) is Tensor and o._rg for o in others))
    )
    if recording:
        _check_inplace_allowed(op, target)
    others = tuple(_as_operand(op, o) if type(o) is not Tensor else o for o in others)
    data = target._data
    arrays = [o._data if type(o) is Tensor else o for o in others]
    try:
        out = op.forward(data, *arrays, **attrs)
    except Exception as err:
        raise explain(op, (target, *others), attrs, err) from err
    saved = None
    if op.saves:
        out, saved = out
    out_dtype = out.dtype if hasattr(out, "dtype") else np.asarray(out).dtype
    if out_dtype != data.dtype and not _can_cast_inplace(out_dtype, data.dtype):
        result = dtypes.result_type(*(_operand_kind(x) for x in (target, *others)))
        if op.float_result and result.category < 2:
            result = dtypes.get_default_dtype()
        raise DTypeError(
            f"{op.label}_: result type {result.name} can't be cast to the desired output type "
            f"{target.dtype.name} of the tensor being modified in place; use the out-of-place op instead"
        )
    if np.shape(out) != data.shape:
        raise ShapeError(
            f"{op.label}_: the result has shape {tuple(np.shape(out))}, which doesn't match "
            f"the shape {tuple(data.shape)} of the tensor being modified in place"
        )
    old_value = data.copy() if recording and op.vjp_reads_input0 else None
    return _commit_inplace(op, target, others, attrs, out, saved, recording, old_value)


def _commit_inplace(
    op: type[Op],
    target: Tensor,
    others: tuple,
    attrs: dict,
    out: Any,
    saved: Any,
    recording: bool,
    old_value: Any = None,
) -> Tensor:
    """Write ``out`` into the target (unless it already is the target), bump its version.

    ``old_value`` is a copy of the target taken before the write, for ops whose rule reads it.
    """
    data = target._data
    if out is not data:
        xp = np if type(data) is np.ndarray else _cupy()
        xp.copyto(data, out, casting="unsafe")
    vc = target._version_counter()
    old_version = vc[0]
    vc[0] += 1
    if recording:
        if old_value is not None:
            snapshot = _wrap(old_value)  # a private copy: its version stays 0
            old_version = 0
        else:
            snapshot = _wrap(data)  # shares the storage: reading it later raises
            snapshot._vc = vc
        snapshot._node = target._node
        snapshot._rg = target._rg
        inputs = (snapshot, *others)
        edges = tuple((x._node or x) if type(x) is Tensor and x._rg else None for x in inputs)
        versions = (old_version,) + tuple(_version(o) if type(o) is Tensor else None for o in others)
        node = Node(op, inputs, attrs or None, data, edges, versions)
        node.saved = saved
        node._out_vc = vc
        node._out_version = vc[0]
        target._node = node
        target._rg = True
    return target


def _check_inplace_allowed(op: type[Op], target: Tensor) -> None:
    if target._node is None and target._rg:
        raise RuntimeError(
            f"{op.label}_: a leaf tensor that requires grad is being used in an in-place "
            "operation; wrap the update in `with minidl.no_grad():` (as optimizers do), or clone "
            "the tensor first"
        )
    if target._base is not None:
        raise RuntimeError(
            f"{op.label}_: in-place changes to a view of another tensor are not recorded for "
            "autograd in minidl (the base tensor's history would have to be rewritten). Assign "
            "through the base instead (base[index] = value), or use the out-of-place op."
        )


def _can_cast_inplace(src: np.dtype, dst: np.dtype) -> bool:
    # torch allows narrowing within a kind (float64 -> float32) but not float -> int or int -> bool.
    order = {"b": 0, "u": 1, "i": 1, "f": 2}
    return order[src.kind] <= order[dst.kind]


def _cupy():
    import cupy

    return cupy


# ---- errors ------------------------------------------------------------------------------------


def spec_of(x: Any) -> Any:
    """The inference view of an input: a ``Spec`` for a tensor, the value itself otherwise."""
    if isinstance(x, Tensor):
        return Spec(tuple(x._data.shape), dtypes._FROM_NUMPY[x._data.dtype])
    return x


def explain(op: type[Op], inputs: tuple, attrs: dict | None, err: Exception) -> Exception:
    """Turn a failure inside ``forward`` into an error naming the op, the shapes and the fix."""
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    devices = {str(t.device) for t in tensors}
    if len(devices) > 1:
        return RuntimeError(
            f"{op.label}: expected all tensors to be on the same device, but found tensors on "
            f"{' and '.join(sorted(devices))}; move them with .to(device) first"
        )
    try:
        op.infer(*(spec_of(x) for x in inputs), **(attrs or {}))
    except (ShapeError, TypeError, IndexError, ValueError) as clear:
        return clear
    except NotImplementedError:
        pass
    return err


def broadcast_shapes(op_name: str, *shapes: tuple) -> tuple:
    """The broadcast of several shapes (NumPy's rule), or a ShapeError naming them all.

    Dimensions are matched from the right; each pair must be equal or contain a 1.
    ``None`` (an unknown dimension, in static graphs) is assumed compatible.
    """
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for i in range(-ndim, 0):
        size: int | None = 1
        for s in shapes:
            if -i > len(s):
                continue
            d = s[i]
            if d == 1:
                continue
            if d is None:
                size = None if size == 1 else size
            elif size == 1 or size is None:
                size = d
            elif size != d:
                listed = " and ".join(str(tuple(s)) for s in shapes)
                raise ShapeError(
                    f"{op_name}: shapes {listed} cannot be broadcast together: dimension {i} has "
                    f"sizes {size} and {d}. Broadcasting matches dimensions from the right; each "
                    "pair must be equal or one of them 1 (reshape or unsqueeze an operand to align it)"
                )
        result.append(size)
    return tuple(result)
