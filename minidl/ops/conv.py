"""2-D convolution (NCHW) and its two backward passes, as three primitives.

All three are faces of one trilinear form, ``T(x, w, g) = <g, conv2d(x, w)>``:

* ``Conv2d(x, w)``                 = dT/dg, the forward pass;
* ``Conv2dBackwardInput(g, w)``    = dT/dx, the input gradient;
* ``Conv2dBackwardWeight(x, g)``   = dT/dw, the weight gradient.

Differentiating any one of them gives the other two, so the rules below only ever call
these three ops -- and second derivatives (a gradient penalty on a CNN, say) work without
a fourth. The arithmetic lives in the kernel registry (``conv2d_forward`` and friends).
"""

from __future__ import annotations

from typing import Any

from ..backend.registry import kernels_for
from ..tensor import Tensor
from . import infer
from .op import Op, ShapeError, Spec, apply


def pair(name: str, what: str, v: Any) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; a 1- or 2-sequence of ints passes through."""
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return (int(v), int(v))
    try:
        t = tuple(int(i) for i in v)
    except TypeError:
        raise TypeError(f"{name}: {what} must be an int or a pair of ints, got {v!r}") from None
    if len(t) == 1:
        return (t[0], t[0])
    if len(t) != 2:
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


def conv_output_hw(h, w, kh, kw, stride, padding, dilation) -> tuple:
    def one(size, k, s, p, d):
        if size is None:
            return None
        return (size + 2 * p - d * (k - 1) - 1) // s + 1

    return one(h, kh, stride[0], padding[0], dilation[0]), one(w, kw, stride[1], padding[1], dilation[1])


def _check_conv(x: tuple, w: tuple, stride, padding, dilation, groups: int) -> tuple:
    if len(x) != 4:
        raise ShapeError(f"conv2d: expected a 4-D input (N, C, H, W), got shape {tuple(x)}")
    if len(w) != 4:
        raise ShapeError(
            f"conv2d: expected a 4-D weight (out_channels, in_channels / groups, kH, kW), got shape {tuple(w)}"
        )
    if groups < 1 or w[0] % groups:
        raise ShapeError(f"conv2d: out_channels ({w[0]}) must be divisible by groups ({groups})")
    if x[1] is not None and x[1] != w[1] * groups:
        raise ShapeError(
            f"conv2d: input of shape {tuple(x)} has {x[1]} channels, but the weight of shape {tuple(w)} "
            f"with groups={groups} expects {w[1] * groups}"
        )
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ShapeError(
            f"conv2d: stride and dilation must be positive and padding non-negative, got {stride}, {dilation}, {padding}"
        )
    ho, wo = conv_output_hw(x[2], x[3], w[2], w[3], stride, padding, dilation)
    if (ho is not None and ho < 1) or (wo is not None and wo < 1):
        raise ShapeError(
            f"conv2d: the kernel {tuple(w[2:])} (dilation {dilation}) is larger than the padded input "
            f"{tuple(x[2:])} + 2 * {padding}: the output would be empty"
        )
    return (x[0], w[0], ho, wo)


def _params(ctx) -> tuple:
    """(stride, padding, dilation, groups) of a recorded convolution node."""
    a = ctx.attrs
    return a["stride"], a["padding"], a["dilation"], a["groups"]


class Conv2d(Op):
    name = "Conv2d"

    @staticmethod
    def forward(x, w, stride, padding, dilation, groups):
        return kernels_for(x).conv2d_forward(x, w, stride, padding, dilation, groups)

    @staticmethod
    def vjp(ctx, g):
        x, w = ctx.input(0), ctx.input(1)
        params = _params(ctx)
        gx = conv2d_backward_input(g, w, x.shape, *params) if ctx.needs_grad(0) else None
        gw = conv2d_backward_weight(x, g, w.shape, *params) if ctx.needs_grad(1) else None
        return gx, gw

    @classmethod
    def infer(cls, x: Spec, w: Spec, stride, padding, dilation, groups) -> Spec:
        infer.require_float("conv2d", x)
        return Spec(_check_conv(x.shape, w.shape, stride, padding, dilation, groups), infer.promoted_dtype(x, w))


class Conv2dBias(Op):
    """Convolution plus a bias per output channel, as one primitive: the kernels add the bias
    while they write the output, instead of a second pass over it (torch fuses it too).

        y = conv2d(x, w) + b[None, :, None, None]      db = sum of g over (N, H, W)
    """

    name = "Conv2dBias"

    @staticmethod
    def forward(x, w, b, stride, padding, dilation, groups):
        return kernels_for(x).conv2d_forward(x, w, stride, padding, dilation, groups, bias=b)

    @staticmethod
    def vjp(ctx, g):
        gx, gw = Conv2d.vjp(ctx, g)
        gb = g.sum((0, 2, 3)) if ctx.needs_grad(2) else None
        return gx, gw, gb

    @classmethod
    def infer(cls, x: Spec, w: Spec, b: Spec, stride, padding, dilation, groups) -> Spec:
        out = Conv2d.infer(x, w, stride, padding, dilation, groups)
        if tuple(b.shape) != (w.shape[0],):
            raise ShapeError(f"conv2d: bias must have shape ({w.shape[0]},), got {tuple(b.shape)}")
        return out


class Conv2dBackwardInput(Op):
    name = "Conv2dBackwardInput"

    @staticmethod
    def forward(g, w, x_shape, stride, padding, dilation, groups):
        if x_shape[0] is None:  # built with an unknown batch size: it is the gradient's
            x_shape = (g.shape[0],) + tuple(x_shape[1:])
        return kernels_for(g).conv2d_backward_input(g, w, x_shape, stride, padding, dilation, groups)

    @staticmethod
    def vjp(ctx, gg):
        g, w = ctx.input(0), ctx.input(1)
        params = _params(ctx)
        dg = conv2d(gg, w, *params) if ctx.needs_grad(0) else None
        dw = conv2d_backward_weight(gg, g, w.shape, *params) if ctx.needs_grad(1) else None
        return dg, dw

    @classmethod
    def infer(cls, g: Spec, w: Spec, x_shape, stride, padding, dilation, groups) -> Spec:
        return Spec(tuple(x_shape), g.dtype)


class Conv2dBackwardWeight(Op):
    name = "Conv2dBackwardWeight"

    @staticmethod
    def forward(x, g, w_shape, stride, padding, dilation, groups):
        return kernels_for(x).conv2d_backward_weight(x, g, w_shape, stride, padding, dilation, groups)

    @staticmethod
    def vjp(ctx, gw):
        x, g = ctx.input(0), ctx.input(1)
        params = _params(ctx)
        dx = conv2d_backward_input(g, gw, x.shape, *params) if ctx.needs_grad(0) else None
        dg = conv2d(x, gw, *params) if ctx.needs_grad(1) else None
        return dx, dg

    @classmethod
    def infer(cls, x: Spec, g: Spec, w_shape, stride, padding, dilation, groups) -> Spec:
        return Spec(tuple(w_shape), x.dtype)


def conv2d(x: Tensor, w: Tensor, stride, padding, dilation, groups: int, bias: Tensor | None = None) -> Tensor:
    """The primitive: normalized pair arguments, symmetric padding, an optional (K,) bias of
    the same dtype."""
    if bias is None:
        return apply(Conv2d, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return apply(Conv2dBias, x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv2d_backward_input(g: Tensor, w: Tensor, x_shape, stride, padding, dilation, groups: int) -> Tensor:
    return apply(
        Conv2dBackwardInput,
        g,
        w,
        x_shape=tuple(x_shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )


def conv2d_backward_weight(x: Tensor, g: Tensor, w_shape, stride, padding, dilation, groups: int) -> Tensor:
    return apply(
        Conv2dBackwardWeight,
        x,
        g,
        w_shape=tuple(w_shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
