"""Elementwise binary ops: arithmetic, comparisons, logic, ``where`` and ``clamp``.

All broadcast like NumPy and promote like torch (see ``dtypes.py``). The gradient of a
broadcast operand is the output gradient *summed back* over the dimensions it was stretched
along (``reduce.sum_to``): if ``a`` of shape (3, 1) was added to ``b`` of shape (3, 4), every
element of ``a`` fed four outputs, so its gradient is the sum of those four.

The rules, with ``g`` the output gradient:

=============  =====================================  ========================================
op             d/da                                   d/db
=============  =====================================  ========================================
a + b          g                                      g
a - b          g                                      -g
a * b          g b                                    g a
a / b          g / b                                  -g a / b^2
a ** b         g b a^(b-1)                            g a^b ln a
a % b          g                                      -g floor(a / b)
maximum(a, b)  g where a > b, g/2 where a == b         g where b > a, g/2 where a == b
where(c, a, b) g where c                              g where not c
=============  =====================================  ========================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DTypeError
from ..tensor import Tensor
from . import infer, reduce
from .op import Op, Spec, apply, apply_inplace, binary


class Binary(Op):
    """An elementwise two-input op: shapes broadcast, dtypes promote."""

    bool_result = False

    @classmethod
    def infer(cls, a: Any, b: Any) -> Spec:
        return infer.elementwise(cls.label, a, b, float_result=cls.float_result, bool_result=cls.bool_result)


def _grads(ctx, ga, gb) -> tuple:
    """Sum each operand's gradient back to the operand's shape (undoing broadcasting)."""
    return (
        reduce.sum_to(ga, ctx.input_shape(0)) if ga is not None else None,
        reduce.sum_to(gb, ctx.input_shape(1)) if gb is not None else None,
    )


class Add(Binary):
    name = "Add"
    vjp_reads_input0 = False
    forward = staticmethod(np.add)

    @staticmethod
    def vjp(ctx, g):
        return _grads(ctx, g if ctx.needs_grad(0) else None, g if ctx.needs_grad(1) else None)


class Sub(Binary):
    name = "Sub"
    vjp_reads_input0 = False
    forward = staticmethod(np.subtract)

    @classmethod
    def infer(cls, a: Any, b: Any) -> Spec:
        spec = super().infer(a, b)
        if spec.dtype.category == 0:
            raise DTypeError(
                "sub: subtraction, the - operator, of two bool tensors is not supported; use ^ or logical_xor() instead"
            )
        return spec

    @staticmethod
    def vjp(ctx, g):
        return _grads(ctx, g if ctx.needs_grad(0) else None, -g if ctx.needs_grad(1) else None)


class Mul(Binary):
    name = "Mul"
    forward = staticmethod(np.multiply)

    @staticmethod
    def vjp(ctx, g):
        ga = g * ctx.input(1) if ctx.needs_grad(0) else None
        gb = g * ctx.input(0) if ctx.needs_grad(1) else None
        return _grads(ctx, ga, gb)


class Div(Binary):
    name = "Div"
    float_result = True
    forward = staticmethod(np.true_divide)

    @staticmethod
    def vjp(ctx, g):
        b = ctx.input(1)
        ga = g / b if ctx.needs_grad(0) else None
        gb = -g * ctx.input(0) / (b * b) if ctx.needs_grad(1) else None
        return _grads(ctx, ga, gb)


class FloorDivide(Binary):
    name = "FloorDivide"
    forward = staticmethod(np.floor_divide)

    @staticmethod
    def vjp(ctx, g):
        raise RuntimeError(
            "the derivative of floor_divide (//) is not defined (it is piecewise constant); "
            "detach() its inputs, or use true division (/) if you need a gradient"
        )


class Remainder(Binary):
    name = "Remainder"
    forward = staticmethod(np.remainder)

    @staticmethod
    def vjp(ctx, g):
        gb = None
        if ctx.needs_grad(1):
            # floor(a / b) is piecewise constant: its own derivative is zero, so detach it.
            a, b = ctx.input(0), ctx.input(1)
            gb = -g * floor_divide(_detached(a), _detached(b))
        return _grads(ctx, g if ctx.needs_grad(0) else None, gb)


def _detached(v: Any) -> Any:
    return v.detach() if isinstance(v, Tensor) else v


class Pow(Binary):
    name = "Pow"

    @staticmethod
    def forward(a, b):
        if type(a) is np.ndarray and a.dtype.kind in "iu" and np.any(np.asarray(b) < 0):
            raise ValueError("pow: integers to negative integer powers are not allowed; convert to float first")
        return np.power(a, b)

    @staticmethod
    def vjp(ctx, g):
        a, b = ctx.inputs
        ga = gb = None
        if ctx.needs_grad(0):
            if isinstance(b, Tensor):
                ga = where(b == 0, 0.0, g * b * a ** (b - 1))
            else:
                ga = g * 0.0 if b == 0 else g * b * a ** (b - 1)
        if ctx.needs_grad(1):
            from .unary import log

            out = ctx.output
            ln_a = log(a) if isinstance(a, Tensor) else float(np.log(a))
            gb = g * out * ln_a
            if isinstance(a, Tensor):
                gb = where((a == 0) & (b >= 0), 0.0, gb)
        return _grads(ctx, ga, gb)


class Maximum(Binary):
    name = "Maximum"
    forward = staticmethod(np.maximum)

    @staticmethod
    def vjp(ctx, g):
        a, b = ctx.input(0), ctx.input(1)
        share = where(a == b, 0.5, (a > b).to(g.dtype))
        return _grads(ctx, g * share if ctx.needs_grad(0) else None, g * (1 - share) if ctx.needs_grad(1) else None)


class Minimum(Binary):
    name = "Minimum"
    forward = staticmethod(np.minimum)

    @staticmethod
    def vjp(ctx, g):
        a, b = ctx.input(0), ctx.input(1)
        share = where(a == b, 0.5, (a < b).to(g.dtype))
        return _grads(ctx, g * share if ctx.needs_grad(0) else None, g * (1 - share) if ctx.needs_grad(1) else None)


# ---- comparisons and logic: bool results, no gradient ------------------------------------------


class Compare(Binary):
    differentiable = False
    bool_result = True


class Eq(Compare):
    name = "Eq"
    forward = staticmethod(np.equal)


class Ne(Compare):
    name = "Ne"
    forward = staticmethod(np.not_equal)


class Lt(Compare):
    name = "Lt"
    forward = staticmethod(np.less)


class Le(Compare):
    name = "Le"
    forward = staticmethod(np.less_equal)


class Gt(Compare):
    name = "Gt"
    forward = staticmethod(np.greater)


class Ge(Compare):
    name = "Ge"
    forward = staticmethod(np.greater_equal)


class LogicalAnd(Compare):
    name = "LogicalAnd"
    forward = staticmethod(np.logical_and)


class LogicalOr(Compare):
    name = "LogicalOr"
    forward = staticmethod(np.logical_or)


class LogicalXor(Compare):
    name = "LogicalXor"
    forward = staticmethod(np.logical_xor)


class Bitwise(Binary):
    """``&``, ``|``, ``^`` on bool or integer tensors (logical on bool, as in torch)."""

    differentiable = False

    @classmethod
    def infer(cls, a: Any, b: Any) -> Spec:
        spec = super().infer(a, b)
        if spec.dtype.category == 2:
            raise DTypeError(
                f"{cls.label}: bitwise ops need bool or integer tensors, got {spec.dtype.name}; "
                "for masks compare first (x > 0) & (y > 0)"
            )
        return spec


class BitwiseAnd(Bitwise):
    name = "BitwiseAnd"
    forward = staticmethod(np.bitwise_and)


class BitwiseOr(Bitwise):
    name = "BitwiseOr"
    forward = staticmethod(np.bitwise_or)


class BitwiseXor(Bitwise):
    name = "BitwiseXor"
    forward = staticmethod(np.bitwise_xor)


# ---- where and clamp ---------------------------------------------------------------------------


class Where(Op):
    """``where(cond, a, b)``: ``a`` where ``cond`` is true, else ``b`` (all three broadcast)."""

    name = "Where"
    forward = staticmethod(np.where)

    @staticmethod
    def vjp(ctx, g):
        cond = ctx.input(0)
        return (
            None,
            reduce.sum_to(where(cond, g, 0.0), ctx.input_shape(1)) if ctx.needs_grad(1) else None,
            reduce.sum_to(where(cond, 0.0, g), ctx.input_shape(2)) if ctx.needs_grad(2) else None,
        )

    @classmethod
    def infer(cls, cond, a, b) -> Spec:
        if isinstance(cond, Spec) and cond.dtype.category != 0:
            raise DTypeError(
                f"where: the condition must be a bool tensor, got {cond.dtype.name}; compare first (x > 0)"
            )
        shape = infer.broadcast_shapes("where", infer.shape_of(cond), infer.shape_of(a), infer.shape_of(b))
        return Spec(shape, infer.promoted_dtype(a, b))


class Clamp(Op):
    """``clamp(x, min, max)`` with number bounds; the gradient passes where min <= x <= max."""

    name = "Clamp"

    @staticmethod
    def forward(x, min=None, max=None):
        return np.clip(x, min, max)

    @staticmethod
    def vjp(ctx, g):
        x = ctx.input(0)
        lo, hi = ctx.attrs.get("min"), ctx.attrs.get("max")
        inside = None
        if lo is not None:
            inside = x >= lo
        if hi is not None:
            inside = (x <= hi) if inside is None else inside & (x <= hi)
        return (g * inside,)

    @classmethod
    def infer(cls, x: Spec, min=None, max=None) -> Spec:
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return Spec(x.shape, infer.promoted_dtype(x, *(v for v in (min, max) if v is not None)))


# ---- the functions -------------------------------------------------------------------------------


def add(a: Any, b: Any, *, alpha: float = 1) -> Tensor:
    """``a + alpha * b``, elementwise with broadcasting."""
    return binary(Add, a, b if alpha == 1 else b * alpha)


def sub(a: Any, b: Any, *, alpha: float = 1) -> Tensor:
    """``a - alpha * b``, elementwise with broadcasting."""
    return binary(Sub, a, b if alpha == 1 else b * alpha)


def mul(a: Any, b: Any) -> Tensor:
    return binary(Mul, a, b)


def div(a: Any, b: Any, *, rounding_mode: str | None = None) -> Tensor:
    """True division (integers give float32); ``rounding_mode='floor'`` or ``'trunc'`` rounds."""
    if rounding_mode is None:
        return binary(Div, a, b)
    if rounding_mode == "floor":
        return binary(FloorDivide, a, b)
    if rounding_mode == "trunc":
        from .unary import trunc

        q = binary(Div, a, b)
        return trunc(q) if q.dtype == _dtype_of(a, b) else trunc(q).to(_dtype_of(a, b))
    raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


def _dtype_of(a: Any, b: Any):
    from .op import spec_of

    return infer.promoted_dtype(spec_of(a), spec_of(b))


def floor_divide(a: Any, b: Any) -> Tensor:
    return binary(FloorDivide, a, b)


def remainder(a: Any, b: Any) -> Tensor:
    """Python-style remainder: the result has the sign of ``b`` (as ``torch.remainder``)."""
    return binary(Remainder, a, b)


def pow(a: Any, b: Any) -> Tensor:
    """``a ** b``; either side may be a number."""
    return binary(Pow, a, b)


def maximum(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise maximum; on ties the gradient is split evenly, as torch does."""
    return binary(Maximum, a, b)


def minimum(a: Tensor, b: Tensor) -> Tensor:
    return binary(Minimum, a, b)


def eq(a: Any, b: Any) -> Tensor:
    return binary(Eq, a, b)


def ne(a: Any, b: Any) -> Tensor:
    return binary(Ne, a, b)


def lt(a: Any, b: Any) -> Tensor:
    return binary(Lt, a, b)


def le(a: Any, b: Any) -> Tensor:
    return binary(Le, a, b)


def gt(a: Any, b: Any) -> Tensor:
    return binary(Gt, a, b)


def ge(a: Any, b: Any) -> Tensor:
    return binary(Ge, a, b)


def logical_and(a: Tensor, b: Tensor) -> Tensor:
    return binary(LogicalAnd, a, b)


def logical_or(a: Tensor, b: Tensor) -> Tensor:
    return binary(LogicalOr, a, b)


def logical_xor(a: Tensor, b: Tensor) -> Tensor:
    return binary(LogicalXor, a, b)


def bitwise_and(a: Any, b: Any) -> Tensor:
    return binary(BitwiseAnd, a, b)


def bitwise_or(a: Any, b: Any) -> Tensor:
    return binary(BitwiseOr, a, b)


def bitwise_xor(a: Any, b: Any) -> Tensor:
    return binary(BitwiseXor, a, b)


def where(condition: Tensor, a: Any, b: Any) -> Tensor:
    """Pick ``a`` where ``condition`` is true and ``b`` elsewhere; all three broadcast."""
    from .creation import full
    from .op import _as_operand, spec_of

    a, b = _as_operand(Where, a), _as_operand(Where, b)
    if not isinstance(condition, Tensor):
        raise TypeError(f"where: the condition must be a bool tensor, got {type(condition).__name__}")
    target = infer.promoted_dtype(spec_of(a), spec_of(b))
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = full((), a, dtype=target, device=condition.device)
    return apply(Where, condition, _cast_to(a, target), _cast_to(b, target))


def _cast_to(v: Any, dtype) -> Any:
    """A tensor operand cast (differentiably) to ``dtype``; a number made the matching kind."""
    if isinstance(v, Tensor):
        return v if v.dtype is dtype else v.to(dtype)
    return float(v) if dtype.category == 2 else int(v) if dtype.category == 1 else bool(v)


def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Limit ``x`` to ``[min, max]``. Number bounds are one primitive; tensor bounds compose
    ``where``, with the gradient to ``x`` passing where ``min <= x <= max`` as in torch."""
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        y = x
        if min is not None:
            y = where(y < min, min, y)
        if max is not None:
            y = where(y > max, max, y)
        return y
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if x._data.dtype.kind != "f" and any(isinstance(v, float) for v in (min, max)):
        x = x.to(infer.promoted_dtype(Spec(x.shape, x.dtype), *(v for v in (min, max) if v is not None)))
    return apply(Clamp, x, min=min, max=max)


def clamp_(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """In-place ``clamp`` with number bounds."""
    if min is None and max is None:
        raise ValueError("clamp_: at least one of min and max must be given")
    return apply_inplace(Clamp, x, min=min, max=max)
