"""Memory planning for a compiled program: liveness, aliasing, buffer reuse, and the report.

A program (``program.py``) is a straight line of steps, one per node. This file decides, for
every value, where its memory comes from and when it is given back, and reports what that
costs.

**Liveness.** A value is live from the step that computes it to the last step that reads it
(fetched values: to the end). The program deletes each value right after its last reader,
so a forward pass holds only what is still needed -- eager code with autograd on holds every
activation a backward rule saved.

**Buffers and aliases.** A *buffer* is a block of memory; a value either owns one or is a
view of others. Every value carries the set of buffers it may reference:

- an op listed in ``FRESH_OUTPUT`` returns a new array that shares memory with nothing: its
  value owns a new buffer, which the program is free to overwrite once the value is dead;
- a view op (``op.is_view``: reshape, permute, basic indexing, broadcast_to) references the
  buffers of its input 0 and allocates nothing;
- any other op *may* return an input or a view of one (``detach`` returns its input,
  ``sum_to`` may, a saved array may be an input): its value gets a buffer of its own that is
  never overwritten, *and* keeps its inputs' buffers alive;
- feeds belong to the caller, variable reads and assignments are the variables' storage,
  constants belong to the graph, and what a ``call`` returns may be anyone's (a parameter's
  ``.grad``): none of these is ever written. Buffers a ``call`` reads are never written
  again either, since the callable may keep a reference.

A buffer dies after the last step at which any value referencing it is live: a view keeps
its base alive.

**Reuse.** For an op listed in ``INTO`` (an elementwise NumPy ufunc), the result is written
into an existing array with ``out=`` instead of a new one:

- *in place*: an operand whose buffer dies at this very step -- it is the whole buffer (not a
  view), nothing else references it, it is writable, it has the result's dtype, and its shape
  is the result's -- provably (every other operand broadcasts into it), or, for sizes the
  graph does not know (two batch dimensions), by a shape comparison when the program runs:
  ``mul = np.multiply(sub, scale, out=sub)``;
- *from the pool*: otherwise, a dead buffer of the result's shape and dtype, kept alive from
  its death until this step instead of being freed -- only when keeping it never raises the
  planned peak, so the pool saves allocations, never memory. (With sizes unknown to the
  graph, only a buffer freed by the step just before, and a run-time shape comparison.)

Only correctly rounded or exact ufuncs are listed in ``INTO`` (IEEE ``+ - * /``, ``sqrt``,
negation, ``abs``, rounding), so the result written through ``out=`` is bitwise the one a
fresh call returns, whatever code path NumPy takes. The generated line checks at run time
that every array involved is C-contiguous (a fresh result would then be C-contiguous too, so
the two agree in layout as well as in bits) and otherwise falls back to the plain call; a
step with an operand that is all but never contiguous (a broadcast or a transpose) is not
planned at all.

**Peaks.** The naive peak keeps every value alive to the end; the planned peak adds up, at
each step, the buffers the plan holds (a step's inputs and its new output are both held
while it runs). Both count what the program allocates -- not feeds, variables, constants or
an op's internal temporaries -- and count a view as free, and a value that may alias an
input as a new array (an upper bound).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops.activation import Relu, ReluBackward
from ..ops.arith import (
    Add,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    Clamp,
    Div,
    Eq,
    FloorDivide,
    Ge,
    Gt,
    Le,
    LogicalAnd,
    LogicalOr,
    LogicalXor,
    Lt,
    Maximum,
    Minimum,
    Mul,
    Ne,
    Pow,
    Remainder,
    Sub,
    Where,
)
from ..ops.cast import Cast
from ..ops.creation import FullLike, Numel
from ..ops.linalg import Linear, Matmul
from ..ops.op import Spec
from ..ops.reduce import BroadcastTo, Sum, _SumAll
from ..ops.shape import Clone, Permute
from ..ops.softmax import LogSoftmax, Softmax
from ..ops.unary import (
    Abs,
    BitwiseNot,
    Ceil,
    Cos,
    Exp,
    Expm1,
    Floor,
    Log,
    Log1p,
    LogicalNot,
    Neg,
    Reciprocal,
    Rsqrt,
    Sigmoid,
    Sign,
    Sin,
    Sqrt,
    Tanh,
    Trunc,
)
from .ir import Node, Output

__all__ = ["FRESH_OUTPUT", "INTO", "Plan", "plan", "emit_op", "memory_report", "MemoryReport"]


# ---- what the planner knows about ops ---------------------------------------------------------

#: Ops whose ``forward`` always returns a newly allocated array that shares memory with
#: nothing else -- not an input, not a cache. Each entry was checked by reading its forward
#: (ufuncs without ``out=``, ``astype``, ``copy``, reductions, the matmul and ReLU kernels,
#: which allocate their result). An op missing here is treated as possibly returning an input.
FRESH_OUTPUT: frozenset = frozenset(
    {
        # elementwise ufuncs and the functions wrapping them
        Add, Sub, Mul, Div, FloorDivide, Remainder, Pow, Maximum, Minimum,
        Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr, LogicalXor, BitwiseAnd, BitwiseOr, BitwiseXor,
        Where, Clamp,
        Neg, Abs, Sign, Exp, Log, Log1p, Expm1, Sqrt, Rsqrt, Sin, Cos, Tanh, Sigmoid, Reciprocal,
        Floor, Ceil, Trunc, LogicalNot, BitwiseNot,
        # kernels and other allocating ops
        Matmul, Linear, Relu, ReluBackward, Softmax, LogSoftmax, Cast, Clone, Sum, _SumAll, FullLike, Numel,
    }
)  # fmt: skip

#: Ops whose result can be written into an existing array: the ufunc each one computes.
#: Only exact or correctly rounded operations, so ``out=`` cannot change a single bit.
INTO: dict = {
    Add: np.add,
    Sub: np.subtract,
    Mul: np.multiply,
    Div: np.divide,
    Neg: np.negative,
    Abs: np.absolute,
    Sqrt: np.sqrt,
    Reciprocal: np.reciprocal,
    Floor: np.floor,
    Ceil: np.ceil,
    Trunc: np.trunc,
}

#: Views that are (all but) never C-contiguous -- stride 0, swapped strides. A write into a
#: dead buffer is guarded on contiguity, so with one of these as an operand it would always
#: fall back to the plain call: the planner does not plan it.
_STRIDED_VIEWS = (BroadcastTo, Permute)

_LITERAL_SCALARS = (bool, int, float)


# ---- the plan -----------------------------------------------------------------------------------


@dataclass
class Buffer:
    """A block of memory the program holds, made by one value and maybe written by later ones.

    ``kind`` is ``new`` (allocated by an op), ``external`` (returned by a ``call``), ``feed``,
    ``variable`` or ``constant``. ``values`` are the values that were the whole buffer, in turn
    (the first allocated it; the others were written into it). ``writable``: the program may
    overwrite it once it is dead.
    """

    id: int
    kind: str
    spec: Spec
    born: int
    death: int
    writable: bool
    values: list = field(default_factory=list)
    label: str = ""

    @property
    def holder(self) -> Output:
        """The value that is the whole buffer now: the name to write through."""
        return self.values[-1]


@dataclass
class Value:
    """Where one value lives: ``how`` it got its memory, its own ``buffer`` (None for views),
    every buffer it may reference (``aliases``), and, when it took over a dead value's
    buffer, that value (``reused_from``)."""

    out: Output
    step: int
    last_use: int
    how: str  # new, in place, pool, view, may alias, external, feed, variable, constant
    buffer: int | None
    aliases: frozenset
    reused_from: Output | None = None


class Plan:
    """The result of planning: where each value lives, when it is deleted, what is reused.

    ``program.py`` asks ``dead_after(step)`` for the names to delete after a step and
    ``emit_op`` (below) reads ``into(step)``, the dead value whose buffer a step writes into.
    """

    def __init__(
        self,
        nodes: list[Node],
        outputs: list[Output],
        feeds: list[Output],
        values: dict[Output, Value],
        buffers: list[Buffer],
        dead: dict[int, list[Output]],
        into: dict[int, Output],
        checks: dict[int, list[tuple[Output, int | None]]],
        reuse: bool,
    ) -> None:
        self.nodes = nodes
        self.outputs = outputs
        self.feeds = feeds
        self.values = values
        self.buffers = buffers
        self._dead = dead
        self._into = into
        self._checks = checks
        self.reuse = reuse

    def dead_after(self, step: int) -> list[Output]:
        return self._dead.get(step, [])

    def into(self, step: int) -> Output | None:
        """The dead value whose buffer the op at ``step`` writes its result into, if any."""
        return self._into.get(step)

    def shape_checks(self, step: int) -> list[tuple[Output, int | None]]:
        """What the run compares before writing into the dead buffer: ``(operand, k)`` means
        ``operand.shape[k] == buffer.shape[k]``, ``(operand, None)`` the whole shapes. Sizes
        unknown to the graph (two batch dimensions) can only be compared when the program runs."""
        return self._checks.get(step, [])

    @property
    def n_in_place(self) -> int:
        return sum(1 for v in self.values.values() if v.how == "in place")

    @property
    def n_pooled(self) -> int:
        return sum(1 for v in self.values.values() if v.how == "pool")

    def describe(self, out: Output) -> str:
        """Where ``out`` lives, in words: ``b3``, ``b3 <- %sub (in place)``, ``view of b1``,
        ``b0 (feed)``."""
        v = self.values[out]
        if v.how == "view":
            return "view of " + ", ".join(f"b{b}" for b in sorted(v.aliases))
        own = f"b{v.buffer}"
        if v.how in ("feed", "constant"):
            return f"{own} ({v.how})"
        if v.how == "variable":
            return f"{own} (variable {self.buffers[v.buffer].label})"
        if v.how in ("in place", "pool"):
            return f"{own} <- %{v.reused_from.name} ({v.how})"
        if v.how == "may alias":
            others = sorted(v.aliases - {v.buffer})
            return own + (" (may alias " + ", ".join(f"b{b}" for b in others) + ")" if others else "")
        if v.how == "external":
            return f"{own} (external)"
        return own

    def timeline(self, nbytes: Any, after: bool = False) -> list[int | None]:
        """Bytes held by the program during each step (None where a size is unknown); with
        ``after``, held once the step is done and its dead values are deleted.

        ``nbytes(buffer)`` gives a buffer's size. Buffers the program allocates (``new`` and
        ``external``) count from the step that makes them to the last step that needs them.
        """
        n = len(self.nodes)
        live: list[int | None] = [0] * n
        for b in self.buffers:
            if b.kind not in ("new", "external"):
                continue
            size = nbytes(b)
            last = min(b.death - 1 if after else b.death, n - 1)
            for t in range(b.born, last + 1):
                if live[t] is not None:
                    live[t] = None if size is None else live[t] + size
        return live


def plan(sub: Any, feeds: list[Output], reuse: bool = True) -> Plan:
    """Plan the memory of ``sub`` (see the module docstring). ``reuse=False`` only frees:
    every value gets its own new array, deleted after its last use."""
    if not reuse:
        return _Planner(sub, feeds, in_place=False).run()
    base = _Planner(sub, feeds, in_place=True).run()
    limit = base.timeline(_static_nbytes)
    return _Planner(sub, feeds, in_place=True, pool_limit=limit).run()


def _static_nbytes(b: Buffer) -> int | None:
    return _nbytes(b.spec.shape, b.spec.dtype)


def _nbytes(shape: tuple | None, dtype: Any) -> int | None:
    if shape is None or None in shape:
        return None
    return math.prod(shape) * dtype.itemsize


class _Planner:
    """One pass over the schedule, deciding each value's memory (see the module docstring).

    With ``pool_limit`` (the bytes held per step by a plan without the pool), dead buffers
    are also kept for reuse, when keeping one never lifts a step above that plan's peak.
    """

    def __init__(self, sub: Any, feeds: list[Output], in_place: bool, pool_limit: list | None = None) -> None:
        self.sub = sub
        self.feeds = list(feeds)
        self.in_place = in_place
        self.pool_limit = pool_limit
        known = [t for t in pool_limit or () if t is not None]
        self.peak = max(known, default=0)
        self.extra = [0] * len(sub.nodes)  # bytes the pool holds at each step
        self.values: dict[Output, Value] = {}
        self.buffers: list[Buffer] = []
        self.variables: dict[int, int] = {}  # id(storage) -> buffer
        self.pool: dict[tuple, list[int]] = {}  # (shape, dtype) -> dead buffers, oldest first
        self.moved: dict[Output, int] = {}  # a pooled value is deleted at its reuse step instead
        self.into: dict[int, Output] = {}
        self.checks: dict[int, list] = {}  # shapes compared at run time (see Plan.shape_checks)

    def run(self) -> Plan:
        nodes = self.sub.nodes
        end = len(nodes)
        self.last_use: dict[Output, int] = {}
        for step, node in enumerate(nodes):
            for out in node.outputs:
                self.last_use[out] = step
            for v in node.inputs:
                if type(v) is Output:
                    self.last_use[v] = step
        for out in self.sub.outputs:
            self.last_use[out] = end
        fed = set(self.feeds)
        for step, node in enumerate(nodes):
            if node.specs and node.output(0) in fed:
                self._foreign(node.output(0), step, "feed")
            elif node.kind == "placeholder":
                self._foreign(node.output(0), step, "feed")
            elif node.kind in ("variable", "assign"):
                self._variable(node, step)
            elif node.kind == "constant":
                self._foreign(node.output(0), step, "constant")
            elif node.kind == "call":
                self._call(node, step)
            else:
                self._op(node, step)
            if self.pool_limit is not None:
                self._release(node, step)
        dead: dict[int, list[Output]] = {}
        keep = set(self.sub.outputs)
        for out, step in self.last_use.items():
            if out not in keep:
                dead.setdefault(self.moved.get(out, step), []).append(out)
        return Plan(
            nodes,
            list(self.sub.outputs),
            self.feeds,
            self.values,
            self.buffers,
            dead,
            self.into,
            self.checks,
            self.in_place,
        )

    # ---- values of each kind ---------------------------------------------------------------

    def _new_buffer(self, out: Output, step: int, kind: str, writable: bool, label: str = "") -> int:
        b = Buffer(len(self.buffers), kind, out.spec, step, self.last_use[out], writable, [out], label)
        self.buffers.append(b)
        return b.id

    def _add(self, out: Output, step: int, how: str, buffer: int | None, aliases: frozenset, src=None) -> None:
        last = self.last_use[out]
        self.values[out] = Value(out, step, last, how, buffer, aliases, src)
        for b in aliases:
            buf = self.buffers[b]
            if last > buf.death:
                buf.death = last

    def _foreign(self, out: Output, step: int, kind: str) -> None:
        b = self._new_buffer(out, step, kind, False)
        self._add(out, step, kind, b, frozenset((b,)))

    def _variable(self, node: Node, step: int) -> None:
        storage = node.payload.storage
        b = self.variables.get(id(storage))
        if b is None:
            b = self._new_buffer(node.output(0), step, "variable", False, node.payload.name)
            self.variables[id(storage)] = b
        self._add(node.output(0), step, "variable", b, frozenset((b,)))

    def _inputs_aliases(self, node: Node) -> frozenset:
        found: set[int] = set()
        for v in node.inputs:
            if type(v) is Output:
                found |= self.values[v].aliases
        return frozenset(found)

    def _call(self, node: Node, step: int) -> None:
        reads = self._inputs_aliases(node)
        for b in reads:  # the callable may keep what it was given
            self.buffers[b].writable = False
        for out in node.outputs:
            b = self._new_buffer(out, step, "external", False)
            self._add(out, step, "external", b, reads | {b})

    def _op(self, node: Node, step: int) -> None:
        op = node.op
        if op.is_view:  # the output shares memory with input 0 (the contract of ``is_view``)
            base = node.inputs[0]
            aliases = self.values[base].aliases if type(base) is Output else frozenset()
            for out in node.outputs:
                self._add(out, step, "view", None, aliases)
            return
        if (op not in FRESH_OUTPUT and not getattr(op, "fresh_output", False)) or len(node.specs) != 1:
            reads = self._inputs_aliases(node)
            for out in node.outputs:
                b = self._new_buffer(out, step, "new", False)
                self._add(out, step, "may alias", b, reads | {b})
            return
        out = node.output(0)
        target = None
        if self.in_place and op in INTO and _can_write_into(node):
            target = self._in_place_target(node, step)
            how = "in place"
            if target is None and self.pool_limit is not None:
                target = self._from_pool(node, step)
                how = "pool"
        if target is None:
            b = self._new_buffer(out, step, "new", True)
            self._add(out, step, "new", b, frozenset((b,)))
            return
        b = self.values[target].buffer
        self.into[step] = target
        self.buffers[b].values.append(out)
        self._add(out, step, how, b, frozenset((b,)), target)

    # ---- reuse ----------------------------------------------------------------------------

    def _in_place_target(self, node: Node, step: int) -> Output | None:
        """An operand whose buffer the result may overwrite (see the module docstring)."""
        out = node.output(0)
        operands = [v for v in node.inputs if type(v) is Output]
        for a in operands:
            info = self.values[a]
            if info.buffer is None or info.how not in ("new", "in place", "pool"):
                continue
            buf = self.buffers[info.buffer]
            if not buf.writable or buf.holder != a or buf.death != step or info.last_use != step:
                continue
            if a.spec.dtype is not out.spec.dtype or tuple(a.spec.shape) != tuple(out.spec.shape):
                continue
            others = [o for o in operands if o != a]
            if any(buf.id in self.values[o].aliases for o in others):
                continue
            checks = _fit_checks(others, a.spec.shape)
            if checks is not None:
                if checks:
                    self.checks[step] = checks
                return a
        return None

    def _from_pool(self, node: Node, step: int) -> Output | None:
        """A dead buffer of the result's shape and dtype, if keeping it costs no peak.

        With fully known shapes, a buffer freed several steps ago may be kept that long when
        no step in between then holds more than the plan's peak. With unknown sizes, only a
        buffer freed by the step just before (kept for no time at all), and only when the
        result's shape is an operand's, which the run compares with the buffer's.
        """
        out = node.output(0)
        shape = tuple(out.spec.shape)
        dead = self.pool.get((shape, out.spec.dtype.name))
        if not dead:
            return None
        size = _nbytes(shape, out.spec.dtype)
        checks: list = []
        if size is None:
            checks = _shape_witness(node)
            if checks is None:
                return None
        for i in range(len(dead) - 1, -1, -1):  # the most recently freed first: the shortest hold
            buf = self.buffers[dead[i]]
            held = range(buf.death + 1, step)
            if size is None:
                fits = not held
            else:
                fits = all(
                    self.pool_limit[t] is not None and self.pool_limit[t] + self.extra[t] + size <= self.peak
                    for t in held
                )
            if fits:
                for t in held:
                    self.extra[t] += size
                del dead[i]
                holder = buf.holder
                self.moved[holder] = step
                if checks:
                    self.checks[step] = checks
                return holder
        return None

    def _release(self, node: Node, step: int) -> None:
        """Offer the writable buffers that die at this step to the pool."""
        touched: set[int] = set()
        for v in node.inputs:
            if type(v) is Output:
                touched |= self.values[v].aliases
        for out in node.outputs:
            touched |= self.values[out].aliases
        for b in sorted(touched):
            buf = self.buffers[b]
            if buf.death == step and buf.kind == "new" and buf.writable:
                self.pool.setdefault((tuple(buf.spec.shape), buf.spec.dtype.name), []).append(b)


def _can_write_into(node: Node) -> bool:
    """Operand and result dtypes all equal (one ufunc loop, no cast), no operand a strided
    view, literals plain numbers, and a result with at least one dimension."""
    spec = node.specs[0]
    if not spec.shape:
        return False
    for v in node.inputs:
        if type(v) is Output:
            if v.spec.dtype is not spec.dtype or (v.node.kind == "op" and v.node.op in _STRIDED_VIEWS):
                return False
        elif type(v) not in _LITERAL_SCALARS:
            return False
    return not node.attrs


def _shape_witness(node: Node) -> list | None:
    """The run-time comparisons that prove the result fits a pooled buffer of its static
    shape: an operand with that shape compared whole with the buffer, and every other one
    fitting into it (see ``_fit_checks``). None if no operand can serve."""
    shape = tuple(node.specs[0].shape)
    operands = [v for v in node.inputs if type(v) is Output]
    for a in operands:
        if tuple(a.spec.shape) == shape:
            checks = _fit_checks([o for o in operands if o != a], shape)
            if checks is not None:
                return [(a, None), *checks]
    return None


def _fit_checks(operands: list[Output], target: tuple) -> list | None:
    """How to make sure each operand broadcasts into an array of shape ``target`` without
    enlarging it: the ``(operand, k)`` pairs whose sizes ``shape[k]`` the run must find equal
    (where one of the two sizes is unknown to the graph), or None if an operand never fits.

    Dimensions are matched from the right; an operand's size 1 always fits, equal known sizes
    fit, different known sizes never do.
    """
    checks = []
    for o in operands:
        shape = o.spec.shape
        if len(shape) > len(target):
            return None
        for k in range(-1, -len(shape) - 1, -1):
            d, t = shape[k], target[k]
            if d == 1:
                continue
            if d is None or t is None:
                checks.append((o, k))
            elif d != t:
                return None
    return checks


# ---- code generation ----------------------------------------------------------------------------


def emit_op(node: Node, names: dict, ref: Any, functions: dict, plan: Plan, step: int) -> str:
    """One line of the program: a direct call of the op's ``forward`` -- or, where the plan
    reuses a dead buffer, the ufunc writing into it, guarded by a contiguity check."""
    label = re.sub(r"[^0-9a-zA-Z_]", "_", node.op.label)
    fname = f"f_{label}"
    if fname in functions and functions[fname] is not node.op.forward:
        fname = f"f_{label}_{node.id}"
    functions[fname] = node.op.forward
    args = [ref(v) for v in node.inputs]
    args += [f"{k}={ref(v)}" for k, v in node.attrs.items()]
    call = f"{fname}({', '.join(args)})"
    out = names[node.output(0)]
    if node.saved_keys:
        saved = f"_saved_{node.id}"
        parts = [f"{out}, {saved} = {call}"]
        parts += [f"{names[node.output(i + 1)]} = {saved}[{k!r}]" for i, k in enumerate(node.saved_keys)]
        if len(node.specs[0].shape) == 0:
            parts.append(f"{out} = _as_array({out})")
        return "; ".join(parts)
    if len(node.specs[0].shape) == 0:
        return f"{out} = _as_array({call})"
    target = plan.into(step)
    if target is not None:
        dest = names[target]
        arrays = [names[v] for v in (target, *node.inputs) if type(v) is Output and v.spec.shape]
        guards = [
            f"{names[v]}.shape == {dest}.shape" if k is None else f"{names[v]}.shape[{k}] == {dest}.shape[{k}]"
            for v, k in plan.shape_checks(step)
        ]
        guards += [f"{a}.flags.c_contiguous" for a in dict.fromkeys(arrays)]
        guard = " and ".join(guards)
        into = f"np.{INTO[node.op].__name__}({', '.join(args)}, out={dest})"
        return f"{out} = {into} if {guard} else {call}"
    return f"{out} = {call}"


# ---- the report ----------------------------------------------------------------------------------


@dataclass
class ValueRow:
    """One line of the lifetime table."""

    step: int
    name: str
    op: str
    shape: tuple | None
    dtype: str
    nbytes: int | None  # bytes this value allocates (0 for views and reused buffers)
    dies: int | None  # the step after which it is deleted; None: fetched (kept to the end)
    buffer: str


@dataclass
class MemoryReport:
    """Naive and planned peak bytes of a program, and the lifetime of every value.

    ``naive_peak``: every value kept alive to the end, nothing reused; ``planned_peak``: with
    the plan's frees and reuse, at step ``peak_step``. Either is None when a size is unknown.
    """

    naive_peak: int | None
    planned_peak: int | None
    peak_step: int | None
    rows: list[ValueRow]
    timeline: list
    in_place: int
    pooled: int
    outside: dict
    shapes_from_run: bool
    text: str = ""

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<MemoryReport naive {_human(self.naive_peak)}, planned {_human(self.planned_peak)}>"


def memory_report(program: Any, file: Any = None, feed_shapes: list | None = None) -> MemoryReport:
    """Print and return the memory report of a compiled ``program`` (see ``MemoryReport``).

    Sizes come from the static shapes; an unknown size (``None``, such as a batch dimension)
    is taken from ``feed_shapes`` (the shapes of the values to feed, in the program's feed
    order) or else from the feeds of the program's last run, and is reported unknown before one.
    """
    plan_ = program.plan
    if feed_shapes is None:
        feed_shapes = getattr(program, "feed_shapes", None)
    shapes = resolve_shapes(program.subgraph, plan_.feeds, feed_shapes)
    report = build_report(plan_, shapes, shapes_from_run=feed_shapes is not None)
    print(report.text, file=file if file is not None else sys.stdout)
    return report


def build_report(plan_: Plan, shapes: dict[Output, tuple | None], shapes_from_run: bool = False) -> MemoryReport:
    """The report of ``plan_`` with each value's concrete shape (None where unknown)."""

    def nbytes_of(out: Output) -> int | None:
        return _nbytes(shapes.get(out), out.spec.dtype)

    timeline = plan_.timeline(lambda b: nbytes_of(b.values[0]))
    rows: list[ValueRow] = []
    naive: int | None = 0
    outside = {"feed": 0, "variable": 0, "constant": 0}
    seen_variables: set[int] = set()
    for node_step, node in enumerate(plan_.nodes):
        for out in node.outputs:
            v = plan_.values[out]
            size = nbytes_of(out)
            allocates = v.how in ("new", "in place", "pool", "may alias", "external")
            if allocates:
                naive = None if naive is None or size is None else naive + size
            elif v.how in outside and not (v.how == "variable" and v.buffer in seen_variables):
                seen_variables.add(v.buffer)
                outside[v.how] = None if outside[v.how] is None or size is None else outside[v.how] + size
            own = size if v.how in ("new", "may alias", "external") else 0
            rows.append(
                ValueRow(
                    node_step,
                    out.name,
                    node.op_label(),
                    shapes.get(out),
                    out.spec.dtype.name,
                    own,
                    None if v.last_use >= len(plan_.nodes) else v.last_use,
                    plan_.describe(out),
                )
            )
    known = [t for t in timeline if t is not None]
    planned = max(known, default=0) if len(known) == len(timeline) else None
    peak_step = timeline.index(planned) if planned is not None and timeline else None
    report = MemoryReport(
        naive, planned, peak_step, rows, timeline, plan_.n_in_place, plan_.n_pooled, outside, shapes_from_run
    )
    report.text = _format(report, plan_)
    return report


def resolve_shapes(sub: Any, feeds: list[Output], feed_shapes: list | None) -> dict[Output, tuple | None]:
    """Every value's concrete shape: the static one, or (for unknown sizes) inferred again from
    the fed shapes with each op's own ``infer``; None where it cannot be known."""
    from .build import _abstract_eval, infer_specs

    feed_at = {f: i for i, f in enumerate(feeds)}
    shapes: dict[Output, tuple | None] = {}
    for node in sub.nodes:
        outs = node.outputs
        if all(None not in s.shape for s in node.specs):
            for o in outs:
                shapes[o] = tuple(o.spec.shape)
            continue
        for o in outs:
            shapes[o] = None
        if not outs:
            continue
        first = outs[0]
        if first in feed_at:
            if feed_shapes is not None and feed_at[first] < len(feed_shapes):
                shapes[first] = tuple(feed_shapes[feed_at[first]])
        elif node.kind == "assign":
            shapes[first] = shapes.get(node.inputs[0])
        elif node.kind == "op" and not node.stateful:
            specs = []
            for v in node.inputs:
                if type(v) is Output:
                    if shapes.get(v) is None:
                        break
                    specs.append(Spec(shapes[v], v.spec.dtype))
                else:
                    specs.append(v)
            else:
                spec, saved = _infer_concrete(node, tuple(specs), infer_specs, _abstract_eval)
                if spec is None:
                    continue
                shapes[first] = tuple(spec.shape)
                for o, key in zip(outs[1:], node.saved_keys):
                    if key in saved:
                        shapes[o] = tuple(saved[key].shape)
    return shapes


def _infer_concrete(node: Node, specs: tuple, infer_specs: Any, abstract_eval: Any) -> tuple:
    """The op's ``infer`` on concrete input shapes; where it leaves a size open (sizes taken
    from a ``like=`` operand) or fails, the op run on zeros of those shapes. (None, {}) if
    neither can tell."""
    try:
        spec, saved = infer_specs(node.op, specs, node.attrs, node.source)
        if None not in spec.shape:
            return spec, saved
    except Exception:  # noqa: BLE001 - a report says "unknown"; it does not fail
        pass
    try:
        return abstract_eval(node.op, specs, node.attrs)
    except Exception:  # noqa: BLE001
        return None, {}


def _format(r: MemoryReport, plan_: Plan) -> str:
    n = len(plan_.nodes)
    lines = [f"memory plan: {n} steps, {len(r.rows)} values"]
    lines.append(f"  naive peak    {_human(r.naive_peak):>12}   every value kept alive to the end")
    where = ""
    if r.peak_step is not None and n:
        where = f" (at step {r.peak_step}, %{plan_.nodes[r.peak_step].name})"
    lines.append(f"  planned peak  {_human(r.planned_peak):>12}   freed after last use, buffers reused{where}")
    if r.naive_peak and r.planned_peak is not None:
        lines.append(f"  saving        {100 * (1 - r.planned_peak / r.naive_peak):>11.0f}%")
    if not plan_.reuse:
        lines.append("  reuse: off (every value gets a new array)")
    else:
        lines.append(f"  reuse: {r.in_place} written in place, {r.pooled} into a pooled dead buffer")
    outside = ", ".join(f"{k}s {_human(v)}" for k, v in r.outside.items() if v != 0)
    lines.append(f"  not counted: {outside or 'nothing'} (held outside the program); temporaries inside ops")
    if any(row.shape is None for row in r.rows):
        lines.append("  sizes marked ? are only known at run time: run the program once, then ask again")
    elif r.shapes_from_run and any(None in o.spec.shape for o in plan_.values):
        lines.append("  unknown sizes taken from the last run's feeds")
    header = ("born", "value", "op", "shape", "dtype", "bytes", "dies after", "buffer")
    table = [header]
    for row in r.rows:
        table.append(
            (
                str(row.step),
                "%" + row.name,
                row.op,
                _fmt_shape(row.shape) if row.shape is not None else "?",
                row.dtype,
                "?" if row.nbytes is None else f"{row.nbytes:,}",
                "end" if row.dies is None else str(row.dies),
                row.buffer,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {0, 5, 6}
    lines.append("")
    for line in table:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _human(n: int | None) -> str:
    if n is None:
        return "unknown"
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
    return f"{n:.1f} GiB"  # pragma: no cover
