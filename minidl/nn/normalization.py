"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``.

All three compute ``y = (x - mean) / sqrt(var + eps) * weight + bias`` (``F.batch_norm``,
``F.layer_norm``); they differ in *which* elements share a mean and a variance.

**Layer norm** normalizes each sample over its trailing ``normalized_shape`` dimensions; it
behaves the same in training and evaluation and keeps no state but ``weight`` and ``bias``.

**Batch norm** normalizes each channel (dimension 1) over the batch and any spatial
dimensions. In training it uses the statistics of the current batch, and keeps *running*
estimates for evaluation, where a single sample has no batch to average over. After each
training batch with mean ``m`` and biased variance ``v`` over ``n`` values per channel:

    running_mean <- (1 - momentum) * running_mean + momentum * m
    running_var  <- (1 - momentum) * running_var  + momentum * v * n / (n - 1)

an exponential moving average (the ``n / (n - 1)`` makes the stored variance unbiased).
With ``momentum=None`` the factor is ``1 / t`` at the ``t``-th batch (``num_batches_tracked``),
which makes the running value the plain *cumulative* average of all the batch statistics
seen so far: ``a_t = a_{t-1} + (s_t - a_{t-1}) / t``. ``track_running_stats=False`` keeps no
estimates and uses batch statistics in evaluation too.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from .. import dtypes
from ..autograd.grad_mode import no_grad
from ..graph.symbolic import SymbolicTensor, TracingError
from ..ops.creation import empty, ones, tensor, zeros
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


class _BatchNorm(Module):
    """What ``BatchNorm1d`` and ``BatchNorm2d`` share; they differ only in the input
    dimensions they accept (``_check_input_dim``)."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        try:
            num_features = operator.index(num_features)
        except TypeError:
            raise TypeError(
                f"{type(self).__name__}: num_features must be an int, got {type(num_features).__name__}"
            ) from None
        if num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, got {num_features}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(empty(num_features, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(empty(num_features, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=dtypes.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        """Reset the running statistics, and ``weight = 1``, ``bias = 0`` (the identity map)."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average: weight 1/t for batch t
                if type(input) is SymbolicTensor:
                    raise TracingError(
                        f"{type(self).__name__}(momentum=None) cannot be built into a static graph or compiled: its "
                        "update weight 1/t reads the batch counter's value, which a graph only has when it runs. "
                        "Give the layer a momentum (for example 0.1), or train it eagerly"
                    )
                factor = 1.0 / float(self.num_batches_tracked)
        # Batch statistics in training, and in evaluation when there are no running ones.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        # Running statistics are passed when they are to be updated or to be used.
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs: statistics per channel ``C`` over N (and L).

    Args:
        num_features: the number of channels ``C``.
        eps: added to the variance, for stability.
        momentum: the weight of each new batch in the running statistics; ``None`` for a
            cumulative average.
        affine: learn ``weight`` and ``bias`` (initialized to 1 and 0).
        track_running_stats: keep running statistics for evaluation.
        device, dtype: where and in which floating type to create parameters and buffers.
        bias: (keyword only) learn ``bias`` when ``affine``.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in (2, 3):
            raise ValueError(
                f"BatchNorm1d: expected 2D or 3D input (got {input.ndim}D input of shape {tuple(input.shape)}); "
                "use BatchNorm2d for (N, C, H, W) images"
            )


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs: statistics per channel ``C`` over N, H and W.

    The arguments are ``BatchNorm1d``'s.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim != 4:
            raise ValueError(
                f"BatchNorm2d: expected 4D input (got {input.ndim}D input of shape {tuple(input.shape)}); "
                "use BatchNorm1d for (N, C) or (N, C, L) inputs"
            )


class LayerNorm(Module):
    """Normalize each sample over its last ``len(normalized_shape)`` dimensions.

    Args:
        normalized_shape: the trailing shape to normalize over (an int for the last dimension).
        eps: added to the variance, for stability.
        elementwise_affine: learn ``weight`` (ones) and ``bias`` (zeros) of ``normalized_shape``.
        bias: learn ``bias`` (when ``elementwise_affine``).
        device, dtype: where and in which floating type to create the parameters.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(empty(self.normalized_shape, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(empty(self.normalized_shape, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )
