"""Symbolic gradients (TensorFlow's ``tf.gradients``): the backward pass, built as more graph.

``gradients(ys, xs)`` walks the graph backward from ``ys`` exactly as the eager engine
(``minidl/autograd/engine.py``) walks the tape: the same depth-first reverse topological
order, the same accumulation of contributions in the same order. At each node it calls the
op's one ``vjp`` rule, but on symbolic tensors -- so the rule's ops become new graph nodes,
and the result is a graph that computes the gradients. Nothing here knows any derivative;
there is no second gradient implementation. Gradients of gradients come for free: the new
nodes are ordinary nodes, and ``gradients`` can walk them again.

Because the order of every floating-point addition matches the eager engine's, a compiled
training step computes bitwise the same gradients as ``loss.backward()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..ops.cast import Cast
from ..ops.infer import DynamicShape
from ..ops.op import apply
from ..tape import grad_state
from ..tensor import Tensor
from .build import capture, symbol_for
from .ir import Graph, GraphError, Node, Output
from .symbolic import SymbolicTensor

__all__ = ["gradients", "GraphContext"]


class GraphContext:
    """What a ``vjp`` rule reads (``ctx``), for a graph node: symbolic inputs, output, saved."""

    __slots__ = ("node", "op", "attrs", "_edges", "_inputs")

    def __init__(self, node: Node, edges: tuple[bool, ...], live: set) -> None:
        self.node = node
        self.op = node.op
        self.attrs = node.attrs
        self._edges = edges
        self._inputs = tuple(symbol_for(v, v in live) if type(v) is Output else v for v in node.inputs)

    def input(self, i: int) -> Any:
        return self._inputs[i]

    @property
    def inputs(self) -> tuple:
        return self._inputs

    @property
    def output(self) -> SymbolicTensor:
        return symbol_for(self.node.output(0), True)

    @property
    def saved(self) -> dict:
        return {key: symbol_for(self.node.output(i + 1)) for i, key in enumerate(self.node.saved_keys)}

    def saved_tensor(self, key: str) -> SymbolicTensor:
        return symbol_for(self.node.output(1 + self.node.saved_keys.index(key)))

    def input_shape(self, i: int) -> tuple:
        """Input ``i``'s shape; with unknown sizes, a ``DynamicShape`` that carries the input
        itself, so the shape helpers can read the sizes off it when the graph runs."""
        v = self.node.inputs[i]
        if type(v) is not Output:
            return tuple(getattr(v, "shape", ()))
        shape = tuple(v.spec.shape)
        if None in shape:
            return DynamicShape(shape, self._inputs[i])
        return shape

    def needs_grad(self, i: int) -> bool:
        return self._edges[i]

    @property
    def edges(self) -> tuple:
        """One entry per input, ``None`` where no gradient is needed (as the tape node's)."""
        return tuple(True if e else None for e in self._edges)

    def name(self) -> str:
        return f"{self.op.name}Backward"


def _as_output(graph: Graph, x: Any, what: str) -> Output:
    if type(x) is SymbolicTensor:
        if x._graph is not graph:
            raise GraphError(f"gradients: {what} {x._describe()} belongs to another graph than ys")
        return x._ref
    if isinstance(x, Tensor):
        entry = graph.captures.get(id(x))
        if entry is None:
            return capture(graph, x)
        return _first_read(graph, x, entry[1])
    raise TypeError(f"gradients: {what} must be tensors, got {type(x).__name__}")


def _first_read(graph: Graph, t: Tensor, current: Output) -> Output:
    """The variable node that reads ``t`` (not a later assignment to it)."""
    for node in graph.variables:
        if node.payload.storage is t:
            return node.output(0)
    return current


def live_values(nodes: Sequence[Node], sources: set[Output]) -> set[Output]:
    """Values that depend differentiably on ``sources`` (a forward sweep in build order)."""
    live = set(sources)
    for node in nodes:
        if node.kind == "op" and not node.op.differentiable:
            continue
        if node.kind not in ("op", "assign"):
            continue
        if any(type(v) is Output and v in live for v in node.inputs):
            out = node.output(0)
            if node.specs[0].dtype.category == 2:
                live.add(out)
    return live


def _edges(node: Node, live: set[Output]) -> tuple[bool, ...]:
    if node.kind == "assign":
        return (node.inputs[0] in live,)
    if node.kind != "op" or not node.op.differentiable:
        return tuple(False for _ in node.inputs)
    return tuple(type(v) is Output and v in live for v in node.inputs)


def toposort(roots: Sequence[Node], live: set[Output]) -> list[Node]:
    """Nodes reachable from ``roots`` through differentiable edges, consumers first (the eager
    engine's iterative depth-first order, so that contributions add up in the same order)."""
    postorder: list[Node] = []
    seen: set[int] = set()
    for root in roots:
        if root.id in seen:
            continue
        seen.add(root.id)
        stack = [(root, 0, _edges(root, live))]
        while stack:
            node, i, edges = stack[-1]
            inputs = node.inputs
            while i < len(inputs):
                j = i
                i += 1
                if not edges[j]:
                    continue
                nxt = inputs[j].node
                if nxt.id not in seen and nxt.kind in ("op", "assign"):
                    seen.add(nxt.id)
                    stack[-1] = (node, i, edges)
                    stack.append((nxt, 0, _edges(nxt, live)))
                    break
            else:
                stack.pop()
                postorder.append(node)
    postorder.reverse()
    return postorder


def gradients(
    ys: Any, xs: Any, grad_ys: Any = None, create_graph: bool = True, stop_gradients: Any = None
) -> list[SymbolicTensor | None]:
    """Symbolic gradients of ``sum(ys)`` with respect to each of ``xs`` (``None`` where a
    ``x`` does not influence ``ys``, as TensorFlow 1).

    ``grad_ys`` weights each y (default: ones). The gradient nodes are built by the ops'
    ``vjp`` rules with grad mode set to ``create_graph``: on (the default) the rules take
    their differentiable form, so the result can be differentiated again; off, they take the
    same form as eager ``backward()`` and give bitwise the same numbers.
    """
    ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
    single = not isinstance(xs, (list, tuple))
    xs = [xs] if single else list(xs)
    if not ys:
        raise ValueError("gradients: ys is empty")
    for y in ys:
        if type(y) is not SymbolicTensor:
            raise TypeError(
                f"gradients: ys must be symbolic tensors of a graph, got {type(y).__name__}; "
                "for eager tensors use minidl.autograd.grad"
            )
    graph = ys[0]._graph
    roots = [_as_output(graph, y, "ys") for y in ys]
    targets = [_as_output(graph, x, "xs") for x in xs]
    if grad_ys is None:
        grad_ys = [None] * len(ys)
    elif not isinstance(grad_ys, (list, tuple)):
        grad_ys = [grad_ys]
    blocked = {(_as_output(graph, s, "stop_gradients")) for s in (stop_gradients or [])}

    nodes = graph.nodes
    live = live_values(nodes, set(targets)) - blocked
    previous = grad_state.enabled
    grad_state.enabled = create_graph
    try:
        totals = backward_sweep(graph, roots, [_root_grad(y, g) for y, g in zip(ys, grad_ys)], live, set(targets))
    finally:
        grad_state.enabled = previous
    result = [totals.get(t) for t in targets]
    return result[0] if single else result


def _root_grad(y: SymbolicTensor, g: Any) -> SymbolicTensor:
    from ..ops.creation import ones_like

    if g is None:  # tf.gradients differentiates sum(y): a seed of ones, for any shape of y
        return _to_symbol(y, ones_like(y))
    if not isinstance(g, Tensor):
        from ..ops.creation import tensor

        g = tensor(g, dtype=y.dtype)
    if tuple(g.shape) != tuple(y.shape) and None not in y.shape:
        raise ValueError(f"gradients: grad_ys has shape {tuple(g.shape)} but y has shape {tuple(y.shape)}")
    return _to_symbol(y, g)


def _to_symbol(like: SymbolicTensor, g: Any) -> Any:
    if type(g) is SymbolicTensor:
        return g
    from .build import constant

    return constant(g._data, graph=like._graph)


def backward_sweep(
    graph: Graph, roots: list[Output], seeds: list[Any], live: set[Output], targets: set[Output]
) -> dict[Output, SymbolicTensor]:
    """Propagate ``seeds`` back from ``roots``; return the total gradient of each target value."""
    node_grads: dict[int, Any] = {}
    leaf_grads: dict[Output, Any] = {}
    captured: dict[Output, Any] = {}
    for out, g in zip(roots, seeds):
        if out.node.kind in ("op", "assign"):
            prev = node_grads.get(out.node.id)
            node_grads[out.node.id] = g if prev is None else prev + g
        else:
            prev = leaf_grads.get(out)
            leaf_grads[out] = g if prev is None else prev + g
    order = toposort([o.node for o in roots if o.node.kind in ("op", "assign")], live)
    for node in order:
        g = node_grads.pop(node.id, None)
        if g is None:
            continue
        out = node.output(0)
        if out in targets:
            captured[out] = g
        edges = _edges(node, live)
        if node.kind == "assign":
            input_grads = (g,)
        else:
            ctx = GraphContext(node, edges, live)
            input_grads = node.op.vjp(ctx, g)
        for i, v in enumerate(node.inputs):
            # A rule may stop before trailing inputs that take no gradient: the ``like`` input
            # a shape op reads unknown sizes off (``sum_to``, ``reshape`` on a DynamicShape).
            if not edges[i] or i >= len(input_grads):
                continue
            ig = input_grads[i]
            if ig is None:
                continue
            ig = _conform(node, i, ig, v)
            src = v.node
            if src.kind in ("op", "assign"):
                prev = node_grads.get(src.id)
                node_grads[src.id] = ig if prev is None else prev + ig
            else:
                prev = leaf_grads.get(v)
                leaf_grads[v] = ig if prev is None else prev + ig
    for t in targets:
        if t in leaf_grads:
            captured[t] = leaf_grads[t]
    return captured


def _conform(node: Node, i: int, g: Any, v: Output) -> Any:
    spec = v.spec
    if not isinstance(g, Tensor):
        raise TypeError(f"internal error: the rule of {node.op_label()} returned a {type(g).__name__} for input {i}")
    if type(g) is not SymbolicTensor:
        from .build import constant

        g = constant(g._data, graph=node.graph)
    shape = tuple(g.shape)
    if len(shape) != len(spec.shape) or any(
        a is not None and b is not None and a != b for a, b in zip(shape, spec.shape)
    ):
        raise RuntimeError(
            f"internal error: the rule of {node.op_label()} ('{node.name}') returned a gradient of shape "
            f"{shape} for input {i} of shape {spec.shape}"
        )
    if g.dtype is not spec.dtype:
        g = apply(Cast, g, dtype=spec.dtype)
    return g
