"""Export a minidl model (or function) to an ONNX file, through the static graph IR.

    model.eval()
    minidl.onnx.export(model, x, "model.onnx",
                       input_names=["x"], output_names=["logits"],
                       dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})

The steps, each reusing what ``minidl.graph`` already has:

1. **Build.** The model runs once, under ``no_grad``, on placeholders shaped like the example
   inputs with ``None`` at each dynamic axis: every primitive it applies becomes an IR node,
   its parameters and buffers ``variable`` nodes (named ``fc1.weight`` and so on), as in
   ``minidl.compile``. The model runs in its current mode, so export after ``model.eval()``:
   dropout is then the identity and batch norm reads its running statistics.
2. **Prune and fold.** Only the nodes the outputs need are kept (``program.prune``), and the
   level-1 passes (dead code, common subexpressions, constant folding, exact
   simplifications) tidy them; every one of them is exact.
3. **Convert.** Each IR node becomes ONNX nodes through the converter of its op
   (``converters/``: one function per primitive). Variables and constants become
   initializers under their graph names. An op with no converter, or one that ONNX cannot
   express, raises ``OnnxError`` naming the op, the node and the line that built it, before
   anything is written.
4. **Check and write.** ``onnx.checker.check_model(full_check=True)`` (which also runs ONNX's
   shape inference), then the file is written to a temporary name and renamed, so a failed
   export never leaves a half-written model behind.

The default opset is 20, the first with ``Gelu``; opsets 14 to the newest the installed
``onnx`` knows are accepted (earlier ones lack ``Trilu`` and ``Reshape``'s ``allowzero``).
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from .. import graph as G
from ..autograd.grad_mode import no_grad
from ..graph.ir import Graph, Output
from ..graph.nest import flatten
from ..graph.passes import optimize
from ..graph.program import Subgraph, prune
from ..graph.symbolic import SymbolicTensor
from ..graph.trace import Tracer
from ..nn.module import Module
from ..tensor import Tensor
from .converters import CONVERTERS, Context, Unsupported
from .converters.context import onnx_type
from .errors import OnnxError

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 20
MIN_OPSET = 14


def export(
    model_or_fn: Any,
    example_inputs: Any,
    path: str | os.PathLike | None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: dict[str, Any] | None = None,
    opset_version: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Export ``model_or_fn(*example_inputs)`` as an ONNX model; write it to ``path`` (unless
    ``None``) and return the ``ModelProto``.

    ``example_inputs`` is a tensor or a tuple of them (NumPy arrays work too; other values are
    passed through unchanged, as constants of the exported model). Only their shapes and
    dtypes matter. ``input_names`` / ``output_names`` name the graph's inputs (default: the
    parameter names of ``forward``) and its outputs (default ``output``, or ``output_0``,
    ``output_1``, ... for several; nested tuples are flattened in order). ``dynamic_axes`` maps
    an input or output name to the axes whose size may change, as ``{axis: "name"}`` or a
    list of axes, exactly as ``torch.onnx.export`` takes it.
    """
    max_opset = onnx.defs.onnx_opset_version()
    if not isinstance(opset_version, int) or not MIN_OPSET <= opset_version <= max_opset:
        raise OnnxError(
            f"export: opset_version must be an int from {MIN_OPSET} to {max_opset} (the newest the installed onnx "
            f"knows), got {opset_version!r}"
        )
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    tensor_positions = [i for i, a in enumerate(args) if isinstance(a, (Tensor, np.ndarray))]
    for i in tensor_positions:
        if type(args[i]) is SymbolicTensor:
            raise OnnxError(f"export: example input {i} is a symbolic tensor; pass an eager tensor of the same shape")
    in_names = _input_names(model_or_fn, args, tensor_positions, input_names)
    axes_spec = _normalize_dynamic_axes(dynamic_axes)
    graph, feeds, outputs = _build(model_or_fn, args, tensor_positions, in_names, axes_spec)
    out_names = _output_names(len(outputs), output_names, in_names)
    for name, axes in axes_spec.items():
        if name not in in_names and name not in out_names:
            raise OnnxError(
                f"export: dynamic_axes names {name!r}, which is neither an input ({in_names}) nor an output "
                f"({out_names}); use the names of input_names / output_names"
            )
        if name in out_names:
            rank = len(outputs[out_names.index(name)].spec.shape)
            axes_spec[name] = _check_axes(name, axes, rank)

    sub = prune(graph.nodes, outputs, [])
    sub, _ = optimize(sub, 1, protected=set(feeds))
    model = _to_onnx(sub, feeds, in_names, out_names, axes_spec, opset_version)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx raises several types; say what failed and where
        raise OnnxError(f"export: the ONNX checker rejected the exported model: {err}") from err
    if path is not None:
        _write_atomically(model, os.fspath(path))
    return model


# ---- building the graph --------------------------------------------------------------------------


def _build(
    fn: Any, args: tuple, positions: list[int], names: list[str], axes: dict[str, dict[int, str]]
) -> tuple[Graph, list[Output], list[Output]]:
    """Run ``fn`` on placeholders; returns the graph, the fed values and the outputs."""
    graph = Graph()
    call_args = list(args)
    feeds = []
    with graph.as_default(), no_grad():
        for i, name in zip(positions, names):
            example = args[i]
            array = example if isinstance(example, np.ndarray) else example._data
            dtype = example.dtype if isinstance(example, Tensor) else None
            dynamic = {}
            if name in axes:
                dynamic = axes[name] = _check_axes(name, axes[name], array.ndim)
            shape = tuple(None if d in dynamic else s for d, s in enumerate(array.shape))
            sym = G.placeholder(shape, dtype if dtype is not None else _dtype_of(array), name=name)
            call_args[i] = sym
            feeds.append(sym._ref)
        if isinstance(fn, Module):
            # the model's own names for its parameters and buffers ("fc1.weight"), as compile does
            for pname, p in fn.named_parameters():
                graph.name_hints.setdefault(id(p), pname)
            for bname, b in fn.named_buffers():
                graph.name_hints.setdefault(id(b), bname)
            graph._named_modules.add(id(fn))
        with Tracer(graph):
            result = fn(*call_args)
        leaves: list[Any] = []
        flatten(result, leaves)
        leaves = [v for v in leaves if v is not None]
        outputs = []
        for k, leaf in enumerate(leaves):
            if type(leaf) is SymbolicTensor:
                if leaf._graph is not graph:
                    raise OnnxError(f"export: output {k} belongs to another graph than the exported model's")
                outputs.append(leaf._ref)
            elif isinstance(leaf, (Tensor, np.ndarray)):  # computed without the inputs: a constant
                outputs.append(G.constant(leaf._data if isinstance(leaf, Tensor) else leaf)._ref)
            else:
                raise OnnxError(
                    f"export: output {k} is a {type(leaf).__name__}; a model must return tensors (or nested "
                    "tuples/lists of them)"
                )
    if not outputs:
        raise OnnxError("export: the model returned no tensor to export")
    return graph, feeds, outputs


def _dtype_of(array: np.ndarray) -> Any:
    from .. import dtypes

    return dtypes.from_numpy_dtype(array.dtype)


# ---- names and dynamic axes ----------------------------------------------------------------------


def _input_names(fn: Any, args: tuple, positions: list[int], given: Sequence[str] | None) -> list[str]:
    """Given names first; the rest are the parameter names of ``forward`` (or ``input_<i>``)."""
    params: list[str] = []
    try:
        target = fn.forward if isinstance(fn, Module) else fn
        for p in inspect.signature(target).parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                params.append(p.name)
    except (TypeError, ValueError):
        pass
    defaults = [params[i] if i < len(params) else f"input_{i}" for i in positions]
    given = list(given or [])
    if len(given) > len(positions):
        raise OnnxError(
            f"export: {len(given)} input_names for {len(positions)} tensor inputs; give at most one name per input"
        )
    names = given + defaults[len(given) :]
    _check_unique("input_names", names)
    return names


def _output_names(n: int, given: Sequence[str] | None, in_names: list[str]) -> list[str]:
    given = list(given or [])
    if len(given) > n:
        raise OnnxError(f"export: {len(given)} output_names for the {n} tensors the model returns")
    defaults = ["output"] if n == 1 else [f"output_{i}" for i in range(n)]
    names = given + defaults[len(given) :]
    _check_unique("output_names", names)
    clash = set(names) & set(in_names)
    if clash:
        raise OnnxError(f"export: {sorted(clash)} named both an input and an output; ONNX names must be unique")
    return names


def _check_unique(what: str, names: list[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not name:
            raise OnnxError(f"export: {what} must be non-empty strings, got {name!r}")
    if len(set(names)) != len(names):
        raise OnnxError(f"export: {what} {names} contains a name twice")


def _normalize_dynamic_axes(spec: dict | None) -> dict[str, Any]:
    """``{name: {axis: label}}`` or ``{name: [axis, ...]}`` (labels then made up, as torch does)."""
    out: dict[str, Any] = {}
    for name, axes in (spec or {}).items():
        if isinstance(axes, dict):
            out[name] = {int(a): str(label) for a, label in axes.items()}
        elif isinstance(axes, (list, tuple)):
            out[name] = {int(a): f"{name}_dynamic_axes_{k + 1}" for k, a in enumerate(axes)}
        else:
            raise OnnxError(
                f"export: dynamic_axes[{name!r}] must be a dict {{axis: name}} or a list of axes, got {axes!r}"
            )
    return out


def _check_axes(name: str, axes: dict[int, str], rank: int) -> dict[int, str]:
    checked = {}
    for a, label in axes.items():
        if not -rank <= a < rank:
            raise OnnxError(f"export: dynamic axis {a} of {name!r} is out of range for its {rank} dimensions")
        checked[a % rank] = label
    return checked


# ---- conversion ---------------------------------------------------------------------------------


def _to_onnx(
    sub: Subgraph,
    feeds: list[Output],
    in_names: list[str],
    out_names: list[str],
    axes: dict[str, dict[int, str]],
    opset: int,
) -> onnx.ModelProto:
    ctx = Context(opset)
    for name in in_names + out_names:
        ctx.reserve(name)
    inputs = []
    for feed, name in zip(feeds, in_names):
        ctx.names[feed] = name
        inputs.append(_value_info(name, feed.spec, axes.get(name, {})))
    late: list[tuple[Output, str]] = []  # outputs that need an Identity to carry their name
    for out, name in zip(sub.outputs, out_names):
        if out.node.kind == "op" and out.index == 0 and out not in ctx.names:
            ctx.names[out] = name
        else:
            late.append((out, name))

    for node in sub.nodes:
        if node.kind == "placeholder":
            if node.output(0) not in ctx.names:  # pragma: no cover - export feeds every placeholder it makes
                raise OnnxError(f"export: placeholder '{node.name}' (built at {node.source}) is not an input")
        elif node.kind in ("variable", "constant"):
            array = node.payload.storage._data if node.kind == "variable" else node.payload
            ctx.names[node.output(0)] = ctx.const(_host(array), name=ctx.fresh(node.name))
        elif node.kind == "op":
            _convert(ctx, node)
        else:
            raise OnnxError(
                f"export: the {node.kind} node '{node.name}' (built at {node.source}) is a side effect, which an "
                "ONNX inference graph cannot hold"
            )
    for out, name in late:
        ctx.emit("Identity", [ctx.value(out)], name)

    outputs = [_value_info(name, out.spec, axes.get(name, {})) for out, name in zip(sub.outputs, out_names)]
    graph = helper.make_graph(ctx.nodes, "minidl", inputs, outputs, initializer=ctx.initializers)
    opsets = [helper.make_opsetid("", opset)]
    from .. import __version__

    model = helper.make_model(graph, opset_imports=opsets, producer_name="minidl", producer_version=__version__)
    # the oldest IR version that can carry this opset: the widest range of runtimes can load it
    model.ir_version = helper.find_min_ir_version_for(opsets)
    return model


def _convert(ctx: Context, node: Any) -> None:
    where = f"node %{node.name}, built at {node.source}"
    fn = CONVERTERS.get(node.op)
    if fn is None:
        hint = (
            " It is part of a backward rule; export the forward model (no gradients)."
            if "backward" in node.op.label or node.op.label.endswith("_grad")
            else ""
        )
        raise OnnxError(
            f"export: the minidl op '{node.op.label}' ({node.op.__name__}) has no ONNX converter ({where}).{hint}"
        )
    try:
        fn(ctx, node)
    except Unsupported as err:
        raise OnnxError(f"export: cannot express the minidl op '{node.op.label}' in ONNX ({where}): {err}") from None
    if node.output(0) not in ctx.names:  # pragma: no cover - a converter that forgot its output
        raise OnnxError(f"export: internal error: the converter of '{node.op.label}' named no output ({where})")


def _value_info(name: str, spec: Any, dynamic: dict[int, str]) -> onnx.ValueInfoProto:
    shape = [dynamic.get(d, s) for d, s in enumerate(spec.shape)]
    return helper.make_tensor_value_info(name, onnx_type(spec.dtype), shape)


def _host(array: Any) -> np.ndarray:
    """A NumPy copy of a (possibly GPU) array, for an initializer."""
    if hasattr(array, "get") and not isinstance(array, np.ndarray):
        return array.get()
    return np.asarray(array)


def _write_atomically(model: onnx.ModelProto, path: str) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a model."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".minidl-onnx-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
