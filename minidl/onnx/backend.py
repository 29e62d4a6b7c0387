"""minidl as an ONNX backend (``onnx.backend.base.Backend``), so that onnx's own conformance
suite (``onnx.backend.test.BackendTest``) can run against minidl's importer.

``prepare(model)`` imports the model (``importer.load``) and returns a ``MinidlRep`` whose
``run(inputs)`` feeds the static graph and returns a list of NumPy arrays.

One wrinkle: a conformance model may feed, as a graph input, a value that minidl needs when
the graph is built (a ``Reshape``'s target shape, ``Slice`` bounds, ``Dropout``'s
``training_mode``). Such a model cannot be one graph for every value of that input. The rep
then imports the model again at ``run`` time with those inputs fixed to the values given
(``load(..., constant_inputs=...)``), once per distinct value; the other inputs stay
placeholders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from .errors import OnnxError
from .importer import NeedsValue, OnnxModule, read_model

__all__ = ["MinidlBackend", "MinidlRep", "prepare", "run_model", "run_node", "supports_device"]


class MinidlRep(BackendRep):
    """A prepared model: ``run(inputs)`` returns one NumPy array per model output."""

    def __init__(self, model: Any) -> None:
        self.model = model
        all_inputs = [vi.name for vi in model.graph.input if vi.name not in {t.name for t in model.graph.initializer}]
        self._input_names = all_inputs
        self._static: list[str] = []  # inputs minidl needs at build time
        self._cache: dict[bytes, OnnxModule] = {}
        self.module = self._import({})

    def _import(self, constants: dict) -> OnnxModule | None:
        """Import with ``constants`` fixed; ``None`` (and the needed input recorded) when another
        graph input turns out to be needed at build time."""
        try:
            return OnnxModule(self.model, constant_inputs=constants)
        except NeedsValue as err:
            if err.value_name in self._input_names and err.value_name not in self._static:
                self._static.append(err.value_name)
                return None
            if len(self._static) < len(self._input_names):
                # computed from graph inputs (a window's length from its size input): fix them all
                self._static = list(self._input_names)
                return None
            raise

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            values = dict(inputs)
        else:
            inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            values = dict(zip(self._input_names, inputs))
        module = self.module
        while module is None:  # some inputs are static: import with their values
            constants = {n: np.asarray(values[n]) for n in self._static}
            key = b"".join(n.encode() + v.tobytes() + str(v.shape).encode() for n, v in constants.items())
            module = self._cache.get(key)
            if module is None:
                module = self._import(constants)
                if module is not None:
                    self._cache[key] = module
        return tuple(module.run([values[n] for n in module.input_names]))


class MinidlBackend(Backend):
    """onnx's backend interface for minidl (CPU)."""

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> MinidlRep:
        super().prepare(model, device, **kwargs)  # onnx's checker
        if not cls.supports_device(device):
            raise OnnxError(f"MinidlBackend: device {device!r} is not supported; minidl's ONNX backend runs on CPU")
        return MinidlRep(read_model(model))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: Any, inputs: Any, device: str = "CPU", outputs_info: Any = None, **kwargs: Any) -> Any:
        """Run one ``NodeProto`` on ``inputs`` by wrapping it in a one-node model."""
        from onnx import helper

        arrays = [np.asarray(x) for x in inputs]
        graph_inputs = [
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for name, a in zip(node.input, arrays)
            if name
        ]
        graph_outputs = [helper.make_empty_tensor_value_info(name) for name in node.output if name]
        graph = helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        model = helper.make_model(graph)
        rep = MinidlRep(model)
        return rep.run(arrays)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU


prepare = MinidlBackend.prepare
run_model = MinidlBackend.run_model
run_node = MinidlBackend.run_node
supports_device = MinidlBackend.supports_device
