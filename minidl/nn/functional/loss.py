"""Loss functions, as compositions of primitives, with torch's signatures and reductions.

The classification losses are built for numerical stability:

* ``cross_entropy(logits, y) = nll_loss(log_softmax(logits), y)``, and ``log_softmax`` never
  exponentiates a large positive number, so logits of 1e4 give a finite loss;
* ``binary_cross_entropy_with_logits`` uses ``(1 - t) x + softplus(-x)``, the same value as
  ``-t log s(x) - (1 - t) log(1 - s(x))`` without ever forming ``s(x)``; ``softplus`` is
  computed by ``logaddexp``, stable for any ``x``, and its derivative is smooth at 0;
* ``binary_cross_entropy`` (on probabilities) clamps each log at -100, as torch does, so a
  probability of exactly 0 or 1 gives a large finite loss instead of ``inf``.

``reduction`` is ``'mean'`` (the default), ``'sum'`` or ``'none'``. With class ``weight``s
(and ``ignore_index``), ``'mean'`` divides by the total weight of the counted targets.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ...errors import DomainError, DTypeError
from ...ops import loss as loss_ops
from ...ops import op as op_layer
from ...ops.activation import softplus
from ...ops.arith import where
from ...ops.infer import same_shape
from ...ops.op import ShapeError
from ...ops.softmax import log_softmax
from ...ops.unary import abs as abs_
from ...ops.unary import log
from ...tensor import Tensor


def _reduce(name: str, loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(name: str, input: Tensor, target: Tensor, strict: bool) -> None:
    if same_shape(input.shape, target.shape):
        return
    message = (
        f"{name}: target shape {tuple(target.shape)} differs from input shape {tuple(input.shape)}; "
        "make them match (for example with reshape or squeeze)"
    )
    if strict:
        raise ShapeError(message)
    warnings.warn(message + ". They are broadcast, which is probably not what you want.", UserWarning, stacklevel=3)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(input - target)^2``."""
    _check_reduction("mse_loss", reduction)
    _same_shape("mse_loss", input, target, strict=False)
    d = input - target
    return _reduce("mse_loss", d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|input - target|``."""
    _check_reduction("l1_loss", reduction)
    _same_shape("l1_loss", input, target, strict=False)
    return _reduce("l1_loss", abs_(input - target), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Quadratic ``0.5 d^2 / beta`` for ``|d| < beta``, linear ``|d| - beta / 2`` beyond (Huber / beta)."""
    _check_reduction("smooth_l1_loss", reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    _same_shape("smooth_l1_loss", input, target, strict=False)
    d = abs_(input - target)
    if beta == 0:
        return _reduce("smooth_l1_loss", d, reduction)
    loss = where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce("smooth_l1_loss", loss, reduction)


def _class_targets(name: str, input: Tensor, target: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Bring (C,)/() or (N, C, ...)/(N, ...) inputs and targets to the batched form."""
    if target.dtype.category != 1:
        raise DTypeError(
            f"{name}: class-index targets must be an integer tensor (int64), got {target.dtype.name}; "
            "convert with .long() (or pass float class probabilities with the input's shape to cross_entropy)"
        )
    if input.ndim == 1:
        if target.ndim != 0:
            raise ShapeError(
                f"{name}: for an unbatched input of shape {tuple(input.shape)} the target must be 0-d, got {tuple(target.shape)}"
            )
        return input.unsqueeze(0), target.reshape(1), True
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if not same_shape(tuple(target.shape), expected):
        raise ShapeError(
            f"{name}: expected a target of shape {expected} for an input of shape {tuple(input.shape)} "
            f"(N, C, ...), got {tuple(target.shape)}"
        )
    return input, target, False


def _check_classes(name: str, n_classes: int, target: Tensor, weight: Tensor | None, ignore_index: int) -> None:
    """Every counted target is a valid class index, and ``weight`` has one entry per class.
    (A static graph's symbolic targets have no values yet: indexing checks them when it runs.)"""
    t = target._data
    valid = t != ignore_index
    if type(target) is not op_layer.SYMBOLIC_TYPE and valid.any():
        lo, hi = int(t[valid].min()), int(t[valid].max())
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise IndexError(f"{name}: target {bad} is out of bounds for {n_classes} classes")
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise ShapeError(f"{name}: weight must have shape ({n_classes},), got {tuple(weight.shape)}")


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood ``-weight[t] * input[n, t]`` of log-probabilities ``input``."""
    _check_reduction("nll_loss", reduction)
    input, target, unbatched = _class_targets("nll_loss", input, target)
    _check_classes("nll_loss", input.shape[1], target, weight, ignore_index)
    safe, w = _target_weights(target, weight, ignore_index, input.dtype)
    picked = input.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -picked * w
    if reduction == "none":
        return loss.squeeze(0) if unbatched else loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()


def _target_weights(target: Tensor, weight: Tensor | None, ignore_index: int, dtype: Any) -> tuple[Tensor, Tensor]:
    """Each target's class weight (``weight[t]``, or 1), 0 where ``t == ignore_index``; and the
    targets made safe to gather with (ignored ones point at class 0). Written in minidl ops, so
    that it also builds a static graph on fed targets; the weights get no gradient, as torch's."""
    valid = target != ignore_index
    safe = where(valid, target, 0).long()
    if weight is None:
        return safe, valid.to(dtype)
    return safe, where(valid, weight.detach()[safe].to(dtype), 0.0)


_REDUCTIONS = ("mean", "sum", "none")


def _plain_class_targets(input: Tensor, target: Tensor, weight: Any, smoothing: float) -> bool:
    """The common case, checked cheaply: (N, C) float logits and N integer class indices,
    without weight or smoothing. It goes straight to the fused primitive (whose kernel also
    range-checks the targets); anything else takes the general path."""
    if smoothing != 0.0 or weight is not None or not isinstance(input, Tensor) or not isinstance(target, Tensor):
        return False
    x, t = input._data, target._data
    return x.ndim == 2 and t.ndim == 1 and x.dtype.kind == "f" and t.dtype.kind in "iu" and t.shape[0] == x.shape[0]


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of logits ``input`` (N, C, ...) against class indices or
    class probabilities: ``nll_loss(log_softmax(input))``. The common case -- (N, C) logits,
    class indices, no label smoothing -- runs as the fused primitive ``ops.loss.CrossEntropy``.

    With ``label_smoothing = e`` the target becomes ``(1 - e) onehot + e / C``.
    """
    if _plain_class_targets(input, target, weight, label_smoothing) and reduction in _REDUCTIONS:
        return loss_ops.cross_entropy(input, target, None, ignore_index, reduction)
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    class_dim = 0 if input.ndim == 1 else 1
    n_classes = input.shape[class_dim]
    w_shape = [1] * input.ndim
    w_shape[class_dim] = n_classes

    if target.is_floating_point():
        logp = log_softmax(input, class_dim)
        if not same_shape(target.shape, input.shape):
            raise ShapeError(
                f"cross_entropy: probability targets must have the input's shape {tuple(input.shape)}, got "
                f"{tuple(target.shape)}"
            )
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        terms = logp * target
        if weight is not None:
            terms = terms * weight.reshape(w_shape)
        loss = -terms.sum(class_dim)
        return _reduce("cross_entropy", loss, reduction)

    if label_smoothing == 0 and input.ndim == 2:
        input, target, _ = _class_targets("cross_entropy", input, target)
        _check_classes("cross_entropy", n_classes, target, weight, ignore_index)
        if weight is not None and weight.dtype is not input.dtype:
            weight = weight.to(input.dtype)
        return loss_ops.cross_entropy(input, target, weight, ignore_index, reduction)
    logp = log_softmax(input, class_dim)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    ignored = target == ignore_index
    per_class = logp * weight.reshape(w_shape) if weight is not None else logp
    smooth = where(ignored, 0.0, -per_class.sum(class_dim))
    if reduction == "mean":
        smooth = smooth.sum() / _target_weights(target, weight, ignore_index, logp.dtype)[1].sum()
    elif reduction == "sum":
        smooth = smooth.sum()
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / n_classes)


def binary_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))`` for probabilities ``p`` in [0, 1]; logs clamped at -100."""
    _check_reduction("binary_cross_entropy", reduction)
    _same_shape("binary_cross_entropy", input, target, strict=True)
    p = input._data
    if type(input) is not op_layer.SYMBOLIC_TYPE and p.size and (p.min() < 0 or p.max() > 1):
        raise DomainError(
            "binary_cross_entropy: all elements of input should be between 0 and 1 (probabilities); for "
            "logits use binary_cross_entropy_with_logits"
        )
    log_p = log(input).clamp(min=-100)
    log_q = log(1 - input).clamp(min=-100)
    loss = -(target * log_p + (1 - target) * log_q)
    if weight is not None:
        loss = loss * weight
    return _reduce("binary_cross_entropy", loss, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression (see the module docstring).

    ``pos_weight`` multiplies the positive term: ``-(w_p t log s(x) + (1 - t) log(1 - s(x)))``.
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _same_shape("binary_cross_entropy_with_logits", input, target, strict=True)
    softplus_neg = softplus(-input, threshold=math.inf)  # log(1 + e^-x), by logaddexp: stable
    if pos_weight is None:
        loss = (1 - target) * input + softplus_neg
    else:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce("binary_cross_entropy_with_logits", loss, reduction)
