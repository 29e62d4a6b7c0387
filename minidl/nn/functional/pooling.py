"""Adaptive pooling: pool an (N, C, H, W) input to a *given output size*, whatever its input size.

Output cell ``(i, j)`` of an ``(oH, oW)`` output covers input rows ``[r0(i), r1(i))`` and
columns ``[c0(j), c1(j))``, with torch's formula

    r0(i) = floor(i * H / oH)          r1(i) = ceil((i + 1) * H / oH)

(and the same for the columns). The windows tile the input, overlapping by at most one row
where ``H`` is not a multiple of ``oH``. Three cases, fastest first:

* ``1 x 1`` output (global pooling, the head of most CNNs): a mean (or max) over dims (2, 3);
* ``H % oH == 0`` and ``W % oW == 0``: every window has the same size ``H / oH``, and the
  adaptive pool *is* the ordinary pool with kernel = stride = ``H / oH``;
* otherwise, for the average: the windows along each axis are the rows of an averaging matrix
  ``A`` (``A[i, r] = 1 / (r1(i) - r0(i))`` inside the window, else 0), and since the mean over a
  rectangle is the mean over its rows of the mean over its columns,

      out = A_h @ x @ A_w^T

  -- two matmuls, differentiable through matmul's rule. For the maximum: gather each window
  (padded to the largest size by repeating an index already in it, which cannot change the
  maximum), take the flat index of the first maximum in row-major order (torch's tie rule),
  and ``gather`` those elements, so that the gradient goes to exactly that element.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backend.device import array_module
from ...errors import ShapeError
from ...tensor import Tensor
from .conv import avg_pool2d, max_pool2d

__all__ = ["adaptive_avg_pool2d", "adaptive_max_pool2d"]


def _output_size(name: str, x: Tensor, output_size: Any) -> tuple[int, int]:
    """Check the input and normalize ``output_size`` (an int, or a pair whose ``None`` keeps
    the input's size) to a pair of positive ints."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a Tensor input, got {type(x).__name__}")
    if x.ndim not in (3, 4) or x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ShapeError(
            f"{name}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input with non-zero H and W, "
            f"got shape {tuple(x.shape)}"
        )
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        sizes = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        sizes = tuple(output_size)
    else:
        raise TypeError(f"{name}: output_size must be an int or a pair (ints or None), got {output_size!r}")
    out = []
    for size, full in zip(sizes, x.shape[-2:]):
        if size is None:
            size = full
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"{name}: output_size entries must be positive ints (or None), got {output_size!r}")
        out.append(size)
    return out[0], out[1]


def _windows(n: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) of each of ``out`` windows over ``n`` positions."""
    i = np.arange(out)
    return (i * n) // out, -((-(i + 1) * n) // out)  # floor(i n / out), ceil((i + 1) n / out)


def _averaging_matrix(n: int, out: int, dtype: np.dtype) -> np.ndarray:
    """``A`` of shape (out, n) with ``A[i, r] = 1 / len(window i)`` for ``r`` in window ``i``."""
    start, end = _windows(n, out)
    r = np.arange(n)
    inside = (r >= start[:, None]) & (r < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average over adaptive windows, giving an output of spatial size ``output_size``."""
    oh, ow = _output_size("adaptive_avg_pool2d", input, output_size)
    h, w = input.shape[-2:]
    if (oh, ow) == (1, 1):
        return input.mean((-2, -1), keepdim=True)
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(input, (h // oh, w // ow))
    xp = array_module(input._data)
    a_h = Tensor(xp.asarray(_averaging_matrix(h, oh, input._data.dtype)))
    a_w_t = Tensor(xp.asarray(_averaging_matrix(w, ow, input._data.dtype).T))
    return a_h @ input @ a_w_t


def _padded_windows(n: int, out: int) -> np.ndarray:
    """Indices (out, k) of each window, ``k`` the largest window; shorter windows repeat their
    last index, which leaves their maximum and its first position unchanged."""
    start, end = _windows(n, out)
    k = int((end - start).max())
    return np.minimum(start[:, None] + np.arange(k), end[:, None] - 1)


def adaptive_max_pool2d(
    input: Tensor, output_size: Any, return_indices: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Maximum over adaptive windows; with ``return_indices`` also the flat index
    ``row * W + col`` of each maximum in its input plane (as ``max_pool2d`` returns)."""
    oh, ow = _output_size("adaptive_max_pool2d", input, output_size)
    h, w = input.shape[-2:]
    if h % oh == 0 and w % ow == 0:
        return max_pool2d(input, (h // oh, w // ow), return_indices=return_indices)
    data = input._data
    xp = array_module(data)
    rows = xp.asarray(_padded_windows(h, oh))  # (oh, kh)
    cols = xp.asarray(_padded_windows(w, ow))  # (ow, kw)
    # windows[..., i, j, u, v] = x[..., rows[i, u], cols[j, v]]
    windows = data[..., rows[:, None, :, None], cols[None, :, None, :]]
    kh, kw = rows.shape[1], cols.shape[1]
    first = windows.reshape(windows.shape[:-2] + (kh * kw,)).argmax(-1)  # row-major: torch's first maximum
    u, v = first // kw, first % kw
    row = rows[xp.arange(oh)[:, None], u]  # (..., oh, ow)
    col = cols[xp.arange(ow)[None, :], v]
    indices = (row * w + col).astype(np.int64)
    lead = input.shape[:-2]
    out = input.reshape(lead + (h * w,)).gather(-1, Tensor(indices.reshape(lead + (oh * ow,))))
    out = out.reshape(lead + (oh, ow))
    return (out, Tensor(indices)) if return_indices else out
