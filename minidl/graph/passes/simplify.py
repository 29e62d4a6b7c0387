"""Algebraic simplification: rewrite ops that provably change nothing, bit for bit.

Level 1 promises results *bitwise* equal to eager code, so only identities that hold for
every floating-point value -- signed zeros, infinities, NaN -- are used. Each rule below
says why it is exact (IEEE 754 arithmetic, round to nearest)::

    before                               after
    p = pow(g, 1.0)                      y = mul(m, g)
    y = mul(m, p)

Rules, with ``x`` an array value, ``1`` / ``0`` a literal or a constant all of whose
elements are that number, and the result's dtype and shape required to equal ``x``'s (``x * 1``
of a float64 one promotes an int ``x``; a ``(3, 4)`` one broadcasts a ``(4,)`` ``x``):

==============================  ==================================================================
rule                            why it is exact
==============================  ==================================================================
``x * 1``, ``1 * x`` -> x       multiplying by one is exact for every x, NaN and inf included
``x / 1`` -> x                  likewise
``x ** 1`` -> x                 IEEE ``pow(x, 1)`` is ``x`` for every x
``x - 0.0`` -> x                ``x - (+0)`` is ``x + (-0)``, and ``-0`` is the additive identity:
                                ``-0 + -0 = -0``, ``+0 + -0 = +0``
``x + (-0.0)`` -> x             the same identity, written directly
``x + 0.0``                     **not** rewritten: ``-0.0 + 0.0 = +0.0``, so it would turn ``-0``
                                into ``+0`` (for integers ``x + 0`` and ``x - 0`` are rewritten)
``-(-x)`` -> x                  negation flips the sign bit; twice restores it
``reshape(x)`` to x's shape     the same elements in the same order (at most one size unknown:
                                the element count then fixes it)
``broadcast_to``, ``sum_to``    to x's own, fully known shape: nothing is stretched or summed
``permute`` by the identity     no axis moves
``permute(permute(x, p), q)``   one permute by ``p[q]``: axes move as they would in two steps
``reshape(reshape(x))``         one reshape to the final (fully known) shape
``cast`` to x's own dtype       a copy of the same bits
``cast(cast(x, B), A)`` -> x    when x is ``A`` and ``B`` holds every ``A`` value exactly
                                (float32 -> float64 -> float32; int32 -> int64 -> int32)
``detach(x)`` -> x              in a forward program ``detach`` is the identity
==============================  ==================================================================

Not rewritten, though tempting: ``x * 0`` (``inf * 0`` is NaN, ``-2 * 0`` is ``-0``),
``x * -1`` -> ``-x`` (the sign of a NaN result differs on x86), ``x * 2`` -> ``x + x``
(exact, but no cheaper in NumPy), ``x / c`` -> ``x * (1 / c)`` (rounds differently).

Removing a *copy* (``x * 1``, ``-(-x)``, a cast) must not change the memory layout later ops
see either: NumPy's reductions add in an order that depends on it (a sum over a sliced,
gapped view pairs its elements differently from a sum over the dense copy). So those rules
apply only when ``x`` is itself a freshly allocated, dense array (``DENSE``). The view
rules keep the layout by construction: the view they remove had ``x``'s own strides.

Sharing memory is the other thing to watch. Replacing ``x * 1`` by ``x`` makes two names
share one array -- harmless, since the program writes into no array it did not allocate,
and a dense ``x`` is one the program allocated (never a variable's storage, a fed array or
a constant, which a caller or an optimizer step could write through). The view rules share
nothing new: the view already shared ``x``'s memory. One case remains: two *fetched*
values must not come back as one array, so a fetched value is never replaced by another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...ops import activation, arith, cast, reduce, shape, unary
from ..ir import Node, Output
from ..memory import FRESH_OUTPUT
from ..program import Subgraph
from .rewrite import Rewriter, is_protected

__all__ = ["simplify"]

#: What a rule returns: a value to stand for the node's output, a new node to take its
#: place, or ``None`` to keep it.
Rewrite = Output | Node | None
Rule = Callable[[Node, Any], Rewrite]


def simplify(sub: Subgraph, protected: Any = ()) -> tuple[Subgraph, str]:
    """Apply the exact rewrites of the module docstring; returns the new subgraph and a note."""
    rw = Rewriter(sub, protected)
    fetched = set(sub.outputs)
    fetched_values: set[Output] = set()  # new values already standing for a fetched output
    applied: dict[str, int] = {}
    for old in sub.nodes:
        node = rw.rebuilt(old)
        rule = _RULES.get(node.op) if node.kind == "op" and not is_protected(old, protected) else None
        change = rule(node, protected) if rule is not None else None
        is_fetched = old.output(0) in fetched
        if type(change) is Output:
            if not (is_fetched and change in fetched_values):  # two fetches must not share one array
                rw.replace(old, [change])
                if is_fetched:
                    fetched_values.add(change)
                applied[node.op.label] = applied.get(node.op.label, 0) + 1
                continue
        elif isinstance(change, Node):
            rw.keep(old, change)
            applied[node.op.label] = applied.get(node.op.label, 0) + 1
            continue
        kept = rw.keep(old, node)
        fetched_values.update(new for o, new in zip(old.outputs, kept.outputs) if o in fetched)
    note = ", ".join(f"{k} x{n}" for k, n in sorted(applied.items()))
    return rw.result(), note


# ---- building blocks ------------------------------------------------------------------------------

#: Ops returning a newly allocated, dense array: the planner's list, plus the activations
#: (their forwards are ufunc expressions) and ``erf`` (a kernel filling a new array).
DENSE: frozenset = FRESH_OUTPUT | {
    activation.Gelu,
    activation.LeakyRelu,
    activation.Elu,
    activation.Silu,
    activation.Softplus,
    unary.Erf,
}


def _dense(x: Any, protected: Any) -> bool:
    """Whether ``x`` is output 0 of an op that returns a fresh, dense array (see ``DENSE``)."""
    return type(x) is Output and x.index == 0 and x.node.kind == "op" and x.node.op in DENSE and x not in protected


def _constant_of(v: Any, protected: Any) -> Any:
    """The known value of an input: a literal number, a constant's payload (unless the constant
    is fed at run time), or ``None``."""
    if type(v) is Output:
        return v.node.payload if v.node.kind == "constant" and v not in protected else None
    if isinstance(v, (bool, int, float, np.generic)):
        return v
    return None


def _all(v: Any, protected: Any, test: Callable[[np.ndarray], np.ndarray]) -> bool:
    c = _constant_of(v, protected)
    if c is None:
        return False
    arr = np.asarray(c)
    return arr.size > 0 and bool(np.all(test(arr)))


def _is_one(v: Any, protected: Any) -> bool:
    return _all(v, protected, lambda a: a == 1)


def _is_zero(v: Any, protected: Any, sign: int | None) -> bool:
    """All zeros; for floats also of the given sign (``+1``: ``+0.0``, ``-1``: ``-0.0``)."""

    def test(a: np.ndarray) -> np.ndarray:
        if a.dtype.kind != "f" or sign is None:
            return a == 0
        return (a == 0) & (np.signbit(a) == (sign < 0))

    return _all(v, protected, test)


def _same_result(node: Node, x: Any, other: Any) -> bool:
    """Whether ``op(x, other)`` has exactly ``x``'s dtype and shape, whatever the sizes are."""
    if type(x) is not Output:
        return False
    xs, out = x.spec, node.specs[0]
    if xs.dtype is not out.dtype or tuple(xs.shape) != tuple(out.shape):
        return False
    cshape = np.shape(other.node.payload) if type(other) is Output else ()
    if len(cshape) > len(xs.shape):
        return False
    # each of the other operand's dimensions must be 1, or exactly x's (known) size
    return all(d == 1 or d == s for d, s in zip(cshape[::-1], xs.shape[::-1]))


def _is_float(x: Output) -> bool:
    return x.spec.dtype.category == 2


def _static(shape_: tuple) -> bool:
    return None not in shape_


def _op_input(v: Any, op: type) -> Node | None:
    """The node producing ``v`` if it is an ``op`` node of class ``op``."""
    if type(v) is Output and v.index == 0 and v.node.kind == "op" and v.node.op is op:
        return v.node
    return None


# ---- the rules ----------------------------------------------------------------------------------------


def _mul(node: Node, protected: Any) -> Rewrite:
    a, b = node.inputs
    if _is_one(b, protected) and _dense(a, protected) and _same_result(node, a, b):
        return a
    if _is_one(a, protected) and _dense(b, protected) and _same_result(node, b, a):
        return b
    return None


def _div(node: Node, protected: Any) -> Rewrite:
    a, b = node.inputs
    if _is_one(b, protected) and _dense(a, protected) and _same_result(node, a, b):
        return a
    return None


def _pow(node: Node, protected: Any) -> Rewrite:
    a, b = node.inputs
    if _is_one(b, protected) and _dense(a, protected) and _same_result(node, a, b):
        return a
    return None


def _add(node: Node, protected: Any) -> Rewrite:
    a, b = node.inputs
    for x, z in ((a, b), (b, a)):
        if _dense(x, protected) and _is_zero(z, protected, -1 if _is_float(x) else None) and _same_result(node, x, z):
            return x
    return None


def _sub(node: Node, protected: Any) -> Rewrite:
    a, b = node.inputs
    if _dense(a, protected) and _is_zero(b, protected, +1 if _is_float(a) else None) and _same_result(node, a, b):
        return a
    return None


def _neg(node: Node, protected: Any) -> Rewrite:
    inner = _op_input(node.inputs[0], unary.Neg)
    if inner is not None and _dense(inner.inputs[0], protected) and inner.inputs[0].spec.dtype is node.specs[0].dtype:
        return inner.inputs[0]
    return None


def _reshape(node: Node, protected: Any) -> Rewrite:
    x = node.inputs[0]
    if type(x) is not Output:
        return None
    out = tuple(node.specs[0].shape)
    if tuple(x.spec.shape) == out and out.count(None) <= 1:
        return x
    inner = _op_input(x, shape.Reshape)
    if inner is not None and _static(out) and len(node.inputs) == 1 and _dense(inner.inputs[0], protected):
        return node.replace(inputs=(inner.inputs[0],), attrs={**node.attrs, "shape": out})
    return None


def _same_shape(node: Node, protected: Any) -> Rewrite:
    """``broadcast_to`` / ``sum_to`` to the shape the input already has."""
    x = node.inputs[0]
    out = tuple(node.specs[0].shape)
    if type(x) is Output and _static(out) and tuple(x.spec.shape) == out:
        return x
    return None


def _permute(node: Node, protected: Any) -> Rewrite:
    x = node.inputs[0]
    dims = tuple(node.attrs["dims"])
    inner = _op_input(x, shape.Permute)
    if inner is not None and type(inner.inputs[0]) is Output:
        first = tuple(inner.attrs["dims"])
        composed = tuple(first[d] for d in dims)
        if composed == tuple(range(len(composed))):
            return inner.inputs[0]
        return node.replace(inputs=(inner.inputs[0],), attrs={**node.attrs, "dims": composed})
    if type(x) is Output and dims == tuple(range(len(dims))):
        return x
    return None


def _exact_widening(a: np.dtype, b: np.dtype) -> bool:
    """Whether every value of dtype ``a`` is exactly a value of ``b``."""
    if a == b:
        return True
    if a.kind == "f":
        return b.kind == "f" and b.itemsize >= a.itemsize
    if a.kind == "b":
        return b.kind in "buif"
    if a.kind in "iu" and b.kind in "iu":
        return np.can_cast(a, b, "safe")
    return False


def _cast(node: Node, protected: Any) -> Rewrite:
    x = node.inputs[0]
    if type(x) is not Output:
        return None
    target = node.attrs["dtype"]
    if x.spec.dtype is target and _dense(x, protected):
        return x
    inner = _op_input(x, cast.Cast)
    if inner is not None and _dense(inner.inputs[0], protected):
        src = inner.inputs[0]
        if src.spec.dtype is target and _exact_widening(target.np, inner.attrs["dtype"].np):
            return src
    return None


def _detach(node: Node, protected: Any) -> Rewrite:
    x = node.inputs[0]
    return x if type(x) is Output else None


_RULES: dict[type, Rule] = {
    arith.Mul: _mul,
    arith.Div: _div,
    arith.Pow: _pow,
    arith.Add: _add,
    arith.Sub: _sub,
    unary.Neg: _neg,
    shape.Reshape: _reshape,
    reduce.BroadcastTo: _same_shape,
    reduce.SumTo: _same_shape,
    shape.Permute: _permute,
    cast.Cast: _cast,
    shape.Detach: _detach,
}
