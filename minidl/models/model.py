"""``Model``: an ``nn.Module`` with Keras's training API -- ``compile``, ``fit``, ``evaluate``,
``predict``, ``summary`` -- and ``Sequential``, a model that chains layers.

A ``Model`` *is* a ``Module``: define ``forward`` (or Keras's ``call``) in a subclass, or
stack layers in a ``Sequential``; parameters, ``state_dict``, ``train()``/``eval()``, ``to()``
all work as for any module, and a hand-written PyTorch loop works on it too. ``compile`` picks
the optimizer, the loss and the metrics (by name or by object, see ``losses.py`` and
``metrics.py``); ``fit`` then runs the loop of ``training.py``.

Keras's names where Keras defines them (``fit(x, y, batch_size, epochs, ...)``,
``History``, ``logs``, ``stop_training``, ``get_weights``); PyTorch's for everything that is a
tensor: ``predict`` returns a minidl ``Tensor``, weights are saved as state dicts with
``minidl.save`` (no pickle), and modes are ``train()``/``eval()``.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd.grad_mode import no_grad
from ..data import Dataset
from ..nn.container import Sequential as _TorchSequential
from ..nn.module import Module
from ..tensor import Tensor
from . import losses as losses_module
from . import metrics as metrics_module
from . import training
from .callbacks import Callback, CallbackList, History

__all__ = ["Model", "Sequential"]

# compile(optimizer='name'): Keras's default hyperparameters, given to minidl.optim's
# (PyTorch's) constructors under their PyTorch names.
OPTIMIZER_DEFAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", {"lr": 0.01}),
    "adam": ("Adam", {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7}),
    "adamw": ("AdamW", {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7, "weight_decay": 0.004}),
    "rmsprop": ("RMSprop", {"lr": 0.001, "alpha": 0.9, "eps": 1e-7}),
    "adagrad": ("Adagrad", {"lr": 0.001, "initial_accumulator_value": 0.1, "eps": 1e-7}),
}


def _snake_case(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _verbosity(who: str, verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if verbose in (0, 1, 2) and not isinstance(verbose, float):
        return int(verbose)
    raise ValueError(f"{who}: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")


class Model(Module):
    """A module with Keras's ``compile``/``fit``/``evaluate``/``predict``/``summary``.

    Subclass it and define ``forward(self, x)`` -- or ``call(self, inputs)``, Keras's name
    (if ``call`` takes a ``training`` argument it receives ``self.training``)::

        class MLP(Model):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(64, 32)
                self.fc2 = nn.Linear(32, 10)

            def forward(self, x):
                return self.fc2(F.relu(self.fc1(x)))

        model = MLP()
        model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
        history = model.fit(x_train, y_train, epochs=5, validation_split=0.1)
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Keras's `call` becomes `forward`, so `model(x)` takes Module's fast path unchanged.
        if "call" in cls.__dict__ and "forward" not in cls.__dict__:
            call = cls.__dict__["call"]
            if "training" in inspect.signature(call).parameters:

                def forward(self: Model, *args: Any, **kw: Any) -> Any:
                    kw.setdefault("training", self.training)
                    return call(self, *args, **kw)

                forward.__doc__ = call.__doc__
                cls.forward = forward
            else:
                cls.forward = call

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        d = self.__dict__
        d["name"] = name or _snake_case(type(self).__name__)
        d["optimizer"] = None
        d["loss"] = None
        d["compiled_loss"] = None
        d["stop_training"] = False
        d["history"] = None
        d["_metric_specs"] = []
        d["_tracker"] = None
        d["_output_shapes"] = {}
        d["_shape_hooks"] = []
        self._arm_shape_recording()

    # ---- compile -----------------------------------------------------------------------------

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Iterable | None = None) -> None:
        """Choose how to train: the optimizer, the loss and the metrics to report.

        ``optimizer`` is an optimizer (``minidl.optim.Adam(model.parameters(), lr=1e-3)``) or a
        name -- ``'sgd'``, ``'adam'``, ``'adamw'``, ``'rmsprop'``, ``'adagrad'`` -- built over
        ``self.parameters()`` with Keras's defaults (``OPTIMIZER_DEFAULTS``).

        ``loss`` is a callable ``loss(y_pred, y_true) -> scalar tensor`` (PyTorch's order:
        ``F.cross_entropy``, ``nn.MSELoss()``, your own function), a Keras loss object
        (``losses.SparseCategoricalCrossentropy(from_logits=True)``; called with ``y_true``
        first, as in Keras), or a name (``losses.known_names()``); ``None`` compiles a model
        that will only ``predict`` (``fit`` and ``evaluate`` then ask for a loss).

        ``metrics`` is a list of names (``'accuracy'``, ``'top_k_categorical_accuracy'``,
        ``'mae'``, ...), ``Metric`` objects, or callables ``fn(y_pred, y_true)``.
        """
        compiled_loss = None if loss is None else losses_module.get(loss)
        if metrics is None:
            specs: list = []
        elif isinstance(metrics, (str, Callable)) and not isinstance(metrics, type):
            specs = [metrics]
        elif isinstance(metrics, dict):
            raise TypeError("compile: metrics must be a list (per-output metric dicts are not supported)")
        else:
            specs = list(metrics)
        for spec in specs:  # fail now on an unknown name, not in the middle of fit
            if not (isinstance(spec, str) and spec.lower() in metrics_module.ACCURACY_NAMES):
                metrics_module.get(spec)
        d = self.__dict__
        d["optimizer"] = self._make_optimizer(optimizer)
        if not ("loss" in self._modules or "loss" in self._parameters or "loss" in self._buffers):
            # Keras's model.loss -- unless the model already has a layer of that name
            # (self.loss = nn.CrossEntropyLoss() in a PyTorch-style model), which stays
            d["loss"] = loss
        d["compiled_loss"] = compiled_loss
        d["_metric_specs"] = specs
        d["_tracker"] = training.Tracker(specs, losses_module.binary_kind(compiled_loss))

    def _make_optimizer(self, optimizer: Any) -> Any:
        if isinstance(optimizer, str):
            key = optimizer.lower()
            if key not in OPTIMIZER_DEFAULTS:
                raise ValueError(
                    f"compile: unknown optimizer {optimizer!r}; known optimizer names: {', '.join(OPTIMIZER_DEFAULTS)} "
                    "(or pass an optimizer object, e.g. minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))"
                )
            from .. import optim

            cls_name, kwargs = OPTIMIZER_DEFAULTS[key]
            params = [p for p in self.parameters() if p.requires_grad]
            if not params:
                raise ValueError(f"compile: {type(self).__name__} has no trainable parameters to optimize")
            return getattr(optim, cls_name)(params, **kwargs)
        if optimizer is None or not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
            raise TypeError(
                f"compile: optimizer must be a name ({', '.join(OPTIMIZER_DEFAULTS)}) or an optimizer with step() and "
                f"zero_grad(), got {type(optimizer).__name__}"
            )
        return optimizer

    def _assert_compiled(self, who: str) -> None:
        if self._tracker is None:
            raise RuntimeError(
                f"{who}: you must call compile() before {who}(), e.g. "
                "model.compile(optimizer='adam', loss='cross_entropy', metrics=['accuracy'])"
            )
        if self.compiled_loss is None:
            raise ValueError(
                f"{who}: the model was compiled without a loss; compile again with one, e.g. "
                "loss='cross_entropy' (logits and class indices), loss='mse', or any callable loss(y_pred, y_true)"
            )

    @property
    def metrics(self) -> list:
        """The loss tracker and the compiled metrics (``'accuracy'`` is resolved by the first batch)."""
        tracker = self._tracker
        if tracker is None:
            return []
        return [tracker.loss, *(tracker.metrics or [])]

    @property
    def metrics_names(self) -> list[str]:
        """``['loss', <metric names>]``: the keys of the logs (plus ``val_`` ones in fit)."""
        tracker = self._tracker
        if tracker is None:
            return []
        if tracker.metrics is None:
            return ["loss"] + [s if isinstance(s, str) else getattr(s, "name", "?") for s in self._metric_specs]
        return tracker.names

    @property
    def layers(self) -> list[Module]:
        """The direct sublayers, in registration order."""
        return list(self.children())

    # ---- fit / evaluate / predict ------------------------------------------------------------

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: str | int = "auto",
        callbacks: list[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
        mode: str = "eager",
    ) -> History:
        """Train for ``epochs`` epochs; returns the ``History`` of the logs of each epoch.

        ``x``, ``y``: tensors or NumPy arrays (``x`` may be a tuple for several inputs), or ``x``
        a ``DataLoader``/``Dataset`` of ``(inputs, targets)``. ``batch_size`` defaults to 32
        (not with a ``DataLoader``, which has its own). ``validation_split`` keeps the last
        fraction of the arrays for validation; ``validation_data`` is ``(x_val, y_val)`` or a
        ``DataLoader``; validation runs after every ``validation_freq``-th epoch and logs
        ``val_loss``, ``val_<metric>``. ``shuffle`` draws a new order each epoch from minidl's
        global generator. Epochs run from ``initial_epoch`` to ``epochs - 1``;
        ``steps_per_epoch`` cuts (or extends, by starting new passes) an epoch to that many
        batches. ``verbose``: 0 silent, 1 (``'auto'``) a progress bar, 2 one line per epoch.
        ``mode='graph'`` trains through ``minidl.compile``: each step (forward, loss, backward,
        update) runs as one compiled static-graph program, with bitwise the same numbers as
        ``mode='eager'``.
        """
        self._assert_compiled("fit")
        verbose = _verbosity("fit", verbose)
        if mode not in ("eager", "graph"):
            raise ValueError(f"fit: mode must be 'eager' or 'graph', got {mode!r}")
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if not isinstance(validation_freq, int) or validation_freq < 1:
            raise ValueError(f"fit: validation_freq must be a positive int, got {validation_freq!r}")
        device = self._device()
        data = training.adapt("fit", x, y, batch_size, shuffle)
        val_data = None
        if validation_data is not None:
            val_data = self._validation_source(validation_data, validation_batch_size or batch_size)
        elif validation_split:
            if not isinstance(data, training.ArrayData):
                raise ValueError(
                    f"fit: validation_split works with tensors or arrays only, not a {type(x).__name__}; pass "
                    "validation_data=(x_val, y_val) or a validation DataLoader instead"
                )
            data, val_data = data.split(validation_split)
            if validation_batch_size:
                val_data.batch_size = training._batch_size("fit", validation_batch_size)
        if device is not None:
            data = data.to(device)
            val_data = None if val_data is None else val_data.to(device)
        batches = training.EpochIterator(data, steps_per_epoch)
        cbs = CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            model=self,
            verbose=verbose,
            epochs=epochs,
            steps=batches.steps,
            do_validation=val_data is not None,
        )
        tracker = self._tracker
        self.stop_training = False
        modes = [(m, m.training) for m in self.modules()]
        self._arm_shape_recording()
        logs: dict[str, float] = {}
        try:
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                tracker.reset()
                cbs.on_epoch_begin(epoch)
                self.train()
                step = training.graph_train_step(self) if mode == "graph" else None
                steps = training.train_epoch(self, batches, cbs, tracker, step)
                if steps == 0:
                    if batches.exhausted:  # a one-shot iterator ran dry (it warned): Keras stops here
                        break
                    raise ValueError("fit: the training data produced no batches")
                logs = tracker.logs()
                if val_data is not None and (epoch + 1) % validation_freq == 0:
                    val_logs = training.evaluate_loop(self, val_data, cbs, tracker, validation_steps)
                    logs.update({"val_" + k: v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            for module, mode in modes:  # back to the modes the caller had set
                object.__setattr__(module, "training", mode)
        return self.history

    def _validation_source(self, validation_data: Any, batch_size: int | None) -> Any:
        if isinstance(validation_data, tuple):
            if len(validation_data) != 2:
                raise ValueError(
                    f"fit: validation_data must be (x_val, y_val) or a DataLoader, got a tuple of {len(validation_data)}"
                )
            return training.adapt("fit (validation_data)", validation_data[0], validation_data[1], batch_size, False)
        # a loader brings its own batch size; a dataset is batched with the validation batch size
        loader_size = batch_size if isinstance(validation_data, Dataset) else None
        return training.adapt("fit (validation_data)", validation_data, None, loader_size, False)

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: str | int = "auto",
        steps: int | None = None,
        callbacks: list[Callback] | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """The loss and metrics over ``x``/``y`` (eval mode, no gradients): a float when there are
        no metrics, else ``[loss, metric1, ...]`` in ``metrics_names`` order, or a dict with
        ``return_dict=True``."""
        self._assert_compiled("evaluate")
        verbose = _verbosity("evaluate", verbose)
        data = training.adapt("evaluate", x, y, batch_size, False)
        device = self._device()
        if device is not None:
            data = data.to(device)
        n_steps = steps or data.num_batches
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=n_steps)
        modes = [(m, m.training) for m in self.modules()]
        self._arm_shape_recording()
        try:
            logs = training.evaluate_loop(self, data, cbs, self._tracker, steps)
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: str | int = 0,
        steps: int | None = None,
        callbacks: list[Callback] | None = None,
    ) -> Any:
        """The model's outputs for ``x`` (eval mode, no gradients), batch by batch, concatenated
        into one tensor (or a tuple of tensors for a model with several outputs)."""
        verbose = _verbosity("predict", verbose)
        data = training.adapt("predict", x, None, batch_size, False, need_y=False)
        device = self._device()
        if device is not None:
            data = data.to(device)
        cbs = CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=steps or data.num_batches
        )
        modes = [(m, m.training) for m in self.modules()]
        self._arm_shape_recording()
        try:
            return training.predict_loop(self, data, cbs, steps)
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)

    def train_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One training step on one batch; the loss (and metrics) of that batch."""
        self._assert_compiled("train_on_batch")
        data = self._one_batch("train_on_batch", x, y)
        tracker = self._tracker
        tracker.reset()
        self.stop_training = False
        modes = [(m, m.training) for m in self.modules()]
        self.train()
        try:
            training.train_epoch(self, training.EpochIterator(data), CallbackList(), tracker)
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)
        return self._results(tracker.logs(), return_dict)

    def test_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss (and metrics) of one batch, in eval mode without gradients."""
        self._assert_compiled("test_on_batch")
        data = self._one_batch("test_on_batch", x, y)
        modes = [(m, m.training) for m in self.modules()]
        try:
            logs = training.evaluate_loop(self, data, CallbackList(), self._tracker)
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)
        return self._results(logs, return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        """The model's output for one batch (eval mode, no gradients)."""
        data = training.adapt("predict_on_batch", x, None, None, False, need_y=False)
        if isinstance(data, training.ArrayData):
            data.batch_size = data.n
        device = self._device()
        if device is not None:
            data = data.to(device)
        modes = [(m, m.training) for m in self.modules()]
        try:
            return training.predict_loop(self, data, CallbackList())
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)

    def _one_batch(self, who: str, x: Any, y: Any) -> Any:
        data = training.adapt(who, x, y, None, False)
        if not isinstance(data, training.ArrayData):
            raise TypeError(f"{who}: x must be a tensor or an array holding one batch")
        data.batch_size = data.n
        device = self._device()
        return data if device is None else data.to(device)

    @staticmethod
    def _results(logs: dict[str, float], return_dict: bool) -> Any:
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _device(self) -> Any:
        """The device of the first parameter (None for a model without parameters)."""
        for p in self.parameters():
            return p.device
        return None

    # ---- weights -----------------------------------------------------------------------------

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter and persistent buffer, in ``state_dict`` order (Keras's API)."""
        return [np.array(t._data if type(t._data) is np.ndarray else t._data.get()) for t in self.state_dict().values()]

    def set_weights(self, weights: list) -> None:
        """Load arrays from ``get_weights`` back, in the same order."""
        keys = list(self.state_dict().keys())
        if len(weights) != len(keys):
            raise ValueError(
                f"set_weights: {type(self).__name__} has {len(keys)} weights, but {len(weights)} arrays were given"
            )
        self.load_state_dict(OrderedDict(zip(keys, weights)))

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Write the state dict to ``filepath`` with ``minidl.save`` (safetensors, or ``.npz`` by
        extension; no pickle; written atomically)."""
        import os

        from .. import serialization

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"save_weights: {filepath} exists; pass overwrite=True to replace it")
        serialization.save(self.state_dict(), filepath)

    def load_weights(self, filepath: str, strict: bool = True) -> Any:
        """Read a state dict written by ``save_weights`` (or ``minidl.save(model.state_dict())``)."""
        from .. import serialization

        state = serialization.load(filepath)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # a training checkpoint written by save()
        return self.load_state_dict(state, strict=strict)

    def save(self, filepath: str, overwrite: bool = True) -> None:
        """Write a training checkpoint ``{'model': state dict, 'optimizer': optimizer state
        dict}`` (the optimizer part when compiled) with ``minidl.save``. minidl does not store
        code, so reloading needs the model's class: build it, then ``load_weights`` (or
        ``load_state_dict`` each part)."""
        import os

        from .. import serialization

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"save: {filepath} exists; pass overwrite=True to replace it")
        checkpoint: dict[str, Any] = {"model": self.state_dict()}
        if self.optimizer is not None and hasattr(self.optimizer, "state_dict"):
            checkpoint["optimizer"] = self.optimizer.state_dict()
        serialization.save(checkpoint, filepath)

    # ---- summary -----------------------------------------------------------------------------

    def _arm_shape_recording(self) -> None:
        """Record each direct sublayer's output shape during the next forward, then stop.

        A pre-hook on the model attaches a forward hook to every child when the call starts
        (so children added after ``__init__`` are seen); a hook on the model removes them all
        when the call ends, so later steps run without hooks, at full speed.
        """
        self._disarm_shape_recording()
        shapes: dict[str, Any] = {}
        handles: list = []

        def attach(module: Module, inputs: tuple) -> None:
            for handle in handles[1:]:  # left over from a call that raised
                handle.remove()
            del handles[1:]
            shapes.clear()
            for name, child in self.named_children():

                def record(child: Module, args: tuple, output: Any, _name: str = name) -> None:
                    shapes[_name] = _shape_of(output)

                handles.append(child.register_forward_hook(record))
            handles.append(self.register_forward_hook(done))

        def done(module: Module, inputs: tuple, output: Any) -> None:
            self.__dict__["_output_shapes"] = dict(shapes)
            self._disarm_shape_recording()

        handles.append(self.register_forward_pre_hook(attach))
        self.__dict__["_shape_hooks"] = handles

    def _disarm_shape_recording(self) -> None:
        for handle in self.__dict__.get("_shape_hooks", []):
            handle.remove()
        self.__dict__["_shape_hooks"] = []

    def summary(
        self,
        input_shape: tuple[int, ...] | None = None,
        example_input: Any = None,
        line_length: int = 65,
        print_fn: Callable[[str], Any] | None = None,
    ) -> None:
        """Print a table of the direct sublayers: name (type), output shape, parameter count;
        then the total, trainable and non-trainable parameter counts.

        Output shapes are those of the model's most recent run (the first batch of the latest
        ``fit``/``evaluate``/``predict``, or the first call), with the batch dimension shown as
        ``None``; pass ``input_shape`` (without the batch dimension) or an ``example_input``
        batch to run the model once now (eval mode, no gradients). ``'?'`` means unknown.
        ``print_fn`` receives each line (default ``print``).
        """
        print_fn = print_fn or print
        if input_shape is not None or example_input is not None:
            if example_input is None:
                shape = (2, *tuple(int(s) for s in input_shape))
                example_input = Tensor(np.zeros(shape, dtype=dtypes.get_default_dtype().np))
            inputs = example_input if isinstance(example_input, tuple) else (example_input,)
            device = self._device()
            if device is not None:
                inputs = tuple(t.to(device) if isinstance(t, Tensor) else t for t in inputs)
            modes = [(m, m.training) for m in self.modules()]
            self._arm_shape_recording()
            try:
                self.eval()
                with no_grad():
                    self(*inputs)
            finally:
                for module, mode in modes:
                    object.__setattr__(module, "training", mode)
        for line in self._summary_lines(line_length):
            print_fn(line)

    def _summary_lines(self, line_length: int) -> list[str]:
        stops = [int(line_length * f) for f in (0.45, 0.78, 1.0)]

        def row(fields: list[str]) -> str:
            line = ""
            for text, stop in zip(fields, stops):
                line = (line + " " + text)[: stop - 1].ljust(stop)
            return line.rstrip()

        lines = [f'Model: "{self.name}"', "_" * line_length, row(["Layer (type)", "Output Shape", "Param #"])]
        lines.append("=" * line_length)
        shapes = self.__dict__.get("_output_shapes", {})
        own = sum(p.numel() for p in self._parameters.values() if p is not None)
        if own:
            lines.append(row([f"(own) ({type(self).__name__})", "", f"{own:,}"]))
        for name, child in self.named_children():
            count = sum(p.numel() for p in child.parameters())
            shape = _format_shape(shapes[name]) if name in shapes else "?"
            lines.append(row([f"{name} ({type(child).__name__})", shape, f"{count:,}"]))
        lines.append("=" * line_length)
        params = list(self.parameters())
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        lines.append(f"Total params: {total:,}")
        lines.append(f"Trainable params: {trainable:,}")
        lines.append(f"Non-trainable params: {total - trainable:,}")
        buffers = sum(b.numel() for b in self.buffers())
        if buffers:
            lines.append(f"Buffers (state that is not a parameter): {buffers:,}")
        lines.append("_" * line_length)
        return lines


def _shape_of(output: Any) -> Any:
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return [_shape_of(o) for o in output]
    return None


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(_format_shape(s) for s in shape) + "]"
    if len(shape) == 0:
        return "()"
    dims = ["None", *(str(d) for d in shape[1:])]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


class Sequential(Model, _TorchSequential):
    """A model that applies its layers in order: ``Sequential([nn.Linear(64, 32), nn.ReLU(),
    nn.Linear(32, 10)])`` (or the layers as separate arguments, or an ``OrderedDict``), then
    ``.add(layer)`` for more. Layers are children ``"0"``, ``"1"``, ...; it is also an
    ``nn.Sequential`` (indexing, ``len``, ``append``)."""

    def __init__(self, layers: Any = None, *more: Module, name: str | None = None) -> None:
        Model.__init__(self, name=name or "sequential")
        if layers is None:
            items: list = []
        elif isinstance(layers, OrderedDict):
            for key, layer in layers.items():
                self._check_layer(layer, key)
                self.add_module(key, layer)
            items = []
        elif isinstance(layers, Module):
            items = [layers]
        elif isinstance(layers, Iterable):
            items = list(layers)
        else:
            raise TypeError(f"Sequential: expected a list of layers, got {type(layers).__name__}")
        for layer in [*items, *more]:
            self.add(layer)

    @staticmethod
    def _check_layer(layer: Any, where: Any) -> None:
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: layer {where} is a {type(layer).__name__}, not an nn.Module")

    def add(self, layer: Module) -> None:
        """Append ``layer`` (named by its index)."""
        self._check_layer(layer, len(self))
        self.add_module(str(len(self)), layer)

    def forward(self, input: Any) -> Any:
        for module in self._modules.values():
            input = module(input)
        return input
