"""Elementwise fusion (level 2): one compiled loop for a whole chain of elementwise ops.

Each elementwise op in NumPy is one pass over memory: it reads its inputs from RAM and
writes a new array back. A chain such as the end of a layer norm followed by GELU::

    n = mul(d, rstd)          # d = x - mean, rstd = 1 / sqrt(var + eps)
    s = mul(n, weight)        # 4 ops: 4 arrays written and read back
    a = add(s, bias)
    y = gelu(a)               # itself 5 NumPy passes: divide, erf, add, multiply, multiply

is memory-bound several times over, although the arithmetic per element is a handful of
instructions. Fusion replaces the chain by **one** node whose op runs a generated Numba
kernel: a parallel loop over the output that loads each input element once, evaluates the
whole expression in registers, and stores one result::

    y = fused_mul_mul_add_gelu(d, rstd, weight, bias)       # fused(mul,mul,add,gelu)

    for each output element (row r, column c), in parallel:
        t0 = d[r, c] * rstd[r]
        t1 = t0 * weight[c]
        t2 = t1 + bias[c]
        y[r, c] = 0.5 * t2 * (1 + erf(t2 / sqrt(2)))

(``d`` stays a node of its own: the variance reads it too.) Measured on 1024 x 1024 float32
with two threads, layer norm + GELU runs 2.0x faster than at level 1 (1.1x on one thread,
where the ``erf`` calls dominate both), a bias + ReLU 3.7x, layer norm alone 1.5x.

**Which nodes fuse.** A *group* is a tree of fusable nodes (the ops in ``TEMPLATES``:
arithmetic, the unary math functions, the activations, ``where``, ``clamp``) all computing
in one float dtype, grown from a *root* down through its inputs: an input's producer joins
the group when every reader of its value is in the group (it is then computed once per
element, into a register, however many members read it), its value is not fetched, and it
has the root's shape (a smaller producer -- the ``(N, 1)`` ``rstd`` above -- stays a
separate node and becomes a group input: fused, it would be recomputed for every element it
broadcasts to).
The group's inputs (*leaves*) may broadcast against the output in the common ways: same
shape, a scalar, a trailing block (a ``(C,)`` bias of an ``(N, C)`` output), a leading
block (a ``(N, 1)`` row statistic), or a block in the middle (a ``(1, C, 1, 1)`` bias of
``NCHW``). Any other pattern, an array that is not a NumPy array (the GPU), or an input of
an unexpected dtype, runs the group's ops one by one -- the reference path, which is also
what the fused op's results are checked against.

**Not fused** (without Intel's SVML, which lets Numba vectorize them): ops that call the C
library's ``exp``, ``log``, ``tanh``... per element (``LIBM_OPS``). NumPy evaluates those
with SIMD code far faster than a scalar call -- measured per 2**20 float32 elements on one
core: ``exp`` 0.34 ms in NumPy vs 1.9 ms as a loop of calls, ``tanh`` 0.17 vs 13, ``expm1``
0.25 vs 9.3 -- while a whole arithmetic pass over memory costs about 0.08 ms, so fusing one
loses more than the passes it saves. ``erf`` fuses: NumPy has none, and eager GELU runs the
very same scalar loop (``kernels/cpu/special.py``). ``x ** k`` fuses for the exponents in
``kernelgen.POWERS`` (written as multiplications or a square root).

A group of one node is not worth a kernel, except for ops that are themselves several
NumPy passes (``MULTI_PASS``: GELU is a divide, an ``erf``, an add and two multiplies).

**Exactness.** The kernel evaluates each op as its ``forward`` does (the same association
of ``0.5 * x * (1 + erf(x / sqrt 2))``, literals rounded to the array's dtype as NumPy rounds
a Python scalar), but a library call may round differently from NumPy's vectorized version,
so results agree within a few ulps rather than bitwise. That is why fusion is level 2 only.

**Code generation and caching** are in ``kernelgen.py``: each kernel is compiled once per
process (two ``Session`` objects, or two graphs, with the same expression share it) and cached on disk
by Numba across processes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import dtypes
from ...ops import activation, arith, unary
from ...ops.op import Op, Spec, broadcast_shapes
from ..ir import Node, Output
from ..program import Subgraph
from .kernelgen import POWERS, TEMPLATES, FusedKernel, Step, kernel_cache_info
from .rewrite import Rewriter, consumers, is_protected

__all__ = ["fuse", "FusedOp", "LIBM_OPS", "MULTI_PASS", "MIN_ELEMENTS", "MAX_GROUP", "kernel_cache_info"]

#: Groups whose output is known to have fewer elements are not fused (a few scalar ops cost
#: less in NumPy than a kernel call, and there is nothing to compile).
MIN_ELEMENTS = 64
#: Groups stop growing at this many ops (a huge kernel compiles slowly and gains nothing more).
MAX_GROUP = 64

#: Ops evaluated by a scalar C-library call per element; fused only with SVML (see above).
LIBM_OPS: frozenset = frozenset(
    {
        unary.Exp,
        unary.Log,
        unary.Log1p,
        unary.Expm1,
        unary.Sin,
        unary.Cos,
        unary.Tanh,
        unary.Sigmoid,
        activation.Silu,
        activation.Softplus,
        activation.Elu,
    }
)

#: Ops whose own ``forward`` makes several passes over memory: one alone is worth a kernel.
MULTI_PASS: frozenset = frozenset(
    {
        activation.Gelu,
        activation.LeakyRelu,
        activation.Elu,
        activation.Silu,
        activation.Softplus,
        unary.Sigmoid,
        unary.Rsqrt,
    }
)

#: The attributes each op may carry (all others must have none).
_ATTRS = {
    activation.LeakyRelu: {"negative_slope"},
    activation.Elu: {"alpha"},
    activation.Gelu: {"approximate"},
    activation.Softplus: {"beta", "threshold"},
    arith.Clamp: {"min", "max"},
}


def _svml() -> bool:
    import numba

    return bool(getattr(numba.config, "USING_SVML", False))


def _worth_it(node: Node) -> bool:
    """Whether the fused loop computes ``node`` at least as fast as NumPy does (see ``LIBM_OPS``)."""
    op = node.op
    if op is arith.Pow:
        exponent = node.inputs[1]
        return type(exponent) is not Output and float(exponent) in POWERS
    if op in LIBM_OPS or (op is activation.Gelu and node.attrs.get("approximate") == "tanh"):
        return _svml()
    return True


# ---- the fused op ----------------------------------------------------------------------------------


class FusedOp(Op):
    """Base class of the generated ops: ``forward`` is a ``FusedKernel`` (see ``_make_op``)."""

    name = "Fused"
    label = "fused"
    differentiable = False
    stateful = False
    #: Every call returns a new array (the kernel's, or the unfused ops' in the fallback), so
    #: the memory planner may treat it as a buffer of its own.
    fresh_output = True
    kernel: FusedKernel

    @classmethod
    def infer(cls, *specs: Any, **attrs: Any) -> Spec:
        shape = broadcast_shapes(cls.label, *(s.shape for s in specs if isinstance(s, Spec)))
        return Spec(shape, cls.kernel.dtype)

    @staticmethod
    def vjp(ctx: Any, g: Any) -> tuple:
        raise RuntimeError(
            "a fused elementwise op has no gradient rule: fusion runs on the final graph, after gradients "
            "were built; differentiate the graph before optimizing it"
        )


def _make_op(kernel: FusedKernel) -> type[FusedOp]:
    """A new ``FusedOp`` subclass for one group: ``name`` ``fused(mul,add,gelu)``, and a
    ``label`` that is also a Python identifier, ``fused_mul_add_gelu``, for the program's code."""
    labels = [op.label for op, _, _ in kernel.steps]
    shown = labels if len(labels) <= 8 else labels[:7] + [f"{len(labels) - 7}more"]
    return type(
        "Fused_" + "_".join(shown),
        (FusedOp,),
        {
            "name": f"fused({','.join(shown)})",
            "label": "fused_" + "_".join(shown),
            "forward": staticmethod(kernel),
            "kernel": kernel,
        },
    )


# ---- the pass ----------------------------------------------------------------------------------------


def _dtype_ok(spec: Spec) -> bool:
    return spec.dtype.np in (np.float32, np.float64)


def _fusable(node: Node, protected: Any) -> bool:
    """Whether ``node`` may be part of a fused group (as root or member)."""
    if node.kind != "op" or node.stateful or node.control or len(node.specs) != 1:
        return False
    if node.op not in TEMPLATES or is_protected(node, protected):
        return False
    if set(node.attrs) - _ATTRS.get(node.op, set()) or not _worth_it(node):
        return False
    spec = node.specs[0]
    if not _dtype_ok(spec):
        return False
    for i, v in enumerate(node.inputs):
        if type(v) is Output:
            want = dtypes.bool_ if (node.op is arith.Where and i == 0) else spec.dtype
            if v.spec.dtype is not want:
                return False
        elif type(v) not in (int, float) and not isinstance(v, np.floating):
            return False
    return all(isinstance(x, (int, float, str, type(None))) and not isinstance(x, bool) for x in node.attrs.values())


def _tiny(node: Node) -> bool:
    shape = node.specs[0].shape
    return None not in shape and math.prod(shape) < MIN_ELEMENTS


def fuse(sub: Subgraph, protected: Any = ()) -> tuple[Subgraph, str]:
    """Replace each group of two or more fusable nodes by one fused node (see the module docstring)."""
    readers = consumers(sub.nodes)
    fetched = set(sub.outputs)
    controlled = {c.id for n in sub.nodes for c in n.control}
    effects = {n.id for n in sub.effects}
    group_of: dict[int, int] = {}  # node id -> root id
    members: dict[int, list[Node]] = {}
    by_id = {n.id: n for n in sub.nodes}
    for node in reversed(sub.nodes):
        if not _fusable(node, protected):
            continue
        out = node.output(0)
        users = readers.get(out, [])
        roots = {group_of.get(u.id) for u in users}
        if (
            len(roots) == 1
            and None not in roots
            and out not in fetched
            and node.id not in controlled
            and node.id not in effects
        ):
            root = by_id[roots.pop()]
            if (
                tuple(node.specs[0].shape) == tuple(root.specs[0].shape)
                and node.specs[0].dtype is root.specs[0].dtype
                and len(members[root.id]) < MAX_GROUP
            ):
                group_of[node.id] = root.id
                members[root.id].append(node)
                continue
        group_of[node.id] = node.id
        members[node.id] = [node]
    groups = {
        rid: ms for rid, ms in members.items() if (len(ms) >= 2 or ms[0].op in MULTI_PASS) and not _tiny(by_id[rid])
    }
    if not groups:
        return sub, ""
    absorbed = {n.id for ms in groups.values() for n in ms}
    rw = Rewriter(sub, protected)
    position = {n.id: i for i, n in enumerate(sub.nodes)}
    made = []
    for old in sub.nodes:
        if old.id in groups:
            fused = _fuse_group(rw, old, sorted(groups[old.id], key=lambda n: position[n.id]))
            rw.insert(fused)
            rw.replace(old, fused.outputs, by=fused)
            made.append(fused.op.name)
        elif old.id in absorbed:
            continue  # computed inside its group's kernel
        else:
            rw.keep(old)
    note = f"{len(made)} fused: " + ", ".join(made)
    return rw.result(), note


def _fuse_group(rw: Rewriter, root: Node, order: list[Node]) -> Node:
    """One fused node computing ``root`` (the last of ``order``, the group in schedule order)
    from the group's leaves."""
    inside = {n.id for n in order}
    step_of: dict[int, int] = {}
    leaves: list[Output] = []
    leaf_index: dict[Output, int] = {}
    steps: list[Step] = []
    for node in order:
        operands = []
        for v in node.inputs:
            if type(v) is Output and v.node.id in inside:
                operands.append(("step", step_of[v.node.id]))
            elif type(v) is Output:
                new = rw.value(v)
                if new not in leaf_index:
                    leaf_index[new] = len(leaves)
                    leaves.append(new)
                operands.append(("leaf", leaf_index[new]))
            else:
                operands.append(("literal", v))
        step_of[node.id] = len(steps)
        steps.append((node.op, tuple(operands), dict(node.attrs)))
    kernel = FusedKernel(steps, [np.dtype(v.spec.dtype.np) for v in leaves], root.specs[0].dtype)
    op = _make_op(kernel)
    return Node(root.graph, "op", root.name, root.specs, op=op, inputs=tuple(leaves), source=root.source)
