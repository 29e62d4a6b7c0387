"""Tracing: running eager code on symbolic tensors to record it as a graph.

``minidl.compile`` calls the user's function once with placeholders in place of its tensor
arguments. Every minidl op it performs becomes a node (``build.py``); module parameters are
captured as variables; ``loss.backward()`` builds the gradient graph (``symbolic_backward``
below) and hands each parameter a *symbolic* ``.grad``; ``optimizer.step()`` becomes one
node that runs the optimizer's own eager update when the program runs.

A ``Tracer`` keeps what the trace learns besides the graph: which parameters' ``.grad`` the
program must write back after each call, which gradients it reads as they were on entry
(accumulation, as ``backward`` accumulates), which modules ran (their ``training`` flags
guard the cached program), and which Python containers were mutated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from ..errors import DTypeError, ShapeError
from ..ops import op as op_layer
from ..tape import grad_state
from ..tensor import Tensor
from .build import symbol_for
from .gradients import backward_sweep, live_values
from .ir import Graph, Node, Output
from .symbolic import SymbolicTensor, TracingError, user_frame

__all__ = ["Tracer", "current_tracer", "symbolic_backward", "note_grad_reset", "note_module_call"]


class _State(threading.local):
    tracer: Tracer | None = None


_state = _State()


def current_tracer() -> Tracer | None:
    return _state.tracer


class ReadGrad:
    """The payload of a node that reads a parameter's ``.grad`` as it is when the program runs
    (for a traced ``backward`` that accumulates into gradients that existed on entry)."""

    label = "read_grad"

    def __init__(self, leaf: Tensor, name: str) -> None:
        self.leaf = leaf
        self.name = name

    def __call__(self) -> Any:
        g = self.leaf._grad
        if g is None:
            import numpy as np

            return np.zeros(self.leaf.shape, dtype=self.leaf._data.dtype)
        return g._data


class Tracer:
    """The state of one trace (see the module docstring)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.reset: set[int] = set()  # parameters whose grad a traced zero_grad() reset
        self.grad_writes: dict[int, tuple[Any, SymbolicTensor]] = {}  # id(leaf) -> (leaf, grad)
        self.entry_grad_guards: dict[int, tuple[Tensor, bool]] = {}  # id(leaf) -> (leaf, had a grad)
        self.modules: dict[int, Any] = {}
        self.effects: list[Node] = []
        self.placeholder_symbols: dict[int, SymbolicTensor] = {}  # placeholder node id -> its tensor
        self.originals: dict[int, tuple[Any, Any]] = {}  # id(leaf) -> (leaf, .grad before the trace)

    def __enter__(self) -> Tracer:
        if _state.tracer is not None:
            raise TracingError("minidl.compile: a compiled function was called while another one is being traced")
        _state.tracer = self
        op_layer.graph_building += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        op_layer.graph_building -= 1
        _state.tracer = None


def note_grad_reset(params: Iterable[Tensor]) -> bool:
    """Called by ``zero_grad``: during a trace, the parameters' gradients start afresh (and
    ``True`` tells ``zero_grad`` it is done); outside one, ``False`` and nothing happens."""
    tracer = _state.tracer
    if tracer is None:
        return False
    for param in params:
        tracer.originals.setdefault(id(param), (param, param._grad))
        tracer.reset.add(id(param))
        tracer.grad_writes.pop(id(param), None)
        param._grad = None
    return True


class _Building(threading.local):
    def __init__(self) -> None:
        self.graphs: list[Graph] = []


_building = _Building()


def module_call_in_graph(module: Any, args: tuple, kwargs: dict) -> Any:
    """A module called on a symbolic input: while its forward runs, in-place updates of its
    parameters and buffers (BatchNorm's running statistics) are recorded in the graph as
    assignments, instead of happening once, now."""
    note_module_call(module, args[0])
    _building.graphs.append(args[0]._graph)
    op_layer.graph_building += 1
    try:
        return module._call(*args, **kwargs)
    except (ShapeError, DTypeError) as err:
        # A check inside the module (before any node was built) names the op, not the line:
        # add the line that called the module, as node-building errors do.
        if "[building" in str(err):
            raise
        raise type(err)(f"{err} [building {type(module).__name__} at {user_frame()}]") from None
    finally:
        op_layer.graph_building -= 1
        _building.graphs.pop()


def building_graph() -> Graph | None:
    """The graph being built right now (by a module on symbolic inputs, or a trace), if any."""
    if _building.graphs:
        return _building.graphs[-1]
    tracer = _state.tracer
    return tracer.graph if tracer is not None else None


def note_module_call(module: Any, x: SymbolicTensor) -> None:
    """Called when a module runs on a symbolic input: name its parameters in the graph, and
    (during a trace) remember the module, whose ``training`` flag the cached program assumes."""
    graph = x._graph
    hints = graph.name_hints
    if id(module) not in graph._named_modules:
        graph._named_modules.add(id(module))
        for name, t in module.named_parameters():
            hints.setdefault(id(t), name)
        for name, t in module.named_buffers():
            hints.setdefault(id(t), name)
    tracer = _state.tracer
    if tracer is not None:
        tracer.modules[id(module)] = module


def symbolic_backward(root: SymbolicTensor, gradient: Any, create_graph: bool, inputs: Any) -> None:
    """``loss.backward()`` on a traced value: gradient nodes, and symbolic ``.grad`` on the leaves.

    The leaves are what eager ``backward`` would reach: captured parameters and traced
    inputs that require grad. Accumulation follows eager: a leaf whose ``.grad`` already holds
    a value gets ``old + new``.
    """
    tracer = _state.tracer
    if tracer is None:
        raise TracingError(
            f"backward() on the symbolic tensor {root._describe()} outside minidl.compile; in a static graph "
            "use minidl.graph.gradients(ys, xs), or optimizer.minimize(loss)"
        )
    if not root._rg:
        raise RuntimeError(
            "element 0 of tensors does not require grad and does not have a grad_fn: nothing the traced value "
            "was computed from requires grad"
        )
    graph = root._graph
    leaves: dict[Output, Any] = {}
    for node in graph.nodes:
        if node.kind == "variable" and node.payload.trainable:
            leaves[node.output(0)] = node.payload.storage
        elif node.kind == "placeholder":
            sym = tracer_placeholder(tracer, node)
            if sym is not None and sym._rg:
                leaves[node.output(0)] = sym
    if inputs is not None:
        wanted = {id(t) for t in (inputs if isinstance(inputs, (list, tuple)) else [inputs])}
        leaves = {o: t for o, t in leaves.items() if id(t) in wanted}
    from ..ops.creation import ones_like

    if gradient is None:
        if root._data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs, but the traced output has shape {root.shape}"
            )
        seed = ones_like(root)
    else:
        seed = gradient
    if type(seed) is not SymbolicTensor:
        from .build import constant

        seed = constant(seed._data if isinstance(seed, Tensor) else seed, graph=graph)
    live = live_values(graph.nodes, set(leaves))
    previous = grad_state.enabled
    grad_state.enabled = create_graph
    try:
        totals = backward_sweep(graph, [root._ref], [seed], live, set(leaves))
    finally:
        grad_state.enabled = previous
    for out, g in totals.items():
        leaf = leaves[out]
        _accumulate(tracer, leaf, g)


def tracer_placeholder(tracer: Tracer, node: Node) -> SymbolicTensor | None:
    return tracer.placeholder_symbols.get(node.id)


def _accumulate(tracer: Tracer, leaf: Any, g: SymbolicTensor) -> None:
    key = id(leaf)
    current = leaf._grad
    tracer.originals.setdefault(key, (leaf, current))
    if current is None:
        total = g
    elif type(current) is SymbolicTensor:
        total = current + g
    else:
        # A gradient from before this call: read it when the program runs, and guard on its
        # presence (a later call without one must not reuse this program).
        if key not in tracer.reset:
            tracer.entry_grad_guards[key] = (leaf, True)
        read = Node(
            tracer.graph,
            "call",
            tracer.graph.unique_name("read_grad"),
            (_spec(leaf),),
            payload=ReadGrad(leaf, "grad"),
            source=user_frame(),
        )
        tracer.graph.add(read)
        total = symbol_for(read.output(0)) + g
    if current is None and key not in tracer.reset and type(leaf) is not SymbolicTensor:
        tracer.entry_grad_guards[key] = (leaf, False)
    leaf._grad = total
    tracer.grad_writes[key] = (leaf, total)


def _spec(leaf: Tensor) -> Any:
    from ..ops.op import Spec

    return Spec(tuple(leaf.shape), leaf.dtype)
