"""Loss layers: modules that hold a loss's options and call the function of ``nn.functional``.

=====================  ===================================================  ======================
module                 per-element loss                                     typical use
=====================  ===================================================  ======================
``MSELoss``            ``(x - y)^2``                                        regression
``L1Loss``             ``|x - y|``                                          robust regression
``SmoothL1Loss``       ``0.5 d^2 / beta`` if ``|d| < beta``, else ``|d| - beta / 2``  regression, detection
``NLLLoss``            ``-w[y] * x[y]`` (``x`` log-probabilities)           after ``LogSoftmax``
``CrossEntropyLoss``   ``-w[y] * log softmax(x)[y]`` (``x`` logits)         classification
``BCELoss``            ``-(y log p + (1 - y) log(1 - p))``                  after ``Sigmoid``
``BCEWithLogitsLoss``  the same on ``p = sigmoid(x)``, computed stably      binary / multi-label
=====================  ===================================================  ======================

``reduction`` is ``'mean'`` (the default), ``'sum'`` or ``'none'`` (the per-element losses).
Class ``weight`` and ``pos_weight`` are *buffers*: part of the ``state_dict``, moved by
``to()``, never trained. The deprecated ``size_average`` / ``reduce`` arguments are accepted
and translated to ``reduction`` with a warning, as in torch.
"""

from __future__ import annotations

import warnings

from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["MSELoss", "L1Loss", "SmoothL1Loss", "NLLLoss", "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss"]


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    """Translate the deprecated ``size_average``/``reduce`` pair (each defaulting to True)."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.",
        UserWarning,
        stacklevel=4,
    )
    return reduction


class _Loss(Module):
    """What every loss shares: the ``reduction``."""

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with an optional per-class ``weight`` buffer."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """Mean squared error between ``input`` and ``target`` (same shape)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error between ``input`` and ``target`` (same shape)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Squared error below ``beta``, absolute error above it (the Huber loss divided by ``beta``);
    ``beta = 0`` is the L1 loss."""

    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be non-negative, got {beta}")
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices ``target`` (N, ...) under log-probabilities
    ``input`` (N, C, ...). Targets equal to ``ignore_index`` count for nothing; with class
    ``weight`` the mean divides by the total weight of the counted targets."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of logits ``input`` (N, C, ...) against class indices (N, ...) or
    class probabilities (the input's shape). ``label_smoothing = e`` mixes the target with the
    uniform distribution: ``(1 - e) * target + e / C``."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities ``input`` in [0, 1] against targets in [0, 1];
    each log is clamped at -100 so that probabilities of exactly 0 or 1 stay finite.
    ``weight`` rescales each element's loss (broadcast to the input)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``Sigmoid`` followed by ``BCELoss`` in one numerically stable expression, on logits.

    ``weight`` rescales each element's loss; ``pos_weight`` (one entry per class, broadcast
    along the last dimension) multiplies the loss of the positive targets, trading recall
    against precision: ``pos_weight = negatives / positives`` balances a skewed class.
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
