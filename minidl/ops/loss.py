"""Softmax cross-entropy over class indices, as one fused primitive.

For logits ``x`` of shape (N, C), integer targets ``t`` and class weights ``w`` (all 1 by
default; 0 for targets equal to ``ignore_index``):

    loss_n = -w[t_n] * log_softmax(x)[n, t_n]
    mean   = sum_n loss_n / sum_n w[t_n]

and the gradient has the famous closed form

    d loss_n / d x[n, c] = w[t_n] * (softmax(x)[n, c] - [c == t_n])

scaled by the output gradient (and divided by ``sum w`` for the mean). One node replaces the
seven of ``nll_loss(log_softmax(x), t)`` -- which stays in ``nn.functional`` as the general
path (label smoothing, probability targets, extra dimensions) and as the reference the tests
compare this primitive with.

The forward keeps the softmax it computed (``ctx.saved``) for the first derivative. When the
rule itself is being recorded (``create_graph=True``), it recomputes the softmax with the
differentiable ``softmax`` op instead, so second derivatives are exact.
"""

from __future__ import annotations

from typing import Any

from ..backend.device import array_module
from ..backend.registry import kernels_for
from ..errors import ShapeError
from ..tape import grad_state
from ..tensor import Tensor
from . import infer
from .creation import ones_like
from .op import Op, Spec, apply
from .softmax import softmax
from .unary import exp


class CrossEntropy(Op):
    name = "CrossEntropy"
    saves = True

    @staticmethod
    def forward(x, target, weight=None, ignore_index=-100, reduction="mean"):
        logp, losses, counted = kernels_for(x).log_softmax_nll(x, target, ignore_index)
        if weight is None and counted == x.shape[0]:
            w, safe, total = None, target, counted  # the common case: every row counts once
        else:
            xp = array_module(x)
            keep = target != ignore_index
            safe = xp.where(keep, target, 0)
            w = (xp.ones(safe.shape, x.dtype) if weight is None else weight[safe].astype(x.dtype)) * keep
            losses = losses * w
            total = w.sum()
        if reduction == "none":
            out = losses
        elif reduction == "sum":
            out = losses.sum()
        else:
            out = losses.sum() / total
        return out, {"logp": logp, "safe": safe, "w": w, "total": total}

    @staticmethod
    def vjp(ctx, g):
        """d loss / d x = (softmax(x) - onehot(target)) * scale, where the scale is the incoming
        gradient times the row's weight over the total weight (for 'mean')."""
        x = ctx.input(0)
        if grad_state.enabled:  # the rule is being recorded: keep it differentiable in x
            p = softmax(x, 1)
        else:  # the forward already computed log p: exponentiating it is cheaper
            p = exp(ctx.saved_tensor("logp"))
        onehot = apply(OneHotRows, ctx.saved_tensor("safe"), p)
        scale = apply(
            CrossEntropyScale,
            g,
            ctx.saved_tensor("safe"),
            ctx.saved_tensor("w"),
            ctx.saved_tensor("total"),
            reduction=ctx.attrs["reduction"],
        )
        return ((p - onehot) * scale, None, None)

    @classmethod
    def infer(cls, x: Spec, target: Spec, weight=None, ignore_index=-100, reduction="mean") -> Spec:
        infer.require_float("cross_entropy", x)
        infer.require_integer("cross_entropy", target, "target")
        if len(x.shape) != 2 or not infer.same_shape(tuple(target.shape), (x.shape[0],)):
            raise ShapeError(
                f"cross_entropy: expected logits (N, C) and targets (N,), got {tuple(x.shape)} and {tuple(target.shape)}"
            )
        return Spec((x.shape[0],) if reduction == "none" else (), x.dtype)


class OneHotRows(Op):
    """For row i, a 1 in column ``safe[i]``; zeros elsewhere, in ``like``'s shape and dtype."""

    name = "OneHotRows"
    differentiable = False

    @staticmethod
    def forward(safe, like):
        xp = array_module(like)
        onehot = xp.zeros(like.shape, dtype=like.dtype)
        onehot[xp.arange(like.shape[0]), safe] = 1
        return onehot

    @classmethod
    def infer(cls, safe: Spec, like: Spec) -> Spec:
        return like


class CrossEntropyScale(Op):
    """The factor each row's ``softmax - onehot`` is multiplied by in the cross-entropy gradient:
    the incoming gradient ``g``, times the row weight ``w`` (when there are weights or ignored
    rows), over the ``total`` weight for ``'mean'``. One entry per row, shape (N, 1), so that it
    broadcasts over the classes -- always that shape, even where one number would do (no
    weights, nothing ignored): a static graph infers shapes before it sees which case it is.
    ``safe`` (the targets) lends only its length N."""

    name = "CrossEntropyScale"

    @staticmethod
    def forward(g, safe, w, total, reduction):
        if reduction == "none":
            g = g[:, None]
        if w is not None:
            return g * (w / total if reduction == "mean" else w)[:, None]
        xp = array_module(g)
        return xp.full((safe.shape[0], 1), g * (1.0 / total) if reduction == "mean" else g, dtype=g.dtype)

    @staticmethod
    def vjp(ctx, gout):
        # The scale is linear in g: its vjp is the scale of ones, times gout, summed back.
        g = ctx.input(0)
        unit = apply(CrossEntropyScale, ones_like(g), ctx.input(1), ctx.input(2), ctx.input(3), **ctx.attrs)
        dg = gout * unit
        return (dg.sum(1) if ctx.attrs["reduction"] == "none" else dg.sum(), None, None, None)

    @classmethod
    def infer(cls, g: Spec, safe: Spec, w: Any, total: Any, reduction: str) -> Spec:
        return Spec((safe.shape[0], 1), g.dtype)


def cross_entropy(
    x: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    """The fused primitive; ``nn.functional.cross_entropy`` checks the inputs and calls it."""
    return apply(CrossEntropy, x, target, weight, ignore_index=ignore_index, reduction=reduction)
