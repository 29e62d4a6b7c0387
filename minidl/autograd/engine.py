"""The backward engine: walk the tape from the outputs to the leaves, applying each rule once.

Reverse-mode differentiation computes, for a scalar loss L, the gradient dL/dv of every value
v that L depends on. The chain rule says that dL/dv is the *sum*, over the ops that consumed
v, of what each op's backward rule (its vjp) sends back to v. So a node's rule may run only
once all of its consumers have run and their contributions have been added up.

The engine therefore:

1. **orders** the nodes reachable from the outputs so that every node comes after all its
   consumers (a reverse topological order, by an iterative depth-first search -- no
   recursion, so a chain of 100,000 ops is fine);
2. **walks** that order once, keeping a table from node to the gradient accumulated so far;
   at each node it pops the total, runs the op's ``vjp`` and adds each input's share to the
   input's node (or, for a leaf, to the leaf's entry);
3. **delivers** the leaves' totals: accumulated into ``.grad`` by ``backward``, returned by
   ``grad``.

The rules run with grad mode set to ``create_graph``: normally off (plain arrays, nothing
recorded), but on for higher-order gradients, when the rules' own ops are recorded and the
resulting gradients can be differentiated again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..backend.device import array_module
from ..tape import Node, grad_state
from ..tensor import Tensor


def toposort(roots: Iterable[Node]) -> list[Node]:
    """Nodes reachable from ``roots``, each listed after every node that consumes its output."""
    postorder: list[Node] = []
    seen: set[Node] = set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, 0)]
        while stack:
            node, i = stack[-1]
            edges = node.edges
            while i < len(edges):
                nxt = edges[i]
                i += 1
                if type(nxt) is Node and nxt not in seen:
                    seen.add(nxt)
                    stack[-1] = (node, i)
                    stack.append((nxt, 0))
                    break
            else:
                stack.pop()
                postorder.append(node)
    postorder.reverse()
    return postorder


def _needed(order: list[Node], target_nodes: set[Node], target_leaves: set[int]) -> set[Node]:
    """Nodes whose rule must run for gradients to reach a target (``grad(..., inputs)``)."""
    needed: set[Node] = set()
    for node in reversed(order):  # producers first
        for e in node.edges:
            if e is None:
                continue
            if type(e) is Node:
                if e in needed or e in target_nodes:
                    needed.add(node)
                    break
            elif id(e) in target_leaves:
                needed.add(node)
                break
    return needed


def _root_grads(outputs: Sequence[Tensor], grad_outputs: Sequence[Any] | None) -> list[Tensor]:
    grads = []
    for i, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(f"backward: expected tensors as outputs, but output {i} is {type(out).__name__}")
        if not out._rg:
            raise RuntimeError(
                f"element {i} of tensors does not require grad and does not have a grad_fn: nothing "
                "it was computed from requires grad (set requires_grad=True on the inputs you want "
                "gradients for, and don't compute it under no_grad)"
            )
        g = None if grad_outputs is None else grad_outputs[i]
        if g is None:
            if out._data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs, but output {i} has shape "
                    f"{tuple(out.shape)}; pass gradient= (a tensor of that shape, e.g. ones_like(out))"
                )
            xp = array_module(out._data)
            g = Tensor._wrap(xp.ones(out._data.shape, dtype=out._data.dtype))
        else:
            if not isinstance(g, Tensor):
                g = Tensor._wrap(np.asarray(g, dtype=out._data.dtype))
            if g.shape != out.shape:
                raise RuntimeError(
                    f"mismatch in shape: gradient {i} has shape {tuple(g.shape)} but output {i} has shape "
                    f"{tuple(out.shape)}"
                )
            if g._data.dtype != out._data.dtype:
                g = g.to(out.dtype)
        grads.append(g)
    return grads


def run_backward(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Tensor],
    retain_graph: bool,
    create_graph: bool,
    targets: Sequence[Tensor] | None,
) -> dict[int, tuple[Tensor, Tensor]]:
    """Propagate ``grad_outputs`` back from ``outputs``; return ``id -> (tensor, total gradient)``
    for the leaves reached (or, with ``targets``, for those tensors only)."""
    node_grads: dict[Node, Tensor] = {}
    leaf_grads: dict[int, Tensor] = {}
    leaves: dict[int, Tensor] = {}

    target_nodes: dict[Node, Tensor] = {}
    target_leaves: set[int] = set()
    if targets is not None:
        for t in targets:
            if t._node is not None:
                target_nodes[t._node] = t
            else:
                target_leaves.add(id(t))

    for out, g in zip(outputs, grad_outputs):
        if out._node is None:
            _add_leaf(leaf_grads, leaves, out, g)
        else:
            prev = node_grads.get(out._node)
            node_grads[out._node] = g if prev is None else prev + g

    order = toposort(n for n in node_grads)
    needed = _needed(order, set(target_nodes), target_leaves) if targets is not None else None
    captured: dict[int, tuple[Tensor, Tensor]] = {}
    anomaly = grad_state.anomaly

    previous = grad_state.enabled
    grad_state.enabled = create_graph
    try:
        for node in order:
            g = node_grads.pop(node, None)
            if g is None:
                continue
            if node.hooks:
                for hook in tuple(node.hooks):
                    replaced = hook(g)
                    if replaced is not None:
                        g = replaced
            if node.retained is not None:
                _retain(node, g)
            if target_nodes and node in target_nodes:
                target = target_nodes[node]
                captured[id(target)] = (target, g)
            if needed is not None and node not in needed:
                continue
            op = node.op
            if op.is_view:
                node.input(0)  # a view's base must not have changed in place since
            input_grads = op.vjp(node, g)
            if anomaly:
                _check_anomaly(node, input_grads)
            inputs = node._inputs
            i = -1
            for edge in node.edges:
                i += 1
                if edge is None:
                    continue
                ig = input_grads[i]
                if ig is None:
                    continue
                x = inputs[i]._data
                data = ig._data
                if data.shape != x.shape or data.dtype != x.dtype:
                    ig = _conform(node, i, ig, inputs[i])
                if type(edge) is Node:
                    prev = node_grads.get(edge)
                    node_grads[edge] = ig if prev is None else prev + ig
                else:
                    _add_leaf(leaf_grads, leaves, edge, ig)
            if not retain_graph:
                node.release()
    finally:
        grad_state.enabled = previous

    if targets is not None:
        for key in target_leaves:
            if key in leaf_grads:
                captured[key] = (leaves[key], _apply_leaf_hooks(leaves[key], leaf_grads[key]))
        return captured
    return {key: (leaves[key], _apply_leaf_hooks(leaves[key], g)) for key, g in leaf_grads.items()}


def _retain(node: Node, g: Tensor) -> None:
    """Store a non-leaf's gradient on the tensor that asked for it with ``retain_grad``."""
    t = node.retained()
    if t is None:
        return
    if g._node is None:
        g = Tensor._wrap(g._data.copy())
    t._grad = g if t._grad is None else t._grad + g


def _add_leaf(leaf_grads: dict[int, Tensor], leaves: dict[int, Tensor], leaf: Tensor, g: Tensor) -> None:
    key = id(leaf)
    prev = leaf_grads.get(key)
    if prev is None:
        leaves[key] = leaf
        leaf_grads[key] = g
    else:
        leaf_grads[key] = prev + g


def _apply_leaf_hooks(leaf: Tensor, g: Tensor) -> Tensor:
    if leaf._hooks:
        for hook in tuple(leaf._hooks):
            replaced = hook(g)
            if replaced is not None:
                g = replaced
    return g


def _conform(node: Node, i: int, g: Tensor, x: Tensor) -> Tensor:
    """Check a rule's gradient against its input: same shape; cast to the input's dtype."""
    if g.shape != x.shape:
        raise RuntimeError(
            f"internal error: {node.name()} returned a gradient of shape {tuple(g.shape)} for input {i} "
            f"of shape {tuple(x.shape)}"
        )
    if g._data.dtype is not x._data.dtype and g._data.dtype != x._data.dtype:
        g = g.to(x.dtype)
    return g


def _check_anomaly(node: Node, input_grads: tuple) -> None:
    for i, g in enumerate(input_grads):
        if g is None or g._data.dtype.kind != "f":
            continue
        xp = array_module(g._data)
        if bool(xp.isnan(g._data).any()):
            where = f"\nThe forward call that created it:\n{node.trace}" if node.trace else ""
            raise RuntimeError(f"Function '{node.name()}' returned nan values in its {i}th output.{where}")


def backward(
    tensors: Sequence[Tensor] | Tensor,
    grad_tensors: Sequence[Any] | Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Sequence[Tensor] | Tensor | None = None,
) -> None:
    """Accumulate the gradients of ``tensors`` into the ``.grad`` of every leaf they depend on
    (or only of ``inputs``, if given). See ``Tensor.backward``."""
    outputs = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is not None and isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    if retain_graph is None:
        retain_graph = create_graph
    roots = _root_grads(outputs, grad_tensors)
    targets = None
    if inputs is not None:
        targets = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    totals = run_backward(outputs, roots, retain_graph, create_graph, targets)
    # Each leaf's .grad must own its memory: a rule may hand the same array to two inputs
    # (``a + b`` gives both the incoming gradient), and a user's ``gradient=`` may reach a
    # leaf unchanged. Copy only when a buffer would otherwise be shared or is read-only.
    claimed = {id(_buffer(g._data)) for g in roots}
    for leaf, g in totals.values():
        _accumulate_into(leaf, g, create_graph, claimed)


def _buffer(array: Any) -> Any:
    return array if array.base is None else array.base


def _accumulate_into(leaf: Tensor, g: Tensor, create_graph: bool, claimed: set[int]) -> None:
    if create_graph:
        leaf._grad = g if leaf._grad is None else leaf._grad + g
        return
    if g._node is not None:
        g = g.detach()
    if leaf._grad is None:
        data = g._data
        base = data.base
        if base is None:  # an array of its own (base-less arrays are writeable unless made otherwise)
            key = id(data)
            if key in claimed or not data.flags.writeable:
                data = data.copy()
                key = id(data)
        elif not data.flags.writeable or id(base) in claimed:  # a read-only or already-claimed view
            data = data.copy()
            key = id(data)
        else:
            key = id(base)
        claimed.add(key)
        leaf._grad = g if data is g._data else Tensor._wrap(data)
    else:
        acc = leaf._grad._data
        if acc.flags.writeable and acc.shape == g._data.shape:
            xp = array_module(acc)
            xp.add(acc, g._data, out=acc, casting="unsafe")
            vc = leaf._grad._vc
            if vc is not None:
                vc[0] += 1
        else:
            leaf._grad = Tensor._wrap(acc + g._data)
