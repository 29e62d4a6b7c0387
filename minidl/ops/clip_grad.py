"""The primitives of gradient clipping (``nn.utils.clip_grad_norm_`` and ``clip_grad_value_``).

Clipping runs once per training step over every gradient and is never differentiated, so
eager code calls these ``forward`` functions on the gradients' arrays directly. They are ops
too, so that inside ``minidl.compile`` -- where the gradients are symbolic -- the same
arithmetic becomes graph nodes, and a compiled step that clips gives the eager numbers.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend.device import array_module
from .op import Op, Spec

__all__ = ["VectorNorm", "TotalNorm", "ClipCoef", "ScaleGrad", "ClampGrad"]


def vector_norm(a: Any, p: float) -> Any:
    """The p-norm of the array ``a`` viewed as a vector, as a 0-d array of ``a``'s dtype."""
    xp = array_module(a)
    if a.size == 0:
        return xp.zeros((), a.dtype)
    if p == 2.0:
        flat = a.reshape(-1)
        return xp.sqrt(xp.vdot(flat, flat))
    if p == math.inf:
        return xp.abs(a).max()
    if p == -math.inf:
        return xp.abs(a).min()
    if p == 0.0:
        return xp.asarray(xp.count_nonzero(a), a.dtype)
    if p == 1.0:
        return xp.abs(a).sum()
    return (xp.abs(a) ** a.dtype.type(p)).sum() ** a.dtype.type(1.0 / p)


class VectorNorm(Op):
    """``||g||_p`` of one gradient, as a 0-d array."""

    name = "VectorNorm"
    differentiable = False

    @staticmethod
    def forward(g, p):
        return array_module(g).asarray(vector_norm(g, p))

    @classmethod
    def infer(cls, g: Spec, p: float) -> Spec:
        return Spec((), g.dtype)


class TotalNorm(Op):
    """The p-norm of the vector of per-gradient norms: the norm of all gradients as one vector
    (with mixed dtypes, in the widest)."""

    name = "TotalNorm"
    differentiable = False

    @staticmethod
    def forward(*norms, p):
        xp = array_module(norms[0])
        return xp.asarray(vector_norm(xp.stack(norms), p))

    @classmethod
    def infer(cls, *norms: Spec, p: float) -> Spec:
        from .infer import promoted_dtype

        return Spec((), promoted_dtype(*norms))


class ClipCoef(Op):
    """``min(1, max_norm / (total + 1e-6))``: the factor every gradient is scaled by."""

    name = "ClipCoef"
    differentiable = False

    @staticmethod
    def forward(total, max_norm):
        xp = array_module(total)
        return xp.minimum(total.dtype.type(max_norm) / (total + total.dtype.type(1e-6)), 1)

    @classmethod
    def infer(cls, total: Spec, max_norm: float) -> Spec:
        return total


class ScaleGrad(Op):
    """A gradient times the clipping factor (cast to the gradient's dtype)."""

    name = "ScaleGrad"
    differentiable = False

    @staticmethod
    def forward(g, coef):
        return g * coef.astype(g.dtype)

    @classmethod
    def infer(cls, g: Spec, coef: Spec) -> Spec:
        return g


class ClampGrad(Op):
    """A gradient with every entry clamped to ``[-clip_value, clip_value]``."""

    name = "ClampGrad"
    differentiable = False

    @staticmethod
    def forward(g, clip_value):
        return array_module(g).clip(g, -clip_value, clip_value)

    @classmethod
    def infer(cls, g: Spec, clip_value: float) -> Spec:
        return g
