"""The autograd tape: grad mode, and the ``Node`` each recorded op application leaves behind.

This module sits beside ``tensor.py``, below the ops: ops *record* nodes here while they
compute, and the engine in ``minidl/autograd`` later *walks* them backward.

A ``Node`` is what PyTorch calls a ``grad_fn``. When an op runs on inputs that require grad
(and grad mode is on), it records one node holding

* the op, whose ``vjp`` rule will turn the output's gradient into the inputs' gradients;
* the inputs themselves (the rule may need their values), and the version each had then;
* the output array (rules such as ``exp`` reuse it) and any auxiliary arrays the forward
  computed for the rule (``saved``, e.g. the argmax of a max-pool);
* one *edge* per input: where that input's gradient must go next -- the input's own node,
  the input tensor itself if it is a leaf, or ``None`` if it does not need a gradient.

The edges are fixed when the node is recorded, so a later in-place change of an input's
history cannot rewire an existing graph. The node is also the ``ctx`` that a vjp rule reads:
``ctx.inputs``, ``ctx.output``, ``ctx.attrs``, ``ctx.saved``, ``ctx.needs_grad(i)``.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any


class _GradState(threading.local):
    """Per-thread switches: is grad recording on, and is anomaly detection on."""

    enabled = True
    anomaly = False


grad_state = _GradState()


class Node:
    """One recorded op application (a ``grad_fn``): the context of its backward rule."""

    __slots__ = (
        "op",
        "attrs",
        "edges",
        "saved",
        "hooks",
        "trace",
        "_inputs",
        "_versions",
        "_out_data",
        "_out_vc",
        "_out_version",
        "retained",
        "__weakref__",
    )

    def __init__(self, op, inputs: tuple, attrs: dict | None, out_data, edges: tuple, versions: tuple) -> None:
        self.op = op
        self.attrs = attrs
        self.edges = edges
        self.saved = None
        self.hooks = None
        self.trace = "".join(traceback.format_stack()[:-3]) if grad_state.anomaly else None
        self._inputs = inputs
        self._versions = versions
        self._out_data = out_data
        # The output's version counter, created here so that the output tensor shares it: a
        # later in-place change of the output is then visible to ``ctx.output``.
        self._out_vc = [0]
        self._out_version = 0
        self.retained = None

    # ---- what a vjp rule reads -------------------------------------------------------------

    def input(self, i: int):
        """Input ``i`` of the op, checked to be unmodified (by in-place ops) since the forward."""
        inputs = self._inputs
        if inputs is None:
            raise RuntimeError(self._freed_message())
        x = inputs[i]
        saved_version = self._versions[i]
        if saved_version is not None:
            vc = x._vc
            now = vc[0] if vc is not None else 0
            if now != saved_version:
                raise RuntimeError(
                    f"one of the tensors needed for gradient computation has been modified by an "
                    f"in-place operation: input {i} of {self.name()} (shape {tuple(x.shape)}) is at "
                    f"version {now}; expected version {saved_version} instead. Use an out-of-place "
                    "op (for example x = x + y instead of x += y) or clone the tensor before "
                    "modifying it."
                )
        return x

    @property
    def inputs(self) -> tuple:
        """All inputs of the op, each checked as ``input(i)`` checks it."""
        if self._inputs is None:
            raise RuntimeError(self._freed_message())
        return tuple(self.input(i) for i in range(len(self._inputs)))

    @property
    def output(self):
        """The op's output, as a tensor whose ``grad_fn`` is this node (so it differentiates)."""
        from .tensor import Tensor

        if self._out_data is None:
            raise RuntimeError(self._freed_message())
        vc = self._out_vc
        if vc[0] != self._out_version:
            raise RuntimeError(
                f"the output of {self.name()} is needed for gradient computation but was modified by "
                f"an in-place operation (version {vc[0]}, expected {self._out_version}). "
                "Use an out-of-place op or clone the output before modifying it."
            )
        return Tensor._from_node(self._out_data, self)

    def saved_tensor(self, key: str):
        """A saved array as a tensor (other saved values, ``None`` or numbers, as they are).

        Rules read saved arrays through this so that the same rule also runs on a static
        graph's node, where the saved value is a symbolic output.
        """
        from .tensor import Tensor

        if self.saved is None:
            raise RuntimeError(self._freed_message())
        value = self.saved[key]
        if value is None or isinstance(value, (int, float)):
            return value
        return Tensor._wrap(value)

    def input_shape(self, i: int) -> tuple[int, ...]:
        """The shape input ``i`` had (shapes never change in place, so no version check)."""
        inputs = self._inputs
        if inputs is None:
            raise RuntimeError(self._freed_message())
        return inputs[i].shape

    def needs_grad(self, i: int) -> bool:
        """Whether input ``i`` needs a gradient (torch's ``ctx.needs_input_grad[i]``)."""
        return self.edges[i] is not None

    # ---- introspection ---------------------------------------------------------------------

    def name(self) -> str:
        return f"{self.op.name}Backward"

    @property
    def next_functions(self) -> tuple:
        """Where each input's gradient goes: ``(node_or_leaf_or_None, 0)`` per input, as torch."""
        return tuple((edge, 0) for edge in self.edges)

    def register_hook(self, hook) -> RemovableHandle:
        """Call ``hook(grad)`` on the gradient of this node's output before its rule runs."""
        if self.hooks is None:
            self.hooks = []
        self.hooks.append(hook)
        return RemovableHandle(self.hooks, hook)

    def release(self) -> None:
        """Drop the saved values once backward has used them (unless ``retain_graph``)."""
        self._inputs = None
        self._out_data = None
        self.saved = None

    def _freed_message(self) -> str:
        return (
            f"trying to backward through {self.name()} a second time: its saved values were freed "
            "by the first backward pass. Call backward(retain_graph=True) the first time if you "
            "need to backward through the graph again."
        )

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class RemovableHandle:
    """Returned by ``register_hook``: ``handle.remove()`` takes the hook off again."""

    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook: Any) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        try:
            self._hooks.remove(self._hook)
        except ValueError:
            pass
