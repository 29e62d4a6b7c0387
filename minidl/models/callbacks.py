"""Callbacks: code that ``fit``, ``evaluate`` and ``predict`` call at fixed points of their loops.

The hooks and their order are Keras's::

    on_train_begin
      on_epoch_begin(epoch)
        on_train_batch_begin(batch) ... on_train_batch_end(batch, logs)     # every step
        on_test_begin ... on_test_batch_end ... on_test_end(logs)           # validation
      on_epoch_end(epoch, logs)        # logs: {'loss': .., 'accuracy': .., 'val_loss': .., ...}
    on_train_end(logs)

(``evaluate`` calls the ``on_test_*`` hooks, ``predict`` the ``on_predict_*`` hooks.) Epochs
and batches count from 0. Batch ``logs`` hold the running means of the epoch so far; epoch
``logs`` the means over the whole epoch. A callback reaches the model as ``self.model`` (so
it can set ``self.model.stop_training = True``, read ``self.model.optimizer``, save weights)
and the loop's settings as ``self.params`` (``epochs``, ``steps``, ``verbose``).

Per-step hooks cost time on every step, so the loop calls a batch hook only on callbacks
that override it (``CallbackList``); the progress bar asks for them only when it draws live.
``fit`` always adds a ``History`` (returned, and set as ``model.history``) and, unless
``verbose=0``, a ``ProgbarLogger``, both after your callbacks, as Keras does.

The monitoring callbacks (``EarlyStopping``, ``ModelCheckpoint``, ``ReduceLROnPlateau``)
compare a logged quantity with the best so far; in ``mode='auto'`` they minimise losses and
read the direction of a compiled metric (accuracies are maximised), as Keras does.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .progress import Progbar, _is_terminal

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ProgbarLogger",
    "EarlyStopping",
    "ModelCheckpoint",
    "CSVLogger",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "LambdaCallback",
    "TerminateOnNaN",
]


class Callback:
    """Base class: override the hooks you need. Every hook does nothing by default;
    ``on_train_batch_begin/end`` call ``on_batch_begin/end`` (Keras's older names)."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs: dict | None = None) -> None:
        pass

    def on_test_end(self, logs: dict | None = None) -> None:
        pass

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_predict_begin(self, logs: dict | None = None) -> None:
        pass

    def on_predict_end(self, logs: dict | None = None) -> None:
        pass

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass


def _overrides(callback: Callback, *names: str) -> bool:
    """Does ``callback`` replace any of the hooks ``names`` (in its class or on the instance)?"""
    for name in names:
        fn = getattr(callback, name)
        if getattr(fn, "__func__", fn) is not getattr(Callback, name):
            return True
    return False


class CallbackList:
    """The callbacks of one ``fit``/``evaluate``/``predict`` call, called together.

    Adds the default ``History`` and ``ProgbarLogger`` when asked (unless given), hands every
    callback the model and the params, and works out once which callbacks have per-batch
    hooks, so that the loop pays for batch hooks only when someone listens (``wants_*``).
    """

    def __init__(
        self,
        callbacks: Iterable[Callback] | None = None,
        add_history: bool = False,
        add_progbar: bool = False,
        model: Any = None,
        **params: Any,
    ) -> None:
        self.callbacks = list(callbacks or [])
        for i, cb in enumerate(self.callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks[{i}] is a {type(cb).__name__}, not a Callback; subclass "
                    "minidl.models.callbacks.Callback or wrap functions in LambdaCallback"
                )
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self.model = model
        if model is not None:
            if self.history is not None:
                model.history = self.history
            for cb in self.callbacks:
                cb.set_model(model)
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

        def listening(*names: str) -> list[Callback]:
            return [cb for cb in self.callbacks if _overrides(cb, *names) and getattr(cb, "wants_batch_updates", True)]

        self._train_begin = listening("on_train_batch_begin", "on_batch_begin")
        self._train_end = listening("on_train_batch_end", "on_batch_end")
        self._test_begin = listening("on_test_batch_begin")
        self._test_end = listening("on_test_batch_end")
        self._predict_begin = listening("on_predict_batch_begin")
        self._predict_end = listening("on_predict_batch_end")

    @property
    def wants_train_batch_begin(self) -> bool:
        return bool(self._train_begin)

    @property
    def wants_train_batch_end(self) -> bool:
        return bool(self._train_end)

    @property
    def wants_test_batch_begin(self) -> bool:
        return bool(self._test_begin)

    @property
    def wants_test_batch_end(self) -> bool:
        return bool(self._test_end)

    @property
    def wants_predict_batch_begin(self) -> bool:
        return bool(self._predict_begin)

    @property
    def wants_predict_batch_end(self) -> bool:
        return bool(self._predict_end)

    def __iter__(self):
        return iter(self.callbacks)

    # ---- dispatch ----------------------------------------------------------------------------

    def on_train_begin(self, logs: dict | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs if logs is not None else {})

    def on_train_end(self, logs: dict | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs if logs is not None else {})

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs if logs is not None else {})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)  # one dict, so a callback may add to it (learning_rate)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        for cb in self._train_begin:
            cb.on_train_batch_begin(batch, logs if logs is not None else {})

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for cb in self._train_end:
            cb.on_train_batch_end(batch, logs if logs is not None else {})

    def on_test_begin(self, logs: dict | None = None) -> None:
        for cb in self.callbacks:
            cb.on_test_begin(logs if logs is not None else {})

    def on_test_end(self, logs: dict | None = None) -> None:
        for cb in self.callbacks:
            cb.on_test_end(logs if logs is not None else {})

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        for cb in self._test_begin:
            cb.on_test_batch_begin(batch, logs if logs is not None else {})

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for cb in self._test_end:
            cb.on_test_batch_end(batch, logs if logs is not None else {})

    def on_predict_begin(self, logs: dict | None = None) -> None:
        for cb in self.callbacks:
            cb.on_predict_begin(logs if logs is not None else {})

    def on_predict_end(self, logs: dict | None = None) -> None:
        for cb in self.callbacks:
            cb.on_predict_end(logs if logs is not None else {})

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        for cb in self._predict_begin:
            cb.on_predict_batch_begin(batch, logs if logs is not None else {})

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for cb in self._predict_end:
            cb.on_predict_batch_end(batch, logs if logs is not None else {})


# ---- the two default callbacks -----------------------------------------------------------------


class History(Callback):
    """Records every epoch's logs: ``history.history['val_loss'][i]`` is epoch ``history.epoch[i]``'s.

    ``fit`` adds one and returns it (also as ``model.history``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints progress (see ``progress.py``): ``Epoch i/N`` and a bar per epoch in ``fit``
    (validation adds its ``val_`` values to the epoch's final line), one bar for ``evaluate``
    and ``predict``. Reads ``verbose`` from the params: 0 silent, 1 (or ``'auto'``) a bar,
    2 one line per epoch. ``interval`` is the least time between two redraws, in seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__()
        self.interval = interval
        self.verbose = 1
        self.epochs = 1
        self.target: int | None = None
        self.progbar: Progbar | None = None
        self.seen = 0
        self._in_fit = False
        self.wants_batch_updates = True

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")
        # Batch updates only matter to a live bar; a log file gets the final line only.
        self.wants_batch_updates = self.verbose == 1 and _is_terminal(sys.stdout)

    def _new_bar(self) -> None:
        self.seen = 0
        self.progbar = Progbar(self.target, verbose=self.verbose, interval=self.interval)

    def _update(self, batch: int, logs: dict | None) -> None:
        if self.progbar is None:
            self._new_bar()
        self.seen = batch + 1
        self.progbar.update(self.seen, logs, finalize=False)

    def _finalize(self, logs: dict | None) -> None:
        if self.progbar is None:
            self._new_bar()
        if self.target is None:  # now we know how many steps there were
            self.progbar.target = self.seen
        self.progbar.update(self.progbar.target or self.seen, logs, finalize=True)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._in_fit = True  # validation inside fit is silent: its values join the epoch's line

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._new_bar()
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._update(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._finalize(logs)

    def on_test_begin(self, logs: dict | None = None) -> None:
        if not self._in_fit:
            self._new_bar()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self._in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs: dict | None = None) -> None:
        if not self._in_fit:
            self._finalize(logs)

    def on_predict_begin(self, logs: dict | None = None) -> None:
        self._new_bar()

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._update(batch, None)

    def on_predict_end(self, logs: dict | None = None) -> None:
        self._finalize(None)


# ---- monitoring a quantity ---------------------------------------------------------------------


def _direction(who: str, monitor: str, mode: str, model: Any) -> int:
    """+1 if larger values of ``monitor`` are better, -1 if smaller ones are.

    ``'auto'``: losses go down; a compiled metric says its own direction (accuracies go up);
    anything else is an error asking for ``mode`` -- Keras's rule.
    """
    if mode == "min":
        return -1
    if mode == "max":
        return 1
    name = monitor.removeprefix("val_")
    if name == "loss":
        return -1
    for metric in getattr(model, "metrics", None) or []:
        if getattr(metric, "name", None) == name and hasattr(metric, "direction"):
            return 1 if metric.direction == "up" else -1
    raise ValueError(
        f"{who} received monitor={monitor!r}, but cannot tell whether that quantity should be maximized or "
        "minimized; pass mode='max' to keep the highest value or mode='min' to keep the lowest"
    )


def _check_mode(who: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{who} mode {mode!r} is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


def _monitored(who: str, monitor: str, logs: dict | None) -> float | None:
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(
            f"{who} conditioned on metric `{monitor}` which is not available. "
            f"Available metrics are: {','.join(logs or {})}",
            stacklevel=3,
        )
    return value


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras's semantics).

    At each epoch end (from epoch ``start_from_epoch`` on): an *improvement* is a value better
    than the best so far by more than ``min_delta``; it becomes the new best and, if it also
    beats ``baseline`` (when one is given), resets the wait. Otherwise the wait grows, and once
    ``wait >= patience`` (and ``epoch > 0``) training stops: ``model.stop_training = True``.

    With ``restore_best_weights=True`` the weights of the best epoch are kept (a copy), and put
    back at the **end of training** -- whether training stopped early or ran all its epochs --
    as long as some epoch was monitored. ``best_epoch`` and ``stopped_epoch`` (0 if training
    was not stopped) are attributes afterwards.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.mode = _check_mode("EarlyStopping", mode)
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.sign: int | None = None
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: list | None = None
        self.best = math.inf if self.sign is None or self.sign < 0 else -math.inf

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._reset()

    def _is_improvement(self, value: float, reference: float) -> bool:
        # better by more than min_delta, in the monitored direction
        return (value - reference) * self.sign > self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.sign is None:  # decided once the model's metrics exist
            self.sign = _direction("EarlyStopping", self.monitor, self.mode, self.model)
            self.best = math.inf if self.sign < 0 else -math.inf
        current = _monitored("Early stopping", self.monitor, logs)
        if current is None or epoch < self.start_from_epoch:
            return
        current = float(current)
        if self.restore_best_weights and self.best_weights is None:
            # the first monitored epoch is the best so far, whatever its value
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model at the end of every epoch (or only when ``monitor`` improves).

    ``filepath`` may hold format fields filled from the epoch (counted from 1) and the logs:
    ``'ckpt-{epoch:02d}-{val_loss:.2f}.safetensors'``. With ``save_weights_only=True`` the file
    is the model's state dict (``model.save_weights``; read back with ``model.load_weights``);
    otherwise it is a training checkpoint ``{'model': state dict, 'optimizer': optimizer state
    dict}`` (``model.save``), enough to resume training. Files are written with
    ``minidl.save``: without pickle, and atomically (a crash never leaves half a file).

    ``save_best_only=True`` saves only when ``monitor`` improves on the best so far
    (``initial_value_threshold`` is the best to beat at the start); a ``filepath`` without
    format fields is then always the best model.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = _check_mode("ModelCheckpoint", mode)
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int, got {save_freq!r}")
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self.sign: int | None = None
        self._batches_since_save = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch: int, batch: int | None, logs: dict) -> str:
        fields = dict(logs)
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(epoch=epoch + 1, **fields)
        except KeyError as err:
            raise KeyError(
                f'ModelCheckpoint: failed to format the filepath "{self.filepath}": {err} is not in the logs '
                f"(available: epoch, {', '.join(fields)})"
            ) from None

    def _should_save(self, epoch: int, logs: dict, path: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
            return True
        if self.sign is None:
            self.sign = _direction("ModelCheckpoint", self.monitor, self.mode, self.model)
            if self.best is None:
                self.best = math.inf if self.sign < 0 else -math.inf
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        current = float(current)
        best_text = f"{self.best:.5f}"
        if (current - self.best) * self.sign > 0:
            if self.verbose > 0:
                print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_text} to {current:.5f}, saving model to {path}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_text}")
        return False

    def _save(self, epoch: int, batch: int | None, logs: dict | None) -> None:
        logs = logs or {}
        path = self._path(epoch, batch, logs)
        if os.path.isdir(path):
            raise IsADirectoryError(f"ModelCheckpoint: filepath {path!r} is a directory; give a file name")
        if not self._should_save(epoch, logs, path):
            return
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Append one row per epoch to a CSV file: ``epoch`` (from 0) and every logged value,
    columns in sorted order (fixed by the first epoch). ``append=True`` continues an existing
    file (without a second header); otherwise the file is overwritten."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys: list[str] | None = None
        self.writer: Any = None
        self.csv_file: Any = None
        self.append_header = True

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.append_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                self.append_header = not bool(len(f.readline()))
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115 (kept open across epochs)
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            # a validation column that this epoch happened to skip (validation_freq) still gets one
            for name in getattr(self.model, "metrics_names", None) or []:
                val_name = "val_" + name
                if self.params.get("do_validation") and val_name not in self.keys:
                    self.keys.append(val_name)
        if self.writer is None:

            class Dialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, _csv_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        return f'"[{", ".join(map(str, value))}]"'
    return value


# ---- learning rate -----------------------------------------------------------------------------


def get_lr(optimizer: Any) -> float:
    """The learning rate of the optimizer's first parameter group."""
    groups = getattr(optimizer, "param_groups", None)
    if not groups or "lr" not in groups[0]:
        raise ValueError(
            f"the optimizer ({type(optimizer).__name__}) has no param_groups with an 'lr'; learning-rate "
            "callbacks need a minidl.optim optimizer"
        )
    return float(groups[0]["lr"])


def set_lr(optimizer: Any, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    get_lr(optimizer)
    for group in optimizer.param_groups:
        group["lr"] = lr


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch: ``lr = schedule(epoch, lr)`` (epoch from
    0, ``lr`` the current rate; a one-argument ``schedule(epoch)`` works too). Every parameter
    group gets the new rate; the rate is logged as ``learning_rate`` at the epoch's end."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, get_lr(optimizer))
        except TypeError:  # the older one-argument form
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
            raise ValueError(f"LearningRateScheduler: the schedule must return a float, got {lr!r}")
        set_lr(optimizer, float(lr))
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = get_lr(self.model.optimizer)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved (by more than
    ``min_delta``) for ``patience`` epochs; then wait ``cooldown`` epochs before counting again.
    Never goes below ``min_lr``. Logs ``learning_rate`` every epoch. In ``mode='auto'`` a
    monitor whose name contains ``'acc'`` is maximised, anything else minimised (Keras's rule
    for this callback)."""

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got factor={factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.mode = _check_mode("ReduceLROnPlateau", mode)
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self._reset()

    def _reset(self) -> None:
        maximize = self.mode == "max" or (self.mode == "auto" and "acc" in self.monitor)
        self.sign = 1 if maximize else -1
        self.best = -math.inf if maximize else math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = get_lr(optimizer)
        current = _monitored("Learning rate reduction", self.monitor, logs)
        if current is None:
            return
        current = float(current)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if (current - self.best) * self.sign > self.min_delta:
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = get_lr(optimizer)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    for group in optimizer.param_groups:
                        group["lr"] = max(float(group["lr"]) * self.factor, self.min_lr)
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


# ---- small ones --------------------------------------------------------------------------------

_HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Any hook name is accepted as a keyword; each function takes the hook's arguments
    (``(epoch, logs)``, ``(batch, logs)`` or ``(logs)``)."""

    def __init__(self, **hooks: Callable[..., Any]) -> None:
        super().__init__()
        for name, fn in hooks.items():
            if name not in _HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; hooks are {', '.join(_HOOKS)}")
            if fn is not None:
                setattr(self, name, fn)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
