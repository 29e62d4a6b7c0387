"""Elementwise ops: arithmetic, comparisons, logic, unary math, activations, casts.

Most have an ONNX operator of the same meaning (``Add``, ``Exp``, ``Relu``...). The others are
written with a few ONNX operators, following the formula minidl's own ``forward`` computes:

    floor_divide(a, b)  floats: floor(a / b);  integers: (a - mod(a, b)) / b, exact
    remainder(a, b)     floats: a - floor(a / b) * b;  integers: Mod(fmod=0), sign of b
    log1p(x)            u = 1 + x;  x if u == 1 else log(u) * x / (u - 1)   (Kahan: no cancellation)
    expm1(x)            u = e^x;    x if u == 1 else (u - 1) * x / log(u)
    trunc(x)            ceil(x) if x < 0 else floor(x)
    silu(x)             x * sigmoid(x)
    softplus(x)         x if beta x > threshold else softplus(beta x) / beta
    gelu(x)             opset >= 20: Gelu;  before: x/2 (1 + erf(x / sqrt 2)), or the tanh form

A Python number among the inputs becomes a scalar of the dtype the op computes in (the output's
dtype; for comparisons, the other operand's), which is what NumPy does with it.
"""

from __future__ import annotations

import math

from ... import dtypes
from ...ops import activation, arith, cast, unary
from . import converter
from .context import Context, Unsupported

# ---- binary arithmetic ----------------------------------------------------------------------------

_ARITH = {
    arith.Add: "Add",
    arith.Sub: "Sub",
    arith.Mul: "Mul",
    arith.Div: "Div",
    arith.Pow: "Pow",
    arith.Maximum: "Max",
    arith.Minimum: "Min",
}


def _operands(ctx: Context, node, dtype=None) -> list[str]:
    """The node's inputs as ONNX names, literals as scalars of ``dtype`` (the output's by default)."""
    dtype = dtype or node.specs[0].dtype
    return [ctx.value(v, dtype) for v in node.inputs]


@converter(*_ARITH)
def _arith(ctx: Context, node) -> None:
    ctx.emit(_ARITH[node.op], _operands(ctx, node), ctx.out(node))


@converter(arith.FloorDivide)
def _floor_divide(ctx: Context, node) -> None:
    a, b = _operands(ctx, node)
    if node.specs[0].dtype.category == 2:
        ctx.emit("Floor", [ctx.emit("Div", [a, b])], ctx.out(node))
    else:  # a - mod(a, b) is a multiple of b, so the integer Div (which truncates) is exact
        r = ctx.emit("Mod", [a, b], fmod=0)
        ctx.emit("Div", [ctx.emit("Sub", [a, r]), b], ctx.out(node))


@converter(arith.Remainder)
def _remainder(ctx: Context, node) -> None:
    a, b = _operands(ctx, node)
    if node.specs[0].dtype.category == 2:
        q = ctx.emit("Floor", [ctx.emit("Div", [a, b])])
        ctx.emit("Sub", [a, ctx.emit("Mul", [q, b])], ctx.out(node))
    else:
        ctx.emit("Mod", [a, b], ctx.out(node), fmod=0)


# ---- comparisons and logic ------------------------------------------------------------------------

_COMPARE = {
    arith.Eq: "Equal",
    arith.Lt: "Less",
    arith.Le: "LessOrEqual",
    arith.Gt: "Greater",
    arith.Ge: "GreaterOrEqual",
}


def _compare_operands(ctx: Context, node) -> list[str]:
    specs = [ctx.spec(v) for v in node.inputs]
    dtype = next(s.dtype for s in specs if s is not None)
    return _operands(ctx, node, dtype)


@converter(*_COMPARE)
def _compare(ctx: Context, node) -> None:
    ctx.emit(_COMPARE[node.op], _compare_operands(ctx, node), ctx.out(node))


@converter(arith.Ne)
def _not_equal(ctx: Context, node) -> None:
    ctx.emit("Not", [ctx.emit("Equal", _compare_operands(ctx, node))], ctx.out(node))


def _as_bool(ctx: Context, v) -> str:
    """A logical operand: nonzero is true, as NumPy's ``logical_*`` read it."""
    spec = ctx.spec(v)
    if spec is None:
        return ctx.scalar(bool(v), dtypes.bool_)
    return ctx.cast(ctx.value(v), spec.dtype, dtypes.bool_)


_LOGICAL = {arith.LogicalAnd: "And", arith.LogicalOr: "Or", arith.LogicalXor: "Xor"}
_BITWISE = {arith.BitwiseAnd: "BitwiseAnd", arith.BitwiseOr: "BitwiseOr", arith.BitwiseXor: "BitwiseXor"}
_BOOL_OF_BITWISE = {"BitwiseAnd": "And", "BitwiseOr": "Or", "BitwiseXor": "Xor"}


@converter(*_LOGICAL)
def _logical(ctx: Context, node) -> None:
    ctx.emit(_LOGICAL[node.op], [_as_bool(ctx, v) for v in node.inputs], ctx.out(node))


@converter(*_BITWISE)
def _bitwise(ctx: Context, node) -> None:
    op_type = _BITWISE[node.op]
    if node.specs[0].dtype is dtypes.bool_:
        op_type = _BOOL_OF_BITWISE[op_type]
    elif ctx.opset < 18:
        raise Unsupported(f"{op_type} on integers needs opset 18 or newer")
    ctx.emit(op_type, _operands(ctx, node), ctx.out(node))


@converter(unary.LogicalNot)
def _logical_not(ctx: Context, node) -> None:
    ctx.emit("Not", [_as_bool(ctx, node.inputs[0])], ctx.out(node))


@converter(unary.BitwiseNot)
def _bitwise_not(ctx: Context, node) -> None:
    x = ctx.value(node.inputs[0])
    if node.specs[0].dtype is dtypes.bool_:
        ctx.emit("Not", [x], ctx.out(node))
    elif ctx.opset < 18:
        raise Unsupported("BitwiseNot needs opset 18 or newer")
    else:
        ctx.emit("BitwiseNot", [x], ctx.out(node))


@converter(arith.Where)
def _where(ctx: Context, node) -> None:
    cond, a, b = node.inputs
    dtype = node.specs[0].dtype
    ctx.emit("Where", [ctx.value(cond), ctx.value(a, dtype), ctx.value(b, dtype)], ctx.out(node))


@converter(arith.Clamp)
def _clamp(ctx: Context, node) -> None:
    dtype = node.specs[0].dtype
    x = ctx.cast(ctx.value(node.inputs[0]), ctx.spec(node.inputs[0]).dtype, dtype)
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    bounds = [ctx.scalar(v, dtype) if v is not None else "" for v in (lo, hi)]
    while bounds and bounds[-1] == "":
        bounds.pop()
    ctx.emit("Clip", [x, *bounds], ctx.out(node))


# ---- unary math ---------------------------------------------------------------------------------

_UNARY = {
    unary.Neg: "Neg",
    unary.Abs: "Abs",
    unary.Sign: "Sign",
    unary.Exp: "Exp",
    unary.Log: "Log",
    unary.Sqrt: "Sqrt",
    unary.Sin: "Sin",
    unary.Cos: "Cos",
    unary.Tanh: "Tanh",
    unary.Sigmoid: "Sigmoid",
    unary.Reciprocal: "Reciprocal",
    unary.Erf: "Erf",
    unary.Floor: "Floor",
    unary.Ceil: "Ceil",
    unary.Round: "Round",
    activation.Relu: "Relu",
}


def _input(ctx: Context, node) -> str:
    """Input 0, cast to the output's dtype where the op computes in another one."""
    v = node.inputs[0]
    return ctx.cast(ctx.value(v), ctx.spec(v).dtype, node.specs[0].dtype)


@converter(*_UNARY)
def _unary(ctx: Context, node) -> None:
    x = _input(ctx, node)
    if node.op in (unary.Floor, unary.Ceil, unary.Round) and node.specs[0].dtype.category < 2:
        ctx.emit("Identity", [x], ctx.out(node))  # integers are already whole
        return
    ctx.emit(_UNARY[node.op], [x], ctx.out(node))


@converter(unary.Rsqrt)
def _rsqrt(ctx: Context, node) -> None:
    ctx.emit("Reciprocal", [ctx.emit("Sqrt", [_input(ctx, node)])], ctx.out(node))


@converter(unary.Trunc)
def _trunc(ctx: Context, node) -> None:
    x = _input(ctx, node)
    dtype = node.specs[0].dtype
    if dtype.category < 2:
        ctx.emit("Identity", [x], ctx.out(node))
        return
    negative = ctx.emit("Less", [x, ctx.scalar(0, dtype)])
    ctx.emit("Where", [negative, ctx.emit("Ceil", [x]), ctx.emit("Floor", [x])], ctx.out(node))


@converter(unary.Log1p)
def _log1p(ctx: Context, node) -> None:
    x = _input(ctx, node)
    one = ctx.scalar(1, node.specs[0].dtype)
    u = ctx.emit("Add", [x, one])
    scaled = ctx.emit("Div", [ctx.emit("Mul", [ctx.emit("Log", [u]), x]), ctx.emit("Sub", [u, one])])
    ctx.emit("Where", [ctx.emit("Equal", [u, one]), x, scaled], ctx.out(node))


@converter(unary.Expm1)
def _expm1(ctx: Context, node) -> None:
    x = _input(ctx, node)
    one = ctx.scalar(1, node.specs[0].dtype)
    u = ctx.emit("Exp", [x])
    um1 = ctx.emit("Sub", [u, one])
    scaled = ctx.emit("Div", [ctx.emit("Mul", [um1, x]), ctx.emit("Log", [u])])
    # u == inf (overflow): inf * x / inf would be nan; u - 1 == -1 (underflow): log(0) = -inf
    finite = ctx.emit("Where", [ctx.emit("IsInf", [u]), u, scaled])
    bottom = ctx.emit("Where", [ctx.emit("Equal", [um1, ctx.scalar(-1, node.specs[0].dtype)]), um1, finite])
    ctx.emit("Where", [ctx.emit("Equal", [u, one]), x, bottom], ctx.out(node))


# ---- activations --------------------------------------------------------------------------------


@converter(activation.LeakyRelu)
def _leaky_relu(ctx: Context, node) -> None:
    ctx.emit("LeakyRelu", [_input(ctx, node)], ctx.out(node), alpha=float(node.attrs.get("negative_slope", 0.01)))


@converter(activation.Elu)
def _elu(ctx: Context, node) -> None:
    ctx.emit("Elu", [_input(ctx, node)], ctx.out(node), alpha=float(node.attrs.get("alpha", 1.0)))


@converter(activation.Silu)
def _silu(ctx: Context, node) -> None:
    x = _input(ctx, node)
    ctx.emit("Mul", [x, ctx.emit("Sigmoid", [x])], ctx.out(node))


@converter(activation.Softplus)
def _softplus(ctx: Context, node) -> None:
    x = _input(ctx, node)
    dtype = node.specs[0].dtype
    beta, threshold = node.attrs.get("beta", 1.0), node.attrs.get("threshold", 20.0)
    bx = ctx.emit("Mul", [x, ctx.scalar(beta, dtype)])
    soft = ctx.emit("Div", [ctx.emit("Softplus", [bx]), ctx.scalar(beta, dtype)])
    linear = ctx.emit("Greater", [bx, ctx.scalar(threshold, dtype)])
    ctx.emit("Where", [linear, x, soft], ctx.out(node))


@converter(activation.Gelu)
def _gelu(ctx: Context, node) -> None:
    x = _input(ctx, node)
    approximate = node.attrs.get("approximate", "none")
    if ctx.opset >= 20:
        ctx.emit("Gelu", [x], ctx.out(node), approximate=approximate)
        return
    dtype = node.specs[0].dtype
    if approximate == "tanh":
        cube = ctx.emit("Mul", [ctx.emit("Mul", [x, x]), x])
        inner = ctx.emit("Add", [x, ctx.emit("Mul", [cube, ctx.scalar(0.044715, dtype)])])
        curve = ctx.emit("Tanh", [ctx.emit("Mul", [inner, ctx.scalar(math.sqrt(2 / math.pi), dtype)])])
    else:
        curve = ctx.emit("Erf", [ctx.emit("Div", [x, ctx.scalar(math.sqrt(2.0), dtype)])])
    half_x = ctx.emit("Mul", [x, ctx.scalar(0.5, dtype)])
    ctx.emit("Mul", [half_x, ctx.emit("Add", [curve, ctx.scalar(1, dtype)])], ctx.out(node))


# ---- casts --------------------------------------------------------------------------------------


@converter(cast.Cast)
def _cast(ctx: Context, node) -> None:
    v = node.inputs[0]
    ctx.cast(ctx.value(v), ctx.spec(v).dtype, node.attrs["dtype"], ctx.out(node))


@converter(cast.ToDevice)
def _to_device(ctx: Context, node) -> None:
    ctx.emit("Identity", [ctx.value(node.inputs[0])], ctx.out(node))  # ONNX has no devices
