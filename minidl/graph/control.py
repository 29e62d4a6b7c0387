"""``minidl.cond``: data-dependent branching that works in eager code, graphs and traces.

Python's ``if`` runs once while a function is traced, so it cannot branch on a traced value.
``cond(pred, true_fn, false_fn)`` can: in eager code it simply calls the branch ``pred``
selects; on a symbolic ``pred`` it builds *both* branches into the graph and selects
elementwise with ``where(pred, true_value, false_value)``. Gradients flow to the branch that
was taken (``where`` sends zeros to the other). Both branches are computed, so they should be
cheap and free of side effects (assignments, optimizer steps and random draws, which would
advance the generator in both branches, are refused), and each
branch's backward runs too: a branch whose derivative is infinite where it is not taken (a
``sqrt`` at 0, say) can still turn the zeros it receives into NaN, as ``where`` does in torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ops.arith import where
from ..tensor import Tensor
from .symbolic import SymbolicTensor, TracingError

__all__ = ["cond"]


def cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    """``true_fn()`` if ``pred`` else ``false_fn()``, also when ``pred`` is a traced value.

    ``pred`` is a bool, or a one-element bool tensor. Both functions take no arguments (close
    over what they need) and return a tensor, or the same structure of tensors.
    """
    if type(pred) is not SymbolicTensor:
        if isinstance(pred, Tensor):
            if pred.numel() != 1:
                raise ValueError(f"cond: pred must have one element, got shape {tuple(pred.shape)}")
            pred = bool(pred.item())
        return true_fn() if pred else false_fn()
    if pred.dtype.name != "bool":
        raise TypeError(f"cond: pred must be a bool tensor, got {pred.dtype.name}; compare first (x > 0)")
    if pred._data.size != 1:
        raise ValueError(f"cond: pred must have one element, got shape {pred.shape}")
    graph = pred._graph
    before = len(graph.update_ops), _effects(graph)
    a, b = true_fn(), false_fn()
    after = len(graph.update_ops), _effects(graph)
    if after != before:
        raise TracingError(
            "cond: a branch has side effects (an assignment, an optimizer step or a random draw such as "
            "dropout); in a graph both branches are built and run, so side effects in them would always "
            "happen. Move them out of the branches"
        )
    return _select(pred.reshape(()), a, b)


def _effects(graph: Any) -> int:
    return sum(1 for n in graph.nodes if n.kind in ("assign", "call") or (n.kind == "op" and n.stateful))


def _select(pred: SymbolicTensor, a: Any, b: Any) -> Any:
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            raise TypeError("cond: both branches must return the same structure")
        return type(a)(_select(pred, x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            raise TypeError("cond: both branches must return dicts with the same keys")
        return {k: _select(pred, a[k], b[k]) for k in a}
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        if a != b:
            raise TypeError("cond: branches returned different non-tensor values; return tensors")
        return a
    return where(pred, a, b)
