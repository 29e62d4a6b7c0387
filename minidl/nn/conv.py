"""``Conv2d``: a learned 2-D convolution (cross-correlation) layer, with torch's arguments.

The layer owns ``weight`` of shape ``(out_channels, in_channels // groups, kH, kW)`` and
``bias`` of shape ``(out_channels,)``, and calls ``F.conv2d``. Each output pixel is

    out[n, k, i, j] = bias[k] + sum_{c, u, v} weight[k, c, u, v] * x[n, g(k) + c, s i + d u - p, s j + d v - p]

(``s`` stride, ``d`` dilation, ``p`` padding, and ``g(k)`` the first input channel of output
channel ``k``'s group). With ``groups = G`` the channels split into ``G`` independent
convolutions; ``groups = in_channels`` is a depthwise convolution.

``padding_mode`` says what lies beyond the border: ``'zeros'`` (the convolution pads),
``'reflect'`` (mirror without repeating the edge), ``'replicate'`` (repeat the edge) or
``'circular'`` (wrap around). The last three pad explicitly first, by *gathering* rows and
columns with integer index arrays -- ``x[..., rows[:, None], cols]`` -- so the gradient flows
back through the same indexing rule that every other gather uses: an input pixel copied into
the border receives the sum of the gradients of all its copies.

Default initialization (torch's): ``weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
``fan_in = in_channels / groups * kH * kW``, drawn by ``kaiming_uniform_(a=sqrt(5))``, and the
bias from the same interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend.device import array_module
from ..errors import ShapeError
from ..ops.creation import empty
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(name: str, value: Any) -> tuple[int, int]:
    """``3 -> (3, 3)``; a pair passes through (torch's ``_pair``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    try:
        pair = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"Conv2d: {name} must be an int or a pair of ints, got {value!r}") from None
    if len(pair) != 2:
        raise ValueError(f"Conv2d: {name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _border_indices(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """The source index of each position of a padded axis of length ``before + n + after``."""
    idx = np.arange(-before, n + after)
    if mode == "replicate":
        return np.clip(idx, 0, n - 1)
    if mode == "circular":
        return idx % n
    # reflect: -1 -> 1, -2 -> 2, ...; n -> n - 2, n + 1 -> n - 3, ... (the edge is not repeated)
    idx = np.abs(idx)
    return np.where(idx > n - 1, 2 * (n - 1) - idx, idx)


class Conv2d(Module):
    """2-D convolution over an (N, C_in, H, W) or (C_in, H, W) input.

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: the window, an int or a pair (kH, kW).
        stride: step of the window (int or pair), default 1.
        padding: an int, a pair, ``'valid'`` (none) or ``'same'`` (output as large as the input;
            stride 1 only; an odd total puts the extra row/column at the bottom/right).
        dilation: spacing between the window's taps (int or pair), default 1.
        groups: split the channels into this many independent convolutions.
        bias: learn an additive bias per output channel.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        device, dtype: where and in which floating type to create the parameters.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kernel_size, stride, dilation = (
            _pair("kernel_size", kernel_size),
            _pair("stride", stride),
            _pair("dilation", dilation),
        )
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"Conv2d: groups must be a positive integer, got {groups!r}")
        if in_channels % groups != 0:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups != 0:
            raise ValueError(f"Conv2d: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: invalid padding string {padding!r}, should be one of 'same', 'valid'")
            if padding == "same" and stride != (1, 1):
                raise ValueError("Conv2d: padding='same' is not supported for strided convolutions (use stride=1)")
        else:
            padding = _pair("padding", padding)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"Conv2d: padding_mode must be one of {_PADDING_MODES}, but got padding_mode={padding_mode!r}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = False
        self.output_padding = (0, 0)
        self.groups = groups
        self.padding_mode = padding_mode
        # The explicit padding for the non-zero modes, in F.pad's order (left, right, top, bottom).
        if padding == "same":
            totals = [d * (k - 1) for d, k in zip(dilation, kernel_size)]
            h, w = [(t // 2, t - t // 2) for t in totals]
            self._reversed_padding_repeated_twice = [w[0], w[1], h[0], h[1]]
        elif padding == "valid":
            self._reversed_padding_repeated_twice = [0, 0, 0, 0]
        else:
            self._reversed_padding_repeated_twice = [padding[1], padding[1], padding[0], padding[0]]
        self.weight = Parameter(empty(out_channels, in_channels // groups, *kernel_size, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw ``weight`` and ``bias`` from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        if self.padding_mode == "zeros":
            return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return F.conv2d(self._pad(input), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def _pad(self, input: Tensor) -> Tensor:
        """Pad H and W by ``padding_mode`` (reflect, replicate or circular), by gathering."""
        if not isinstance(input, Tensor) or input.ndim not in (3, 4):
            shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ShapeError(f"Conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got {shape}")
        left, right, top, bottom = self._reversed_padding_repeated_twice
        if not (left or right or top or bottom):
            return input
        h, w = input.shape[-2:]
        mode = self.padding_mode
        for size, amounts, axis in ((h, (top, bottom), "height"), (w, (left, right), "width")):
            limit = size - 1 if mode == "reflect" else size
            if max(amounts) > limit:
                raise ValueError(
                    f"Conv2d: padding_mode={mode!r} needs padding {'<' if mode == 'reflect' else '<='} the input "
                    f"{axis} ({size}), got padding {amounts} for input shape {tuple(input.shape)}"
                )
        xp = array_module(input._data)
        rows = xp.asarray(_border_indices(h, top, bottom, mode))
        cols = xp.asarray(_border_indices(w, left, right, mode))
        return input[..., rows[:, None], cols]

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
