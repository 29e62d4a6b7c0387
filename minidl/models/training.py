"""The loops behind ``Model.fit``, ``evaluate`` and ``predict``, and the data they walk over.

One training step, in train mode, is exactly the loop a PyTorch user writes by hand::

    optimizer.zero_grad()
    y_pred = model(x)                 # model.train() was set at the start of the epoch
    loss = loss_fn(y_pred, y)         # a scalar tensor
    loss.backward()
    optimizer.step()

plus the bookkeeping Keras adds: the loss and the metrics are accumulated, weighted by the
batch's size, so that the epoch's ``logs`` are means over samples; the callbacks' batch hooks
run (only those a callback overrides). Validation and ``evaluate`` run the model in eval mode
under ``no_grad``. Nothing else happens per step, so ``fit`` costs a few microseconds per step
more than the hand-written loop.

**Data.** ``x``/``y`` as minidl tensors or NumPy arrays (``x`` may be a tuple of them for a
model with several inputs, called ``model(*x)``) are batched here: NumPy floats become the
default dtype (float32) and NumPy integers int64, once, up front; each epoch draws a
permutation from minidl's global generator (``minidl.manual_seed`` fixes it), permutes the
arrays once, and takes consecutive slices. ``x`` may instead be a ``DataLoader`` or any
iterable of ``(inputs, targets)`` batches (used as it is: its own batch size and shuffling),
or a ``Dataset`` (wrapped in a ``DataLoader`` with ``batch_size`` and ``shuffle``; a
``TensorDataset`` is treated as its arrays). ``validation_split`` keeps the *last* fraction
of the arrays, before any shuffling, for validation (Keras's rule).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd.grad_mode import no_grad
from ..backend.device import array_module
from ..data import DataLoader, Dataset, IterableDataset, TensorDataset
from ..ops import creation
from ..ops.cast import to_device
from ..tensor import Tensor
from . import metrics as metrics_module
from .callbacks import CallbackList

# ---- data --------------------------------------------------------------------------------------


def _is_array(x: Any) -> bool:
    return isinstance(x, (Tensor, np.ndarray))


def _as_tensor(who: str, what: str, x: Any) -> Tensor:
    """An input array as a tensor: NumPy floats in the default dtype, NumPy integers as int64
    (Keras casts float inputs to its float type; PyTorch's class targets are int64)."""
    if isinstance(x, Tensor):
        return x.detach() if x.requires_grad else x
    array = np.asarray(x)
    if array.dtype == object:
        raise TypeError(f"{who}: {what} must be a tensor or a numeric NumPy array, got an array of Python objects")
    if array.dtype.kind == "f":
        array = array.astype(dtypes.get_default_dtype().np, copy=False)
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64, copy=False)
    if array.ndim == 0:
        raise ValueError(f"{who}: {what} is a scalar; it needs a first dimension that indexes the samples")
    return Tensor(np.ascontiguousarray(array))


class ArrayData:
    """Samples held in arrays: ``xs`` (one or more input tensors) and ``y`` (targets or None).

    ``one_pass`` yields ``(inputs, targets)`` batches of ``batch_size`` consecutive samples,
    in a fresh random order when ``shuffle`` is set.
    """

    def __init__(self, xs: tuple[Tensor, ...], y: Tensor | None, batch_size: int, shuffle: bool) -> None:
        self.xs = xs
        self.y = y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.n = xs[0].shape[0]

    @property
    def num_batches(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def to(self, device: Any) -> ArrayData:
        """The same data on ``device`` (copied once, not per batch)."""
        xs = tuple(t if t.device == device else to_device(t, device) for t in self.xs)
        y = self.y if self.y is None or self.y.device == device else to_device(self.y, device)
        return ArrayData(xs, y, self.batch_size, self.shuffle)

    def split(self, validation_split: float) -> tuple[ArrayData, ArrayData]:
        """The first ``1 - validation_split`` of the samples for training, the rest for validation."""
        split_at = int(math.floor(self.n * (1.0 - validation_split)))
        if split_at == 0 or split_at == self.n:
            raise ValueError(
                f"fit: the training data has {self.n} samples, which is not enough to split off "
                f"validation_split={validation_split} of them for validation; provide more data or another fraction"
            )
        head = ArrayData(
            tuple(t[:split_at] for t in self.xs),
            None if self.y is None else self.y[:split_at],
            self.batch_size,
            self.shuffle,
        )
        tail = ArrayData(
            tuple(t[split_at:] for t in self.xs), None if self.y is None else self.y[split_at:], self.batch_size, False
        )
        return head, tail

    def one_pass(self) -> Iterator[tuple[tuple[Tensor, ...], Tensor | None]]:
        arrays = [t._data for t in self.xs]
        y = None if self.y is None else self.y._data
        if self.shuffle:
            order = creation.generator().permutation(self.n)
            xp = array_module(arrays[0])
            if xp is not np:
                order = xp.asarray(order)
            # one gather per epoch, then contiguous slices: cheaper than a gather per batch
            arrays = [a[order] for a in arrays]
            y = None if y is None else y[order]
        wrap = Tensor._wrap
        bs = self.batch_size
        single = len(arrays) == 1
        for start in range(0, self.n, bs):
            stop = start + bs
            xs = (wrap(arrays[0][start:stop]),) if single else tuple(wrap(a[start:stop]) for a in arrays)
            yield xs, (None if y is None else wrap(y[start:stop]))


class LoaderData:
    """Batches from an iterable such as a ``DataLoader``: each batch is ``(inputs, targets)``,
    or bare inputs for ``predict``. ``inputs`` may be a tuple/list of tensors (several inputs)."""

    def __init__(self, loader: Any, device: Any = None) -> None:
        self.loader = loader
        self.device = device
        try:
            self.num_batches: int | None = len(loader)
        except TypeError:
            self.num_batches = None
        # An iterator (a generator) is exhausted after one pass; a DataLoader starts again.
        # (Not tested with iter(loader): that could draw a shuffle from the global generator.)
        self.reiterable = not isinstance(loader, Iterator)

    def to(self, device: Any) -> LoaderData:
        return LoaderData(self.loader, device)

    def _tensor(self, t: Any) -> Tensor:
        if not isinstance(t, Tensor):
            t = _as_tensor("fit", "a batch", t)
        if self.device is not None and t.device != self.device:
            t = to_device(t, self.device)
        return t

    def one_pass(self) -> Iterator[tuple[tuple[Tensor, ...], Tensor | None]]:
        for batch in self.loader:
            if isinstance(batch, (tuple, list)):
                if len(batch) == 2:
                    inputs, targets = batch
                elif len(batch) == 1:
                    inputs, targets = batch[0], None
                else:
                    raise ValueError(
                        f"fit: each batch must be (inputs, targets), got a {type(batch).__name__} of {len(batch)} "
                        "elements; group several inputs as ((x1, x2), y)"
                    )
            else:
                inputs, targets = batch, None
            xs = (
                tuple(self._tensor(t) for t in inputs) if isinstance(inputs, (tuple, list)) else (self._tensor(inputs),)
            )
            yield xs, (None if targets is None else self._tensor(targets))


def adapt(
    who: str, x: Any, y: Any, batch_size: int | None, shuffle: bool, need_y: bool = True
) -> ArrayData | LoaderData:
    """Turn the ``x``/``y`` arguments of ``fit``/``evaluate``/``predict`` into batches."""
    if x is None:
        raise ValueError(f"{who}: x is required (the inputs: a tensor, a NumPy array, a Dataset or a DataLoader)")
    inputs = x if isinstance(x, (tuple, list)) and x and all(_is_array(a) for a in x) else None
    if isinstance(x, TensorDataset):
        # its arrays, batched here (the fast route): the last tensor holds the targets
        if y is not None:
            raise ValueError(f"{who}: y must be None when x is a dataset (the dataset holds the targets)")
        if len(x.tensors) == 1:
            if need_y:
                raise ValueError(f"{who}: the TensorDataset holds one tensor; it needs inputs and targets")
            inputs, y = list(x.tensors), None
        else:
            inputs, y = list(x.tensors[:-1]), x.tensors[-1]
    elif inputs is None and not _is_array(x) and not isinstance(x, (list, tuple)):
        if y is not None:
            raise ValueError(
                f"{who}: y must be None when x is a {type(x).__name__}; its batches hold the targets as (inputs, targets)"
            )
        if isinstance(x, Dataset):  # a dataset of samples: batch it
            shuffle = shuffle and not isinstance(x, IterableDataset)
            return LoaderData(DataLoader(x, batch_size=_batch_size(who, batch_size), shuffle=shuffle))
        if batch_size is not None:
            raise ValueError(
                f"{who}: do not pass batch_size with a {type(x).__name__}; it makes its own batches "
                "(set batch_size on the DataLoader)"
            )
        if not hasattr(x, "__iter__"):
            raise TypeError(
                f"{who}: x must be a tensor, a NumPy array, a Dataset or a DataLoader, got {type(x).__name__}"
            )
        return LoaderData(x)
    xs = tuple(_as_tensor(who, "x", a) for a in (inputs if inputs is not None else [x]))
    sizes = {t.shape[0] for t in xs}
    if len(sizes) > 1:
        raise ValueError(f"{who}: the inputs in x have different numbers of samples: {[t.shape[0] for t in xs]}")
    n = xs[0].shape[0]
    if y is None:
        if need_y:
            raise ValueError(f"{who}: y is required with array inputs (the targets, one per sample of x)")
        yt = None
    else:
        yt = _as_tensor(who, "y", y)
        if yt.shape[0] != n:
            raise ValueError(
                f"{who}: x and y have different numbers of samples: x has {n}, y has {yt.shape[0]}; "
                "they must match along the first dimension"
            )
    if n == 0:
        raise ValueError(f"{who}: x has no samples")
    return ArrayData(xs, yt, _batch_size(who, batch_size), shuffle)


def _batch_size(who: str, batch_size: int | None) -> int:
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


class EpochIterator:
    """Splits a data source into epochs of ``steps`` batches.

    Without ``steps_per_epoch`` an epoch is one pass over the data. With it, an epoch is that
    many batches: the passes continue from one epoch into the next and a new pass (reshuffled)
    begins whenever one runs out, as in Keras. A one-shot iterator that runs dry ends training
    with a warning.
    """

    def __init__(self, data: ArrayData | LoaderData, steps_per_epoch: int | None = None) -> None:
        if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0):
            raise ValueError(f"steps_per_epoch must be a positive int or None, got {steps_per_epoch!r}")
        self.data = data
        self.steps_per_epoch = steps_per_epoch
        self.steps = steps_per_epoch or data.num_batches
        self._pass: Iterator | None = None
        self.exhausted = False

    def epoch(self) -> Iterator[tuple[int, tuple]]:
        if self.steps_per_epoch is None:
            if self.exhausted:
                _ran_out()
                return
            yield from enumerate(self.data.one_pass())
            if isinstance(self.data, LoaderData) and not self.data.reiterable:
                self.exhausted = True
            return
        for step in range(self.steps_per_epoch):
            batch = self._next()
            if batch is None:
                return
            yield step, batch

    def _next(self) -> tuple | None:
        for attempt in range(2):
            if self._pass is None:
                if self.exhausted:
                    return None
                self._pass = self.data.one_pass()
            batch = next(self._pass, None)
            if batch is not None:
                return batch
            self._pass = None
            if isinstance(self.data, LoaderData) and not self.data.reiterable:
                self.exhausted = True
            if attempt == 1 or self.exhausted:
                break
        _ran_out()
        self.exhausted = True
        return None


def _ran_out() -> None:
    warnings.warn(
        "Your input ran out of data; interrupting training. A generator can be iterated once: make sure it yields "
        "at least `steps_per_epoch * epochs` batches, or pass a DataLoader (or a Dataset), which starts again "
        "every epoch.",
        stacklevel=5,
    )


# ---- bookkeeping -------------------------------------------------------------------------------


class Tracker:
    """The running loss and metrics of one epoch (or one ``evaluate``), as sample means.

    Metric names given as ``'accuracy'`` are resolved against the first batch (their meaning
    depends on the shapes); after that, ``update`` is a handful of additions per step.
    """

    def __init__(self, specs: list, binary_loss: str | None) -> None:
        self.specs = specs
        self.binary_loss = binary_loss
        self.loss = metrics_module.Mean(name="loss")
        self.metrics: list[metrics_module.Metric] | None = None if specs else []

    def build(self, y_true: Any, y_pred: Any) -> None:
        built, seen = [], {"loss"}
        for spec in self.specs:
            if isinstance(spec, str) and spec.lower() in metrics_module.ACCURACY_NAMES:
                metric = metrics_module.resolve_accuracy(spec, y_true, y_pred, self.binary_loss)
            else:
                metric = metrics_module.get(spec)
            name, i = metric.name, 0
            while metric.name in seen:  # two metrics of one name: keep both, as name_1, name_2
                i += 1
                metric.name = f"{name}_{i}"
            seen.add(metric.name)
            built.append(metric)
        self.metrics = built

    def reset(self) -> None:
        self.loss.reset_state()
        for m in self.metrics or []:
            m.reset_state()

    def update(self, loss: Tensor, y_true: Tensor | None, y_pred: Any) -> None:
        n = _batch_len(y_pred if y_true is None else y_true)
        loss_data = loss._data
        self.loss.total += float(loss_data) * n
        self.loss.count += n
        if self.metrics is None:
            self.build(y_true._data, _data(y_pred))
        if self.metrics:
            t, p = y_true._data, _data(y_pred)
            for m in self.metrics:
                m.update_state(t, p)

    def logs(self, prefix: str = "") -> dict[str, float]:
        out = {prefix + "loss": self.loss.result()}
        for m in self.metrics or []:
            out[prefix + m.name] = m.result()
        return out

    @property
    def names(self) -> list[str]:
        if self.metrics is None:
            return ["loss"]
        return ["loss"] + [m.name for m in self.metrics]


def _data(y_pred: Any) -> Any:
    if isinstance(y_pred, Tensor):
        return y_pred._data
    raise TypeError(
        f"metrics need the model to return one tensor, got a {type(y_pred).__name__}; compile without metrics "
        "or return a single tensor from forward"
    )


def _batch_len(t: Any) -> int:
    if isinstance(t, Tensor):
        return t._data.shape[0] if t._data.ndim else 1
    if isinstance(t, (tuple, list)) and t:
        return _batch_len(t[0])
    return 1


def _check_loss(loss: Any, loss_fn: Any) -> None:
    if type(loss) is not Tensor or loss._data.size != 1:
        name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else f"a {type(loss).__name__}"
        raise ValueError(
            f"fit: the loss {name} returned {got}; it must return a scalar tensor (reduce it with .mean(), or use "
            "reduction='mean')"
        )


# ---- the loops ---------------------------------------------------------------------------------


def graph_train_step(model: Any) -> Any:
    """The training step above, compiled into the static graph with ``minidl.compile``: one
    program per batch shape runs forward, loss, backward and the optimizer's update. Bitwise
    the same numbers as the eager step, fewer Python dispatches. Cached on the model."""
    from ..graph.compile import compile as compile_fn

    optimizer, loss_fn = model.optimizer, model.compiled_loss
    cached = getattr(model, "_graph_train_step", None)
    if cached is not None and cached[0] is optimizer and cached[1] is loss_fn:
        return cached[2]

    def train_step(xs: tuple, y: Tensor) -> tuple:
        optimizer.zero_grad()
        y_pred = model(*xs)
        loss = loss_fn(y_pred, y)
        if not isinstance(loss, Tensor) or loss._data.size != 1:
            _check_loss(loss, loss_fn)
        loss.backward()
        optimizer.step()
        return loss, y_pred

    # The last batch of an epoch is often smaller: one more trace, expected, so not warned about.
    step = compile_fn(train_step, warn_on_retrace=False)
    object.__setattr__(model, "_graph_train_step", (optimizer, loss_fn, step))
    return step


def train_epoch(
    model: Any, batches: EpochIterator, callbacks: CallbackList, tracker: Tracker, compiled_step: Any = None
) -> int:
    """One epoch of training steps; returns the number of steps taken. With ``compiled_step``
    (``fit(mode='graph')``) each step runs as one compiled program."""
    optimizer = model.optimizer
    zero_grad, step = optimizer.zero_grad, optimizer.step
    loss_fn = model.compiled_loss
    update = tracker.update
    begin_hooks = callbacks.wants_train_batch_begin
    end_hooks = callbacks.wants_train_batch_end
    steps = 0
    for i, (xs, y) in batches.epoch():
        if y is None:
            raise ValueError("fit: the data has no targets; each batch must be (inputs, targets)")
        if begin_hooks:
            callbacks.on_train_batch_begin(i)
        if compiled_step is not None:
            loss, y_pred = compiled_step(xs, y)
            update(loss, y, y_pred)
            steps += 1
            if end_hooks:
                callbacks.on_train_batch_end(i, tracker.logs())
            if model.stop_training:
                break
            continue
        zero_grad()
        y_pred = model(*xs)
        loss = loss_fn(y_pred, y)
        if type(loss) is not Tensor or loss._data.size != 1:
            _check_loss(loss, loss_fn)
        loss.backward()
        step()
        update(loss, y, y_pred)
        steps += 1
        if end_hooks:
            callbacks.on_train_batch_end(i, tracker.logs())
        if model.stop_training:
            break
    return steps


def evaluate_loop(
    model: Any, data: ArrayData | LoaderData, callbacks: CallbackList, tracker: Tracker, steps: int | None = None
) -> dict[str, float]:
    """Evaluate: the mean loss and metrics over ``data`` (eval mode, no gradients)."""
    loss_fn = model.compiled_loss
    tracker.reset()
    callbacks.on_test_begin()
    begin_hooks, end_hooks = callbacks.wants_test_batch_begin, callbacks.wants_test_batch_end
    model.eval()
    count = 0
    with no_grad():
        for i, (xs, y) in itertools.islice(enumerate(data.one_pass()), steps):
            if y is None:
                raise ValueError("evaluate: the data has no targets; batches must be (inputs, targets)")
            if begin_hooks:
                callbacks.on_test_batch_begin(i)
            y_pred = model(*xs)
            loss = loss_fn(y_pred, y)
            if type(loss) is not Tensor or loss._data.size != 1:
                _check_loss(loss, loss_fn)
            tracker.update(loss, y, y_pred)
            count += 1
            if end_hooks:
                callbacks.on_test_batch_end(i, tracker.logs())
    if count == 0:
        raise ValueError("evaluate: the data produced no batches")
    logs = tracker.logs()
    callbacks.on_test_end(logs)
    return logs


def predict_loop(model: Any, data: ArrayData | LoaderData, callbacks: CallbackList, steps: int | None = None) -> Any:
    """The model's outputs for every batch, concatenated along the first dimension."""
    callbacks.on_predict_begin()
    begin_hooks, end_hooks = callbacks.wants_predict_batch_begin, callbacks.wants_predict_batch_end
    model.eval()
    outputs: list = []
    with no_grad():
        for i, (xs, _) in itertools.islice(enumerate(data.one_pass()), steps):
            if begin_hooks:
                callbacks.on_predict_batch_begin(i)
            y_pred = model(*xs)
            outputs.append(y_pred)
            if end_hooks:
                callbacks.on_predict_batch_end(i, {"outputs": y_pred})
    callbacks.on_predict_end()
    if not outputs:
        raise ValueError("predict: the data produced no batches")
    return _concatenate(outputs)


def _concatenate(outputs: list) -> Any:
    first = outputs[0]
    if isinstance(first, Tensor):
        arrays = [o._data for o in outputs]
        xp = array_module(arrays[0])
        return Tensor(xp.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0])
    if isinstance(first, (tuple, list)):
        return type(first)(_concatenate([o[i] for o in outputs]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concatenate([o[k] for o in outputs]) for k in first}
    raise TypeError(f"predict: the model returned a {type(first).__name__}; expected tensors (or tuples/dicts of them)")
