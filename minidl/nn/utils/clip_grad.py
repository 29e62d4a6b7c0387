"""Gradient clipping: bound the size of an update before the optimizer step.

``clip_grad_norm_`` treats all the gradients as one long vector ``g`` and rescales it when its
norm is too large:

    total = ||(||g_1||_p, ||g_2||_p, ...)||_p = ||g||_p
    g <- g * min(1, max_norm / (total + 1e-6))

so the *direction* of the update is kept and only its length is capped (the ``1e-6`` guards
against division by zero). ``norm_type=inf`` uses the largest absolute entry. This is the usual
remedy for exploding gradients in recurrent networks and transformers; the returned total norm
is also a good quantity to log. ``clip_grad_value_`` instead clamps every entry to
``[-clip_value, clip_value]``, which can change the direction.

Both work in place on ``p.grad`` and skip parameters whose ``grad`` is ``None``. As in torch,
the scale is applied even when it is 1 (a multiply is cheaper than asking the device whether
to skip it). The ``foreach`` argument of torch is accepted for compatibility; minidl has one
implementation.

This runs once per training step over every parameter, and nothing here is differentiated,
so it works on the gradients' arrays directly (one array call per gradient, through the
device's array module) rather than through recorded ops. The 2-norm is ``sqrt(x . x)`` in the
gradient's dtype, like torch's fused ``_foreach_norm``: a float32 gradient whose squares
overflow gives an infinite norm in both libraries.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from types import GeneratorType

from ...backend.device import array_module
from ...graph.symbolic import SymbolicTensor, TracingError
from ...ops.clip_grad import ClampGrad, ClipCoef, ScaleGrad, TotalNorm, VectorNorm
from ...ops.creation import tensor
from ...ops.op import apply
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]


def _as_list(tensors: Tensor | Iterable[Tensor], name: str) -> list[Tensor]:
    if isinstance(tensors, Tensor):
        return [tensors]
    is_generator = isinstance(tensors, GeneratorType)
    tensors = list(tensors)
    if is_generator and not tensors:
        warnings.warn(f"{name}: `parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    return tensors


def _symbolic(grads: list) -> bool:
    """Inside ``minidl.compile`` the gradients are symbolic: clip with graph ops instead."""
    return any(type(g) is SymbolicTensor for g in grads)


def get_total_norm(
    tensors: Tensor | Iterable[Tensor],
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """The ``norm_type``-norm of all ``tensors`` viewed as one vector (a 0-d tensor): the norm
    of the vector of their norms.

    Raises ``RuntimeError`` if ``error_if_nonfinite`` and the norm is nan or infinite.
    """
    tensors = _as_list(tensors, "get_total_norm")
    norm_type = float(norm_type)
    if not tensors:
        return tensor(0.0)
    if _symbolic(tensors):
        norms = [apply(VectorNorm, t, p=norm_type) for t in tensors]
        total = apply(TotalNorm, *norms, p=norm_type)
        if error_if_nonfinite:
            raise TracingError(
                "get_total_norm: error_if_nonfinite=True needs the norm's value, which a compiled function does not "
                "have while it is traced; check the returned norm outside the compiled function instead"
            )
        return total
    norms = [VectorNorm.forward(t._data, norm_type) for t in tensors]
    total = Tensor(TotalNorm.forward(*norms, p=norm_type))  # mixed dtypes: the widest
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot "
            "be clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    return total


def clip_grads_with_norm_(
    parameters: Tensor | Iterable[Tensor], max_norm: float, total_norm: Tensor, foreach: bool | None = None
) -> None:
    """Scale the gradients of ``parameters`` in place by ``min(1, max_norm / (total_norm + 1e-6))``."""
    grads = [p.grad for p in _as_list(parameters, "clip_grads_with_norm_") if p.grad is not None]
    if not grads:
        return
    if _symbolic(grads) or type(total_norm) is SymbolicTensor:
        coef = apply(ClipCoef, total_norm, max_norm=max_norm)
        for p in _as_list(parameters, "clip_grads_with_norm_"):
            if p.grad is not None:
                p._grad = apply(ScaleGrad, p.grad, coef)
        return
    coef = ClipCoef.forward(total_norm._data, max_norm)
    for g in grads:
        data = g._data
        c = coef.astype(data.dtype)  # ScaleGrad's arithmetic, in place
        if getattr(data.flags, "writeable", True):
            data *= c
        else:  # a read-only array (a broadcast view): replace it
            g._data = data * c
        g._version_counter()[0] += 1


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Rescale the gradients of ``parameters`` in place so that their total ``norm_type``-norm
    is at most ``max_norm``; returns the total norm *before* clipping (a 0-d tensor).

    Args:
        parameters: a tensor or an iterable of tensors (for example ``model.parameters()``).
        max_norm: the largest allowed total norm.
        norm_type: the p of the p-norm; ``float('inf')`` for the largest absolute entry.
        error_if_nonfinite: raise instead of clipping when the total norm is nan or infinite.
    """
    parameters = _as_list(parameters, "clip_grad_norm_")
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient entry of ``parameters`` in place to ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    for p in _as_list(parameters, "clip_grad_value_"):
        g = p.grad
        if g is None:
            continue
        if type(g) is SymbolicTensor:  # inside minidl.compile
            p._grad = apply(ClampGrad, g, clip_value=clip_value)
            continue
        data = g._data
        xp = array_module(data)
        if getattr(data.flags, "writeable", True):
            xp.clip(data, -clip_value, clip_value, out=data)
        else:  # a read-only array (a broadcast view): replace it
            g._data = xp.clip(data, -clip_value, clip_value)
        g._version_counter()[0] += 1
