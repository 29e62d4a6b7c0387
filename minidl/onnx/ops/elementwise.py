"""Elementwise ONNX operators: arithmetic, comparisons, logic, activations, ``Cast``, ``Clip``.

ONNX broadcasting is NumPy's, as minidl's is. Two ONNX rules differ from torch's and are
spelled out here: integer ``Div`` truncates toward zero (torch's true division would give
floats), and ``Pow``'s result has the base's dtype whatever the exponent's.
"""

from __future__ import annotations

import math
from typing import Any

from ... import dtypes, ops
from ...nn import functional as F
from ..importer import NodeContext, onnx_dtype
from . import converter


def _is_int(t: Any) -> bool:
    return t.dtype.category < 2


@converter("Add")
def add(ctx: NodeContext) -> Any:
    return ctx.input(0) + ctx.input(1)


@converter("Sub")
def sub(ctx: NodeContext) -> Any:
    return ctx.input(0) - ctx.input(1)


@converter("Mul")
def mul(ctx: NodeContext) -> Any:
    return ctx.input(0) * ctx.input(1)


@converter("Div")
def div(ctx: NodeContext) -> Any:
    a, b = ctx.input(0), ctx.input(1)
    if _is_int(a) and _is_int(b):
        return ops.div(a, b, rounding_mode="trunc")  # C's integer division, as ONNX specifies
    return a / b


@converter("Pow")
def pow_(ctx: NodeContext) -> Any:
    a, b = ctx.input(0), ctx.input(1)
    if a.dtype is b.dtype:
        return ops.pow(a, b)
    # Mixed types: compute in float64, then give the result the base's dtype (ONNX's rule).
    return ops.pow(a.to(dtypes.float64), b.to(dtypes.float64)).to(a.dtype)


@converter("Neg")
def neg(ctx: NodeContext) -> Any:
    return -ctx.input(0)


def _unary(fn: Any) -> Any:
    return lambda ctx: fn(ctx.input(0))


for _name, _fn in {
    "Abs": ops.abs,
    "Exp": ops.exp,
    "Log": ops.log,
    "Sqrt": ops.sqrt,
    "Relu": F.relu,
    "Sigmoid": ops.sigmoid,
    "Tanh": ops.tanh,
    "Erf": ops.erf,
    "Floor": ops.floor,
    "Ceil": ops.ceil,
    "Reciprocal": ops.reciprocal,
    "Sin": ops.sin,
    "Cos": ops.cos,
    "Sign": ops.sign,
    "Not": ops.logical_not,
}.items():
    converter(_name)(_unary(_fn))


@converter("LeakyRelu")
def leaky_relu(ctx: NodeContext) -> Any:
    return F.leaky_relu(ctx.input(0), ctx.attr("alpha", 0.01))


@converter("Elu")
def elu(ctx: NodeContext) -> Any:
    return F.elu(ctx.input(0), ctx.attr("alpha", 1.0))


@converter("Softplus")
def softplus(ctx: NodeContext) -> Any:
    return F.softplus(ctx.input(0))


@converter("Gelu")
def gelu(ctx: NodeContext) -> Any:
    return F.gelu(ctx.input(0), approximate=ctx.attr("approximate", "none"))


@converter("PRelu")
def prelu(ctx: NodeContext) -> Any:
    x, slope = ctx.input(0), ctx.input(1)
    if ctx.opset < 7 and slope.ndim == 1 and x.ndim > 2 and slope.shape[0] == x.shape[1]:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))  # before opset 7: one slope per channel
    return ops.where(x < 0, x * slope, x)


@converter("Selu")
def selu(ctx: NodeContext) -> Any:
    """``gamma * x`` for ``x > 0``, ``gamma * alpha * (exp(x) - 1)`` otherwise."""
    alpha, gamma = ctx.attr("alpha", 1.67326319217681884765625), ctx.attr("gamma", 1.05070102214813232421875)
    return F.elu(ctx.input(0), alpha) * gamma


@converter("HardSigmoid")
def hard_sigmoid(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    return ops.clamp(x * ctx.attr("alpha", 0.2) + ctx.attr("beta", 0.5), 0.0, 1.0)


@converter("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
def compare(ctx: NodeContext) -> Any:
    fn = {"Equal": ops.eq, "Less": ops.lt, "Greater": ops.gt, "LessOrEqual": ops.le, "GreaterOrEqual": ops.ge}
    return fn[ctx.op_type](ctx.input(0), ctx.input(1))


@converter("And", "Or", "Xor")
def logical(ctx: NodeContext) -> Any:
    fn = {"And": ops.logical_and, "Or": ops.logical_or, "Xor": ops.logical_xor}
    return fn[ctx.op_type](ctx.input(0), ctx.input(1))


@converter("Where")
def where(ctx: NodeContext) -> Any:
    return ops.where(ctx.input(0), ctx.input(1), ctx.input(2))


@converter("Max", "Min")
def extreme(ctx: NodeContext) -> Any:
    fn = ops.maximum if ctx.op_type == "Max" else ops.minimum
    out = ctx.input(0)
    for t in ctx.inputs[1:]:
        out = fn(out, t)
    return out


@converter("Sum", "Mean")
def variadic_sum(ctx: NodeContext) -> Any:
    out = ctx.input(0)
    for t in ctx.inputs[1:]:
        out = out + t
    return out / len(ctx.inputs) if ctx.op_type == "Mean" else out


@converter("Cast")
def cast(ctx: NodeContext) -> Any:
    if ctx.attr("saturate", 1) != 1 and ctx.attr("to") not in (1, 6, 7, 9, 11):
        raise ctx.fail("saturate=0 applies to float8 targets, which minidl does not support")
    return ctx.input(0).to(onnx_dtype(ctx.attr("to"), f"{ctx.describe()}, attribute 'to'"))


@converter("CastLike")
def cast_like(ctx: NodeContext) -> Any:
    return ctx.input(0).to(ctx.input(1).dtype)


@converter("Clip")
def clip(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    if ctx.opset < 11:  # bounds were attributes
        lo, hi = ctx.attr("min", -math.inf), ctx.attr("max", math.inf)
        return ops.clamp(x, lo, hi)
    lo, hi = ctx.input(1), ctx.input(2)
    if lo is None and hi is None:
        return x
    # np.clip(x, lo, hi) == minimum(maximum(x, lo), hi): where lo > hi the result is hi.
    if lo is not None:
        x = ops.maximum(x, _bound(lo, x))
    if hi is not None:
        x = ops.minimum(x, _bound(hi, x))
    return x


def _bound(b: Any, x: Any) -> Any:
    """A Clip bound as a tensor of ``x``'s dtype (ONNX bounds are 0-d tensors)."""
    return b.to(x.dtype) if b.dtype is not x.dtype else b
