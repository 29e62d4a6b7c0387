"""Step-through execution: run a compiled program one node at a time, to watch it work.

``session.step(fetches, feed_dict)`` returns a ``StepThrough``: iterate over it and each
step yields a ``StepRecord`` -- the node, the values it read, the values it made, where the
memory plan put them, and how many bytes the program holds afterwards::

    for record in sess.step(loss, {x: batch}):
        print(record)

       3  %matmul = matmul(%x, %w)  -> (4, 1) float32  [b3]  live 16 B  freed %w
       4  %add = add(%matmul, %b)  -> (4, 1) float32  [b3 <- %matmul (in place)]  live 16 B  freed %b, %matmul

It interprets the program's subgraph rather than running the generated code, with the same
semantics: the same ``forward`` calls, the same writes into dead buffers (``out=``, under the
same run-time checks), the same deletions, the same functions (``_assign``, ``_as_array``), the
same side effects (assignments, optimizer steps) -- so its results are bitwise those of
``program.run``, and ``live_bytes`` is what the program really holds.

A record's arrays are the program's own, except where a step writes into a buffer that
earlier records show (an in-place step's input, an assigned variable): just before the write,
those records get a copy, so every record keeps showing the values of its own step.
(Side effects of ``call`` nodes, such as an optimizer step updating parameters, are not
tracked.)
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .inspect import _expression
from .ir import GraphError, Output
from .memory import INTO, _nbytes, resolve_shapes
from .program import _as_array, _assign

__all__ = ["step_through", "StepThrough", "StepRecord"]


@dataclass
class StepRecord:
    """What one step of a program did.

    ``inputs`` holds the values read (arrays for graph values, literals as they are) and
    ``attrs`` the node's attributes; ``outputs`` the values made (none for an effect).
    ``buffer`` says where the plan put the first output (``b3``, ``b3 <- %x (in place)``,
    ``view of b1``, ...); ``in_place`` whether this step wrote into a dead value's buffer.
    ``live_bytes``: bytes of the arrays the program holds after the step (each block once,
    views free; feeds, variables and constants are not the program's); ``planned_bytes``:
    what the memory plan counts for the same moment; ``freed``: values deleted after it.
    """

    step: int
    name: str
    op: str
    kind: str
    expression: str
    inputs: tuple
    attrs: dict
    outputs: tuple
    buffer: str
    in_place: bool
    live_bytes: int
    planned_bytes: int | None
    freed: tuple
    source: str

    def __str__(self) -> str:
        out = ", ".join(_describe(v) for v in self.outputs) or "(effect)"
        freed = f"  freed {', '.join('%' + n for n in self.freed)}" if self.freed else ""
        return f"{self.step:>4}  %{self.name} = {self.expression}  -> {out}  [{self.buffer}]  live {self.live_bytes:,} B{freed}"


class StepThrough:
    """An iterator of ``StepRecord``\\ s; ``results`` holds the fetched values once every
    step has run (``run_to_end()`` runs the rest and returns them)."""

    def __init__(self, program: Any, feed_values: list[Any]) -> None:
        self.program = program
        self.results: tuple | None = None
        self._steps = _steps(program, list(feed_values), self)

    def __iter__(self) -> Iterator[StepRecord]:
        return self

    def __next__(self) -> StepRecord:
        return next(self._steps)

    def run_to_end(self) -> tuple:
        for _ in self:
            pass
        return self.results


def step_through(program: Any, feed_values: list[Any]) -> StepThrough:
    """Execute ``program`` node by node (see the module docstring)."""
    return StepThrough(program, feed_values)


def _steps(program: Any, feed_values: list[Any], owner: StepThrough) -> Iterator[StepRecord]:
    sub, plan = program.subgraph, program.plan
    feed_at = {f: i for i, f in enumerate(plan.feeds)}
    shapes = resolve_shapes(sub, plan.feeds, [getattr(v, "shape", None) for v in feed_values])
    planned = plan.timeline(lambda b: _nbytes(shapes.get(b.values[0]), b.spec.dtype), after=True)
    keep = set(sub.outputs)
    env: dict[Output, Any] = {}
    outside: set[int] = set()  # blocks owned outside the program: feeds, variables, constants
    kept = _Kept()

    def value(v: Any) -> Any:
        return env[v] if type(v) is Output else v

    for step, node in enumerate(sub.nodes):
        first = node.output(0) if node.specs else None
        args = tuple(value(v) for v in node.inputs)
        attrs = {k: value(v) for k, v in node.attrs.items()}
        in_place = False
        if first is not None and first in feed_at:
            outputs = (feed_values[feed_at[first]],)
            outside.add(id(_block(outputs[0])))
        elif node.kind == "placeholder":
            raise GraphError(f"placeholder '{node.name}' must be fed (built at {node.source})")
        elif node.kind == "variable":
            outputs = (node.payload.storage._data,)
            outside.add(id(_block(outputs[0])))
        elif node.kind == "constant":
            outputs = (node.payload,)
            outside.add(id(_block(outputs[0])))
        elif node.kind == "assign":
            kept.before_write(node.payload.storage._data)
            outputs = (_assign(node.payload, args[0]),)
            outside.add(id(_block(outputs[0])))
        elif node.kind == "call":
            result = node.payload(*args)
            n = len(node.outputs)
            outputs = () if n == 0 else (result,) if n == 1 else tuple(result)
        else:
            dest = _destination(node, plan, step, env)
            if dest is not None:
                kept.before_write(dest)
                target = plan.into(step)
                # the record shows what the step read, not what it wrote over
                args = tuple(a.copy() if type(v) is Output and v == target else a for v, a in zip(node.inputs, args))
                outputs, in_place = (INTO[node.op](*(value(v) for v in node.inputs), out=dest),), True
            else:
                outputs = _forward(node, args, attrs)
        for out, val in zip(node.outputs, outputs):
            env[out] = val
        freed = []
        for dead in plan.dead_after(step):
            if dead not in keep and env.pop(dead, _MISSING) is not _MISSING:
                freed.append(dead.name)
        record = StepRecord(
            step=step,
            name=node.name,
            op=node.op_label(),
            kind=node.kind,
            expression=_expression(node),
            inputs=args,
            attrs=attrs,
            outputs=outputs,
            buffer=plan.describe(first) if first is not None else "-",
            in_place=in_place,
            live_bytes=_live_bytes(env, outside),
            planned_bytes=planned[step] if planned else None,
            freed=tuple(freed),
            source=node.source,
        )
        kept.add(record)
        yield record
    owner.results = tuple(env[o] for o in sub.outputs)


_MISSING = object()


class _Kept:
    """Which arrays earlier records show, by memory block, so that a record keeps showing its
    values when a later step writes into their block: just before the write, each such array
    in a record is replaced by a copy. Records are held weakly: dropped ones cost nothing."""

    def __init__(self) -> None:
        self.places: dict[int, list] = {}  # id(block) -> [(weak record, field, index)]

    def add(self, record: StepRecord) -> None:
        ref = weakref.ref(record)
        for name in ("inputs", "outputs"):
            for i, v in enumerate(getattr(record, name)):
                if isinstance(v, np.ndarray):
                    self.places.setdefault(id(_block(v)), []).append((ref, name, i))

    def before_write(self, array: Any) -> None:
        for ref, name, i in self.places.pop(id(_block(array)), ()):
            record = ref()
            if record is not None:
                values = list(getattr(record, name))
                values[i] = values[i].copy()
                setattr(record, name, tuple(values))


def _destination(node: Any, plan: Any, step: int, env: dict) -> Any:
    """The dead value's array that the generated line writes this step's result into, or None
    when the plan reuses nothing here or the line's run-time checks send it to a plain call."""
    target = plan.into(step)
    if target is None:
        return None
    dest = env[target]
    for v, k in plan.shape_checks(step):
        if (env[v].shape != dest.shape) if k is None else (env[v].shape[k] != dest.shape[k]):
            return None
    arrays = [env[v] for v in (target, *node.inputs) if type(v) is Output and v.spec.shape]
    return dest if all(a.flags.c_contiguous for a in arrays) else None


def _forward(node: Any, args: tuple, attrs: dict) -> tuple:
    """The op's ``forward`` and its outputs, as the generated line unpacks them."""
    out = node.op.forward(*args, **attrs)
    if node.saved_keys:
        out, saved = out
        if len(node.specs[0].shape) == 0:
            out = _as_array(out)
        return (out, *(saved[k] for k in node.saved_keys))
    if len(node.specs[0].shape) == 0:
        out = _as_array(out)
    return (out,)


def _block(a: Any) -> Any:
    """The array that owns ``a``'s memory (a view's base, followed to the end)."""
    while isinstance(a, np.ndarray) and isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _live_bytes(env: dict, outside: set[int]) -> int:
    seen: set[int] = set()
    total = 0
    for v in env.values():
        if not isinstance(v, np.ndarray):
            continue
        block = _block(v)
        key = id(block)
        if key in seen or key in outside:
            continue
        seen.add(key)
        total += block.nbytes
    return total


def _describe(v: Any) -> str:
    if isinstance(v, np.ndarray):
        shape = "(" + ", ".join(str(d) for d in v.shape) + ("," if v.ndim == 1 else "") + ")"
        return f"{shape} {v.dtype.name}"
    return repr(v) if len(repr(v)) <= 30 else type(v).__name__
