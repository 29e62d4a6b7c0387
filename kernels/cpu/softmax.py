"""Fused log-softmax + negative log-likelihood over rows, as one Numba pass.

For each row ``x_i`` of a (N, C) array and its class ``t_i``:

    m = max_j x_ij,   lse = m + log sum_j exp(x_ij - m),   logp_ij = x_ij - lse,
    loss_i = -logp_i,t_i      (0 for rows whose target is ``ignore_index``)

NumPy spends a dozen calls (and temporaries) on this; for the small (batch, classes) shapes
of a classifier's last layer the calls dominate, and one compiled loop is several times
faster. The sum is accumulated in float64. A NaN anywhere in a row makes the row NaN, as in
NumPy and torch. Targets are range-checked here, so the caller need not scan them first.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def _log_softmax_nll_into(x, target, ignore_index, logp, losses):
    n, c = x.shape
    counted = 0
    for i in range(n):
        t = target[i]
        if t != ignore_index and (t < 0 or t >= c):
            return -1 - i
        m = x[i, 0]
        for j in range(1, c):
            v = x[i, j]
            if v > m or v != v:
                m = v
        shift = m if math.isfinite(m) else (m if m != m else 0.0)
        total = 0.0
        for j in range(c):
            total += math.exp(x[i, j] - shift)
        lse = shift + math.log(total)
        for j in range(c):
            logp[i, j] = x[i, j] - lse
        if t == ignore_index:
            losses[i] = 0.0
        else:
            losses[i] = -logp[i, t]
            counted += 1
    return counted


def log_softmax_nll(x: np.ndarray, target: np.ndarray, ignore_index: int = -100) -> tuple[np.ndarray, np.ndarray, int]:
    """``(log_softmax(x, 1), per-row losses, number of rows counted)`` for (N, C) float ``x``."""
    x = np.ascontiguousarray(x)
    logp = np.empty_like(x)
    losses = np.empty(x.shape[0], dtype=x.dtype)
    counted = _log_softmax_nll_into(x, np.ascontiguousarray(target, dtype=np.int64), ignore_index, logp, losses)
    if counted < 0:
        bad = int(target[-1 - counted])
        raise IndexError(f"cross_entropy: target {bad} is out of bounds for {x.shape[1]} classes")
    return logp, losses, counted
