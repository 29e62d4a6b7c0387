"""ONNX -> minidl: ``minidl.onnx.load`` turns an ONNX model into a minidl module and static graph.

An ONNX model is a graph of nodes (``op_type`` + attributes) over named values. minidl already
has one op set that runs both eagerly and symbolically (see ``docs/graph.md``), so importing is
*interpreting*: ``OnnxModule.forward`` walks the ONNX nodes in order and calls, for each, the
converter registered for its ``op_type`` (``minidl/onnx/ops/``), which expresses the node with
minidl ops. Called on eager tensors, that computes (with autograd); called on placeholders, the
same walk builds a static graph. ``load`` does the latter once and keeps a ``Session`` for
``run(inputs) -> list of arrays``.

Where the model's values live:

* graph inputs (those without an initializer) are the module's inputs, and the graph's
  placeholders: a dimension without a fixed size (``dim_param`` or unset) becomes ``None``;
* floating-point initializers become ``nn.Parameter``s, so an imported model is trainable in
  eager mode (``model.parameters()``) and in graph mode (captured as trainable ``variable``
  nodes whose storage *is* the parameter). Statistics that are not learned -- batch norm's
  mean and variance -- become buffers instead;
* other initializers (integer shapes, indices, axes) and ``Constant`` nodes are plain eager
  tensors. A node whose inputs are all such constants is computed at import time, so the
  shape arithmetic that exporters emit (``Shape -> Gather -> Concat -> Reshape``) folds away.

Some ONNX inputs must be *known* when the graph is built, because minidl takes them as static
arguments: a ``Reshape``'s shape, ``Slice``'s bounds, reduction axes, ``Pad``'s amounts, ... A
model that computes them from a graph input can still be loaded by giving that input's value
up front: ``load(model, constant_inputs={"shape": np.array([2, 3])})``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import dtypes
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor
from .errors import OnnxError

__all__ = ["load", "OnnxModule", "NeedsValue", "NodeContext", "onnx_dtype"]


class NeedsValue(OnnxError):
    """A converter needs the value of an input that is only known when the graph runs."""

    def __init__(self, message: str, value_name: str) -> None:
        super().__init__(message)
        self.value_name = value_name


# ---- dtypes ----------------------------------------------------------------------------------------


def onnx_dtype(elem_type: int, what: str) -> dtypes.DType:
    """The minidl dtype of an ONNX ``TensorProto`` element type, or an ``OnnxError``."""
    from onnx import TensorProto

    table = {
        TensorProto.FLOAT: dtypes.float32,
        TensorProto.DOUBLE: dtypes.float64,
        TensorProto.INT32: dtypes.int32,
        TensorProto.INT64: dtypes.int64,
        TensorProto.BOOL: dtypes.bool_,
    }
    if elem_type in table:
        return table[elem_type]
    name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else str(elem_type)
    raise OnnxError(
        f"{what} has element type {name.lower()}, which minidl does not support; minidl computes in "
        "float32, float64, int32, int64 and bool. Convert the model (or that tensor) to one of these"
    )


def tensor_to_array(proto: Any, what: str) -> np.ndarray:
    """A ``TensorProto`` as a NumPy array of a dtype minidl supports."""
    from onnx import numpy_helper

    onnx_dtype(proto.data_type, what)
    try:
        return np.array(numpy_helper.to_array(proto))
    except Exception as err:  # external data missing, inconsistent sizes, ...
        raise OnnxError(f"{what}: cannot read tensor '{proto.name}': {err}") from None


# ---- one node being converted --------------------------------------------------------------------


class NodeContext:
    """What a converter sees of one ONNX node: its inputs (minidl tensors or ``None`` for omitted
    optional inputs), its attributes (Python values), the opset, and the number of outputs."""

    def __init__(self, node: Any, opset: int, inputs: list, input_names: list, graph: Any) -> None:
        self.node = node
        self.op_type = node.op_type
        self.name = node.name or f"<unnamed {node.op_type}>"
        self.opset = opset
        self.inputs = inputs
        self.eager_inputs = inputs  # before constants became graph nodes: what ``const`` reads
        self.input_names = input_names
        self.n_outputs = len(node.output)
        self.wanted = [bool(o) for o in node.output]
        self.graph = graph  # the graph being built, or None when computing eagerly
        self.attrs = {a.name: _attribute_value(a, self) for a in node.attribute}

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def input(self, i: int) -> Tensor | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    def const(self, i: int, default: Any = None) -> Any:
        """Input ``i`` as a NumPy array known now (an error if it is only known at run time)."""
        from ..graph.symbolic import SymbolicTensor

        t = self.eager_inputs[i] if i < len(self.eager_inputs) else None
        if t is None:
            return default
        if type(t) is SymbolicTensor:
            raise NeedsValue(
                f"{self.describe()}: input {i} ('{self.input_names[i]}') must be known when the graph is built, "
                "but it depends on a graph input. Give that input's value to load(..., constant_inputs={...})",
                self.input_names[i],
            )
        return t._data

    def ints(self, i: int, default: Any = None) -> list[int] | None:
        v = self.const(i)
        return default if v is None else [int(x) for x in np.asarray(v).reshape(-1)]

    def fail(self, message: str) -> OnnxError:
        return OnnxError(f"{self.describe()}: {message}")

    def describe(self) -> str:
        return f"{self.op_type} node '{self.name}' (opset {self.opset})"


def _attribute_value(attr: Any, ctx: NodeContext) -> Any:
    from onnx import AttributeProto, helper

    if attr.type == AttributeProto.TENSOR:
        return tensor_to_array(attr.t, f"{ctx.describe()}, attribute '{attr.name}'")
    if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        raise OnnxError(f"{ctx.describe()}: attribute '{attr.name}' is a subgraph; minidl does not import control flow")
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


# ---- reading the file ----------------------------------------------------------------------------------


def read_model(source: Any) -> Any:
    """A ``ModelProto`` from a path, bytes or a ``ModelProto``, or a clear ``OnnxError``."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(source, onnx.ModelProto):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise OnnxError(f"load: no such file: {path!r}")
        try:
            model = onnx.load(path)
        except DecodeError as err:
            raise OnnxError(f"load: {path!r} is not a valid ONNX file (truncated or corrupt protobuf: {err})") from None
        except Exception as err:
            raise OnnxError(f"load: cannot read {path!r} as an ONNX model: {err}") from None
        what = repr(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        model = onnx.ModelProto()
        try:
            model.ParseFromString(bytes(source))
        except DecodeError as err:
            raise OnnxError(
                f"load: the bytes are not a valid ONNX model (truncated or corrupt protobuf: {err})"
            ) from None
        what = "the bytes"
    else:
        raise TypeError(f"load: expected a path, bytes or onnx.ModelProto, got {type(source).__name__}")
    # A protobuf cut at a field boundary parses without error; ONNX's checker catches what is missing.
    try:
        onnx.checker.check_model(model)
    except Exception as err:
        raise OnnxError(f"load: {what} is not a valid ONNX model (truncated or malformed): {err}") from None
    return model


def _opset(model: Any) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1 if not model.opset_import else 21


# ---- the module --------------------------------------------------------------------------------------


def _safe_name(name: str, taken: set) -> str:
    base = re.sub(r"\W", "_", name) or "param"
    if base[0].isdigit():
        base = "p_" + base
    candidate, n = base, 0
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


class OnnxModule(Module):
    """An imported ONNX model: a module (eager, trainable) and a static graph with a Session.

    ``model(x, ...)`` runs the ONNX graph on minidl tensors (or arrays) and returns minidl
    tensors (one, or a tuple when the model has several outputs), recording autograd.
    ``model.run([x, ...])`` (or a dict by input name) runs the imported static graph and returns
    a list of NumPy arrays. ``graph``, ``inputs`` (placeholders), ``outputs`` and ``session``
    expose the graph; ``input_names`` and ``output_names`` are the ONNX names.
    """

    def __init__(self, model: Any, constant_inputs: dict | None = None, build_graph: bool = True) -> None:
        super().__init__()
        from .ops import CONVERTERS

        object.__setattr__(self, "proto", model)
        graph = model.graph
        self.opset = _opset(model)
        self.producer = model.producer_name
        constant_inputs = dict(constant_inputs or {})
        init_names = {t.name for t in graph.initializer}
        # Static statistics are buffers, not learned parameters.
        frozen = {
            n.input[i] for n in graph.node if n.op_type == "BatchNormalization" for i in (3, 4) if len(n.input) > i
        }
        self._values: dict[str, Tensor] = {}  # name -> eager tensor (initializers, constant inputs)
        self._param_names: dict[str, str] = {}
        taken: set = set()
        for proto in graph.initializer:
            array = tensor_to_array(proto, f"initializer '{proto.name}'")
            if array.dtype.kind == "f":
                attr = _safe_name(proto.name, taken)
                t = Tensor(np.ascontiguousarray(array))
                if proto.name in frozen:
                    self.register_buffer(attr, t)
                else:
                    self.register_parameter(attr, Parameter(t))
                self._param_names[proto.name] = attr
            else:
                self._values[proto.name] = Tensor(np.ascontiguousarray(array))
        self.input_names: list[str] = []
        self.input_specs: list[tuple] = []
        for vi in graph.input:
            if vi.name in init_names:
                continue  # older IR versions list initializers as inputs too: they are defaults
            if not vi.type.HasField("tensor_type"):
                raise OnnxError(
                    f"graph input '{vi.name}' is not a tensor (sequence, map or optional); minidl imports tensors only"
                )
            dtype = onnx_dtype(vi.type.tensor_type.elem_type, f"graph input '{vi.name}'")
            if vi.name in constant_inputs:
                self._values[vi.name] = Tensor(np.asarray(constant_inputs.pop(vi.name), dtype=dtype.np))
                continue
            shape = (
                tuple(d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)
                if vi.type.tensor_type.HasField("shape")
                else None
            )
            self.input_names.append(vi.name)
            self.input_specs.append((shape, dtype))
        if constant_inputs:
            raise OnnxError(f"load: constant_inputs names {sorted(constant_inputs)}, which are not graph inputs")
        self.output_names = [vo.name for vo in graph.output]
        for vo in graph.output:
            if not vo.HasField("type"):
                continue  # an output of unknown type (``run_node`` makes these): whatever the node gives
            if not vo.type.HasField("tensor_type"):
                raise OnnxError(f"graph output '{vo.name}' is not a tensor; minidl imports tensors only")
            onnx_dtype(vo.type.tensor_type.elem_type, f"graph output '{vo.name}'")
        # Check every node before running any: unsupported ops and dangling names fail up front.
        known = set(init_names) | {vi.name for vi in graph.input} | {""}
        for node in graph.node:
            if node.domain not in ("", "ai.onnx") or node.op_type not in CONVERTERS:
                domain = f" in domain '{node.domain}'" if node.domain not in ("", "ai.onnx") else ""
                raise OnnxError(
                    f"unsupported ONNX operator {node.op_type}{domain} (node '{node.name or '<unnamed>'}', opset "
                    f"{self.opset}); minidl imports: {', '.join(sorted(CONVERTERS))}"
                )
            for name in node.input:
                if name not in known:
                    raise OnnxError(
                        f"malformed model: {node.op_type} node '{node.name or '<unnamed>'}' reads '{name}', which no "
                        "earlier node, initializer or graph input produces"
                    )
            known.update(node.output)
        for name in self.output_names:
            if name not in known:
                raise OnnxError(f"malformed model: graph output '{name}' is produced by no node")
        for attr in ("graph", "inputs", "outputs", "session"):
            object.__setattr__(self, attr, None)  # plain attributes, not module state
        if build_graph:
            self._build()

    # ---- running the ONNX graph on minidl tensors --------------------------------------------------

    def forward(self, *inputs: Any) -> Any:
        outs = self._interpret(inputs)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _interpret(self, inputs: Sequence[Any]) -> list[Tensor]:
        from ..graph.symbolic import SymbolicTensor
        from ..ops.creation import tensor as as_tensor
        from .ops import CONVERTERS

        if len(inputs) != len(self.input_names):
            raise TypeError(
                f"OnnxModule: the model takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                f"got {len(inputs)}"
            )
        env: dict[str, Tensor] = dict(self._values)
        for onnx_name, attr in self._param_names.items():
            env[onnx_name] = getattr(self, attr)
        graph = None
        for name, x, (_shape, dtype) in zip(self.input_names, inputs, self.input_specs):
            if type(x) is SymbolicTensor:
                graph = x._graph
            elif not isinstance(x, Tensor):
                x = as_tensor(np.asarray(x, dtype=dtype.np))
            env[name] = x
        constants: dict[int, Tensor] = {}
        for node in self.proto.graph.node:
            ins = [env[n] if n else None for n in node.input]
            ctx = NodeContext(node, self.opset, ins, list(node.input), graph)
            if graph is not None and any(type(t) is SymbolicTensor for t in ins):
                # Eager constants next to symbolic values enter the graph as constant nodes.
                ctx.graph = graph
                ctx.inputs = [_as_graph_value(t, graph, constants) for t in ins]
                ctx.eager_inputs = ins
            else:
                ctx.graph = None
            try:
                result = CONVERTERS[node.op_type](ctx)
            except OnnxError:
                raise
            except Exception as err:
                raise OnnxError(f"{ctx.describe()}: {type(err).__name__}: {err}") from err
            results = list(result) if isinstance(result, (tuple, list)) else [result]
            for i, out_name in enumerate(node.output):
                if not out_name:
                    continue
                if i >= len(results) or results[i] is None:
                    raise ctx.fail(f"output {i} ('{out_name}') is not supported by minidl's importer")
                env[out_name] = results[i]
        return [env[n] for n in self.output_names]

    # ---- the static graph ----------------------------------------------------------------------------

    def _build(self) -> None:
        from ..graph import Graph, Session, placeholder

        graph = Graph()
        with graph.as_default():
            placeholders = []
            for name, (shape, dtype) in zip(self.input_names, self.input_specs):
                if shape is None:
                    raise OnnxError(f"graph input '{name}' has no shape (not even a rank); minidl needs its rank")
                placeholders.append(placeholder(shape, dtype, name=name))
            if placeholders:
                outputs = list(self._call_outputs(placeholders))
            else:
                outputs = self._interpret([])
        for attr, value in (("graph", graph), ("inputs", placeholders), ("outputs", outputs)):
            object.__setattr__(self, attr, value)
        object.__setattr__(self, "session", Session(graph))

    def _call_outputs(self, placeholders: list) -> list:
        outs = self(*placeholders)
        return [outs] if len(self.output_names) == 1 else list(outs)

    def run(self, inputs: Any) -> list[np.ndarray]:
        """Run the imported static graph: ``inputs`` is a list in the model's input order, or a
        dict by input name; returns one NumPy array per model output."""
        from ..graph.symbolic import SymbolicTensor

        if self.session is None:
            self._build()
        if isinstance(inputs, dict):
            missing = [n for n in self.input_names if n not in inputs]
            if missing:
                raise ValueError(f"OnnxModule.run: missing inputs {missing}; the model takes {self.input_names}")
            inputs = [inputs[n] for n in self.input_names]
        inputs = list(inputs)
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"OnnxModule.run: the model takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                f"got {len(inputs)}"
            )
        feeds = {p: np.asarray(v._data if isinstance(v, Tensor) else v) for p, v in zip(self.inputs, inputs)}
        fetch_index = [i for i, o in enumerate(self.outputs) if type(o) is SymbolicTensor]
        fetched = self.session.run([self.outputs[i] for i in fetch_index], feeds) if fetch_index else []
        results: list[np.ndarray] = [np.array(o._data) if type(o) is not SymbolicTensor else None for o in self.outputs]
        for i, value in zip(fetch_index, fetched):
            results[i] = np.asarray(value)
        return results

    def extra_repr(self) -> str:
        return f"inputs={self.input_names}, outputs={self.output_names}, opset={self.opset}, nodes={len(self.proto.graph.node)}"


def _as_graph_value(t: Any, graph: Any, constants: dict) -> Any:
    """An eager non-parameter tensor as a constant node of ``graph`` (once per tensor)."""
    from ..graph import constant
    from ..graph.symbolic import SymbolicTensor

    if t is None or type(t) is SymbolicTensor or t._rg or id(t) in graph.name_hints:
        return t  # parameters and buffers are captured as variables by the graph itself
    c = constants.get(id(t))
    if c is None:
        c = constants[id(t)] = constant(t._data, graph=graph)
    return c


def load(model: Any, constant_inputs: dict | None = None) -> OnnxModule:
    """Import an ONNX model (a path, bytes or ``onnx.ModelProto``) as an ``OnnxModule``.

    ``constant_inputs`` maps graph-input names to values fixed at import: needed when a model
    computes a static argument (a reshape's shape, slice bounds, ...) from a graph input.
    Raises ``OnnxError`` for a malformed or truncated file, an unsupported operator (naming the
    op, node and opset) or an unsupported dtype.
    """
    return OnnxModule(read_model(model), constant_inputs=constant_inputs)
