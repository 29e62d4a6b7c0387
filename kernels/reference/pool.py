"""Reference 2-D max and average pooling (NCHW), forward and backward, with torch's sizing.

The output size follows torch, including ``ceil_mode``: with ceil the last window may hang
over the right edge, but it must start inside the input or its left padding.

Max pooling returns, with the maxima, the index of each maximum in its flattened input plane
(``row * W + col``, as ``return_indices=True`` gives in torch). The backward pass scatters
each output gradient to that index, adding where windows overlap.

Average pooling divides each window sum by its divisor: the full window, the window clipped
to the padded input (``count_include_pad=True``, torch's default) or clipped to the input
itself (``False``), or ``divisor_override``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

Pair = tuple[int, int]


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """One output dimension of a pooling window sweep, as torch computes it."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _padded_windows(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out_hw: Pair, fill: float
) -> np.ndarray:
    """A (n, c, ho, wo, kh, kw) view of ``x`` padded with ``fill`` far enough for every window."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (ho, wo) = kernel, stride, padding, dilation, out_hw
    need_h = (ho - 1) * sh + dh * (kh - 1) + 1
    need_w = (wo - 1) * sw + dw * (kw - 1) + 1
    hp, wp = max(need_h, h + ph), max(need_w, w + pw)
    xp = np.full((n, c, hp, wp), fill, dtype=x.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    s = xp.strides
    return as_strided(
        xp,
        shape=(n, c, ho, wo, kh, kw),
        strides=(s[0], s[1], s[2] * sh, s[3] * sw, s[2] * dh, s[3] * dw),
        writeable=False,
    )


def max_pool2d_forward(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Window maxima and the flat (row * W + col) input index of each; NaN wins (the last NaN
    of a window, as in torch).

    Padding counts as -inf, so it never beats a real value; but a window whose real values
    are all -inf would tie with its padding, so the index is then moved to the window's
    first in-bounds tap (torch's answer). A window with no in-bounds tap at all (possible
    with dilation) gets -inf and index -1, which the backward pass skips.
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho = pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    wo = pool_output_size(w, kw, sw, pw, dw, ceil_mode)
    win = _padded_windows(x, kernel, stride, padding, dilation, (ho, wo), -np.inf)
    flat = win.reshape(n, c, ho, wo, kh * kw)
    arg = flat.argmax(axis=-1)
    # argmax stops at the first NaN; torch's loop lets every NaN replace the maximum, so the
    # window's *last* NaN is the one that wins
    nan = np.isnan(flat)
    last_nan = flat.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
    arg = np.where(nan.any(axis=-1), last_nan, arg)
    out = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    # (ho, wo, taps) geometry: the input row and column each tap of each window reads
    tap_rows = np.arange(ho)[:, None] * sh - ph + np.arange(kh)[None, :] * dh  # (ho, kh)
    tap_cols = np.arange(wo)[:, None] * sw - pw + np.arange(kw)[None, :] * dw  # (wo, kw)
    rows = np.broadcast_to(tap_rows[:, None, :, None], (ho, wo, kh, kw)).reshape(ho, wo, kh * kw)
    cols = np.broadcast_to(tap_cols[None, :, None, :], (ho, wo, kh, kw)).reshape(ho, wo, kh * kw)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    chosen_inside = np.take_along_axis(np.broadcast_to(inside, arg.shape + (kh * kw,)), arg[..., None], axis=-1)[..., 0]
    arg = np.where(chosen_inside, arg, inside.argmax(axis=-1))
    index = np.take_along_axis(np.broadcast_to(rows * w + cols, arg.shape + (kh * kw,)), arg[..., None], axis=-1)[
        ..., 0
    ]
    index = np.where(inside.any(axis=-1), index, -1)
    return out, index.astype(np.int64)


def max_pool2d_backward(grad_out: np.ndarray, indices: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Scatter-add each output gradient to the input position its maximum came from."""
    n, c, h, w = x_shape
    plane = (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
    real = indices >= 0  # -1 marks a window with no input under it
    flat = np.bincount((indices + plane)[real].ravel(), weights=grad_out[real].ravel(), minlength=n * c * h * w)
    return flat.astype(grad_out.dtype, copy=False).reshape(x_shape)


def _avg_divisor(
    h: int,
    w: int,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    out_hw: Pair,
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: np.dtype,
) -> np.ndarray:
    """The (ho, wo) table of divisors, following torch's window clipping rules."""
    if divisor_override:
        return np.full(out_hw, divisor_override, dtype=dtype)
    sizes = []
    for size, k, s, p, o in zip((h, w), kernel, stride, padding, out_hw):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        full = end - start
        clipped = np.minimum(end, size) - np.maximum(start, 0)
        sizes.append(full if count_include_pad else clipped)
    return np.multiply.outer(sizes[0], sizes[1]).astype(dtype)


def avg_pool2d_forward(
    x: np.ndarray,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    """Window sums of the zero-padded input, divided by torch's divisor."""
    n, c, h, w = x.shape
    ho = pool_output_size(h, kernel[0], stride[0], padding[0], 1, ceil_mode)
    wo = pool_output_size(w, kernel[1], stride[1], padding[1], 1, ceil_mode)
    win = _padded_windows(x, kernel, stride, padding, (1, 1), (ho, wo), 0.0)
    div = _avg_divisor(h, w, kernel, stride, padding, (ho, wo), count_include_pad, divisor_override, x.dtype)
    return win.sum(axis=(-2, -1)) / div


def avg_pool2d_backward(
    grad_out: np.ndarray,
    x_shape: tuple[int, ...],
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    """Spread each output gradient, divided by its divisor, evenly over its window."""
    n, c, h, w = x_shape
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    div = _avg_divisor(h, w, kernel, stride, padding, (ho, wo), count_include_pad, divisor_override, grad_out.dtype)
    g = grad_out / div
    hp = max((ho - 1) * sh + kh, h + ph)
    wp = max((wo - 1) * sw + kw, w + pw)
    gx = np.zeros((n, c, hp, wp), dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] += g
    return gx[:, :, ph : ph + h, pw : pw + w]
