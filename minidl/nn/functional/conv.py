"""``conv2d``, ``max_pool2d`` and ``avg_pool2d`` as users call them (torch's signatures).

These wrappers normalize the arguments -- ints to pairs, ``padding='same'`` to explicit
amounts, a 3-D unbatched input to a batch of one, a bias added after the convolution --
check the shapes before any compute, and call the primitives in ``minidl/ops/conv.py`` and
``minidl/ops/pool.py``.
"""

from __future__ import annotations

from typing import Any

from ...errors import ShapeError
from ...ops import conv as conv_ops
from ...ops import op as op_layer
from ...ops import pool as pool_ops
from ...ops.infer import promoted_dtype
from ...ops.op import Spec, apply, finish
from ...ops.shape import pad
from ...tensor import Tensor


def _batched(name: str, x: Tensor) -> tuple[Tensor, bool]:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim == 3:
        return x.unsqueeze(0), True
    if x.ndim != 4:
        raise ShapeError(f"{name}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")
    return x, False


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation over an (N, C, H, W) input with a (K, C/groups, kH, kW) weight.

    ``padding`` is an int, a pair, ``'valid'`` (none) or ``'same'`` (output size = input size,
    stride 1 only; when the total padding is odd the extra row/column goes at the bottom/right,
    as in torch).
    """
    x, unbatched = _batched("conv2d", input)
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ShapeError(
            f"conv2d: expected a 4-D weight (out_channels, in_channels / groups, kH, kW), got "
            f"{tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__}"
        )
    stride = conv_ops.pair("conv2d", "stride", stride)
    dilation = conv_ops.pair("conv2d", "dilation", dilation)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError("conv2d: padding='same' is not supported for strided convolutions (stride must be 1)")
            totals = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
            before = [t // 2 for t in totals]
            after = [t - b for t, b in zip(totals, before)]
            if before != after:
                x = pad(x, (before[1], after[1], before[0], after[0]))
                padding = (0, 0)
            else:
                padding = tuple(before)
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        padding = conv_ops.pair("conv2d", "padding", padding)
    conv_ops.Conv2d.infer(Spec(x.shape, x.dtype), Spec(weight.shape, weight.dtype), stride, padding, dilation, groups)
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ShapeError(f"conv2d: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    if x.dtype is not weight.dtype:
        dtype = promoted_dtype(Spec(x.shape, x.dtype), Spec(weight.shape, weight.dtype))
        x, weight = x.to(dtype), weight.to(dtype)
    if bias is not None and bias.dtype is not x.dtype:
        bias = bias.to(x.dtype)
    out = conv_ops.conv2d(x, weight, stride, padding, dilation, groups, bias)
    return out.squeeze(0) if unbatched else out


def _pool_args(name: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> tuple:
    kernel = conv_ops.pair(name, "kernel_size", kernel_size)
    stride = (
        kernel
        if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
        else conv_ops.pair(name, "stride", stride)
    )
    return kernel, stride, conv_ops.pair(name, "padding", padding), conv_ops.pair(name, "dilation", dilation)


def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Maximum over each ``kernel_size`` window (``stride`` defaults to the window size).

    With ``return_indices=True`` also returns, for each output, the flat index
    ``row * W + col`` of the maximum in its input plane.
    """
    x, unbatched = _batched("max_pool2d", input)
    kernel, stride, padding, dilation = _pool_args("max_pool2d", kernel_size, stride, padding, dilation)
    attrs = dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    pool_ops.MaxPool2d.infer(Spec(x.shape, x.dtype), **attrs)
    if not return_indices:
        out = apply(pool_ops.MaxPool2d, x, **attrs)
        return out.squeeze(0) if unbatched else out
    if type(x) is op_layer.SYMBOLIC_TYPE:  # a static graph: the indices are the node's saved output
        out = apply(pool_ops.MaxPool2d, x, **attrs)
        indices = out.graph.get_tensor_by_name(f"{out.name}.indices")
    else:
        result = pool_ops.MaxPool2d.forward(x._data, **attrs)
        out = finish(pool_ops.MaxPool2d, result, (x,), attrs)
        indices = Tensor(result[1]["indices"])
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return out, indices


def avg_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over each window; padding counts toward the divisor unless ``count_include_pad=False``."""
    x, unbatched = _batched("avg_pool2d", input)
    kernel, stride, padding, _ = _pool_args("avg_pool2d", kernel_size, stride, padding, 1)
    if divisor_override is not None and divisor_override <= 0:
        raise ValueError(f"avg_pool2d: divisor_override must be positive, got {divisor_override}")
    attrs = dict(
        kernel=kernel,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )
    pool_ops.AvgPool2d.infer(Spec(x.shape, x.dtype), **attrs)
    out = apply(pool_ops.AvgPool2d, x, **attrs)
    return out.squeeze(0) if unbatched else out
