"""``layer_norm`` and ``batch_norm``: normalize to zero mean and unit variance, then scale and
shift. Both are compositions of primitives (mean, var, rsqrt, ...), so their gradients --
including the coupling through the mean and variance -- come from those primitives' rules.

    y = (x - mean) / sqrt(var + eps) * weight + bias

Layer norm takes the statistics over the last dimensions of each sample; batch norm over
the batch (and spatial) dimensions of each channel. In training, batch norm also updates
the running estimates in place, with the *unbiased* variance, as torch does:

    running = (1 - momentum) * running + momentum * batch_statistic
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...autograd.grad_mode import no_grad
from ...ops.op import ShapeError
from ...ops.unary import rsqrt
from ...tensor import Tensor


def layer_norm(
    input: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` dimensions of each sample."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[len(input.shape) - len(shape) :]) != shape or len(shape) > input.ndim:
        raise ShapeError(
            f"layer_norm: normalized_shape {shape} must match the last dimensions of the input, "
            f"got input shape {tuple(input.shape)}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ShapeError(f"layer_norm: {name} must have shape {shape}, got {tuple(p.shape)}")
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    mean = input.mean(dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dims, keepdim=True)
    out = centered * rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel (dimension 1) over the batch and any spatial dimensions."""
    if input.ndim < 2:
        raise ShapeError(
            f"batch_norm: expected an input of at least 2 dimensions (N, C, ...), got shape {tuple(input.shape)}"
        )
    c = input.shape[1]
    for name, p in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise ShapeError(
                f"batch_norm: {name} must have shape ({c},) for an input with {c} channels, got {tuple(p.shape)}"
            )
    dims = (0,) + tuple(range(2, input.ndim))
    channel = (1, c) + (1,) * (input.ndim - 2)
    if training:
        if any(input.shape[d] is None for d in dims):  # a static graph's unknown batch size
            from ...ops.creation import numel_of

            count = numel_of(input, dims)  # a 0-d tensor, known when the graph runs
        else:
            count = math.prod(input.shape[d] for d in dims)
        if isinstance(count, int) and count <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input shape "
                f"{tuple(input.shape)}"
            )
        mean = input.mean(dims, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(dims, keepdim=True)
        if running_mean is not None and running_var is not None:
            if isinstance(count, int):
                unbiased = momentum * count / (count - 1)
            else:  # the same float64 arithmetic, rounded once to the input's dtype, as eager's
                n = count.double()
                unbiased = (momentum * n / (n - 1)).to(input.dtype)
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.reshape(c) * momentum)
                running_var.mul_(1 - momentum).add_(var.reshape(c) * unbiased)
        out = centered * rsqrt(var + eps)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        out = (input - running_mean.reshape(channel)) * rsqrt(running_var.reshape(channel) + eps)
    if weight is not None:
        out = out * weight.reshape(channel)
    if bias is not None:
        out = out + bias.reshape(channel)
    return out
