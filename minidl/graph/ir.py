"""The graph IR: nodes in single-assignment form, and the ``Graph`` that holds them.

A graph is a list of ``Node``s in the order they were built, which is always a valid
execution order (a node can only use values that existed when it was made). Each node
produces one or more outputs; an ``Output(node, index)`` names one of them, and is what other
nodes list as inputs. An input that is not an ``Output`` is a *literal*: a Python number, a
tuple, ``None`` -- baked into the node like an attribute.

Node kinds:

``placeholder``  a value fed at run time (``feed_dict``).
``variable``     reads the current value of a ``VariableState`` (a persistent eager tensor:
                 a ``graph.Variable``, or a module parameter captured into the graph).
``constant``     a fixed array.
``op``           ``op.forward(*inputs, **attrs)`` of a primitive from ``minidl/ops``; ops that
                 save auxiliary arrays for their backward rule (``saves = True``) get one extra
                 output per saved array, named ``node.saved_keys``.
``assign``       writes its input into a variable's storage (a side effect) and outputs it.
``call``         runs a Python callable on its inputs (optimizer steps, gradient write-back):
                 a side effect the compiler never moves, merges or removes while it is wanted.

Nodes are never mutated after they are built; the compiler's passes build new node lists
(see ``passes/``), so the graph a user built is what ``graph.print()`` shows.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

from ..ops.op import Spec

__all__ = ["Output", "Node", "Graph", "get_default_graph", "reset_default_graph", "GraphError"]


class GraphError(RuntimeError):
    """Misuse of a graph: growing a finalized graph, mixing graphs, unfed placeholders, ..."""


class Output(NamedTuple):
    """Output ``index`` of ``node``: the unit of data flow in the IR."""

    node: Node
    index: int

    @property
    def spec(self) -> Spec:
        return self.node.specs[self.index]

    @property
    def name(self) -> str:
        node = self.node
        if self.index == 0:
            return node.name
        return f"{node.name}.{node.saved_keys[self.index - 1]}"

    def __repr__(self) -> str:
        return f"%{self.name}"

    # identity semantics: two Outputs are equal only if they name the same node's same output
    def __eq__(self, other: object) -> bool:
        return type(other) is Output and other.node is self.node and other.index == self.index

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((id(self.node), self.index))


class Node:
    """One operation of the graph. See the module docstring for the kinds."""

    __slots__ = (
        "id",
        "name",
        "kind",
        "op",
        "inputs",
        "attrs",
        "specs",
        "saved_keys",
        "source",
        "payload",
        "control",
        "stateful",
        "graph",
    )

    def __init__(
        self,
        graph: Graph | None,
        kind: str,
        name: str,
        specs: tuple,
        op: Any = None,
        inputs: tuple = (),
        attrs: dict | None = None,
        saved_keys: tuple = (),
        source: str = "",
        payload: Any = None,
        control: tuple = (),
        stateful: bool = False,
    ) -> None:
        self.graph = graph
        self.id = next(_ids)
        self.kind = kind
        self.name = name
        self.specs = tuple(specs)
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = attrs or {}
        self.saved_keys = tuple(saved_keys)
        self.source = source
        self.payload = payload
        self.control = tuple(control)
        # Stateful nodes (random draws, side effects, variable reads) must never be merged,
        # folded or reordered across the writes that affect them.
        self.stateful = (
            stateful or kind in ("assign", "call", "variable", "placeholder") or bool(getattr(op, "stateful", False))
        )

    # ---- outputs -------------------------------------------------------------------------------

    def output(self, index: int = 0) -> Output:
        return Output(self, index)

    @property
    def outputs(self) -> tuple[Output, ...]:
        return tuple(Output(self, i) for i in range(len(self.specs)))

    @property
    def input_outputs(self) -> tuple[Output, ...]:
        """The inputs that are graph values (not literals)."""
        return tuple(x for x in self.inputs if type(x) is Output)

    @property
    def has_effect(self) -> bool:
        """Whether running the node changes state outside the graph's values."""
        return self.kind in ("assign", "call")

    def op_label(self) -> str:
        if self.kind == "op":
            return self.op.label
        if self.kind == "call":
            return self.payload.label
        return self.kind

    def replace(self, **changes: Any) -> Node:
        """A copy with some fields changed (passes build new nodes, never edit old ones)."""
        fields = {
            "kind": self.kind,
            "name": self.name,
            "specs": self.specs,
            "op": self.op,
            "inputs": self.inputs,
            "attrs": self.attrs,
            "saved_keys": self.saved_keys,
            "source": self.source,
            "payload": self.payload,
            "control": self.control,
            "stateful": self.stateful,
        }
        fields.update(changes)
        return Node(self.graph, **fields)

    def __repr__(self) -> str:
        return f"<Node {self.name}: {self.op_label()}>"


_ids = itertools.count()


class Graph:
    """A static computation graph (TensorFlow 1's ``tf.Graph``).

    Build it under ``with graph.as_default():`` (or use the default graph); run it with a
    ``Session``. ``finalize()`` makes it read-only, so that accidentally building new nodes
    inside a training loop raises instead of growing the graph forever.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._name_counts: dict[str, int] = {}
        self._names: dict[str, Node] = {}
        # Eager tensors used by this graph: id(tensor) -> (tensor, current Output). The Output
        # changes when the graph assigns to the tensor (single assignment: later reads see the
        # assignment's output); the tensor is held so its id stays unique while the graph lives.
        self.captures: dict[int, tuple[Any, Output]] = {}
        self.variables: list[Node] = []
        #: Side effects that layers create while building (BatchNorm's running statistics);
        #: ``Optimizer.minimize`` makes its train op depend on them, as Keras does.
        self.update_ops: list[Node] = []
        #: Readable names for eager tensors this graph may capture (``fc1.weight``), filled in
        #: when a module is called on symbolic inputs.
        self.name_hints: dict[int, str] = {}
        self._named_modules: set[int] = set()
        self.finalized = False
        self.version = 0  # bumped on every new node: sessions recompile when it changes

    # ---- building --------------------------------------------------------------------------

    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        """Make this the graph that ``placeholder``, ``Variable`` and ``constant`` build into."""
        _stack.graphs.append(self)
        try:
            yield self
        finally:
            _stack.graphs.pop()

    def unique_name(self, base: str) -> str:
        base = base.replace(":", "_")
        if base not in self._names and base not in self._name_counts:
            self._name_counts[base] = 0
            return base
        n = self._name_counts.get(base, 0)
        while True:
            n += 1
            candidate = f"{base}_{n}"
            if candidate not in self._names:
                self._name_counts[base] = n
                return candidate

    def add(self, node: Node) -> Node:
        if self.finalized:
            raise GraphError(
                f"graph is finalized and cannot be modified: building {node.op_label()} '{node.name}' at "
                f"{node.source}. Build every op before the training loop (create the train op and "
                "fetches once, then only call session.run inside the loop)"
            )
        node.graph = self
        self.nodes.append(node)
        self._names[node.name] = node
        self.version += 1
        return node

    def finalize(self) -> None:
        """Make the graph read-only: adding a node raises from now on."""
        self.finalized = True

    # ---- lookup ----------------------------------------------------------------------------

    def get_operation_by_name(self, name: str) -> Node:
        try:
            return self._names[name]
        except KeyError:
            raise KeyError(f"the graph has no node named {name!r}") from None

    def get_tensor_by_name(self, name: str) -> Any:
        """The symbolic tensor for ``"node"``, ``"node:0"`` or ``"node.saved_key"``."""
        from .build import symbol_for

        base, _, index = name.partition(":")
        node = self.get_operation_by_name(base.split(".")[0])
        i = int(index) if index else 0
        if "." in base:
            i = 1 + node.saved_keys.index(base.split(".", 1)[1])
        return symbol_for(Output(node, i))

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"<Graph with {len(self.nodes)} nodes>"

    # ---- inspection (defined in inspect.py) -------------------------------------------------

    def print(self, file: Any = None) -> None:
        """Print the IR listing: one line per node (name, op, inputs, shape, dtype, source)."""
        from .inspect import format_nodes

        print(format_nodes(self.nodes), file=file)

    def listing(self) -> str:
        from .inspect import format_nodes

        return format_nodes(self.nodes)

    def to_dot(self, path: str | None = None) -> str:
        """The graph as Graphviz DOT text; with ``path``, also render it (svg/png) when ``dot`` exists."""
        from .inspect import to_dot

        return to_dot(self.nodes, path=path)


class _GraphStack(threading.local):
    def __init__(self) -> None:
        self.graphs: list[Graph] = []


_stack = _GraphStack()
_global_default: list[Graph] = [Graph()]


def get_default_graph() -> Graph:
    """The graph ops build into: the innermost ``as_default()`` graph, or the global default."""
    if _stack.graphs:
        return _stack.graphs[-1]
    return _global_default[0]


def reset_default_graph() -> None:
    """Replace the global default graph with a fresh, empty one (TensorFlow 1's function)."""
    if _stack.graphs:
        raise GraphError("reset_default_graph: called inside a `with graph.as_default():` block")
    _global_default[0] = Graph()
