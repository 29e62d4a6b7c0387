"""Metrics for ``Model.compile(metrics=[...])``: what ``fit`` and ``evaluate`` report besides the loss.

A metric is *stateful*, as in Keras: ``update_state(y_true, y_pred)`` adds one batch,
``result()`` is the value over everything added since ``reset_state()``. ``fit`` resets its
metrics at the start of each epoch, so the epoch's value is the mean over every sample of the
epoch -- a batch of 32 counts 32 times, a last batch of 8 counts 8 times -- which is what Keras
reports, and not the mean of the per-batch means.

Most metrics are means of a per-sample value (``MeanMetricWrapper``): accuracy is the mean of
"was this sample right" (0 or 1). The value functions (``sparse_categorical_accuracy``, ...)
follow Keras: they take ``(y_true, y_pred)`` -- the target first -- and return one value per
sample. Metrics compute on the raw arrays (NumPy, or CuPy on a GPU), outside autograd: a
metric is a measurement, never part of the graph, and this keeps it cheap in the training loop.

Names resolve as in Keras: ``'accuracy'`` (or ``'acc'``) becomes binary, sparse categorical
or categorical accuracy depending on the loss and on the shapes of the first batch
(``resolve_accuracy``); every other name is looked up in ``get``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend.device import array_module
from ..tensor import Tensor

__all__ = [
    "Metric",
    "Mean",
    "MeanMetricWrapper",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKAccuracy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "RootMeanSquaredError",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "mean_squared_error",
    "mean_absolute_error",
    "get",
    "resolve_accuracy",
]


def _array(x: Any) -> Any:
    """The raw array behind a tensor, array or nested list (metrics never need autograd)."""
    if isinstance(x, Tensor):
        return x._data
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    return np.asarray(x)


def keras_order(fn: Callable) -> Callable:
    """Mark ``fn`` as taking ``(y_true, y_pred)``, Keras's order, so that ``compile`` calls it
    that way (a plain callable is called ``(y_pred, y_true)``, as PyTorch's losses are)."""
    fn._y_true_first = True
    return fn


def _as_input_kind(values: Any, like: Any) -> Any:
    """Return a tensor when the caller passed tensors (the functions below compute on arrays)."""
    return Tensor(values) if isinstance(like, Tensor) else values


# ---- per-sample value functions (Keras order: y_true, y_pred) ----------------------------------


def _match_rank(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Drop a trailing 1 from whichever side has one more dimension (Keras's
    ``squeeze_or_expand_to_same_rank``), so that (N,) targets meet (N, 1) predictions."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true.reshape(y_true.shape[:-1])
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred.reshape(y_pred.shape[:-1])
    return y_true, y_pred


def _per_sample(values: Any) -> Any:
    """Average the trailing axis (the features of one sample), as Keras's metrics do."""
    return values.mean(axis=-1) if values.ndim > 1 else values


@keras_order
def accuracy(y_true: Any, y_pred: Any) -> Any:
    """1.0 where the prediction equals the target exactly (Keras's ``Accuracy``)."""
    t, p = _match_rank(_array(y_true), _array(y_pred))
    return _as_input_kind(_per_sample((t == p).astype(np.float32)), y_pred)


@keras_order
def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """1.0 where ``y_pred > threshold`` agrees with the 0/1 target; the mean over the last axis."""
    t, p = _match_rank(_array(y_true), _array(y_pred))
    hit = (p > threshold) == (t > 0.5)
    return _as_input_kind(_per_sample(hit.astype(np.float32)), y_pred)


def _class_axis(t: Any, p: Any) -> int:
    """Which axis of ``y_pred`` holds the classes for integer targets ``t``.

    Keras puts classes last: targets (N, ...) meet predictions (N, ..., C). PyTorch puts them
    second: targets (N, d1, ...) meet logits (N, C, d1, ...). The last axis wins when both fit.
    """
    if t.shape == p.shape[:-1] or p.ndim <= 2:
        return -1
    if t.shape == p.shape[:1] + p.shape[2:]:
        return 1
    raise ValueError(
        f"sparse_categorical_accuracy: integer targets of shape {tuple(t.shape)} do not fit predictions of shape "
        f"{tuple(p.shape)}; expected targets shaped like the predictions without their class axis"
    )


def _sparse_targets(t: Any, p: Any) -> Any:
    """Integer class targets with the class axis removed: (N, 1) against (N, C) becomes (N,)."""
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t.reshape(t.shape[:-1])
    return t


@keras_order
def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1.0 where the class with the largest score is the integer target."""
    p = _array(y_pred)
    t = _sparse_targets(_array(y_true), p)
    hit = p.argmax(axis=_class_axis(t, p)) == t.astype(np.int64, copy=False)
    return _as_input_kind(hit.astype(np.float32), y_pred)


@keras_order
def categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1.0 where the class with the largest score is the class with the largest target
    (one-hot or probability targets)."""
    t, p = _array(y_true), _array(y_pred)
    hit = p.argmax(axis=-1) == t.argmax(axis=-1)
    return _as_input_kind(hit.astype(np.float32), y_pred)


def _in_top_k(p: Any, t: Any, k: int, axis: int) -> Any:
    """Is class ``t`` among the ``k`` largest scores? Counting only strictly larger scores,
    so a tie at the boundary counts as in (as TensorFlow's ``in_top_k`` does)."""
    xp = array_module(p)
    own = xp.take_along_axis(p, xp.expand_dims(t.astype(np.int64, copy=False), axis), axis=axis)
    return ((p > own).sum(axis=axis) < k).astype(np.float32)


@keras_order
def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> Any:
    """1.0 where the integer target is among the ``k`` highest-scoring classes."""
    p = _array(y_pred)
    t = _sparse_targets(_array(y_true), p)
    return _as_input_kind(_in_top_k(p, t, k, _class_axis(t, p)), y_pred)


@keras_order
def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> Any:
    """1.0 where the target's class (the argmax of a one-hot target) is among the ``k`` best."""
    p, t = _array(y_pred), _array(y_true)
    return _as_input_kind(_in_top_k(p, t.argmax(axis=-1), k, -1), y_pred)


@keras_order
def mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    """Per-sample mean of ``(y_true - y_pred)^2`` over the last axis."""
    t, p = _match_rank(_array(y_true), _array(y_pred))
    d = p - t
    return _as_input_kind(_per_sample(d * d), y_pred)


@keras_order
def mean_absolute_error(y_true: Any, y_pred: Any) -> Any:
    """Per-sample mean of ``|y_true - y_pred|`` over the last axis."""
    t, p = _match_rank(_array(y_true), _array(y_pred))
    return _as_input_kind(_per_sample(abs(p - t)), y_pred)


# ---- stateful metrics --------------------------------------------------------------------------


class Metric:
    """Base class: accumulate with ``update_state(y_true, y_pred)``, read with ``result()``.

    ``direction`` is ``'up'`` when larger is better (accuracies) and ``'down'`` when smaller is
    better (errors); ``EarlyStopping`` and ``ModelCheckpoint`` read it in ``mode='auto'``.
    Calling a metric, ``m(y_true, y_pred)``, updates it and returns the new result.
    """

    direction = "down"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or _snake(type(self).__name__)
        self.reset_state()

    def reset_state(self) -> None:
        raise NotImplementedError

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        self.update_state(y_true, y_pred)
        return self.result()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(Metric):
    """The mean of every value added: ``update_state(values)`` adds each element of ``values``
    (or ``values`` counted ``weight`` times, for a scalar)."""

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0

    def update_state(self, values: Any, weight: int | None = None) -> None:  # type: ignore[override]
        values = _array(values)
        if weight is not None or values.ndim == 0:
            n = 1 if weight is None else weight
            self.total += float(values.sum()) * n
            self.count += n
        else:
            self.total += float(values.sum())
            self.count += values.size

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The sample mean of ``fn(y_true, y_pred, **kwargs)``, a per-sample value function."""

    def __init__(self, fn: Callable, name: str | None = None, direction: str = "down", **kwargs: Any) -> None:
        self.fn = fn
        self.kwargs = kwargs
        self.direction = direction
        super().__init__(name or getattr(fn, "__name__", type(self).__name__))

    def update_state(self, y_true: Any, y_pred: Any) -> None:  # type: ignore[override]
        values = self.fn(_array(y_true), _array(y_pred), **self.kwargs)
        if values.ndim == 0:  # a batch mean: count it once per sample of the batch
            Mean.update_state(self, values, weight=_array(y_pred).shape[0])
        else:
            Mean.update_state(self, values)


class Accuracy(MeanMetricWrapper):
    """How often predictions equal targets exactly."""

    def __init__(self, name: str = "accuracy") -> None:
        super().__init__(accuracy, name, "up")


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches a 0/1 target. Use ``threshold=0.0`` for logits."""

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name, "up", threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the top-scoring class matches a one-hot (or probability) target."""

    def __init__(self, name: str = "categorical_accuracy") -> None:
        super().__init__(categorical_accuracy, name, "up")


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the top-scoring class matches an integer class target."""

    def __init__(self, name: str = "sparse_categorical_accuracy") -> None:
        super().__init__(sparse_categorical_accuracy, name, "up")

    def update_state(self, y_true: Any, y_pred: Any) -> None:  # type: ignore[override]
        t, p = _array(y_true), _array(y_pred)
        if p.ndim == 2 and t.ndim == 1 and t.shape[0] == p.shape[0]:
            # the common case, (N, C) scores and (N,) labels, counted directly: it runs every step
            self.total += int(array_module(p).count_nonzero(p.argmax(axis=1) == t))
            self.count += t.shape[0]
        else:
            super().update_state(t, p)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often a one-hot target's class is among the ``k`` top-scoring classes."""

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy") -> None:
        super().__init__(top_k_categorical_accuracy, name, "up", k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often an integer target is among the ``k`` top-scoring classes."""

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy") -> None:
        super().__init__(sparse_top_k_categorical_accuracy, name, "up", k=k)


class TopKAccuracy(MeanMetricWrapper):
    """Top-``k`` accuracy for integer or one-hot targets (chosen per batch from the shapes);
    logged as ``top_{k}_accuracy``."""

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        super().__init__(self._top_k, name or f"top_{k}_accuracy", "up")
        self.k = k

    def _top_k(self, y_true: Any, y_pred: Any) -> Any:
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == y_pred.shape[-1] and y_true.shape[-1] > 1:
            return top_k_categorical_accuracy(y_true, y_pred, self.k)
        return sparse_top_k_categorical_accuracy(y_true, y_pred, self.k)


class MeanSquaredError(MeanMetricWrapper):
    """The mean of ``(y_true - y_pred)^2``."""

    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(mean_squared_error, name, "down")


class MeanAbsoluteError(MeanMetricWrapper):
    """The mean of ``|y_true - y_pred|``."""

    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(mean_absolute_error, name, "down")


class RootMeanSquaredError(MeanSquaredError):
    """``sqrt`` of the mean squared error over everything seen (not a mean of batch roots)."""

    def __init__(self, name: str = "root_mean_squared_error") -> None:
        super().__init__(name)

    def result(self) -> float:
        return math.sqrt(super().result())


class CallableMetric(Mean):
    """A user's function ``fn(y_pred, y_true)`` -- PyTorch's (input, target) order, the same
    as a loss -- called with tensors. It may return one value per sample or a batch mean (a
    scalar, counted once per sample of the batch, so the epoch value is a sample mean)."""

    def __init__(self, fn: Callable, name: str | None = None) -> None:
        self.fn = fn
        super().__init__(name or getattr(fn, "__name__", type(fn).__name__))

    def update_state(self, y_true: Any, y_pred: Any) -> None:  # type: ignore[override]
        p = y_pred if isinstance(y_pred, Tensor) else Tensor(_array(y_pred))
        t = y_true if isinstance(y_true, Tensor) else Tensor(_array(y_true))
        values = _array(self.fn(p, t))
        if values.ndim == 0:
            Mean.update_state(self, values, weight=p.shape[0])
        else:
            Mean.update_state(self, values)


# ---- names -------------------------------------------------------------------------------------

_BY_NAME: dict[str, Callable[[], Metric]] = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "root_mean_squared_error": RootMeanSquaredError,
    "rmse": RootMeanSquaredError,
}

ACCURACY_NAMES = ("accuracy", "acc")


def known_names() -> list[str]:
    """Every metric name ``compile`` accepts."""
    return sorted([*ACCURACY_NAMES, *_BY_NAME])


def get(identifier: Any) -> Metric:
    """A fresh ``Metric`` for a name (logged under that name), a ``Metric`` instance (as is), a
    Keras-order value function from this module, or any other callable (``CallableMetric``).

    ``'accuracy'``/``'acc'`` need the shapes of the data: see ``resolve_accuracy``.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _BY_NAME:
            return _BY_NAME[key](name=identifier)
        raise ValueError(f"compile: unknown metric {identifier!r}; known metric names: {', '.join(known_names())}")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        if getattr(identifier, "_y_true_first", False):
            up = "accuracy" in getattr(identifier, "__name__", "")
            return MeanMetricWrapper(identifier, direction="up" if up else "down")
        return CallableMetric(identifier)
    raise TypeError(
        f"compile: a metric must be a name, a Metric or a callable, got {type(identifier).__name__} ({identifier!r})"
    )


def resolve_accuracy(name: str, y_true: Any, y_pred: Any, binary_loss: str | None = None) -> Metric:
    """Keras's meaning of ``'accuracy'`` for this loss and these shapes.

    * a binary loss (binary cross-entropy), or predictions with one score per sample
      (last axis 1, or 1-D) -> ``BinaryAccuracy``; with a loss on logits the threshold is 0
      instead of 0.5 (a logit of 0 is a probability of 0.5);
    * targets with fewer dimensions than the predictions, or a last axis of 1 against several
      classes -> ``SparseCategoricalAccuracy`` (integer class targets);
    * otherwise (one-hot targets) -> ``CategoricalAccuracy``.

    ``binary_loss`` is ``'probabilities'`` or ``'logits'`` for a binary loss, else ``None``.
    """
    t, p = _array(y_true), _array(y_pred)
    if binary_loss is not None or p.ndim <= 1 or p.shape[-1] == 1:
        return BinaryAccuracy(name=name, threshold=0.0 if binary_loss == "logits" else 0.5)
    if t.ndim < p.ndim or (t.shape[-1] == 1 and p.shape[-1] > 1):
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
