"""Common-subexpression elimination: compute each distinct pure expression once.

Two nodes compute the same value if they apply the same op, with the same attributes, to
the same inputs. The pass walks the schedule keeping a table ``key -> first node``; a later
node with a key already in the table is dropped, and its readers read the first node's
outputs instead. Because inputs are rewritten before keys are taken, merging cascades:
once two ``mul``s merge, two ``add``s reading them become equal too::

    before                                after
    m1 = mul(g, w)                        m1 = mul(g, w)
    m2 = mul(g, w)                        s  = add(m1, m1)
    s  = add(m1, m2)

This pattern is common in generated gradient graphs: the rule of ``a * b`` builds ``g * b``
for ``a`` and ``g * a`` for ``b``, so for a square written ``d * d`` (a weight penalty
``(w * w).sum()``, the variance inside a layer norm) it builds ``g * d`` twice.

What counts as "the same":

* the op is the same class; literal inputs and attributes are equal *by value and type*
  (``rewrite.literal_key``: ``1`` and ``1.0`` differ, ``0.0`` and ``-0.0`` differ, arrays
  compare by dtype, shape and bytes);
* array inputs are the very same graph values (after earlier merges);
* constants merge when their payloads have the same dtype, shape and bytes (a constant's
  payload is treated as immutable, as ``tf.constant``'s is).

What never merges: stateful nodes (two random draws are two different numbers; variable
reads, placeholders, assignments and calls are effects or inputs, not expressions), nodes
with control dependencies, nodes producing fed values. A pure node that reads a variable
(or a view of one) is keyed also by the number of side effects before it: a ``w * 2`` after
an assignment to ``w`` is a different number from the ``w * 2`` before it.

A later node whose output is fetched merges only into one whose output is not: two fetches
must not come back as one array that the caller could write through.
"""

from __future__ import annotations

from typing import Any

from ..ir import Node, Output
from ..memory import FRESH_OUTPUT
from ..program import Subgraph
from .rewrite import Rewriter, attrs_key, is_protected, literal_key

__all__ = ["cse"]


def cse(sub: Subgraph, protected: Any = ()) -> tuple[Subgraph, str]:
    """Merge duplicate pure nodes; returns the new subgraph and a note for the report."""
    rw = Rewriter(sub, protected)
    fetched = set(sub.outputs)
    fetched_nodes: set[int] = set()  # kept nodes whose outputs are fetched
    table: dict[Any, Node] = {}
    epoch = 0  # side effects seen so far
    merged = 0
    for old in sub.nodes:
        node = rw.rebuilt(old)
        key = _key(node, protected, epoch)
        if node.has_effect:
            epoch += 1
        is_fetched = any(o in fetched for o in old.outputs)
        if key is not None:
            first = table.get(key)
            if first is None:
                table[key] = node
            elif not (is_fetched and first.id in fetched_nodes):
                rw.replace(old, first.outputs)
                if is_fetched:
                    fetched_nodes.add(first.id)
                merged += 1
                continue
        rw.keep(old, node)
        if is_fetched:
            fetched_nodes.add(node.id)
    note = f"merged {merged} duplicate node{'s' if merged != 1 else ''}" if merged else ""
    return rw.result(), note


def _key(node: Node, protected: Any, epoch: int) -> Any:
    """The expression a node computes, as a hashable key; ``None`` if it must never merge."""
    if node.control or is_protected(node, protected):
        return None
    if node.kind == "constant":
        return ("constant", literal_key(node.payload))
    if node.kind != "op" or node.stateful:
        return None
    inputs = tuple(("value", id(v.node), v.index) if type(v) is Output else literal_key(v) for v in node.inputs)
    reads_state = any(type(v) is Output and _reads_state(v) for v in node.inputs)
    return (node.op, attrs_key(node.attrs), inputs, epoch if reads_state else None)


def _reads_state(value: Output) -> bool:
    """Whether ``value`` may be (a view of) something side effects can change: a variable's
    storage, an assignment's result, what a ``call`` returned. Any op that does not always
    return a fresh array (a view, ``detach``, ``sum_to``...) may pass its input 0 through."""
    node = value.node
    while node.kind == "op" and node.op not in FRESH_OUTPUT and node.inputs and type(node.inputs[0]) is Output:
        node = node.inputs[0].node
    return node.kind in ("variable", "assign", "call")
