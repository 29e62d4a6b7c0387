"""Pooling layers: ``MaxPool2d``, ``AvgPool2d`` and the adaptive ``AdaptiveAvgPool2d`` and
``AdaptiveMaxPool2d``.

Pooling layers hold no parameters, only their configuration; each forward is one call of the
matching function of ``nn.functional`` (``max_pool2d``/``avg_pool2d`` are primitives with
their own kernels, the adaptive ones are built in ``functional/pooling.py``). A fixed pool
slides a ``kernel_size`` window by ``stride`` (by default the window itself, so windows do
not overlap); an adaptive pool is given the output size instead and chooses the windows.
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]


class MaxPool2d(Module):
    """The maximum of each window of an (N, C, H, W) or (C, H, W) input.

    Args:
        kernel_size: the window (int or pair).
        stride: the step (default: ``kernel_size``).
        padding: implicit ``-inf`` padding on each side (at most half the window).
        dilation: spacing between the window's taps.
        return_indices: also return the flat index ``row * W + col`` of each maximum.
        ceil_mode: round the output size up, so a partial last window is kept.
    """

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return F.max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """The mean of each window of an (N, C, H, W) or (C, H, W) input.

    Args:
        kernel_size: the window (int or pair).
        stride: the step (default: ``kernel_size``).
        padding: implicit zero padding on each side (at most half the window).
        ceil_mode: round the output size up, so a partial last window is kept.
        count_include_pad: count the padded zeros in the divisor.
        divisor_override: divide every window sum by this number instead.
    """

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average-pool to a fixed spatial ``output_size`` (an int, or a pair whose ``None`` keeps
    that input dimension): ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max-pool to a fixed spatial ``output_size``; with ``return_indices`` also the flat
    index of each maximum, as ``MaxPool2d`` gives."""

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
