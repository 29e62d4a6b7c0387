"""The state of one ONNX export: the ONNX nodes and initializers built so far, and the
helpers every converter uses to build them.

A converter (one per minidl primitive, in the other files of this package) reads one IR node
-- its inputs, attributes and inferred ``Spec`` -- and appends the ONNX nodes that compute
the same value. It names its final result ``ctx.out(node)``, so the next converter finds it.

Three things make a converter more than a renaming, and this file holds the shared answers:

- **literals.** A minidl node may hold a Python number as an input (``add(%x, 1e-05)``);
  ONNX has only tensors, so ``ctx.value(v, dtype)`` makes the number a scalar initializer of
  the dtype the op computes in (identical scalars are shared).
- **unknown sizes.** A static graph built with ``None`` sizes keeps them as ``None`` in
  attributes (``reshape(shape=(None, 5, 8))``). ONNX has no such attribute, so the size is
  computed when the model runs: ``Gather(Shape(x), [i])``, joined with the known sizes by
  ``Concat`` (``ctx.shape_tensor``).
- **opset differences.** Reductions take their axes as an input from opset 13 (``ReduceSum``)
  or 18 (the others), an attribute before; ``ctx.reduce`` hides that.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...dtypes import DType
from ...graph.ir import Node, Output
from ...ops.op import Spec

__all__ = ["Context", "Unsupported", "onnx_type", "INT64_MAX", "INT64_MIN"]

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class Unsupported(Exception):
    """Raised by a converter for a node ONNX cannot express; ``export`` adds the node and line."""


def onnx_type(dtype: DType | np.dtype) -> int:
    """The ``TensorProto`` element type of a minidl (or NumPy) dtype."""
    np_dtype = dtype.np if isinstance(dtype, DType) else np.dtype(dtype)
    return helper.np_dtype_to_tensor_dtype(np_dtype)


class Context:
    """Builds the ONNX graph: ``emit`` appends a node, ``const`` an initializer, and value
    names are kept unique across inputs, outputs, initializers and intermediate results."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: dict[Output, str] = {}  # the ONNX name of each IR value converted so far
        self._used: set[str] = set()
        self._scalars: dict[tuple, str] = {}
        self._shapes: dict[str, str] = {}

    # ---- names -----------------------------------------------------------------------------

    def reserve(self, name: str) -> None:
        """Claim a name chosen by the user (an input or output name)."""
        self._used.add(name)

    def fresh(self, hint: str) -> str:
        """A name not used yet: ``hint``, or ``hint_1``, ``hint_2``, ..."""
        name, k = hint, 0
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._used.add(name)
        return name

    def out(self, node: Node, index: int = 0) -> str:
        """The ONNX name of output ``index`` of an IR node (named after the node)."""
        key = node.output(index)
        name = self.names.get(key)
        if name is None:
            name = self.names[key] = self.fresh(key.name)
        return name

    # ---- values ----------------------------------------------------------------------------

    def value(self, v: Any, dtype: DType | None = None) -> str:
        """The ONNX name of an IR input: a converted value, or a literal made a scalar of ``dtype``."""
        if type(v) is Output:
            name = self.names.get(v)
            if name is None:
                if v.index:
                    raise Unsupported(
                        f"it reads '{v.name}', an auxiliary array that {v.node.op_label()} keeps for its "
                        "backward rule, which has no ONNX equivalent"
                    )
                raise Unsupported(f"its input %{v.name} was not converted")  # pragma: no cover - a bug
            return name
        if v is None or not isinstance(v, (bool, int, float, np.generic)):
            raise Unsupported(f"an input {v!r} of type {type(v).__name__} cannot become an ONNX tensor")
        if dtype is None:
            raise Unsupported(f"the literal {v!r} needs a dtype")  # pragma: no cover - a bug
        return self.scalar(v, dtype)

    @staticmethod
    def spec(v: Any) -> Spec | None:
        """The ``Spec`` of an IR value, ``None`` for a literal."""
        return v.spec if type(v) is Output else None

    def scalar(self, value: Any, dtype: DType | np.dtype) -> str:
        """A 0-d initializer holding ``value`` as ``dtype`` (shared between identical scalars)."""
        np_dtype = dtype.np if isinstance(dtype, DType) else np.dtype(dtype)
        array = np.asarray(value, dtype=np_dtype)
        key = (np_dtype.str, array.tobytes())
        name = self._scalars.get(key)
        if name is None:
            name = self._scalars[key] = self.const(array, "scalar")
        return name

    def ints(self, values: Any) -> str:
        """A 1-D int64 initializer (axes, shapes, starts...), shared between equal lists."""
        array = np.asarray(list(values), dtype=np.int64).reshape(-1)
        key = ("ints", array.tobytes())
        name = self._scalars.get(key)
        if name is None:
            name = self._scalars[key] = self.const(array, "ints")
        return name

    def const(self, array: np.ndarray, hint: str = "const", name: str | None = None) -> str:
        """Add ``array`` as an initializer; returns its name."""
        name = name if name is not None else self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C", copy=True), name))
        return name

    # ---- nodes -----------------------------------------------------------------------------

    def emit(self, op_type: str, inputs: list[str], out: str | None = None, outputs: int = 1, **attrs: Any) -> Any:
        """Append an ONNX node; returns its output name (or names, when ``outputs > 1``).

        An empty string among ``inputs`` marks an omitted optional input, as ONNX does."""
        names = [out] if out is not None else [self.fresh(op_type.lower()) for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = helper.make_node(op_type, inputs, names, name=self.fresh(f"{op_type}_{len(self.nodes)}"), **attrs)
        self.nodes.append(node)
        return names[0] if outputs == 1 else names

    def cast(self, x: str, have: DType, want: DType, out: str | None = None) -> str:
        """``x`` as ``want`` (no node when it already is)."""
        if have is want and out is None:
            return x
        if have is want:
            return self.emit("Identity", [x], out)
        return self.emit("Cast", [x], out, to=onnx_type(want))

    # ---- shapes ----------------------------------------------------------------------------

    def shape_of(self, x: str) -> str:
        """``Shape(x)``, built once per value."""
        name = self._shapes.get(x)
        if name is None:
            name = self._shapes[x] = self.emit("Shape", [x])
        return name

    def dim(self, x: str, axis: int) -> str:
        """The size of ``x`` along ``axis`` when the model runs, as a 1-element int64 tensor."""
        return self.emit("Gather", [self.shape_of(x), self.ints([axis])], axis=0)

    def shape_tensor(self, sizes: list[Any]) -> str:
        """A 1-D int64 shape from entries that are ints or ``(value_name, axis)`` pairs (a size
        read off a value when the model runs). Runs of known sizes become one constant."""
        if all(isinstance(s, (int, np.integer)) for s in sizes):
            return self.ints(sizes)
        pieces: list[str] = []
        run: list[int] = []
        for s in sizes:
            if isinstance(s, (int, np.integer)):
                run.append(int(s))
                continue
            if run:
                pieces.append(self.ints(run))
                run = []
            pieces.append(self.dim(*s))
        if run:
            pieces.append(self.ints(run))
        return pieces[0] if len(pieces) == 1 else self.emit("Concat", pieces, axis=0)

    def unsqueeze(self, x: str, axes: list[int], out: str | None = None) -> str:
        return self.emit("Unsqueeze", [x, self.ints(axes)], out)

    def squeeze(self, x: str, axes: list[int], out: str | None = None) -> str:
        return self.emit("Squeeze", [x, self.ints(axes)], out)

    def reduce(self, op_type: str, x: str, axes: tuple, keepdims: bool, out: str | None = None) -> str:
        """``op_type`` (ReduceSum, ReduceMax, ...) over ``axes``; ``axes=()`` reduces nothing, as
        NumPy's ``axis=()`` does (ONNX would reduce everything, unless told otherwise)."""
        axes_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if not axes:
            if axes_input:
                return self.emit(op_type, [x], out, keepdims=int(keepdims), noop_with_empty_axes=1)
            raise Unsupported(f"{op_type} over no axes needs opset 18 or newer (export with opset_version=18)")
        if axes_input:
            return self.emit(op_type, [x, self.ints(axes)], out, keepdims=int(keepdims))
        return self.emit(op_type, [x], out, axes=list(axes), keepdims=int(keepdims))
