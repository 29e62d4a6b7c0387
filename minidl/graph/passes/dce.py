"""Dead-code elimination: drop every node whose outputs nobody needs and that has no effect.

A node is *live* if a fetched value or a wanted side effect depends on it, through inputs or
control dependencies. Everything else goes. One backward sweep from the roots marks the live
nodes; the schedule keeps them in order::

    before                               after (fetching e)
    a = placeholder                      a = placeholder
    b = exp(a)                           b = exp(a)
    c = mul(b, 2.0)   # nobody reads c   e = add(b, 1.0)
    d = neg(c)        # nobody reads d
    e = add(b, 1.0)

``Session`` already prunes the graph to what the fetches need, so a fresh subgraph has no
dead code. Dead code appears when the other passes rewire uses: after CSE merges ``y2`` into
``y1``, or folding replaces ``c = a * b`` by a constant, or simplification replaces
``x * 1`` by ``x``, the old producers (and anything only they read) have no readers left.

Never removed, even unread: nodes with side effects (``assign``, ``call``); stateful ops
(a random draw advances the generator, so removing one would change every later draw); and
nodes producing values fed at run time. A fed value's own inputs are *not* followed: the
program takes the value from the feeds and never computes it.
"""

from __future__ import annotations

from typing import Any

from ..ir import Output
from ..program import Subgraph
from .rewrite import is_protected

__all__ = ["dce"]


def dce(sub: Subgraph, protected: Any = ()) -> tuple[Subgraph, str]:
    """Remove dead nodes; returns the new subgraph and a note for the report."""
    stack = [o.node for o in sub.outputs] + list(sub.effects)
    stack += [n for n in sub.nodes if n.has_effect or (n.kind == "op" and n.stateful)]
    live: set[int] = set()
    while stack:
        node = stack.pop()
        if node.id in live:
            continue
        live.add(node.id)
        stack.extend(node.control)
        if is_protected(node, protected):
            continue
        stack.extend(v.node for v in node.inputs if type(v) is Output)
    kept = [n for n in sub.nodes if n.id in live]
    removed = len(sub.nodes) - len(kept)
    note = f"removed {removed} dead node{'s' if removed != 1 else ''}" if removed else ""
    return Subgraph(kept, list(sub.outputs), list(sub.effects)), note
