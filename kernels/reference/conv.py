"""Reference 2-D convolution (NCHW) by im2col + matmul, and its two backward passes.

A convolution is a matrix product in disguise. For every output position, the C/g x kh x kw
input values under the kernel are laid out as one column ("im2col"); the output is then

    out[n, g, k, p] = sum_q  W[g, k, q] * cols[n, g, q, p]      q = (c, i, j),  p = (y, x)

The two backward passes are the two other products of the same three matrices:

    d cols = W^T @ d out    then scattered back onto the input grid ("col2im")  -> dx
    dW     = d out @ cols^T summed over the batch                                -> dW

``as_strided`` gives the (n, c, kh, kw, ho, wo) window view without copying; the reshape that
feeds the matmul is the one copy im2col pays.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

Pair = tuple[int, int]


def conv2d_output_size(h: int, w: int, kh: int, kw: int, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """Output height and width: ``(size + 2 pad - dilation (k - 1) - 1) // stride + 1``."""
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return ho, wo


def _windows(x: np.ndarray, kh: int, kw: int, stride: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    """A (n, c, kh, kw, ho, wo) strided view of the zero-padded input: no data is copied."""
    ph, pw = padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c, h, w = x.shape
    ho = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    sn, sc, sh, sw = x.strides
    return as_strided(
        x,
        shape=(n, c, kh, kw, ho, wo),
        strides=(sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1]),
        writeable=False,
    )


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """``out[n, k] = sum_c W[k, c] (*) x[n, c] (+ bias[k])`` (cross-correlation, as in torch)
    by im2col."""
    n, c, _, _ = x.shape
    k, cg, kh, kw = w.shape
    win = _windows(x, kh, kw, stride, padding, dilation)
    ho, wo = win.shape[4], win.shape[5]
    cols = win.reshape(n, groups, cg * kh * kw, ho * wo)
    out = np.matmul(w.reshape(groups, k // groups, cg * kh * kw), cols).reshape(n, k, ho, wo)
    if bias is not None:
        out += bias.reshape(1, k, 1, 1)
    return out


def conv2d_backward_input(
    grad_out: np.ndarray,
    w: np.ndarray,
    x_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> np.ndarray:
    """dx: columns ``W^T @ d out``, each added back onto the input positions it came from."""
    n, c, h, wd = x_shape
    k, cg, kh, kw = w.shape
    ho, wo = grad_out.shape[2], grad_out.shape[3]
    wmat = w.reshape(groups, k // groups, cg * kh * kw)
    gcols = np.matmul(wmat.transpose(0, 2, 1), grad_out.reshape(n, groups, k // groups, ho * wo))
    gcols = gcols.reshape(n, c, kh, kw, ho, wo)
    ph, pw = padding
    sh, sw = stride
    gx = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            gx[:, :, top : top + sh * (ho - 1) + 1 : sh, left : left + sw * (wo - 1) + 1 : sw] += gcols[:, :, i, j]
    return gx[:, :, ph : ph + h, pw : pw + wd]


def conv2d_backward_weight(
    x: np.ndarray,
    grad_out: np.ndarray,
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> np.ndarray:
    """dW: ``d out @ cols^T``, one GEMM per group over the batch and positions together."""
    n = x.shape[0]
    k, cg, kh, kw = w_shape
    win = _windows(x, kh, kw, stride, padding, dilation)
    p = win.shape[4] * win.shape[5]
    q = cg * kh * kw
    cols = win.reshape(n, groups, q, p).transpose(1, 0, 3, 2).reshape(groups, n * p, q)
    gy = grad_out.reshape(n, groups, k // groups, p).transpose(1, 2, 0, 3).reshape(groups, k // groups, n * p)
    return np.matmul(gy, cols).reshape(w_shape)
