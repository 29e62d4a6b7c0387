"""``Session``: run parts of a graph (TensorFlow 1's ``tf.Session``).

``session.run(fetches, feed_dict)`` computes the fetched values from the fed ones. Fetches may
be a symbolic tensor (its value comes back as a NumPy array), a node such as a train op or an
initializer (run for its effect; ``None`` comes back), a tensor's name, or any nesting of
lists, tuples and dicts of these (the result has the same structure).

Each distinct (fetches, feeds) pair is compiled once into a ``Program`` (``program.py``): only
the subgraph the fetches need, optimized at the session's level, planned and turned into a
straight-line function. Later runs call that function directly.

Optimization levels: ``0`` prunes only; ``1`` (the default) adds dead-code elimination,
common-subexpression elimination, constant folding and algebraic simplification -- all exact,
so results are bitwise those of eager code; ``2`` adds elementwise fusion, which may
reassociate floating-point arithmetic (results then match within rounding).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..tensor import Tensor
from .ir import Graph, GraphError, Node, Output, get_default_graph
from .nest import flatten, unflatten
from .program import Program, Subgraph, compile_program, prune
from .symbolic import SymbolicTensor

__all__ = ["Session"]


class Session:
    """Runs fetches of one graph. Use as a context manager, or call ``close()``."""

    def __init__(self, graph: Graph | None = None, optimize: int = 1) -> None:
        self.graph = graph or get_default_graph()
        if optimize not in (0, 1, 2):
            raise ValueError(f"Session: optimize must be 0, 1 or 2, got {optimize!r}")
        self.optimize = optimize
        self._programs: dict[Any, Program] = {}
        self._last: Program | None = None
        self._closed = False

    # ---- context manager -------------------------------------------------------------------

    def __enter__(self) -> Session:
        self._default = self.graph.as_default()
        self._default.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._default.__exit__(*exc)
        self.close()

    def close(self) -> None:
        self._programs.clear()
        self._closed = True

    # ---- running ---------------------------------------------------------------------------

    def run(self, fetches: Any, feed_dict: dict | None = None) -> Any:
        """Compute ``fetches`` (a tensor, node, name, or nested list/tuple/dict of them)."""
        program, feed_values, rebuild = self._prepare(fetches, feed_dict)
        values = program.run(feed_values)
        return rebuild(list(values))

    def _prepare(self, fetches: Any, feed_dict: dict | None) -> tuple[Program, list, Any]:
        if self._closed:
            raise GraphError("Session.run: the session is closed")
        leaves: list[Any] = []
        template = flatten(fetches, leaves)
        outputs, effects, slots = [], [], []
        for leaf in leaves:
            item = self._resolve_fetch(leaf)
            if type(item) is Output:
                slots.append(len(outputs))
                outputs.append(item)
            else:
                slots.append(None)
                effects.append(item)
        feeds, feed_values = self._resolve_feeds(feed_dict or {})
        key = (tuple(outputs), tuple(n.id for n in effects), tuple(feeds), self.graph.version, self.optimize)
        program = self._programs.get(key)
        if program is None:
            program = self._compile(outputs, effects, feeds)
            self._programs[key] = program
        self._last = program
        self._initialize(program, feed_dict)
        copies = {i for i, o in enumerate(outputs) if _aliases_state(o)}

        def rebuild(values: list) -> Any:
            results = []
            for s in slots:
                if s is None:
                    results.append(None)
                    continue
                v = values[s]
                results.append(v.copy() if s in copies else v)
            return unflatten(template, iter(results))

        return program, feed_values, rebuild

    def _resolve_fetch(self, leaf: Any) -> Output | Node:
        if isinstance(leaf, str):
            name = leaf
            if ":" in name or "." in name:
                leaf = self.graph.get_tensor_by_name(name)
            else:
                node = self.graph.get_operation_by_name(name)
                return node if node.has_effect or not node.specs else node.output(0)
        if type(leaf) is SymbolicTensor:
            if leaf._graph is not self.graph:
                raise GraphError(
                    f"Session.run: fetch {leaf._describe()} belongs to another graph than this session's; "
                    "create the session with that graph (Session(graph)) or build the tensor in this one"
                )
            return leaf._ref
        if isinstance(leaf, Node):
            if leaf.graph is not self.graph:
                raise GraphError(f"Session.run: fetch {leaf!r} belongs to another graph than this session's")
            return leaf if (leaf.has_effect or not leaf.specs) else leaf.output(0)
        if isinstance(leaf, Tensor):
            raise TypeError(
                "Session.run: cannot fetch an eager tensor; it already has its value (use .numpy()). Fetch "
                "symbolic tensors of the session's graph"
            )
        raise TypeError(f"Session.run: cannot fetch a {type(leaf).__name__}; fetch tensors or ops of the graph")

    def _resolve_feeds(self, feed_dict: dict) -> tuple[list[Output], list[Any]]:
        feeds, values = [], []
        for key, value in feed_dict.items():
            if isinstance(key, str):
                key = self.graph.get_tensor_by_name(key)
            if type(key) is not SymbolicTensor:
                raise TypeError(
                    f"Session.run: feed_dict keys must be placeholders (or other symbolic tensors) of the graph, "
                    f"got {type(key).__name__}"
                )
            if key._graph is not self.graph:
                raise GraphError(f"Session.run: fed tensor {key._describe()} belongs to another graph")
            feeds.append(key._ref)
            values.append(_check_feed(key, value))
        return feeds, values

    def _compile(self, outputs: list[Output], effects: list[Node], feeds: list[Output]) -> Program:
        from . import passes

        nodes = self.graph.nodes
        feed_set = set(feeds)
        sub, feed_map = _prune_with_feeds(nodes, outputs, effects, feed_set)
        feeds = [feed_map[f] for f in feeds]
        feed_set = set(feeds)
        missing = [n for n in sub.nodes if n.kind == "placeholder" and n.output(0) not in feed_set]
        if missing:
            listed = ", ".join(f"'{n.name}' (shape {_fmt(n.specs[0].shape)}, {n.specs[0].dtype.name})" for n in missing)
            raise GraphError(
                f"Session.run: the fetches need placeholders that were not fed: {listed}. Pass them in "
                f"feed_dict={{{', '.join(n.name for n in missing)}: ...}}"
            )
        sub, report = passes.optimize(sub, self.optimize, protected=feed_set)
        program = compile_program(sub, feeds)
        program.report = report
        stepped = {id(p) for n in sub.nodes if n.kind == "call" for p in getattr(n.payload, "params", ())}
        program.updates = [n.payload for n in self.graph.variables if id(n.payload.storage) in stepped]
        return program

    def _initialize(self, program: Program, feed_dict: dict | None) -> None:
        """Initialize, on first use, the variables the program reads or its optimizer steps write."""
        pending = [s for s in (*program.states, *program.updates) if not s.initialized]
        for state in pending:
            init = state.initializer
            if type(init) is SymbolicTensor:
                try:
                    value = self.run(init, feed_dict)
                except GraphError as err:
                    raise GraphError(
                        f"Variable '{state.name}' is used before initialization, and its initial value cannot be "
                        f"computed now: {err}. Run session.run(global_variables_initializer(), feed_dict=...) first"
                    ) from None
            else:
                value = init
            np.copyto(state.storage._data, value, casting="unsafe")
            state.initialized = True

    # ---- introspection ---------------------------------------------------------------------

    def program_for(self, fetches: Any, feed_dict: dict | None = None) -> Program:
        """The compiled program that ``run(fetches, feed_dict)`` would execute."""
        program, _, _ = self._prepare(fetches, feed_dict)
        return program

    def memory_report(self, fetches: Any = None, feed_dict: dict | None = None, file: Any = None) -> Any:
        """Naive vs planned peak bytes and the buffer lifetime table of a program (the last run's
        by default). Returns the report object; prints it too."""
        from .memory import memory_report

        if fetches is None:
            program, shapes = self._last, None
            if program is None:
                raise GraphError("Session.memory_report: nothing has run yet; pass fetches= and feed_dict=")
        else:
            program, feed_values, _ = self._prepare(fetches, feed_dict)
            shapes = [np.shape(v) for v in feed_values]
        return memory_report(program, file=file, feed_shapes=shapes)

    def step(self, fetches: Any, feed_dict: dict | None = None) -> Iterator[Any]:
        """Run ``fetches`` one node at a time, yielding a record per node (inputs, output,
        buffer, live bytes): the step-through executor, for studying a program."""
        from .stepper import step_through

        program, feed_values, _ = self._prepare(fetches, feed_dict)
        return step_through(program, feed_values)


def _prune_with_feeds(
    nodes: list[Node], outputs: list[Output], effects: list[Node], fed: set[Output]
) -> tuple[Subgraph, dict[Output, Output]]:
    """Prune, treating fed values as inputs: nothing upstream of a fed value is needed for it.

    Feeding an intermediate value (TensorFlow allows it) replaces the node that computes it
    by a placeholder of the same name and shape, and its consumers by copies that read the
    placeholder. Returns the subgraph and the map from each fed value to the value the
    program reads for it.
    """
    replaced: dict[Output, Output] = {}
    stand_ins: list[Node] = []
    for out in fed:
        if out.node.kind != "placeholder":
            stand_in = Node(None, "placeholder", out.node.name, (out.spec,), source=out.node.source)
            replaced[out] = stand_in.output(0)
            stand_ins.append(stand_in)
    if not replaced:
        return prune(nodes, outputs, effects), {f: f for f in fed}

    def remap(v: Any) -> Any:
        return replaced.get(v, v) if type(v) is Output else v

    copies: dict[int, Node] = {}
    rewritten: list[Node] = []
    for node in nodes:
        if any(type(v) is Output and v in replaced for v in node.inputs):
            copy = node.replace(inputs=tuple(remap(v) for v in node.inputs))
            for i in range(len(node.specs)):
                replaced.setdefault(Output(node, i), Output(copy, i))  # a fed value keeps its stand-in
            copies[node.id] = copy
            node = copy
        rewritten.append(node)
    sub = prune(stand_ins + rewritten, [remap(o) for o in outputs], [copies.get(e.id, e) for e in effects])
    return sub, {f: remap(f) for f in fed}


def _check_feed(key: SymbolicTensor, value: Any) -> Any:
    spec = key._ref.spec
    if isinstance(value, Tensor):
        if type(value) is SymbolicTensor:
            raise TypeError(f"Session.run: the value fed for {key._describe()} is itself symbolic; feed an array")
        value = value._data
    if not isinstance(value, np.ndarray):
        value = np.asarray(value, dtype=spec.dtype.np)
    elif value.dtype != spec.dtype.np:
        raise TypeError(
            f"Session.run: the value fed for '{key.name}' has dtype {value.dtype}, but the placeholder is "
            f"{spec.dtype.name}; convert it first (value.astype(np.{spec.dtype.np.name}))"
        )
    shape = spec.shape
    if value.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, value.shape)):
        raise ValueError(
            f"Session.run: cannot feed a value of shape {tuple(value.shape)} for '{key.name}', which has shape "
            f"{_fmt(shape)}"
        )
    return value


def _aliases_state(out: Output) -> bool:
    """Whether a fetched value may share memory with a variable (then the caller gets a copy)."""
    node = out.node
    while True:
        if node.kind in ("variable", "assign"):
            return True
        if node.kind == "op" and node.op.is_view and type(node.inputs[0]) is Output:
            node = node.inputs[0].node
            continue
        return False


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
