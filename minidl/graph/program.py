"""From fetches to a runnable program: prune, optimize, plan, and generate a flat schedule.

``Session.run`` asks for some values (the fetches) given some others (the feeds). The first
time it sees a combination it compiles a ``Program``:

1. **prune** -- keep only the nodes the fetches (and the side effects they depend on) need;
2. **optimize** -- the passes of ``passes/`` at the session's level;
3. **plan** -- liveness analysis: after which step each value is dead (``memory.py``);
4. **generate** -- one straight-line Python function, a line per node::

       def program(feeds, S, C):
           x = feeds[0]
           w1 = S[0].storage._data
           matmul = f_matmul(x, w1)
           del x
           ...
           return (loss,)

   Every value is a local variable, every op a direct call to its ``forward``, every dead
   value a ``del``. Running the program walks no graph and looks nothing up by name: this is
   what "execution by a flat, precompiled schedule" means, and why a graph can run faster
   than eager code, whose every op goes through ``apply``.

``program.source`` keeps the generated code, for reading.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ir import GraphError, Node, Output

__all__ = ["Subgraph", "Program", "prune", "compile_program"]


@dataclass
class Subgraph:
    """What the passes transform: nodes in execution order, the values wanted, the effects wanted.

    ``outputs`` are the fetched values in fetch order; ``effects`` the side-effect nodes
    (assignments, optimizer steps) that must run. A pass returns a new ``Subgraph`` whose
    ``outputs`` correspond one to one with the old ones.
    """

    nodes: list[Node]
    outputs: list[Output]
    effects: list[Node] = field(default_factory=list)


def prune(nodes: list[Node], outputs: list[Output], effects: list[Node]) -> Subgraph:
    """Keep the nodes that the outputs and effects need, in their original (build) order."""
    needed: set[int] = set()
    stack = [o.node for o in outputs] + list(effects)
    while stack:
        node = stack.pop()
        if node.id in needed:
            continue
        needed.add(node.id)
        for v in node.inputs:
            if type(v) is Output:
                stack.append(v.node)
        stack.extend(node.control)
    return Subgraph([n for n in nodes if n.id in needed], list(outputs), list(effects))


@dataclass
class Program:
    """A compiled schedule: ``run(feed_values)`` returns the outputs' values."""

    subgraph: Subgraph
    source: str
    fn: Any
    states: list[Any]
    constants: list[Any]
    plan: Any = None
    report: Any = None
    #: Variable states that ``call`` nodes write without the program reading them (the
    #: parameters of an optimizer step): initialized before the first run, as ``states`` are.
    updates: list[Any] = field(default_factory=list)
    #: The shapes fed in the last run: sizes the memory report cannot know from the graph alone.
    feed_shapes: list | None = None

    def run(self, feed_values: list[Any]) -> tuple:
        self.feed_shapes = [getattr(v, "shape", None) for v in feed_values]
        return self.fn(feed_values, self.states, self.constants)


_IDENT = re.compile(r"[^0-9a-zA-Z_]")


def _local_names(nodes: list[Node]) -> dict[Output, str]:
    """A readable, unique Python identifier for every value."""
    names: dict[Output, str] = {}
    used: set[str] = set()
    for node in nodes:
        for out in node.outputs:
            base = _IDENT.sub("_", out.name)
            if not base or base[0].isdigit() or keyword.iskeyword(base):
                base = "v_" + base
            name, k = base, 1
            while name in used or name in _RESERVED:
                k += 1
                name = f"{base}_{k}"
            used.add(name)
            names[out] = name
    return names


_RESERVED = {"feeds", "S", "C", "F", "A", "np", "_as_array", "_assign"}


def _as_array(x: Any) -> Any:
    # An op may return a NumPy scalar (a full reduction); eager ``finish`` makes it a 0-d array.
    if type(x) is not np.ndarray and isinstance(x, np.generic):
        return np.asarray(x)
    return x


def _assign(state: Any, value: Any) -> Any:
    """Write ``value`` into a variable's storage (in place, so every alias sees it)."""
    storage = state.storage
    data = storage._data
    if data is not value:
        np.copyto(data, value, casting="unsafe")
    vc = storage._version_counter()
    vc[0] += 1
    state.initialized = True
    return data


def compile_program(sub: Subgraph, feeds: list[Output], plan: Any = None) -> Program:
    """Generate the straight-line function for ``sub`` (already pruned and optimized).

    ``feeds`` are the values supplied at run time, in ``feed_values`` order. ``plan`` (from
    ``memory.plan``) says where values die and which buffers are reused; without one, each
    value is deleted after its last use.
    """
    from . import memory

    if plan is None:
        plan = memory.plan(sub, feeds)
    names = _local_names(sub.nodes)
    feed_index = {f: i for i, f in enumerate(feeds)}
    states: list[Any] = []
    constants: list[Any] = []
    functions: dict[str, Any] = {}
    lines = ["def program(feeds, S, C):"]

    def ref(v: Any) -> str:
        if type(v) is Output:
            return names[v]
        constants.append(v)
        return f"C[{len(constants) - 1}]"

    for step, node in enumerate(sub.nodes):
        out = names[node.output(0)] if node.specs else ""
        fed = bool(node.specs) and node.output(0) in feed_index
        if fed:
            lines.append(f"    {out} = feeds[{feed_index[node.output(0)]}]")
        elif node.kind == "placeholder":
            raise GraphError(f"placeholder '{node.name}' must be fed (built at {node.source})")
        elif node.kind == "variable":
            states.append(node.payload)
            lines.append(f"    {out} = S[{len(states) - 1}].storage._data")
        elif node.kind == "constant":
            lines.append(f"    {out} = {ref(node.payload)}")
        elif node.kind == "assign":
            states.append(node.payload)
            lines.append(f"    {out} = _assign(S[{len(states) - 1}], {ref(node.inputs[0])})")
        elif node.kind == "call":
            fname = f"call_{len(functions)}"
            functions[fname] = node.payload
            args = ", ".join(ref(v) for v in node.inputs)
            targets = ", ".join(names[o] for o in node.outputs)
            lines.append(f"    {targets + ' = ' if targets else ''}{fname}({args})")
        else:
            lines.append("    " + memory.emit_op(node, names, ref, functions, plan, step))
        for dead in plan.dead_after(step):
            if dead in names and dead not in sub.outputs:
                lines.append(f"    del {names[dead]}")
    results = ", ".join(names[o] for o in sub.outputs)
    lines.append(f"    return ({results}{',' if len(sub.outputs) == 1 else ''})")
    source = "\n".join(lines) + "\n"
    # ``__name__`` attributes the program's NumPy warnings to minidl, which silences them as it
    # does for eager ops (see minidl/__init__.py): inf and nan arise silently in both modes.
    namespace: dict[str, Any] = {"__name__": __name__, "np": np, "_as_array": _as_array, "_assign": _assign}
    namespace.update(functions)
    try:
        exec(compile(source, "<minidl program>", "exec"), namespace)
    except SyntaxError as err:  # pragma: no cover - a bug in the generator
        raise GraphError(f"internal error generating the program:\n{source}") from err
    return Program(sub, source, namespace["program"], states, constants, plan)
