"""Constant folding: evaluate, once at compile time, every pure op whose inputs are all known.

If every input of an op node is a constant (or a literal), its value is the same on every
run, so the compiler computes it now and puts a ``constant`` node in its place. Folding
cascades along the schedule, since a folded node's readers may now have only constant
inputs themselves::

    before                                    after
    one  = constant 1.0                       k = constant 0.0078125   # 1 / 128
    k    = div(one, 128.0)                    b = constant (8, 16) of 0.0078125
    b    = broadcast_to(k; shape=(8, 16))     y = mul(b, x)
    y    = mul(b, x)

(``one`` and the other replaced nodes are now unread; dead-code elimination drops them.)
This is the shape of a generated gradient graph's first steps: the seed ``ones_like(loss)``
scaled by ``1 / N`` for a mean, broadcast back over the batch.

The value is computed by ``op.forward`` -- the very function the program would call -- on
the very same input values, so the result is bitwise what the program would have computed.
The executor's one conversion is reproduced: a NumPy scalar result becomes a 0-d array. An
op that saves arrays for its backward rule has several outputs; each becomes its own
constant.

Also folded: ops whose value depends only on the *shape* of their input (``numel_of``,
``full_like``), once that shape is fully known -- as it is in a function compiled for one
input signature.

Not folded:

* stateful ops (a random draw must be drawn at run time, each time);
* a node whose output is fetched (the caller gets a fresh array each run, as without
  folding, not the compiler's copy);
* results larger than ``MAX_FOLD_BYTES`` (a broadcast of a scalar to a big shape is cheap
  to compute and costly to keep);
* results that are not arrays of the predicted dtype (an op returning ``None`` or a Python
  number in a saved slot), and ops whose ``forward`` raises (the error then surfaces at run
  time, where it belongs, with the op's own message).

Folded arrays are made read-only: the program shares them between runs, so nothing may
write into them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ops.op import Spec
from ..ir import Node, Output
from ..program import Subgraph
from .rewrite import Rewriter, is_protected

__all__ = ["fold", "MAX_FOLD_BYTES"]

#: Results bigger than this stay computed at run time (1 MiB).
MAX_FOLD_BYTES = 1 << 20


def fold(sub: Subgraph, protected: Any = ()) -> tuple[Subgraph, str]:
    """Replace pure ops on constants by their values; returns the new subgraph and a report note."""
    rw = Rewriter(sub, protected)
    fetched = set(sub.outputs)
    folded = 0
    for old in sub.nodes:
        node = rw.rebuilt(old)
        values = None
        if _foldable(old, node, protected, fetched):
            values = _evaluate(node)
        if values is None:
            rw.keep(old, node)
            continue
        constants = []
        for i, (spec, value) in enumerate(zip(node.specs, values)):
            const = Node(
                node.graph,
                "constant",
                node.name if i == 0 else f"{node.name}_{node.saved_keys[i - 1]}",
                (Spec(tuple(value.shape), spec.dtype),),
                payload=value,
                source=node.source,
            )
            rw.insert(const)
            constants.append(const.output(0))
        rw.replace(old, constants)
        folded += 1
    note = f"folded {folded} node{'s' if folded != 1 else ''}" if folded else ""
    return rw.result(), note


def _foldable(old: Node, node: Node, protected: Any, fetched: set) -> bool:
    if node.kind != "op" or node.stateful or is_protected(old, protected):
        return False
    if any(o in fetched for o in old.outputs):
        return False
    if _shape_only(node):
        return None not in node.inputs[0].spec.shape
    # a constant that is fed at run time is not constant
    return all(v.node.kind == "constant" and v not in protected for v in node.inputs if type(v) is Output)


def _shape_only(node: Node) -> bool:
    from ...ops.creation import FullLike, Numel

    return node.op in (Numel, FullLike) and type(node.inputs[0]) is Output


def _evaluate(node: Node) -> list[np.ndarray] | None:
    """The node's output values, computed exactly as the program would; ``None`` to keep it."""
    op = node.op
    args = [v.node.payload if type(v) is Output else v for v in node.inputs]
    if _shape_only(node):
        if node.inputs[0].node.kind != "constant":
            spec = node.inputs[0].spec
            # a stand-in of the right shape and dtype that costs one element of memory
            args[0] = np.broadcast_to(np.zeros((), dtype=spec.dtype.np), spec.shape)
    try:
        result = op.forward(*args, **node.attrs)
    except Exception:
        return None
    if op.saves:
        out, saved = result
        try:
            values = [out] + [saved[k] for k in node.saved_keys]
        except (KeyError, TypeError):
            return None
    else:
        values = [result]
    if len(node.specs[0].shape) == 0 and isinstance(values[0], np.generic):
        values[0] = np.asarray(values[0])  # what the program's ``_as_array`` does
    for value, spec in zip(values, node.specs):
        if type(value) is not np.ndarray or value.dtype != spec.dtype.np or value.nbytes > MAX_FOLD_BYTES:
            return None
        if len(value.shape) != len(spec.shape) or any(
            a is not None and a != b for a, b in zip(spec.shape, value.shape)
        ):
            return None
    frozen = []
    for value in values:
        if value.flags.writeable:
            value = value.view()  # freeze a view: the op may have returned one of its inputs
            value.flags.writeable = False
        frozen.append(value)
    return frozen
