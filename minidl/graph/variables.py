"""Graph inputs: ``placeholder`` (fed per run) and ``Variable`` (persistent state).

A ``Variable`` is a ``variable`` node plus a ``VariableState``: an eager tensor that holds the
value between runs. Reading the variable in the graph reads that tensor's storage when the
program runs; ``assign`` nodes and optimizer steps write into it in place. A module's
parameters enter a graph the same way (``build.capture``), which is why a Session that trains
a module updates the very tensors eager code sees.

Variables start uninitialized. A Session initializes each one the first time a program
needs it (TensorFlow 1 required ``global_variables_initializer()`` first; it still exists, and
running it again resets every variable to its initial value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import dtypes
from ..ops.op import Spec
from ..tensor import Tensor
from .build import VariableState, _constant_output, symbol_for
from .ir import Graph, GraphError, Node, Output, get_default_graph
from .symbolic import SymbolicTensor, user_frame

__all__ = ["placeholder", "Variable", "global_variables_initializer", "variables_initializer", "trainable_variables"]


def placeholder(shape: Any = None, dtype: Any = None, name: str | None = None) -> SymbolicTensor:
    """A value supplied at run time through ``feed_dict`` (``None`` marks an unknown size).

    ``placeholder((None, 784))`` accepts any batch size; ``placeholder(minidl.int64, (None,))``
    (TensorFlow's argument order) works too.
    """
    if isinstance(shape, dtypes.DType) or (isinstance(shape, str) and not isinstance(dtype, str) and dtype is not None):
        shape, dtype = dtype, shape
    if shape is None:
        raise ValueError("placeholder: give a shape, with None for each size that varies (for example (None, 784))")
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(None if d is None or d == -1 else int(d) for d in shape)
    if any(d is not None and d < 0 for d in shape):
        raise ValueError(f"placeholder: sizes must be non-negative or None, got {shape}")
    dtype = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    graph = get_default_graph()
    node = Node(
        graph, "placeholder", graph.unique_name(name or "placeholder"), (Spec(shape, dtype),), source=user_frame()
    )
    graph.add(node)
    return symbol_for(node.output(0))


def Variable(  # noqa: N802 - TensorFlow's name
    initial_value: Any,
    name: str | None = None,
    trainable: bool = True,
    dtype: Any = None,
) -> SymbolicTensor:
    """A persistent, trainable (by default) value of the graph: TensorFlow 1's ``tf.Variable``.

    ``initial_value`` is an array, a number, an eager tensor, a callable returning one, or a
    symbolic tensor of the same graph (computed by the Session when the variable is
    initialized). The returned symbolic tensor reads the variable; ``var.assign(value)``
    builds a write, ``var.storage`` is the eager tensor that holds the value.
    """
    graph = get_default_graph()
    if callable(initial_value) and not isinstance(initial_value, Tensor):
        initial_value = initial_value()
    if type(initial_value) is SymbolicTensor:
        if initial_value._graph is not graph:
            raise GraphError("Variable: the initial value belongs to another graph than the default graph")
        if None in initial_value.shape:
            raise ValueError(
                f"Variable: the initial value {initial_value._describe()} has an unknown size; a variable's shape "
                "must be fully known"
            )
        dtype = dtypes.to_dtype(dtype) if dtype is not None else initial_value.dtype
        shape, initializer = tuple(initial_value.shape), _from_initial_values(graph, initial_value)
    else:
        if isinstance(initial_value, Tensor):
            array = np.array(initial_value._data)
        else:
            array = np.array(initial_value)
            if array.dtype == np.float64 and not isinstance(initial_value, np.ndarray):
                array = array.astype(dtypes.get_default_dtype().np)
        if dtype is not None:
            array = array.astype(dtypes.to_dtype(dtype).np)
        dtype, shape, initializer = dtypes.from_numpy_dtype(array.dtype), array.shape, array
    if trainable and dtype.category != 2:
        raise TypeError(
            f"Variable: a trainable variable must be floating point, got {dtype.name}; pass trainable=False"
        )
    storage = Tensor(np.zeros(shape, dtype=dtype.np))
    if trainable:
        storage.requires_grad_(True)
    label = graph.unique_name(name or "Variable")
    state = VariableState(storage, trainable, label, initializer)
    node = Node(graph, "variable", label, (Spec(shape, dtype),), payload=state, source=user_frame())
    graph.add(node)
    graph.variables.append(node)
    graph.captures[id(storage)] = (storage, node.output(0))
    return symbol_for(node.output(0), trainable)


def _from_initial_values(graph: Graph, value: SymbolicTensor) -> SymbolicTensor:
    """``value``, recomputed from the *initial* values of the variables it reads (TensorFlow's
    ``initialized_value``): ``Variable(a * 3)`` starts at three times ``a``'s initial value,
    and re-running the initializer after training resets it to that again, not to three times
    the trained ``a``. The nodes that read a variable are copied with the read replaced."""
    rebuilt: dict[Output, Output] = {}

    def rebuild(out: Output) -> Output:
        if out in rebuilt:
            return rebuilt[out]
        node = out.node
        new = out
        if node.kind == "variable" and node.payload.initializer is not None:
            init = node.payload.initializer  # a symbolic one was rebuilt when it was made
            new = init._ref if type(init) is SymbolicTensor else _constant_output(graph, np.asarray(init))
        elif node.kind == "op":
            inputs = tuple(rebuild(v) if type(v) is Output else v for v in node.inputs)
            if any(a is not b for a, b in zip(inputs, node.inputs)):
                new = graph.add(node.replace(inputs=inputs, name=graph.unique_name(node.name))).output(out.index)
        rebuilt[out] = new
        return new

    result = rebuild(value._ref)
    return value if result is value._ref else symbol_for(result)


class InitializeVariables:
    """The payload of an initializer node: copy each initial value into its variable's storage."""

    label = "initialize_variables"

    def __init__(self, states: list[VariableState]) -> None:
        self.states = states

    def __call__(self, *values: Any) -> None:
        for state, value in zip(self.states, values):
            data = state.storage._data
            np.copyto(data, value, casting="unsafe")
            state.storage._version_counter()[0] += 1
            state.initialized = True


def variables_initializer(var_list: list[SymbolicTensor], name: str = "init") -> Node:
    """An op that (re)initializes the given variables when run."""
    graph = var_list[0]._graph if var_list else get_default_graph()
    states, inputs = [], []
    for v in var_list:
        state = variable_state(v)
        if state.initializer is None:
            continue  # a captured tensor: its value is its own
        states.append(state)
        init = state.initializer
        inputs.append(init._ref if type(init) is SymbolicTensor else init)
    node = Node(graph, "call", graph.unique_name(name), (), inputs=tuple(inputs), payload=InitializeVariables(states))
    node.source = user_frame()
    graph.add(node)
    return node


def global_variables_initializer(graph: Graph | None = None) -> Node:
    """An op that initializes every variable of the graph (TensorFlow 1's function)."""
    graph = graph or get_default_graph()
    return variables_initializer([symbol_for(n.output(0)) for n in graph.variables], name="init")


def trainable_variables(graph: Graph | None = None) -> list[SymbolicTensor]:
    graph = graph or get_default_graph()
    return [symbol_for(n.output(0), True) for n in graph.variables if n.payload.trainable]


def variable_state(v: Any) -> VariableState:
    """The state behind a variable's symbolic tensor (or behind a captured eager tensor)."""
    if type(v) is SymbolicTensor:
        node = v._ref.node
        if node.kind in ("variable", "assign"):
            return node.payload
        raise TypeError(f"{v._describe()} is not a variable")
    raise TypeError(f"expected a graph variable, got {type(v).__name__}")


def assign(ref: SymbolicTensor, value: Any, op: Callable | None = None) -> SymbolicTensor:
    """A node that writes ``value`` (or ``op(current, value)``) into the variable ``ref``."""
    from .build import assign as build_assign

    state = variable_state(ref)
    graph = ref._graph
    current = symbol_for(graph.captures[id(state.storage)][1], state.trainable)
    if op is not None:
        value = op(current, value)
    if type(value) is not SymbolicTensor:
        from .build import constant

        value = constant(np.asarray(value if not isinstance(value, Tensor) else value._data, dtype=current.dtype.np))
    if tuple(value.shape) != tuple(current.shape):
        raise ValueError(f"assign: value of shape {value.shape} for variable '{state.name}' of shape {current.shape}")
    node = build_assign(graph, state.storage, value, update_op=False)
    return symbol_for(node.output(0))
