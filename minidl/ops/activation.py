"""Activation functions as primitives: ``relu``, ``leaky_relu``, ``elu``, ``gelu``, ``silu``, ``softplus``.

Each could be composed from ``where``, ``exp`` and friends; as single primitives they cost one
node and one pass over memory instead of several, which matters for the eager overhead.
Their rules, with ``g`` the output gradient:

* ``relu(x) = max(x, 0)``: ``g`` where ``x > 0``, else 0;
* ``leaky_relu(x) = x if x > 0 else s x``: ``g`` or ``s g``;
* ``elu(x) = x if x > 0 else a (e^x - 1)``: ``g`` or ``g a e^x``;
* ``gelu(x) = x Phi(x)`` with ``Phi`` the normal CDF: ``g (Phi(x) + x phi(x))``; the ``'tanh'``
  variant uses ``Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2``;
* ``silu(x) = x sigmoid(x)``: ``g s (1 + x (1 - s))`` with ``s = sigmoid(x)``;
* ``softplus(x) = log(1 + e^(b x)) / b`` (``x`` itself above ``threshold / b``): ``g sigmoid(b x)``.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend.device import array_module
from ..backend.registry import kernels_for
from ..errors import DTypeError
from ..tensor import Tensor
from .arith import where
from .op import Op, Spec, apply, apply_inplace, binary, unary
from .unary import Sigmoid, erf, exp, sigmoid, tanh

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Activation(Op):
    @classmethod
    def infer(cls, x: Spec, **attrs) -> Spec:
        if x.dtype.category != 2:
            raise DTypeError(
                f"{cls.label}: expected a floating-point input, got {x.dtype.name}; convert it with .float()"
            )
        return x


class Relu(Activation):
    name = "Relu"
    vjp_reads_input0 = False

    @staticmethod
    def forward(x):
        return kernels_for(x).relu_forward(x) if type(x) is np.ndarray else np.maximum(x, 0)

    @staticmethod
    def vjp(ctx, g):
        return (binary(ReluBackward, g, ctx.output),)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        return x


class ReluBackward(Op):
    """0 where ``y <= 0``, else ``g``: the gradient of ``y = relu(x)``, as one primitive.

    It is linear in ``g``, so its own rule is itself (masked by the same ``y``); the mask is
    piecewise constant, so ``y`` gets no gradient.
    """

    name = "ReluBackward"

    @staticmethod
    def forward(g, y):
        # not g * (y > 0): a NaN in g must not leak where y <= 0 (see kernels/reference/relu.py)
        if type(g) is np.ndarray:
            return kernels_for(g).relu_backward(g, y)
        return array_module(g).where(y <= 0, 0, g)

    @staticmethod
    def vjp(ctx, gg):
        return (binary(ReluBackward, gg, ctx.input(1)), None)

    @classmethod
    def infer(cls, g: Spec, y: Spec) -> Spec:
        return g


class LeakyRelu(Activation):
    name = "LeakyRelu"

    @staticmethod
    def forward(x, negative_slope=0.01):
        return np.where(x > 0, x, x * x.dtype.type(negative_slope))

    @staticmethod
    def vjp(ctx, g):
        return (where(ctx.input(0) > 0, g, g * ctx.attrs["negative_slope"]),)


class Elu(Activation):
    name = "Elu"

    @staticmethod
    def forward(x, alpha=1.0):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)) * x.dtype.type(alpha))

    @staticmethod
    def vjp(ctx, g):
        x = ctx.input(0)
        return (where(x > 0, g, g * exp(x) * ctx.attrs["alpha"]),)


class Gelu(Activation):
    name = "Gelu"

    @staticmethod
    def forward(x, approximate="none"):
        if approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + np.tanh(inner))
        return 0.5 * x * (1 + kernels_for(x).erf(x / _SQRT_2))

    @staticmethod
    def vjp(ctx, g):
        x = ctx.input(0)
        if ctx.attrs["approximate"] == "tanh":
            x2 = x * x
            t = tanh((x + x2 * x * 0.044715) * _SQRT_2_OVER_PI)
            dinner = (x2 * (3 * 0.044715) + 1) * _SQRT_2_OVER_PI
            return (g * ((t + 1) * 0.5 + x * 0.5 * (1 - t * t) * dinner),)
        cdf = (erf(x * (1 / _SQRT_2)) + 1) * 0.5
        pdf = exp(x * x * -0.5) * _INV_SQRT_2PI
        return (g * (cdf + x * pdf),)

    @classmethod
    def infer(cls, x: Spec, approximate: str = "none") -> Spec:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        return super().infer(x)


class Silu(Activation):
    name = "Silu"

    @staticmethod
    def forward(x):
        return x * Sigmoid.forward(x)

    @staticmethod
    def vjp(ctx, g):
        x = ctx.input(0)
        s = sigmoid(x)
        return (g * s * (x * (1 - s) + 1),)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        return super().infer(x)


class Softplus(Activation):
    name = "Softplus"

    @staticmethod
    def forward(x, beta=1.0, threshold=20.0):
        bx = x * x.dtype.type(beta)
        soft = np.logaddexp(0, bx) / x.dtype.type(beta)
        return np.where(bx > threshold, x, soft)

    @staticmethod
    def vjp(ctx, g):
        x = ctx.input(0)
        beta, threshold = ctx.attrs["beta"], ctx.attrs["threshold"]
        bx = x * beta
        return (where(bx > threshold, g, g * sigmoid(bx)),)


def _float_input(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(x).__name__}")
    if x._data.dtype.kind != "f":
        raise DTypeError(f"{name}: expected a floating-point input, got {x.dtype.name}; convert it with .float()")


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)``."""
    _float_input("relu", x)
    return apply_inplace(Relu, x) if inplace else unary(Relu, x)


def relu_(x: Tensor) -> Tensor:
    return relu(x, inplace=True)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    _float_input("leaky_relu", x)
    if inplace:
        return apply_inplace(LeakyRelu, x, negative_slope=negative_slope)
    return apply(LeakyRelu, x, negative_slope=negative_slope)


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    _float_input("elu", x)
    if inplace:
        return apply_inplace(Elu, x, alpha=alpha)
    return apply(Elu, x, alpha=alpha)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit, exact (``'none'``) or with the ``'tanh'`` approximation."""
    _float_input("gelu", x)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return apply(Gelu, x, approximate=approximate)


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    _float_input("silu", x)
    return apply_inplace(Silu, x) if inplace else unary(Silu, x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """A smooth ``relu``: ``log(1 + exp(beta x)) / beta``, linear above ``threshold``."""
    _float_input("softplus", x)
    return apply(Softplus, x, beta=beta, threshold=threshold)
