"""Optimizers inside a graph: ``optimizer.step()`` while tracing, and TF-style ``minimize``.

An optimizer step is not re-derived as graph ops. The graph gets one ``call`` node whose
payload, when the program runs, hands the computed gradients to the parameters and calls the
optimizer's own eager ``step`` -- the same update functions, the same state (momentum,
Adam's moments), the same learning rate as the param groups hold *at run time*, so a
learning-rate scheduler keeps working. The node is a side effect: it runs after every
gradient it consumes, and nothing is merged or moved across it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..tensor import Tensor
from .ir import Node
from .symbolic import SymbolicTensor, user_frame

__all__ = ["OptimizerStep", "graph_step", "minimize", "tracing_with_symbolic_grads"]


class OptimizerStep:
    """The payload of an optimizer-step node: set the gradients, run the eager step."""

    label = "optimizer_step"
    is_effect = True

    def __init__(self, optimizer: Any, step: Callable, params: list[Tensor]) -> None:
        self.optimizer = optimizer
        self.step = step
        self.params = params

    def __call__(self, *grads: Any) -> None:
        from .compile import own_gradients

        everything = [p for group in self.optimizer.param_groups for p in group["params"]]
        saved = [(p, p._grad) for p in everything]
        try:
            for p in everything:
                p._grad = None
            for p, g in zip(self.params, own_gradients(list(grads))):
                p._grad = Tensor._wrap(g)
            self.step(self.optimizer)
        finally:
            for p, g in saved:
                p._grad = g

    def __repr__(self) -> str:
        return f"{type(self.optimizer).__name__}.step({len(self.params)} parameters)"


def tracing_with_symbolic_grads(optimizer: Any) -> bool:
    """Whether ``step`` is being called inside a trace on symbolic gradients."""
    from .trace import current_tracer

    if current_tracer() is None:
        return False
    return any(type(p._grad) is SymbolicTensor for group in optimizer.param_groups for p in group["params"])


def graph_step(optimizer: Any, step: Callable) -> None:
    """``optimizer.step()`` during a trace: one node that runs the eager step on the gradients."""
    pairs = [
        (p, p._grad) for group in optimizer.param_groups for p in group["params"] if type(p._grad) is SymbolicTensor
    ]
    graph = pairs[0][1]._graph
    _add_step(graph, optimizer, step, pairs, ())


def _add_step(graph: Any, optimizer: Any, step: Callable, pairs: list, control: tuple) -> Node:
    node = Node(
        graph,
        "call",
        graph.unique_name(f"{type(optimizer).__name__.lower()}_step"),
        (),
        inputs=tuple(g._ref for _, g in pairs),
        payload=OptimizerStep(optimizer, step, [p for p, _ in pairs]),
        source=user_frame(),
        control=control,
    )
    graph.add(node)
    return node


def minimize(optimizer: Any, loss: SymbolicTensor, var_list: Any = None) -> Node:
    """A train op (TensorFlow 1's ``optimizer.minimize``): gradients of ``loss`` for the
    optimizer's parameters (or ``var_list``), then one step of this optimizer."""
    from .gradients import gradients
    from .variables import variable_state

    if type(loss) is not SymbolicTensor:
        raise TypeError(
            f"{type(optimizer).__name__}.minimize: loss must be a symbolic tensor of a graph, got "
            f"{type(loss).__name__}; in eager mode call loss.backward() and optimizer.step()"
        )
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if var_list is not None:
        chosen = []
        known = {id(p) for p in params}
        for v in var_list:
            t = variable_state(v).storage if type(v) is SymbolicTensor else v
            if id(t) not in known:
                raise ValueError(
                    f"{type(optimizer).__name__}.minimize: a tensor in var_list (shape {tuple(t.shape)}) is not one "
                    "of the optimizer's parameters; pass it to the optimizer's constructor"
                )
            chosen.append(t)
        params = chosen
    graph = loss._graph
    grads = gradients(loss, params, create_graph=False)
    pairs = [(p, g) for p, g in zip(params, grads) if g is not None]
    if not pairs:
        raise ValueError(
            f"{type(optimizer).__name__}.minimize: no parameter of the optimizer influences the loss "
            f"{loss._describe()}; check that the model's variables are the optimizer's parameters"
        )
    return _add_step(
        graph,
        optimizer,
        getattr(type(optimizer).step, "__wrapped__", type(optimizer).step),
        pairs,
        tuple(graph.update_ops),
    )
