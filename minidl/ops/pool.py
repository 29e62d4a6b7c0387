"""2-D max and average pooling (NCHW) and their backward passes, as primitives.

Max pooling keeps, beside each maximum, the flat input index it came from (``ctx.saved``).
Its gradient scatters ``g`` to those indices (``MaxPool2dBackward``), and the gradient of
that scatter is a gather at the same indices -- so second derivatives work too.

Average pooling is linear: ``AvgPool2dBackward`` is its adjoint (spread each gradient over
its window), and the adjoint of the adjoint is average pooling again.
"""

from __future__ import annotations

from ..backend.registry import kernels_for
from ..tensor import Tensor
from . import infer
from .op import Op, ShapeError, Spec, apply


def pool_out(size, k, s, p, d, ceil_mode):
    if size is None:
        return None
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def check_pool(name: str, x: tuple, kernel, stride, padding, dilation, ceil_mode) -> tuple:
    if len(x) != 4:
        raise ShapeError(f"{name}: expected a 4-D input (N, C, H, W), got shape {tuple(x)}")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ShapeError(
            f"{name}: kernel_size, stride and dilation must be positive, got {kernel}, {stride}, {dilation}"
        )
    for k, p, d in zip(kernel, padding, dilation):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise ShapeError(
                f"{name}: padding {tuple(padding)} should be at most half of the effective kernel size "
                f"{tuple(kernel)} (and non-negative)"
            )
    ho = pool_out(x[2], kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    wo = pool_out(x[3], kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if (ho is not None and ho < 1) or (wo is not None and wo < 1):
        raise ShapeError(
            f"{name}: the output would be empty for input {tuple(x)} with kernel {tuple(kernel)} and padding {tuple(padding)}"
        )
    return (x[0], x[1], ho, wo)


class MaxPool2d(Op):
    name = "MaxPool2d"
    saves = True

    @staticmethod
    def forward(x, kernel, stride, padding, dilation, ceil_mode):
        out, indices = kernels_for(x).max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
        return out, {"indices": indices}

    @staticmethod
    def vjp(ctx, g):
        indices = ctx.saved_tensor("indices")
        return (max_pool2d_backward(g, indices, ctx.input_shape(0)),)

    @classmethod
    def infer(cls, x: Spec, kernel, stride, padding, dilation, ceil_mode) -> Spec:
        infer.require_float("max_pool2d", x)
        return Spec(check_pool("max_pool2d", x.shape, kernel, stride, padding, dilation, ceil_mode), x.dtype)


class MaxPool2dBackward(Op):
    """Scatter-add ``g`` into zeros of the input shape at the saved argmax indices."""

    name = "MaxPool2dBackward"

    @staticmethod
    def forward(g, indices, x_shape):
        if None in x_shape:  # built with unknown sizes: batch and channels are the gradient's
            x_shape = tuple(g.shape[i] if s is None else s for i, s in enumerate(x_shape))
        return kernels_for(g).max_pool2d_backward(g, indices, x_shape)

    @staticmethod
    def vjp(ctx, gg):
        indices = ctx.input(1)
        picked = gg.flatten(2).gather(2, indices.flatten(2))  # (N, C, H*W): one row per plane
        return (picked.reshape(indices.shape), None)

    @classmethod
    def infer(cls, g: Spec, indices: Spec, x_shape) -> Spec:
        return Spec(tuple(x_shape), g.dtype)


class AvgPool2d(Op):
    name = "AvgPool2d"

    @staticmethod
    def forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        return kernels_for(x).avg_pool2d_forward(
            x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
        )

    @staticmethod
    def vjp(ctx, g):
        return (apply(AvgPool2dBackward, g, x_shape=tuple(ctx.input_shape(0)), **ctx.attrs),)

    @classmethod
    def infer(cls, x: Spec, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override) -> Spec:
        infer.require_float("avg_pool2d", x)
        return Spec(check_pool("avg_pool2d", x.shape, kernel, stride, padding, (1, 1), ceil_mode), x.dtype)


class AvgPool2dBackward(Op):
    name = "AvgPool2dBackward"

    @staticmethod
    def forward(g, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        if None in x_shape:  # built with unknown sizes: batch and channels are the gradient's
            x_shape = tuple(g.shape[i] if s is None else s for i, s in enumerate(x_shape))
        return kernels_for(g).avg_pool2d_backward(
            g, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
        )

    @staticmethod
    def vjp(ctx, gg):
        attrs = {k: v for k, v in ctx.attrs.items() if k != "x_shape"}
        return (apply(AvgPool2d, gg, **attrs),)

    @classmethod
    def infer(cls, g: Spec, x_shape, **attrs) -> Spec:
        return Spec(tuple(x_shape), g.dtype)


def max_pool2d_backward(g: Tensor, indices: Tensor, x_shape) -> Tensor:
    return apply(MaxPool2dBackward, g, indices, x_shape=tuple(x_shape))
