"""What every pass shares: rebuilding a node list with some values replaced, and facts about values.

Nodes are immutable, so a pass never edits one. It walks the schedule once, front to back,
and for each node decides: keep it, drop it and let its outputs stand for other values, or
put new nodes in its place. The ``Rewriter`` does the bookkeeping that makes this a
one-liner per decision. It keeps a map ``old value -> new value``; a node whose inputs were
replaced is rebuilt with ``node.replace(inputs=...)`` (a new node, same name), and its own
outputs then map to the rebuilt node's. At the end, the fetched outputs and the effect nodes
are mapped the same way, so the new ``Subgraph`` corresponds one to one with the old.

One rule holds in every pass and lives here: a node that produces a *protected* value (one
fed at run time) is never rebuilt, replaced or removed -- the program reads it from the
feeds, by identity.

The rest are small facts the passes ask about values: who reads a value, and when two
literals are interchangeable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..ir import Node, Output
from ..program import Subgraph

__all__ = ["Rewriter", "is_protected", "literal_key", "attrs_key", "consumers"]


def is_protected(node: Node, protected: Any) -> bool:
    """Whether ``node`` produces a value that is fed at run time."""
    return bool(protected) and any(out in protected for out in node.outputs)


class Rewriter:
    """Build a new schedule from an old one, node by node (see the module docstring)."""

    def __init__(self, sub: Subgraph, protected: Any = ()) -> None:
        self.sub = sub
        self.protected = protected
        self.nodes: list[Node] = []
        self._values: dict[Output, Output] = {}
        self._nodes: dict[int, Node] = {}

    def value(self, v: Any) -> Any:
        """The new value standing for old value ``v`` (literals stand for themselves)."""
        if type(v) is Output:
            return self._values.get(v, v)
        return v

    def rebuilt(self, node: Node) -> Node:
        """``node`` with its inputs and control dependencies mapped (itself if none changed).

        The result is not yet in the schedule: pass it to ``keep`` or drop it with ``replace``.
        """
        if is_protected(node, self.protected):
            return node
        inputs = tuple(self.value(v) for v in node.inputs)
        control = tuple(self._nodes.get(c.id, c) for c in node.control)
        changed = any(a is not b for a, b in zip(inputs, node.inputs)) or any(
            a is not b for a, b in zip(control, node.control)
        )
        return node.replace(inputs=inputs, control=control) if changed else node

    def keep(self, old: Node, new: Node | None = None) -> Node:
        """Append ``new`` (default: ``old`` rebuilt) to the schedule in ``old``'s place."""
        if new is None:
            new = self.rebuilt(old)
        self.nodes.append(new)
        self._map(old, new)
        return new

    def insert(self, node: Node) -> None:
        """Append a brand-new node (a folded constant, a fused op) to the schedule."""
        self.nodes.append(node)

    def replace(self, old: Node, values: Iterable[Output], by: Node | None = None) -> None:
        """Drop ``old``: its outputs now stand for ``values`` (one per output).

        ``by`` is the node that takes ``old``'s place as a control dependency (default: the
        producer of the first value).
        """
        values = list(values)
        if len(values) != len(old.specs):
            raise ValueError(f"internal error: {old.name} has {len(old.specs)} outputs, got {len(values)} values")
        for out, v in zip(old.outputs, values):
            self._values[out] = v
        stand_in = by if by is not None else (values[0].node if values else None)
        if stand_in is not None:
            self._nodes[old.id] = stand_in

    def _map(self, old: Node, new: Node) -> None:
        if new is old:
            return
        self._nodes[old.id] = new
        for a, b in zip(old.outputs, new.outputs):
            self._values[a] = b

    def result(self) -> Subgraph:
        """The new subgraph: the schedule built so far, with outputs and effects mapped."""
        outputs = [self.value(o) for o in self.sub.outputs]
        effects = [self._nodes.get(n.id, n) for n in self.sub.effects]
        return Subgraph(self.nodes, outputs, effects)


# ---- facts about values ----------------------------------------------------------------------------


def consumers(nodes: list[Node]) -> dict[Output, list[Node]]:
    """For each value, the nodes that read it (each node once, in schedule order)."""
    users: dict[Output, list[Node]] = {}
    for node in nodes:
        seen: set[Output] = set()
        for v in node.inputs:
            if type(v) is Output and v not in seen:
                seen.add(v)
                users.setdefault(v, []).append(node)
    return users


# ---- comparing literals and attributes by value ------------------------------------------------------


def literal_key(v: Any) -> Any:
    """A hashable key that is equal for two literals exactly when they are interchangeable.

    Python's own ``==`` is too loose here: ``1 == 1.0 == True`` (but an int and a float
    operand promote differently), ``0.0 == -0.0`` (but they are different numbers to a
    division), and NumPy arrays do not compare to a single bool at all. So every value is
    keyed by its type as well as its value; floats by their exact bits (``float.hex``);
    arrays by dtype, shape and bytes. Unhashable objects fall back to their identity.
    """
    t = type(v)
    if v is None or t is str or t is bool or t is int:
        return (t.__name__, v)
    if t is float:
        return ("float", v.hex() if not math.isnan(v) else "nan")
    if t is tuple or t is list:
        return (t.__name__, tuple(literal_key(x) for x in v))
    if t is dict:
        return ("dict", tuple(sorted((str(k), literal_key(x)) for k, x in v.items())))
    if t is slice:
        return ("slice", literal_key(v.start), literal_key(v.stop), literal_key(v.step))
    if isinstance(v, np.ndarray):
        return ("ndarray", v.dtype.str, v.shape, np.ascontiguousarray(v).tobytes())
    if isinstance(v, np.generic):
        return ("scalar", v.dtype.str, v.tobytes())
    try:
        hash(v)
    except TypeError:
        return ("id", id(v))
    return (t.__module__, t.__qualname__, v)


def attrs_key(attrs: dict) -> Any:
    return tuple((k, literal_key(v)) for k, v in sorted(attrs.items()))
