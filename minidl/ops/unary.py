"""Elementwise one-input math: ``exp``, ``log``, ``tanh``, ``sigmoid``, ... and their rules.

Each rule is the derivative multiplied by the incoming gradient ``g``, written in minidl ops
so it can itself be differentiated. Where the derivative is cheapest in terms of the output
``y`` the rule reads ``ctx.output``:

=================  =======================  =================  ===========================
op                 gradient                 op                 gradient
=================  =======================  =================  ===========================
exp(x) = y         g y                      tanh(x) = y        g (1 - y^2)
log(x)             g / x                    sigmoid(x) = y     g y (1 - y)
log1p(x)           g / (1 + x)              sqrt(x) = y        g / (2 y)
expm1(x) = y       g (y + 1)                rsqrt(x) = y       -g y^3 / 2
sin(x)             g cos x                  reciprocal(x) = y  -g y^2
cos(x)             -g sin x                 erf(x)             g 2/sqrt(pi) exp(-x^2)
abs(x)             g sign(x)                neg(x)             -g
=================  =======================  =================  ===========================

Integer and bool inputs to the floating-point functions are computed in float32, as torch
does (``minidl.exp(minidl.tensor([1, 2]))`` is a float32 tensor).
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..backend.registry import kernels_for
from ..errors import DTypeError
from ..tensor import Tensor
from .op import Op, Spec, apply_inplace, float_unary, unary


class Unary(Op):
    """An elementwise one-input op: same shape; dtype kept, or made float by ``float_result``."""

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        if cls.float_result and x.dtype.category < 2:
            return Spec(x.shape, dtypes.get_default_dtype())
        return Spec(x.shape, x.dtype)


class Neg(Unary):
    name = "Neg"
    vjp_reads_input0 = False

    @staticmethod
    def forward(x):
        if x.dtype == np.bool_:
            raise DTypeError(
                "neg: negation (-) of a bool tensor is not supported; use ~x or logical_not() to invert a mask"
            )
        return np.negative(x)

    @staticmethod
    def vjp(ctx, g):
        return (-g,)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        if x.dtype.category == 0:
            raise DTypeError(
                "neg: negation (-) of a bool tensor is not supported; use ~x or logical_not() to invert a mask"
            )
        return Spec(x.shape, x.dtype)


class Abs(Unary):
    name = "Abs"
    forward = staticmethod(np.abs)

    @staticmethod
    def vjp(ctx, g):
        return (g * sign(ctx.input(0)),)


class Sign(Unary):
    name = "Sign"
    forward = staticmethod(np.sign)

    @staticmethod
    def vjp(ctx, g):
        return (g * 0.0,)


class Exp(Unary):
    name = "Exp"
    vjp_reads_input0 = False
    float_result = True
    forward = staticmethod(np.exp)

    @staticmethod
    def vjp(ctx, g):
        return (g * ctx.output,)


class Log(Unary):
    name = "Log"
    float_result = True
    forward = staticmethod(np.log)

    @staticmethod
    def vjp(ctx, g):
        return (g / ctx.input(0),)


class Log1p(Unary):
    name = "Log1p"
    float_result = True
    forward = staticmethod(np.log1p)

    @staticmethod
    def vjp(ctx, g):
        return (g / (ctx.input(0) + 1),)


class Expm1(Unary):
    name = "Expm1"
    vjp_reads_input0 = False
    float_result = True
    forward = staticmethod(np.expm1)

    @staticmethod
    def vjp(ctx, g):
        return (g * (ctx.output + 1),)


class Sqrt(Unary):
    name = "Sqrt"
    vjp_reads_input0 = False
    float_result = True
    forward = staticmethod(np.sqrt)

    @staticmethod
    def vjp(ctx, g):
        return (g / (ctx.output * 2),)


class Rsqrt(Unary):
    name = "Rsqrt"
    vjp_reads_input0 = False
    float_result = True

    @staticmethod
    def forward(x):
        return 1 / np.sqrt(x)

    @staticmethod
    def vjp(ctx, g):
        y = ctx.output
        return (g * (y * y * y) * -0.5,)


class Sin(Unary):
    name = "Sin"
    float_result = True
    forward = staticmethod(np.sin)

    @staticmethod
    def vjp(ctx, g):
        return (g * cos(ctx.input(0)),)


class Cos(Unary):
    name = "Cos"
    float_result = True
    forward = staticmethod(np.cos)

    @staticmethod
    def vjp(ctx, g):
        return (-g * sin(ctx.input(0)),)


class Tanh(Unary):
    name = "Tanh"
    vjp_reads_input0 = False
    float_result = True
    forward = staticmethod(np.tanh)

    @staticmethod
    def vjp(ctx, g):
        y = ctx.output
        return (g * (1 - y * y),)


class Sigmoid(Unary):
    """``1 / (1 + e^-x)``. For very negative ``x``, ``e^-x`` overflows to inf and the result is
    ``1 / inf = 0``, the right limit (torch returns a subnormal there); elsewhere the formula
    has no cancellation. Branching on the sign with ``where`` would cost several times more."""

    name = "Sigmoid"
    vjp_reads_input0 = False
    float_result = True

    @staticmethod
    def forward(x):
        with np.errstate(over="ignore"):
            return 1 / (1 + np.exp(-x))

    @staticmethod
    def vjp(ctx, g):
        y = ctx.output
        return (g * y * (1 - y),)


class Reciprocal(Unary):
    name = "Reciprocal"
    vjp_reads_input0 = False
    float_result = True

    @staticmethod
    def forward(x):
        return np.reciprocal(x)

    @staticmethod
    def vjp(ctx, g):
        y = ctx.output
        return (-g * y * y,)


class Erf(Unary):
    """The error function, through the kernel registry (NumPy has no ``erf``)."""

    name = "Erf"
    float_result = True

    @staticmethod
    def forward(x):
        return kernels_for(x).erf(x)

    @staticmethod
    def vjp(ctx, g):
        x = ctx.input(0)
        return (g * exp(-(x * x)) * (2 / math.sqrt(math.pi)),)


class Rounding(Unary):
    """Piecewise-constant ops: their gradient is zero wherever it is defined."""

    vjp_reads_input0 = False

    @staticmethod
    def vjp(ctx, g):
        return (g * 0.0,)


class Floor(Rounding):
    name = "Floor"
    forward = staticmethod(np.floor)


class Ceil(Rounding):
    name = "Ceil"
    forward = staticmethod(np.ceil)


class Round(Rounding):
    """Round half to even, as torch and NumPy do."""

    name = "Round"
    forward = staticmethod(np.round)


class Trunc(Rounding):
    name = "Trunc"
    forward = staticmethod(np.trunc)


class LogicalNot(Unary):
    name = "LogicalNot"
    differentiable = False
    forward = staticmethod(np.logical_not)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        return Spec(x.shape, dtypes.bool_)


class BitwiseNot(Unary):
    """``~x``: logical not on bool tensors, two's complement on integers."""

    name = "BitwiseNot"
    differentiable = False
    forward = staticmethod(np.invert)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        if x.dtype.category == 2:
            raise DTypeError(f"bitwise_not (~): needs a bool or integer tensor, got {x.dtype.name}")
        return Spec(x.shape, x.dtype)


# ---- the functions -------------------------------------------------------------------------------


def neg(x: Tensor) -> Tensor:
    return unary(Neg, x)


def abs(x: Tensor) -> Tensor:
    return unary(Abs, x)


def sign(x: Tensor) -> Tensor:
    return unary(Sign, x)


def exp(x: Tensor) -> Tensor:
    return float_unary(Exp, x)


def log(x: Tensor) -> Tensor:
    return float_unary(Log, x)


def log1p(x: Tensor) -> Tensor:
    """``log(1 + x)``, accurate for small ``x``."""
    return float_unary(Log1p, x)


def expm1(x: Tensor) -> Tensor:
    """``exp(x) - 1``, accurate for small ``x``."""
    return float_unary(Expm1, x)


def sqrt(x: Tensor) -> Tensor:
    return float_unary(Sqrt, x)


def rsqrt(x: Tensor) -> Tensor:
    """``1 / sqrt(x)``."""
    return float_unary(Rsqrt, x)


def sin(x: Tensor) -> Tensor:
    return float_unary(Sin, x)


def cos(x: Tensor) -> Tensor:
    return float_unary(Cos, x)


def tanh(x: Tensor) -> Tensor:
    return float_unary(Tanh, x)


def sigmoid(x: Tensor) -> Tensor:
    return float_unary(Sigmoid, x)


def reciprocal(x: Tensor) -> Tensor:
    return float_unary(Reciprocal, x)


def erf(x: Tensor) -> Tensor:
    return float_unary(Erf, x)


def floor(x: Tensor) -> Tensor:
    return unary(Floor, x)


def ceil(x: Tensor) -> Tensor:
    return unary(Ceil, x)


def round(x: Tensor) -> Tensor:
    return unary(Round, x)


def trunc(x: Tensor) -> Tensor:
    return unary(Trunc, x)


def logical_not(x: Tensor) -> Tensor:
    return unary(LogicalNot, x)


def bitwise_not(x: Tensor) -> Tensor:
    return unary(BitwiseNot, x)


def square(x: Tensor) -> Tensor:
    return x * x


def _inplace(op: type[Op]):
    def method(self: Tensor) -> Tensor:
        return apply_inplace(op, self)

    method.__name__ = op.name.lower() + "_"
    method.__doc__ = f"In-place ``{op.name.lower()}``."
    return method


neg_ = _inplace(Neg)
abs_ = _inplace(Abs)
exp_ = _inplace(Exp)
log_ = _inplace(Log)
sqrt_ = _inplace(Sqrt)
tanh_ = _inplace(Tanh)
sigmoid_ = _inplace(Sigmoid)
floor_ = _inplace(Floor)
