"""Building graph nodes: what the op layer does when an input is symbolic.

``minidl/ops/op.py`` applies an op to arrays. When one of the inputs is a ``SymbolicTensor``
it hands the call to this module instead, which

1. finds the graph (every symbolic input must come from the same one);
2. turns every input into an ``Output`` or a literal: symbolic tensors give their ``Output``,
   eager tensors are *captured* (a ``variable`` node reading that tensor's storage at run
   time, so a module's parameters are shared between eager code and the graph), NumPy
   arrays become ``constant`` nodes, numbers stay literals;
3. infers the output's shape and dtype with the op's own ``infer`` (a shape error is raised
   here, at build time, naming the op and the user's source line);
4. appends an ``op`` node and returns a symbolic tensor for its output.

Binary ops follow the same type promotion as eager ``binary``: operands of another dtype get
an explicit ``Cast`` node, so the graph computes exactly what eager code computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..ops import op as op_layer
from ..ops.cast import Cast
from ..ops.op import Op, Spec
from ..tensor import Tensor
from .ir import Graph, GraphError, Node, Output, get_default_graph
from .symbolic import SymbolicTensor, TracingError, user_frame

__all__ = ["apply_op", "capture", "constant", "symbol_for", "stop_gradient", "VariableState"]


class VariableState:
    """The persistent storage behind a ``variable`` node: an eager tensor and how to initialize it.

    ``storage`` is a real ``Tensor``. For a captured module parameter it *is* the parameter,
    so a Session's updates are what eager code sees next. ``initializer`` is an array (or a
    symbolic tensor, computed by the Session) copied into the storage on initialization.
    """

    __slots__ = ("storage", "initializer", "initialized", "trainable", "name")

    def __init__(self, storage: Tensor, trainable: bool, name: str, initializer: Any = None) -> None:
        self.storage = storage
        self.initializer = initializer
        self.initialized = initializer is None
        self.trainable = trainable
        self.name = name


# ---- turning inputs into graph values ------------------------------------------------------------


def graph_of(label: str, inputs: Any) -> Graph:
    """The one graph that the symbolic inputs belong to (an error if they come from several)."""
    graph = None
    for x in inputs:
        if type(x) is SymbolicTensor:
            if graph is None:
                graph = x._graph
            elif x._graph is not graph:
                raise GraphError(
                    f"{label}: its inputs come from two different graphs ({x._describe()} is from another "
                    "graph than the first symbolic input); build each model in one graph"
                )
    if graph is not None:
        return graph
    from .trace import building_graph

    return building_graph() or get_default_graph()


def symbol_for(out: Output, requires_grad: bool | None = None) -> SymbolicTensor:
    """A new symbolic tensor naming ``out``."""
    node = out.node
    if requires_grad is None:
        requires_grad = False
    return SymbolicTensor._make(node.graph, out, out.spec, requires_grad)


def capture(graph: Graph, t: Tensor, name: str | None = None) -> Output:
    """The graph value of an eager tensor: a ``variable`` node reading its storage at run time.

    Captured once per graph; after the graph assigns to the tensor, later uses see the
    assignment's output (``graph.captures`` holds the current value).
    """
    entry = graph.captures.get(id(t))
    if entry is not None:
        return entry[1]
    if name is None:
        name = graph.name_hints.get(id(t))
    trainable = bool(t._rg)
    label = name or ("param" if trainable else "capture")
    state = VariableState(t, trainable, label)
    node = Node(
        graph,
        "variable",
        graph.unique_name(label),
        (Spec(tuple(t.shape), t.dtype),),
        payload=state,
        source=user_frame(),
    )
    graph.add(node)
    graph.variables.append(node)
    out = node.output(0)
    graph.captures[id(t)] = (t, out)
    return out


def constant(value: Any, dtype: Any = None, name: str | None = None, graph: Graph | None = None) -> SymbolicTensor:
    """A constant node (TensorFlow's ``tf.constant``): a fixed array that the compiler may fold."""
    graph = graph or get_default_graph()
    if isinstance(value, Tensor) and type(value) is not SymbolicTensor:
        value = value._data
    array = np.asarray(value)
    if dtype is not None:
        array = array.astype(dtypes.to_dtype(dtype).np)
    elif array.dtype == np.float64 and not isinstance(value, np.ndarray):
        array = array.astype(dtypes.get_default_dtype().np)  # Python floats: the default dtype, as torch
    return symbol_for(_constant_output(graph, array, name))


def _constant_output(graph: Graph, array: np.ndarray, name: str | None = None) -> Output:
    dtype = dtypes.from_numpy_dtype(array.dtype)
    node = Node(
        graph,
        "constant",
        graph.unique_name(name or "const"),
        (Spec(tuple(array.shape), dtype),),
        payload=array,
        source=user_frame(),
    )
    graph.add(node)
    return node.output(0)


def to_value(graph: Graph, x: Any) -> Any:
    """An op input as the IR holds it: an ``Output``, or a literal."""
    if type(x) is SymbolicTensor:
        return x._ref
    if isinstance(x, Tensor):
        return capture(graph, x)
    if isinstance(x, np.ndarray):
        return _constant_output(graph, x)
    return x


def _spec_or_literal(v: Any) -> Any:
    return v.spec if type(v) is Output else v


# ---- adding op nodes ---------------------------------------------------------------------------


def apply_op(op: type[Op], inputs: tuple, attrs: dict | None) -> SymbolicTensor:
    """Add ``op(*inputs, **attrs)`` to the graph of its symbolic inputs."""
    graph = graph_of(op.label, inputs)
    attrs = attrs or {}
    values = tuple(to_value(graph, x) for x in inputs)
    source = user_frame()
    spec, saved = infer_specs(op, values, attrs, source)
    saved_keys = tuple(saved)
    node = Node(
        graph,
        "op",
        graph.unique_name(op.label),
        (spec, *saved.values()),
        op=op,
        inputs=values,
        attrs=attrs,
        saved_keys=saved_keys,
        source=source,
    )
    graph.add(node)
    rg = op.differentiable and spec.dtype.category == 2 and any(isinstance(x, Tensor) and x._rg for x in inputs)
    out = symbol_for(node.output(0), rg)
    if op.is_view and type(inputs[0]) is SymbolicTensor:
        base = inputs[0]._base if inputs[0]._base is not None else inputs[0]
        out._base = base
        base._vc = [1]  # marks "has views": an in-place change of it would not reach them
    return out


def infer_specs(op: type[Op], values: tuple, attrs: dict, source: str) -> tuple[Spec, dict]:
    """The output's ``Spec`` and, for ops that save arrays for backward, each saved array's."""
    specs = tuple(_spec_or_literal(v) for v in values)
    try:
        try:
            spec = op.infer(*specs, **attrs)
        except NotImplementedError:
            spec = None
        saved: dict = {}
        if spec is None or op.saves:
            spec_eval, saved = _abstract_eval(op, specs, attrs)
            spec = spec if spec is not None else spec_eval
    except (ShapeError, DTypeError, IndexError, ValueError, TypeError) as err:
        raise type(err)(f"{err} [building {op.label} at {source}]") from None
    if not isinstance(spec, Spec):
        spec = Spec(tuple(spec.shape), spec.dtype)
    return spec, saved


def _abstract_eval(op: type[Op], specs: tuple, attrs: dict) -> tuple[Spec, dict]:
    """Shape inference by running ``forward`` on stand-in zeros (for ops without ``infer`` and
    for the arrays ops save). Unknown dimensions are tried at sizes 1 and 2; a dimension of
    the result that differs between the two runs is unknown too."""
    runs = []
    unknown = any(type(s) is Spec and None in s.shape for s in specs)
    for fill in (1, 2) if unknown else (1,):
        arrays = [
            np.zeros(tuple(fill if d is None else d for d in s.shape), dtype=s.dtype.np) if type(s) is Spec else s
            for s in specs
        ]
        out = op.forward(*arrays, **attrs)
        saved = {}
        if op.saves:
            out, saved = out
        runs.append((_value_spec(out), {k: _value_spec(v) for k, v in saved.items()}))
    if len(runs) == 1:
        return runs[0]
    (a, sa), (b, sb) = runs
    return _merge(a, b), {k: _merge(sa[k], sb[k]) for k in sa}


def _value_spec(v: Any) -> Spec:
    if v is None or isinstance(v, (int, float)):
        arr = np.asarray(0.0 if v is None else v)
    else:
        arr = np.asarray(v)
    return Spec(tuple(arr.shape), dtypes.from_numpy_dtype(arr.dtype))


def _merge(a: Spec, b: Spec) -> Spec:
    if len(a.shape) != len(b.shape):
        return Spec(tuple(None for _ in a.shape), a.dtype)
    return Spec(tuple(x if x == y else None for x, y in zip(a.shape, b.shape)), a.dtype)


def _operand_kind(v: Any) -> tuple:
    if isinstance(v, Tensor):
        return v.dtype, (1 if v.ndim == 0 else 0)
    return dtypes.scalar_dtype(v), 2


def binary(op: type[Op], a: Any, b: Any) -> SymbolicTensor:
    """A two-input elementwise op on symbols, with eager's promotion made explicit as casts."""
    # The same operands eager ``binary`` would hand to ``forward``: equal float dtypes and a
    # Python number beside a float tensor pass unchanged; everything else is promoted.
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.dtype is b.dtype and not (op.float_result and a.dtype.category < 2):
            return apply_op(op, (a, b), None)
    elif isinstance(a, Tensor) and type(b) in (int, float) and a.dtype.category == 2:
        return apply_op(op, (a, b), None)
    elif isinstance(b, Tensor) and type(a) in (int, float) and b.dtype.category == 2:
        return apply_op(op, (a, b), None)
    a, b = (_as_graph_operand(op, v) for v in (a, b))
    target = dtypes.result_type(_operand_kind(a), _operand_kind(b))
    if op.float_result and target.category < 2:
        target = dtypes.get_default_dtype()
    return apply_op(op, (_cast_to(a, target), _cast_to(b, target)), None)


def _as_graph_operand(op: type[Op], v: Any) -> Any:
    if isinstance(v, Tensor) or type(v) in (int, float, bool):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (np.ndarray, list, tuple)):
        from ..ops.creation import tensor

        return constant(tensor(v)._data)
    raise TypeError(f"{op.label}: unsupported operand type {type(v).__name__}; expected a Tensor or a number")


def _cast_to(v: Any, target: dtypes.DType) -> Any:
    if isinstance(v, Tensor):
        if v.dtype is target:
            return v
        return op_layer.apply(Cast, v, dtype=target)
    return op_layer._cast_operand(v, target)


def unary(op: type[Op], x: SymbolicTensor) -> SymbolicTensor:
    return apply_op(op, (x,), None)


def float_unary(op: type[Op], x: SymbolicTensor) -> SymbolicTensor:
    if x._data.dtype.kind != "f":
        x = op_layer.apply(Cast, x, dtype=dtypes.get_default_dtype())
    return apply_op(op, (x,), None)


def apply_inplace(op: type[Op], target: Tensor, others: tuple, attrs: dict) -> Tensor:
    """``op`` applied in place where the target or an operand is symbolic.

    On a symbolic target this is single assignment: a new node computes the result and the
    Python object is rebound to it. On an eager target (a captured buffer, such as
    BatchNorm's running mean) the graph also gets an ``assign`` node that writes the result
    into the tensor's storage when the graph runs; later uses in the graph see the new value.
    """
    if type(target) is SymbolicTensor:
        if target._base is not None or (target._vc is not None and target._vc[0] > 0):
            raise TracingError(
                f"{op.label}_: in-place change of {target._describe()}, which is a view of (or has views on) "
                "another symbolic tensor; a graph does not alias views. Use the out-of-place op "
                f"(y = {op.label}(x, ...)) instead"
            )
        result = apply_op(op, (target, *others), attrs)
        if tuple(result.shape) != tuple(target.shape):
            raise ShapeError(
                f"{op.label}_: the result has shape {result.shape}, which doesn't match the shape "
                f"{target.shape} of the tensor being modified in place"
            )
        if result.dtype is not target.dtype:
            result = op_layer.apply(Cast, result, dtype=target.dtype)
        target._ref = result._ref
        target._rg = target._rg or result._rg
        return target
    graph = graph_of(op.label, (target, *others))
    current = symbol_for(capture(graph, target), bool(target._rg))
    result = apply_op(op, (current, *others), attrs)
    if result.dtype is not target.dtype:
        result = op_layer.apply(Cast, result, dtype=target.dtype)
    assign(graph, target, result)
    return target


def assign(graph: Graph, target: Tensor, value: SymbolicTensor, update_op: bool = True) -> Node:
    """Write ``value`` into the eager tensor ``target`` whenever the graph runs this node."""
    capture(graph, target)  # make sure a variable node (and its state) exists
    state = next(n.payload for n in graph.variables if n.payload.storage is target)
    node = Node(
        graph,
        "assign",
        graph.unique_name(f"assign_{state.name}"),
        (value._ref.spec,),
        inputs=(value._ref,),
        payload=state,
        source=user_frame(),
    )
    graph.add(node)
    graph.captures[id(target)] = (target, node.output(0))
    if update_op:
        graph.update_ops.append(node)
    return node


def stop_gradient(x: SymbolicTensor) -> SymbolicTensor:
    """The same value, cut off from gradients (``tf.stop_gradient``; ``detach`` on symbols)."""
    from ..ops.shape import Detach

    return apply_op(Detach, (x,), None)


def register() -> None:
    """Install the hooks through which the op layer hands symbolic calls to this module."""
    from .. import errors
    from .symbolic import locate_errors, locate_message

    op_layer.SYMBOLIC_TYPE = SymbolicTensor
    op_layer.symbolic = _Dispatch
    errors.locate = locate_message
    locate_errors()


def lifts(inputs: tuple) -> bool:
    """While a graph is being built: do these inputs belong in it? Symbolic tensors do, and so
    do eager tensors that require grad (parameters) or that the graph knows by name (buffers):
    an op on them must be a node, not a value computed once at build time."""
    from .trace import building_graph

    graph = building_graph()
    if graph is None:
        return False
    hints = graph.name_hints
    for x in inputs:
        if isinstance(x, Tensor) and (type(x) is SymbolicTensor or x._rg or id(x) in hints):
            return True
    return False


class _Dispatch:
    lifts = staticmethod(lifts)
    apply = staticmethod(apply_op)
    unary = staticmethod(unary)
    float_unary = staticmethod(float_unary)
    binary = staticmethod(binary)
    apply_inplace = staticmethod(apply_inplace)
