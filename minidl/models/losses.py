"""Losses for ``Model.compile(loss=...)``: Keras's loss classes and functions, and name lookup.

Two argument orders meet here, and the rule is:

* **a loss you pass to ``compile`` as a plain callable is called ``loss(y_pred, y_true)``** --
  PyTorch's ``(input, target)`` order -- so ``F.cross_entropy``, ``nn.MSELoss()`` or your own
  ``def my_loss(output, target)`` plug in unchanged;
* **the Keras losses of this module keep Keras's order ``(y_true, y_pred)``** when you call
  them yourself (``SparseCategoricalCrossentropy()(y_true, y_pred)``), exactly as in Keras;
  ``compile`` recognises them and calls them that way.

Names resolve through ``get``: each of minidl's functional losses by its own name
(``'cross_entropy'``, ``'mse_loss'``, ...; PyTorch semantics: ``cross_entropy`` takes logits),
and Keras's names (``'sparse_categorical_crossentropy'``, ``'mse'``, ...; Keras semantics: the
crossentropies take *probabilities* -- the output of a softmax or sigmoid -- unless you pass
an instance with ``from_logits=True``).

A Keras loss function returns one loss per sample (the mean over the last axis); a loss class
reduces those with ``reduction='sum_over_batch_size'`` (their mean, the default), ``'sum'`` or
``None``/``'none'``. Probability inputs are clipped to ``[eps, 1 - eps]`` with ``eps = 1e-7``
before the log, as Keras does, so a probability of exactly 0 gives a large finite loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..nn import functional as F
from ..ops.activation import softplus
from ..ops.arith import where
from ..ops.softmax import log_softmax
from ..tensor import Tensor
from .metrics import _snake, keras_order

__all__ = [
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError",
    "Huber",
    "LogCosh",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "KLDivergence",
    "Poisson",
    "Hinge",
    "SquaredHinge",
    "mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "huber",
    "log_cosh",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "kl_divergence",
    "poisson",
    "hinge",
    "squared_hinge",
    "get",
    "known_names",
]

EPSILON = 1e-7  # Keras's backend.epsilon(): the clip applied to probabilities before a log


# ---- shared pieces -----------------------------------------------------------------------------


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _targets_like(y_true: Any, y_pred: Tensor) -> Tensor:
    """Float targets in the prediction's dtype (Keras casts ``y_true`` to ``y_pred``'s dtype)."""
    t = _tensor(y_true)
    return t if t.dtype is y_pred.dtype else t.to(y_pred.dtype)


def _same_rank(y_true: Tensor, y_pred: Tensor) -> tuple[Tensor, Tensor]:
    """Keras's ``squeeze_or_expand_to_same_rank``: when the ranks differ by one and the longer
    side ends in a 1, drop it -- so (N,) targets meet (N, 1) predictions instead of
    broadcasting to (N, N)."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred.squeeze(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"loss: target shape {tuple(y_true.shape)} does not match prediction shape {tuple(y_pred.shape)}; "
            "reshape the targets (or the model's output) so that they agree"
        )
    return y_true, y_pred


def _last_axis_mean(values: Tensor) -> Tensor:
    """One loss per sample: the mean over the last axis (Keras's per-sample reduction)."""
    return values.mean(-1) if values.ndim > 0 else values


def _regression(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    y_pred = _tensor(y_pred)
    return _same_rank(_targets_like(y_true, y_pred), y_pred)


def _probabilities(name: str, y_pred: Tensor, axis: int) -> Tensor:
    """Keras's treatment of probability inputs: renormalise along ``axis`` and clip."""
    p = y_pred._data
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(
            f"{name}: the predictions must be probabilities in [0, 1] (the output of a softmax or sigmoid); "
            f"these range over [{float(p.min()):.4g}, {float(p.max()):.4g}]. For logits pass "
            "from_logits=True, or use minidl's 'cross_entropy' / 'binary_cross_entropy_with_logits'"
        )
    return (y_pred / y_pred.sum(axis, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON)


# ---- per-sample loss functions (Keras order: y_true, y_pred) -----------------------------------


@keras_order
def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor:
    """``mean((y_true - y_pred)^2)`` over the last axis."""
    t, p = _regression(y_true, y_pred)
    d = p - t
    return _last_axis_mean(d * d)


@keras_order
def mean_absolute_error(y_true: Any, y_pred: Any) -> Tensor:
    """``mean(|y_true - y_pred|)`` over the last axis."""
    t, p = _regression(y_true, y_pred)
    return _last_axis_mean((p - t).abs())


@keras_order
def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> Tensor:
    """``100 * mean(|(y_true - y_pred) / max(|y_true|, eps)|)`` over the last axis."""
    t, p = _regression(y_true, y_pred)
    return _last_axis_mean(((t - p) / t.abs().clamp(min=EPSILON)).abs()) * 100.0


@keras_order
def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> Tensor:
    """``mean((log(1 + max(y_pred, eps)) - log(1 + max(y_true, eps)))^2)`` over the last axis."""
    t, p = _regression(y_true, y_pred)
    d = p.clamp(min=EPSILON).log1p() - t.clamp(min=EPSILON).log1p()
    return _last_axis_mean(d * d)


@keras_order
def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> Tensor:
    """``0.5 d^2`` where ``|d| <= delta``, ``delta (|d| - 0.5 delta)`` beyond; mean over the last axis
    (PyTorch's ``huber_loss``; ``smooth_l1_loss`` is this divided by ``delta``)."""
    t, p = _regression(y_true, y_pred)
    d = (p - t).abs()
    return _last_axis_mean(where(d <= delta, 0.5 * d * d, delta * d - 0.5 * delta * delta))


@keras_order
def log_cosh(y_true: Any, y_pred: Any) -> Tensor:
    """``mean(log(cosh(y_pred - y_true)))``, computed as ``d + softplus(-2d) - log 2`` (no overflow)."""
    t, p = _regression(y_true, y_pred)
    d = p - t
    return _last_axis_mean(d + softplus(-2.0 * d, threshold=math.inf) - math.log(2.0))


@keras_order
def binary_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))``, mean over ``axis``. Probabilities by default (clipped
    to [eps, 1 - eps]); with ``from_logits`` the stable form of
    ``binary_cross_entropy_with_logits``. Label smoothing moves targets toward 0.5."""
    y_pred = _tensor(y_pred)
    t, p = _same_rank(_targets_like(y_true, y_pred), y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        per_element = F.binary_cross_entropy_with_logits(p, t, reduction="none")
    else:
        p_data = p._data
        if p_data.size and (p_data.min() < 0 or p_data.max() > 1):
            raise ValueError(
                "binary_crossentropy: the predictions must be probabilities in [0, 1] (a sigmoid's output); for "
                "logits use BinaryCrossentropy(from_logits=True) or 'binary_cross_entropy_with_logits'"
            )
        p = p.clamp(EPSILON, 1.0 - EPSILON)
        per_element = -(t * p.log() + (1.0 - t) * (1.0 - p).log())
    return per_element.mean(axis) if per_element.ndim > 0 else per_element


@keras_order
def categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> Tensor:
    """``-sum(t log p)`` over the class ``axis`` for one-hot (or probability) targets ``t``."""
    y_pred = _tensor(y_pred)
    t = _targets_like(y_true, y_pred)
    if t.shape != y_pred.shape:
        raise ValueError(
            f"categorical_crossentropy: one-hot targets must have the predictions' shape {tuple(y_pred.shape)}, "
            f"got {tuple(t.shape)}; for integer class targets use sparse_categorical_crossentropy"
        )
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[axis]
    log_p = log_softmax(y_pred, axis) if from_logits else _probabilities("categorical_crossentropy", y_pred, axis).log()
    return -(t * log_p).sum(axis)


@keras_order
def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False, axis: int = -1) -> Tensor:
    """``-log p[target]`` for integer class targets (shape of the predictions without ``axis``,
    or with a trailing 1)."""
    y_pred = _tensor(y_pred)
    t = _tensor(y_true)
    if t.dtype.category != 1:
        if not t.is_floating_point() or bool((t._data != np.round(t._data)).any()):
            raise ValueError(
                f"sparse_categorical_crossentropy: targets must be integer class indices, got {t.dtype.name} values; "
                "for one-hot targets use categorical_crossentropy"
            )
        t = t.long()
    axis = axis % y_pred.ndim
    if t.ndim == y_pred.ndim and t.shape[axis] == 1:
        t = t.squeeze(axis)
    expected = y_pred.shape[:axis] + y_pred.shape[axis + 1 :]
    if tuple(t.shape) != tuple(expected):
        raise ValueError(
            f"sparse_categorical_crossentropy: targets of shape {tuple(t.shape)} do not fit predictions of shape "
            f"{tuple(y_pred.shape)} with classes on axis {axis}; expected targets of shape {tuple(expected)}"
        )
    n_classes = y_pred.shape[axis]
    labels = t._data
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise IndexError(
            f"sparse_categorical_crossentropy: target {int(labels.max())} is out of range for {n_classes} classes"
        )
    if from_logits and y_pred.ndim == 2 and axis == 1:
        return F.cross_entropy(y_pred, t, reduction="none")  # the fused kernel: same value, faster
    if from_logits:
        log_p = log_softmax(y_pred, axis)
    else:
        log_p = _probabilities("sparse_categorical_crossentropy", y_pred, axis).log()
    return -log_p.gather(axis, t.unsqueeze(axis)).squeeze(axis)


@keras_order
def kl_divergence(y_true: Any, y_pred: Any) -> Tensor:
    """``sum(t log(t / p))`` over the last axis, both clipped to [eps, 1]."""
    t, p = _regression(y_true, y_pred)
    t = t.clamp(EPSILON, 1.0)
    p = p.clamp(EPSILON, 1.0)
    terms = t * (t / p).log()
    return terms.sum(-1) if terms.ndim > 0 else terms


@keras_order
def poisson(y_true: Any, y_pred: Any) -> Tensor:
    """``mean(p - t log(p + eps))`` over the last axis, for predicted rates ``p``."""
    t, p = _regression(y_true, y_pred)
    return _last_axis_mean(p - t * (p + EPSILON).log())


def _signed_labels(t: Tensor) -> Tensor:
    """Hinge losses want labels in {-1, 1}; Keras maps 0/1 labels there."""
    data = t._data
    if data.size and ((data == 0) | (data == 1)).all():
        return t * 2.0 - 1.0
    return t


@keras_order
def hinge(y_true: Any, y_pred: Any) -> Tensor:
    """``mean(max(1 - t p, 0))`` over the last axis, labels -1/1 (or 0/1)."""
    t, p = _regression(y_true, y_pred)
    return _last_axis_mean((1.0 - _signed_labels(t) * p).clamp(min=0.0))


@keras_order
def squared_hinge(y_true: Any, y_pred: Any) -> Tensor:
    """``mean(max(1 - t p, 0)^2)`` over the last axis."""
    t, p = _regression(y_true, y_pred)
    h = (1.0 - _signed_labels(t) * p).clamp(min=0.0)
    return _last_axis_mean(h * h)


# ---- loss classes ------------------------------------------------------------------------------

_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None, "auto", "mean")


class Loss:
    """Base of Keras's loss classes: ``loss(y_true, y_pred)`` is ``reduction`` applied to the
    per-sample losses of ``call``: ``'sum_over_batch_size'`` (their mean; the default, also
    spelled ``'auto'`` or ``'mean'``), ``'sum'``, or ``None``/``'none'`` (one loss per sample)."""

    _y_true_first = True

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = None) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'sum_over_batch_size', 'sum' or None, got {reduction!r}"
            )
        self.reduction = reduction
        self.name = name or _snake(type(self).__name__)

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any) -> Tensor:
        values = self.call(y_true, y_pred)
        if self.reduction in (None, "none"):
            return values
        if self.reduction == "sum":
            return values.sum()
        return values.mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r}, name={self.name!r})"


class _FunctionLoss(Loss):
    """A loss class that applies one of the functions above with fixed keyword arguments."""

    fn: Callable[..., Tensor]

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = None, **kwargs: Any) -> None:
        super().__init__(reduction, name or self.fn.__name__)
        self.kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        return type(self).fn(y_true, y_pred, **self.kwargs)


class MeanSquaredError(_FunctionLoss):
    """Mean of ``(y_true - y_pred)^2`` (``'mse'``, ``'mean_squared_error'``)."""

    fn = mean_squared_error


class MeanAbsoluteError(_FunctionLoss):
    """Mean of ``|y_true - y_pred|`` (``'mae'``, ``'mean_absolute_error'``)."""

    fn = mean_absolute_error


class MeanAbsolutePercentageError(_FunctionLoss):
    """Mean of ``100 |(y_true - y_pred) / y_true|`` (``'mape'``)."""

    fn = mean_absolute_percentage_error


class MeanSquaredLogarithmicError(_FunctionLoss):
    """Mean of ``(log1p(y_pred) - log1p(y_true))^2`` (``'msle'``)."""

    fn = mean_squared_logarithmic_error


class Huber(_FunctionLoss):
    """Quadratic near zero, linear beyond ``delta`` (``'huber'``)."""

    fn = huber

    def __init__(self, delta: float = 1.0, reduction: str | None = "sum_over_batch_size", name: str = "huber_loss"):
        super().__init__(reduction, name, delta=delta)


class LogCosh(_FunctionLoss):
    """Mean of ``log(cosh(y_pred - y_true))`` (``'log_cosh'``)."""

    fn = log_cosh


class BinaryCrossentropy(_FunctionLoss):
    """Binary cross-entropy; ``from_logits=True`` for raw scores, else probabilities."""

    fn = binary_crossentropy

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_crossentropy",
    ) -> None:
        super().__init__(reduction, name, from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits


class CategoricalCrossentropy(_FunctionLoss):
    """Cross-entropy with one-hot targets; ``from_logits=True`` for raw scores."""

    fn = categorical_crossentropy

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_crossentropy",
    ) -> None:
        super().__init__(reduction, name, from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits


class SparseCategoricalCrossentropy(_FunctionLoss):
    """Cross-entropy with integer class targets; ``from_logits=True`` for raw scores.

    ``SparseCategoricalCrossentropy(from_logits=True)`` is minidl's (and PyTorch's)
    ``cross_entropy``.
    """

    fn = sparse_categorical_crossentropy

    def __init__(
        self,
        from_logits: bool = False,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "sparse_categorical_crossentropy",
    ) -> None:
        super().__init__(reduction, name, from_logits=from_logits, axis=axis)
        self.from_logits = from_logits


class KLDivergence(_FunctionLoss):
    """Kullback-Leibler divergence ``sum(t log(t / p))`` (``'kld'``)."""

    fn = kl_divergence


class Poisson(_FunctionLoss):
    """Poisson negative log-likelihood up to a constant (``'poisson'``)."""

    fn = poisson


class Hinge(_FunctionLoss):
    """Hinge loss for -1/1 (or 0/1) labels (``'hinge'``)."""

    fn = hinge


class SquaredHinge(_FunctionLoss):
    """Squared hinge loss (``'squared_hinge'``)."""

    fn = squared_hinge


# ---- names -------------------------------------------------------------------------------------

# minidl's functional losses: PyTorch semantics, called (input, target).
_FUNCTIONAL = {
    "cross_entropy": F.cross_entropy,
    "nll_loss": F.nll_loss,
    "nll": F.nll_loss,
    "mse_loss": F.mse_loss,
    "l1_loss": F.l1_loss,
    "smooth_l1_loss": F.smooth_l1_loss,
    "binary_cross_entropy": F.binary_cross_entropy,
    "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
}

# Keras's names: Keras semantics, Keras classes.
_KERAS: dict[str, Callable[[], Loss]] = {
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError,
    "huber": Huber,
    "huber_loss": Huber,
    "log_cosh": LogCosh,
    "logcosh": LogCosh,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
}


def known_names() -> list[str]:
    """Every loss name ``compile`` accepts."""
    return sorted([*_FUNCTIONAL, *_KERAS])


def get(identifier: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss ``compile`` will call, always as ``loss(y_pred, y_true)``.

    A name gives minidl's functional loss (``'cross_entropy'``, ...) or a Keras loss object
    (``'sparse_categorical_crossentropy'``, ...); a Keras ``Loss`` or a Keras function of this
    module is wrapped to receive ``(y_true, y_pred)``; any other callable is used as it is.
    """
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _FUNCTIONAL:
            return _FUNCTIONAL[key]
        if key in _KERAS:
            return _TargetFirst(_KERAS[key]())
        raise ValueError(f"compile: unknown loss {identifier!r}; known loss names: {', '.join(known_names())}")
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        identifier = identifier()
    if callable(identifier):
        if getattr(identifier, "_y_true_first", False):
            return _TargetFirst(identifier)
        return identifier
    raise TypeError(f"compile: loss must be a name or a callable loss(y_pred, y_true), got {type(identifier).__name__}")


class _TargetFirst:
    """Adapts a Keras-order loss to the ``(y_pred, y_true)`` call that ``fit`` makes. A Keras
    loss *function* returns per-sample values; their mean is the batch loss."""

    def __init__(self, loss: Callable) -> None:
        self.loss = loss
        self.__name__ = getattr(loss, "name", None) or getattr(loss, "__name__", type(loss).__name__)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        out = self.loss(y_true, y_pred)
        return out if isinstance(self.loss, Loss) or out.ndim == 0 else out.mean()

    def __repr__(self) -> str:
        return f"{self.loss!r} (called with y_true first)"


def binary_kind(loss: Any) -> str | None:
    """``'logits'`` or ``'probabilities'`` if ``loss`` (as given to ``compile``) is a binary
    cross-entropy, else ``None``; ``'accuracy'`` then means binary accuracy (see metrics)."""
    inner = loss.loss if isinstance(loss, _TargetFirst) else loss
    if inner is F.binary_cross_entropy_with_logits:
        return "logits"
    if inner is F.binary_cross_entropy:
        return "probabilities"
    if isinstance(inner, BinaryCrossentropy):
        return "logits" if inner.from_logits else "probabilities"
    if inner is binary_crossentropy:
        return "probabilities"
    cls_name = type(inner).__name__
    if cls_name == "BCEWithLogitsLoss":
        return "logits"
    if cls_name == "BCELoss":
        return "probabilities"
    return None
