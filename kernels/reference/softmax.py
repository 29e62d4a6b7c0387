"""Reference fused log-softmax + negative log-likelihood (see ``kernels/cpu/softmax.py``)."""

from __future__ import annotations

import numpy as np


def log_softmax_nll(x: np.ndarray, target: np.ndarray, ignore_index: int = -100) -> tuple[np.ndarray, np.ndarray, int]:
    """``(log_softmax(x, 1), per-row losses, number of rows counted)`` for (N, C) float ``x``."""
    counted_rows = target != ignore_index
    bad = counted_rows & ((target < 0) | (target >= x.shape[1]))
    if bad.any():
        raise IndexError(f"cross_entropy: target {int(target[bad][0])} is out of bounds for {x.shape[1]} classes")
    m = x.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    logp = x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))
    safe = np.where(counted_rows, target, 0)
    losses = np.where(counted_rows, -logp[np.arange(x.shape[0]), safe], 0).astype(x.dtype)
    return logp, losses, int(counted_rows.sum())
