"""Fused log-softmax + negative log-likelihood on the GPU, as CuPy array operations.

The same computation, semantics and errors as ``kernels/reference/softmax.py``: CuPy fuses
nothing here, but each step is one elementwise or reduction kernel over the (N, C) logits,
which is plenty next to the matrix product that produced them.
"""

from __future__ import annotations

from typing import Any

from .loader import float_suffix, import_cupy


def log_softmax_nll(x: Any, target: Any, ignore_index: int = -100) -> tuple[Any, Any, int]:
    """``(log_softmax(x, 1), per-row losses, number of rows counted)`` for (N, C) float ``x``."""
    cp = import_cupy()
    float_suffix("log_softmax_nll", x)
    with x.device:
        target = cp.asarray(target)
        counted_rows = target != ignore_index
        bad = counted_rows & ((target < 0) | (target >= x.shape[1]))
        if bool(bad.any()):
            raise IndexError(f"cross_entropy: target {int(target[bad][0])} is out of bounds for {x.shape[1]} classes")
        # Subtract the row maximum before exp (stability); a row of -inf or +inf keeps 0 instead.
        m = x.max(axis=1, keepdims=True)
        m = cp.where(cp.isfinite(m), m, x.dtype.type(0))
        logp = x - (m + cp.log(cp.exp(x - m).sum(axis=1, keepdims=True)))
        safe = cp.where(counted_rows, target, 0)
        picked = logp[cp.arange(x.shape[0]), safe]
        losses = cp.where(counted_rows, -picked, x.dtype.type(0)).astype(x.dtype, copy=False)
        return logp, losses, int(counted_rows.sum())
