"""``softmax`` and ``log_softmax`` along a dimension, as fused, numerically stable primitives.

Both subtract the maximum first: ``softmax(x) = softmax(x - m)`` for any ``m``, and with
``m = max x`` every exponent is at most 0, so nothing overflows even for logits of 1e4. The
composition ``exp(x) / sum(exp(x))`` would return ``inf / inf = nan`` there.

Rules (``y`` the output, sums over ``dim`` with the dimension kept):

* softmax:      ``dx = y * (g - sum(g * y))``
* log_softmax:  ``dx = g - exp(y) * sum(g)``
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError
from ..tensor import Tensor
from . import infer
from .op import Op, Spec, apply
from .unary import exp


class SoftmaxBase(Op):
    @classmethod
    def infer(cls, x: Spec, dim: int) -> Spec:
        infer.require_float(cls.label, x)
        return x


class Softmax(SoftmaxBase):
    name = "Softmax"

    @staticmethod
    def forward(x, dim):
        if x.size == 0:
            return x.copy()
        e = np.exp(x - np.amax(x, axis=dim, keepdims=True))
        return e / np.sum(e, axis=dim, keepdims=True)

    @staticmethod
    def vjp(ctx, g):
        y = ctx.output
        dim = ctx.attrs["dim"]
        return (y * (g - (g * y).sum(dim, keepdim=True)),)


class LogSoftmax(SoftmaxBase):
    name = "LogSoftmax"

    @staticmethod
    def forward(x, dim):
        if x.size == 0:
            return x.copy()
        shifted = x - np.amax(x, axis=dim, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))

    @staticmethod
    def vjp(ctx, g):
        y = ctx.output
        dim = ctx.attrs["dim"]
        return (g - exp(y) * g.sum(dim, keepdim=True),)


def _prepare(name: str, x: Tensor, dim: int | None, dtype) -> tuple[Tensor, int]:
    if dtype is not None:
        x = x.to(dtype)
    if not x.is_floating_point():
        raise DTypeError(f"{name}: expected a floating-point input, got {x.dtype.name}; convert it with .float()")
    if dim is None:
        raise TypeError(f"{name}: pass dim explicitly (for example dim=-1 for the last dimension)")
    if x.ndim == 0:
        return x, 0
    return x, infer.normalize_dim(name, dim, x.ndim)


def softmax(x: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, computed stably."""
    x, d = _prepare("softmax", x, dim, dtype)
    if x.ndim == 0:
        return apply(Softmax, x.reshape(1), dim=0).reshape(())
    return apply(Softmax, x, dim=d)


def log_softmax(x: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``x - logsumexp(x)`` along ``dim``, computed stably."""
    x, d = _prepare("log_softmax", x, dim, dtype)
    if x.ndim == 0:
        return apply(LogSoftmax, x.reshape(1), dim=0).reshape(())
    return apply(LogSoftmax, x, dim=d)
