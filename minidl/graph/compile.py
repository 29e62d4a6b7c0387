"""``minidl.compile``: trace eager code into the static graph, once per input signature.

    step = minidl.compile(train_step)      # or @minidl.compile, or minidl.compile(model)
    loss = step(x, y)                      # first call: trace, optimize, generate; later: run

On a call, the arguments' *signature* is computed: for each tensor its shape, dtype and
``requires_grad``; every other argument is *static* (its value is part of the signature, so
it must be hashable); and whether grad mode is on. A signature seen before runs its compiled
program directly. A new one is traced: the function runs once on symbolic tensors
(``trace.py``), the graph is optimized and turned into a flat program (``program.py``), and a
``RetraceWarning`` says which argument changed. Programs are also *guarded* by what the trace
assumed about the world outside the arguments: the ``training`` flag of every module that
ran, and whether parameters (and arguments that require grad) already held a ``.grad``.

What a trace can and cannot see:

* every minidl op, module, loss, ``backward()`` and ``optimizer.step()`` -- these become the
  program, so a whole training step compiles into one call; random draws (dropout, ``randn``)
  happen on every call, in eager's order, so a seeded run draws eager's numbers; an in-place
  change of an argument is written back after each call; a compiled function called inside
  another one becomes part of its graph;
* Python control flow runs once, at trace time. Branching on a *traced value* (``if loss >
  0:``) raises a ``TracingError`` naming the line; use ``minidl.cond`` or a static argument;
* Python side effects (appending to a list) also happen only at trace time; mutating a list
  or dict the function can reach raises an error instead of silently running once.

The compiled callable is a drop-in: it returns tensors, and when it does not run backward
itself (a compiled forward), its outputs are recorded on the eager tape so ``loss.backward()``
works. As eager autograd does, the forward then also returns the values its gradients will
read (the trace builds each output's gradient graph up front to know which), and the gradient
program, compiled on first use, starts from those instead of recomputing the forward. There is
one gradient program per output: a loss on a single output gets eager's gradients bitwise, a
loss combining several outputs of one call the same up to rounding.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any

from ..tape import Node as TapeNode
from ..tape import grad_state
from ..tensor import Tensor
from . import passes
from .build import symbol_for
from .gradients import gradients
from .ir import Graph, Output
from .nest import flatten, unflatten
from .program import Program, compile_program, prune
from .symbolic import SymbolicTensor, TracingError
from .trace import Tracer, current_tracer
from .variables import placeholder

__all__ = ["compile", "CompiledFunction", "RetraceWarning"]


class RetraceWarning(UserWarning):
    """A compiled function was traced again; the message says which argument changed."""


def compile(fn: Callable | None = None, *, optimize: int = 1, warn_on_retrace: bool = True) -> Any:  # noqa: A001
    """Compile ``fn`` (a function or an ``nn.Module``) into static-graph programs.

    ``optimize`` is the level of the graph compiler (0: none, 1: exact passes, results
    bitwise equal to eager; 2: also elementwise fusion). Usable as ``@minidl.compile`` or
    ``@minidl.compile(optimize=2)``.
    """
    if fn is None:
        return lambda f: CompiledFunction(f, optimize, warn_on_retrace)
    return CompiledFunction(fn, optimize, warn_on_retrace)


class _Entry:
    """One traced signature: its graph, program and what it needs at call time."""

    def __init__(self) -> None:
        self.graph: Graph | None = None
        self.program: Program | None = None
        self.placeholders: list[SymbolicTensor] = []
        self.out_template: Any = None
        self.n_outputs = 0
        self.out_values: list[Any] = []  # per flat output: Output index or an eager value
        self.grad_writes: list[tuple[Any, int]] = []  # (leaf or argument index, program output index)
        self.guards: list[tuple[str, Any, Any]] = []
        self.records_tape = False
        self.diff_states: list[Any] = []  # captured trainable variable states (for the tape)
        self.backward_programs: dict[int, tuple[Program, list]] = {}
        self.grad_resets: list[Any] = []
        self.grad_feeds: list[int] = []  # arguments whose .grad on entry the program reads (accumulation)
        self.arg_writes: list[tuple[int, int]] = []  # (argument changed in place, program output index)
        # A compiled forward that records on the tape saves what its gradient programs read,
        # as eager autograd saves activations: per differentiable output k, the seed placeholder
        # and the (input position, gradient) pairs; and the forward values the programs read.
        self.backward_graphs: dict[int, tuple[Output, list[tuple[int, Output]]]] = {}
        self.saved: list[Output] = []
        self.saved_index = 0  # where the saved values start among the program's outputs


class CompiledFunction:
    """The callable ``minidl.compile`` returns (see the module docstring)."""

    def __init__(self, fn: Callable, optimize: int, warn_on_retrace: bool) -> None:
        if not callable(fn):
            raise TypeError(f"minidl.compile: expected a function or a module, got {type(fn).__name__}")
        if optimize not in (0, 1, 2):
            raise ValueError(f"minidl.compile: optimize must be 0, 1 or 2, got {optimize!r}")
        self.fn = fn
        self.optimize = optimize
        self.warn_on_retrace = warn_on_retrace
        self._cache: dict[Any, list[_Entry]] = {}
        self._last_key: Any = None
        self._last_described: Any = None
        self.retraces: list[str] = []  # the reason of each trace after the first
        self.traces = 0
        self._arg_names = _positional_names(fn)
        functools.update_wrapper(self, fn, updated=())

    # ---- calling ---------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_tracer() is not None:  # inside another compiled function: part of its graph
            return self.fn(*args, **kwargs)
        tensors: list[Tensor] = []
        described: list[tuple[str, Any]] = []
        key = (_signature(args, kwargs, tensors, described, self._arg_names), grad_state.enabled)
        entry = None
        for candidate in self._cache.get(key, ()):
            if _guards_hold(candidate, tensors):
                entry = candidate
                break
        if entry is None:
            reason = self._why(key, described, tensors)
            entry = self._trace(args, kwargs, tensors, [name for name, sig in described if sig[0] == "tensor"])
            self._cache.setdefault(key, []).append(entry)
            if reason is not None:
                self.retraces.append(reason)
                if self.warn_on_retrace:
                    warnings.warn(f"minidl.compile: retracing {self._name()}: {reason}", RetraceWarning, stacklevel=2)
        self._last_key, self._last_described = key, described
        return self._run(entry, tensors)

    def _name(self) -> str:
        fn = self.fn
        return getattr(fn, "__qualname__", None) or type(fn).__name__

    def _why(self, key: Any, described: list, tensors: list[Tensor]) -> str | None:
        if self.traces == 0:
            return None
        if key in self._cache:
            # against the most recent program of this signature: what changed since it ran
            entries = reversed(self._cache[key])
            failed = [_describe_guard(g) for e in entries for g in e.guards if not _guard_holds(g, tensors)]
            return failed[0] if failed else "a guard of the cached program failed"
        old = self._last_described or []
        if self._last_key is not None and self._last_key[1] != key[1]:
            return f"grad mode changed from {self._last_key[1]} to {key[1]}"
        for (name, before), (name2, after) in zip(old, described):
            if name != name2:
                break
            if before != after:
                return f"argument {name}: {_fmt(before)} -> {_fmt(after)}"
        else:
            if len(old) == len(described):
                return "a new input signature"
        names = [", ".join(name for name, _ in d) for d in (old, described)]
        return f"the arguments changed from ({names[0]}) to ({names[1]})"

    # ---- tracing ---------------------------------------------------------------------------

    def _trace(self, args: tuple, kwargs: dict, tensors: list[Tensor], names: list[str]) -> _Entry:
        self.traces += 1
        entry = _Entry()
        graph = Graph()
        entry.graph = graph
        tracer = Tracer(graph)
        snapshots = _snapshot_containers(self.fn)
        with graph.as_default():
            symbols = []
            grad_fed = []
            for i, t in enumerate(tensors):
                sym = placeholder(tuple(t.shape), t.dtype, name=f"arg{i}")
                if t._rg:
                    sym._rg = True
                    if t._grad is not None:
                        # a traced backward accumulates into it: the program reads it as fed
                        sym._grad = placeholder(tuple(t.shape), t.dtype, name=f"arg{i}_grad")
                        grad_fed.append(sym._grad)
                        entry.grad_feeds.append(i)
                symbols.append(sym)
                tracer.placeholder_symbols[sym._ref.node.id] = sym
            # the placeholders themselves: an in-place op in fn rebinds its symbol to a new value
            entry.placeholders = [symbol_for(s._ref, s._rg) for s in symbols]
            it = iter(symbols)
            sym_args = _substitute(args, it)
            sym_kwargs = _substitute(kwargs, it)
            fn = self.fn
            if hasattr(fn, "named_parameters"):
                for name, p in fn.named_parameters():
                    graph.name_hints.setdefault(id(p), name)
                for name, b in fn.named_buffers():
                    graph.name_hints.setdefault(id(b), name)
                graph._named_modules.add(id(fn))
                tracer.modules[id(fn)] = fn
            try:
                with tracer:
                    result = fn(*sym_args, **sym_kwargs)
            except BaseException:
                _restore_grads(tracer)
                raise
        _check_containers(snapshots, self._name())
        leaves: list[Any] = []
        entry.out_template = flatten(result, leaves)
        outputs: list[Output] = []
        for leaf in leaves:
            if type(leaf) is SymbolicTensor:
                if leaf._graph is not graph:
                    raise TracingError(f"minidl.compile: {self._name()} returned a symbolic tensor of another graph")
                entry.out_values.append(len(outputs))
                outputs.append(leaf._ref)
            else:
                entry.out_values.append(("value", leaf))
        entry.n_outputs = len(outputs)
        traced_backward = bool(tracer.grad_writes) or any(_is_step(n) for n in graph.nodes)
        # gradients the program hands back to parameters (and to arguments that require grad)
        positions = {id(s): i for i, s in enumerate(symbols)}
        for leaf, g in tracer.grad_writes.values():
            if type(leaf._grad) is SymbolicTensor:  # rebound since backward (gradient clipping)
                g = leaf._grad
            target = ("arg", positions[id(leaf)]) if type(leaf) is SymbolicTensor else leaf
            entry.grad_writes.append((target, len(outputs)))
            outputs.append(g._ref)
        entry.grad_resets = [leaf for leaf, _ in tracer.originals.values() if id(leaf) not in tracer.grad_writes]
        _restore_grads(tracer)
        for i, (sym, fed) in enumerate(zip(symbols, entry.placeholders)):
            if sym._ref != fed._ref:  # changed in place: the program writes the new value back, as eager
                if sym._rg:
                    raise TracingError(
                        f"minidl.compile: {self._name()} changed its argument {names[i]}, which requires grad, in "
                        "place; use an out-of-place op (x = x + 1 instead of x.add_(1))"
                    )
                entry.arg_writes.append((i, len(outputs)))
                outputs.append(sym._ref)
        for i, sym in enumerate(symbols):
            if sym._rg and id(sym) in tracer.originals and id(sym) not in tracer.reset:
                entry.guards.append(("arg_grad", (i, names[i]), tensors[i]._grad is not None))
        for module in tracer.modules.values():
            entry.guards.append(("training", module, module.training))
        for leaf, had in tracer.entry_grad_guards.values():
            entry.guards.append(("grad", leaf, had))
        # Random draws run even when unused, so that later draws are the numbers eager code gets.
        effects = [
            n
            for n in graph.nodes
            if (n.has_effect and n.kind != "call") or _is_step(n) or (n.kind == "op" and n.stateful)
        ]
        feeds = [s._ref for s in entry.placeholders] + [g._ref for g in grad_fed]
        sub = prune(graph.nodes, outputs, effects)
        entry.diff_states = [n.payload for n in graph.variables if n.payload.trainable]
        if not traced_backward and grad_state.enabled:
            self._build_backward(entry, sub, outputs)
            if entry.saved:  # (random draws such as dropout masks among them: nothing is redrawn)
                entry.saved_index = len(outputs)
                outputs = outputs + entry.saved
                sub = prune(graph.nodes, outputs, effects)
        sub, report = passes.optimize(sub, self.optimize, protected=set(feeds))
        entry.program = compile_program(sub, feeds)
        entry.program.report = report
        entry.records_tape = not traced_backward
        entry.diff_states = [n.payload for n in graph.variables if n.payload.trainable]
        return entry

    # ---- running ---------------------------------------------------------------------------

    def _run(self, entry: _Entry, tensors: list[Tensor]) -> Any:
        feeds = [t._data for t in tensors]
        for i in entry.grad_feeds:  # None where the guards say the program does not read it
            g = tensors[i]._grad
            feeds.append(None if g is None else g._data)
        values = entry.program.run(feeds)
        recording = entry.records_tape and grad_state.enabled
        saved = list(values[entry.saved_index : entry.saved_index + len(entry.saved)]) if recording else []
        for i, index in entry.arg_writes:
            t = tensors[i]
            if recording:  # a saved argument keeps the value the call saw
                saved = [t._data.copy() if v is t._data else v for v in saved]
            t._data[...] = values[index]
            t._version_counter()[0] += 1
        for leaf in entry.grad_resets:
            leaf._grad = None
        if entry.grad_writes:
            owned = own_gradients([values[index] for _, index in entry.grad_writes])
            for (target, _), value in zip(entry.grad_writes, owned):
                leaf = tensors[target[1]] if type(target) is tuple else target
                leaf._grad = Tensor._wrap(value)
        results = []
        for item in entry.out_values:
            if type(item) is tuple:
                results.append(item[1])
            else:
                results.append(Tensor._wrap(values[item]))
        if recording:
            self._record(entry, tensors, results, saved)
        return unflatten(entry.out_template, iter(results))

    def _record(self, entry: _Entry, tensors: list[Tensor], results: list[Any], saved: list[Any]) -> None:
        """Put each float output on the eager tape, so that ``backward()`` reaches the inputs."""
        params = [s.storage for s in entry.diff_states]
        inputs = tuple(tensors) + tuple(params)
        edges = tuple((x._node or x) if x._rg else None for x in inputs)
        if not any(e is not None for e in edges):
            return
        versions = tuple(x._version for x in inputs)
        for pos, item in enumerate(entry.out_values):
            if type(item) is tuple:
                continue
            t = results[pos]
            if t._data.dtype.kind != "f":
                continue
            node = TapeNode(
                CompiledOutput,
                inputs,
                {"fn": self, "entry": entry, "k": item, "saved": saved},
                t._data,
                edges,
                versions,
            )
            results[pos] = Tensor._from_node(t._data, node)

    def _build_backward(self, entry: _Entry, forward: Any, outputs: list[Output]) -> None:
        """Build, in the traced graph, the gradient of each float output for the tape, and find
        the forward values those gradients read: the forward program will save them.

        This is what eager autograd does: the forward keeps what backward needs, and backward
        never recomputes the forward. ``backward_program`` compiles these graphs on first use.
        """
        graph = entry.graph
        forward_ids = {n.id for n in forward.nodes}
        # Gradients only for what can receive one: arguments that require grad (part of the
        # signature) and the trainable variables. An argument such as the input batch gets none,
        # which saves the largest matmul of a first layer's backward.
        n_args = len(entry.placeholders)
        positions = [i for i, s in enumerate(entry.placeholders) if s._rg]
        positions += [n_args + j for j in range(len(entry.diff_states))]
        with graph.as_default():
            xs = [s for s in entry.placeholders if s._rg] + [
                symbol_for(graph.captures[id(s.storage)][1]) for s in entry.diff_states
            ]
            for k in range(entry.n_outputs):
                out = outputs[k]
                if out.spec.dtype.category != 2:
                    continue
                y = symbol_for(out, True)
                seed = placeholder(tuple(y.shape), y.dtype, name=f"seed{k}")
                grads = gradients([y], xs, grad_ys=[seed], create_graph=False)
                wanted = [(positions[i], g._ref) for i, g in enumerate(grads) if g is not None]
                entry.backward_graphs[k] = (seed._ref, wanted)
        saved: dict[Output, None] = {}
        needed = prune(graph.nodes, [g for _, w in entry.backward_graphs.values() for _, g in w], [])
        for node in needed.nodes:
            if node.id in forward_ids:
                continue
            for v in node.inputs:
                if type(v) is Output and v.node.id in forward_ids:
                    saved[v] = None
        entry.saved = list(saved)

    def backward_program(self, entry: _Entry, k: int) -> tuple[Program, list]:
        """The program computing every input's gradient of output ``k`` from a seed and the
        values the forward saved (compiled on first use, then cached)."""
        cached = entry.backward_programs.get(k)
        if cached is not None:
            return cached
        from .session import _prune_with_feeds

        seed, wanted = entry.backward_graphs[k]
        feeds = [seed, *entry.saved]
        sub, feed_map = _prune_with_feeds(entry.graph.nodes, [g for _, g in wanted], [], set(feeds))
        feeds = [feed_map[f] for f in feeds]
        sub, _ = passes.optimize(sub, self.optimize, protected=set(feeds))
        entry.backward_programs[k] = (compile_program(sub, feeds), [i for i, _ in wanted])
        return entry.backward_programs[k]

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def __repr__(self) -> str:
        return f"<minidl.compile of {self._name()}: {self.traces} trace(s)>"

    # ---- inspection ------------------------------------------------------------------------

    def entries(self) -> list[_Entry]:
        return [e for entries in self._cache.values() for e in entries]

    @property
    def graph(self) -> Graph:
        """The graph of the most recent trace (``compiled.graph.print()`` to read it)."""
        entries = self.entries()
        if not entries:
            raise TracingError("minidl.compile: nothing has been traced yet; call the compiled function first")
        return entries[-1].graph

    @property
    def program(self) -> Program:
        """The program of the most recent trace (``compiled.program.source`` to read it)."""
        entries = self.entries()
        if not entries:
            raise TracingError("minidl.compile: nothing has been traced yet; call the compiled function first")
        return entries[-1].program


class CompiledOutput:
    """The tape op of one output of a compiled call: its rule runs the generated gradient program."""

    name = "Compiled"
    label = "compiled"
    differentiable = True
    is_view = False

    @staticmethod
    def vjp(ctx: TapeNode, g: Tensor) -> tuple:
        if grad_state.enabled:
            raise RuntimeError(
                "backward(create_graph=True) through a compiled function is not supported; compile the "
                "function that computes the higher-order gradient instead"
            )
        fn, entry, k = ctx.attrs["fn"], ctx.attrs["entry"], ctx.attrs["k"]
        program, positions = fn.backward_program(entry, k)
        inputs = ctx.inputs  # (checks that none was changed in place since the call)
        values = program.run([g._data] + ctx.attrs["saved"])
        grads: list[Any] = [None] * len(inputs)
        for pos, value in zip(positions, values):
            grads[pos] = Tensor._wrap(value)
        return tuple(grads)


def _is_step(node: Any) -> bool:
    return node.kind == "call" and getattr(node.payload, "is_effect", False)


# ---- signatures --------------------------------------------------------------------------------


def _positional_names(fn: Any) -> list[str]:
    """The names of ``fn``'s positional parameters (a module's ``forward``'s), for messages."""
    target = fn.forward if hasattr(fn, "_parameters") and hasattr(fn, "forward") else fn
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in parameters if p.kind in kinds]


def _signature(args: tuple, kwargs: dict, tensors: list, described: list, names: list[str] = ()) -> tuple:
    parts = [_sig(a, names[i] if i < len(names) else f"{i}", tensors, described) for i, a in enumerate(args)]
    parts += [(k, _sig(v, k, tensors, described)) for k, v in sorted(kwargs.items())]
    return tuple(parts)


def _sig(value: Any, name: str, tensors: list, described: list) -> Any:
    if isinstance(value, Tensor):
        if type(value) is SymbolicTensor:
            raise TracingError("minidl.compile: a compiled function was called with a symbolic tensor")
        tensors.append(value)
        sig = ("tensor", tuple(value.shape), value.dtype.name, value._rg)
        described.append((name, sig))
        return sig
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_sig(v, f"{name}[{i}]", tensors, described) for i, v in enumerate(value)))
    if isinstance(value, dict):
        return ("dict", tuple((k, _sig(v, f"{name}[{k!r}]", tensors, described)) for k, v in sorted(value.items())))
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"minidl.compile: argument {name} is a {type(value).__name__}, which is neither a tensor nor hashable; "
            "static arguments are part of the cache key and must be hashable (numbers, strings, tuples)"
        ) from None
    sig = ("static", type(value).__name__, value)
    described.append((name, sig))
    return sig


def _fmt(sig: Any) -> str:
    if sig[0] == "tensor":
        rg = ", requires_grad" if sig[3] else ""
        return f"tensor{sig[1]} {sig[2]}{rg}"
    return f"{sig[2]!r}"


def _guard_holds(guard: tuple, tensors: list[Tensor]) -> bool:
    kind, obj, expected = guard
    if kind == "training":
        return obj.training == expected
    if kind == "arg_grad":
        return (tensors[obj[0]]._grad is not None) == expected
    return (obj._grad is not None) == expected


def _guards_hold(entry: _Entry, tensors: list[Tensor]) -> bool:
    for guard in entry.guards:
        if not _guard_holds(guard, tensors):
            return False
    return True


def _describe_guard(guard: tuple) -> str:
    kind, obj, expected = guard
    if kind == "training":
        mode = "training" if obj.training else "eval"
        return f"module {type(obj).__name__} is now in {mode} mode (the program was traced in the other)"
    if kind == "arg_grad":
        change = "no longer has a .grad" if expected else "now has a .grad"
        return f"argument {obj[1]} {change}; the traced backward accumulates into it"
    now = "has a .grad" if obj._grad is not None else "has no .grad"
    return (
        f"a parameter of shape {tuple(obj.shape)} now {now}; the program was traced the other way "
        "(call optimizer.zero_grad() inside the compiled step to make this irrelevant)"
    )


# ---- arguments and results ---------------------------------------------------------------------


def _substitute(value: Any, symbols: Any) -> Any:
    if isinstance(value, Tensor):
        return next(symbols)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_substitute(v, symbols) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, symbols) for v in value)
    if isinstance(value, dict):  # in the order _signature visits them: sorted keys
        return {k: _substitute(value[k], symbols) for k in sorted(value)}
    return value


def _restore_grads(tracer: Tracer) -> None:
    """Put back every ``.grad`` the trace touched (it set symbolic ones, or reset them)."""
    for leaf, g in tracer.originals.values():
        leaf._grad = g


def own_gradients(values: list) -> list:
    """Gradient arrays that each own their memory: a program may hand the same array (or a
    read-only view) to two parameters, and optimizers and accumulation write into gradients.
    The same rule as eager ``backward``."""
    claimed: set[int] = set()
    owned = []
    for value in values:
        base = value if value.base is None else value.base
        if id(base) in claimed or not value.flags.writeable:
            value = value.copy()
            base = value
        claimed.add(id(base))
        owned.append(value)
    return owned


# ---- Python side effects -----------------------------------------------------------------------


def _snapshot_containers(fn: Any) -> list[tuple[str, Any, Any]]:
    """Lists, dicts and sets the function can name (globals it uses, closure cells, a module's
    attributes), with a shallow copy of each, to notice mutation during the trace."""
    found: list[tuple[str, Any]] = []
    target = getattr(fn, "forward", fn)
    func = getattr(target, "__func__", target)
    code = getattr(func, "__code__", None)
    if code is not None:
        g = getattr(func, "__globals__", {})
        for name in code.co_names:
            v = g.get(name)
            if isinstance(v, (list, dict, set)):
                found.append((f"global '{name}'", v))
        for name, cell in zip(code.co_freevars, getattr(func, "__closure__", None) or ()):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            if isinstance(v, (list, dict, set)):
                found.append((f"'{name}' (from the enclosing function)", v))
    owner = getattr(fn, "__self__", None) or (fn if hasattr(fn, "_parameters") else None)
    if owner is not None:
        for name, v in vars(owner).items():
            if isinstance(v, (list, dict, set)) and not name.startswith("_"):
                found.append((f"attribute '{name}'", v))
    return [(label, v, _copy(v)) for label, v in found]


def _copy(v: Any) -> list:
    if isinstance(v, dict):
        return [x for item in v.items() for x in item]
    return list(v)


def _check_containers(snapshots: list, fname: str) -> None:
    for label, v, before in snapshots:
        after = _copy(v)
        if len(after) != len(before) or any(a is not b for a, b in zip(after, before)):
            kind = type(v).__name__
            raise TracingError(
                f"minidl.compile: {fname} mutated the Python {kind} {label} while being traced. Python side "
                "effects run once, at trace time, not on every call of the compiled function; return the "
                "values instead (or compute them outside the compiled function)"
            )
