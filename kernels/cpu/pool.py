"""2-D max and average pooling (NCHW) on the CPU: Numba kernels, forward and backward.

Same signatures, dtypes and numbers as the NumPy reference (``kernels/reference/pool.py``),
which stays the specification; this file only makes the loops fast.

Parallelism
-----------
Every (n, c) plane is pooled on its own, so the kernels see a stack of ``P = N * C`` planes of
``H x W``, deal them out in contiguous runs, one run per thread (``numba.prange`` over the
runs), and give each thread its own scratch buffers. The backward passes *accumulate* (windows
overlap when stride < kernel, so one input receives gradient from several outputs), but all the
outputs that write into an input plane come from the same plane of ``grad_out``: a thread that
owns whole planes owns every address it writes. That makes per-plane parallelism race-free
without atomics or per-thread copies of the result, and each sum is added in a fixed order, so
results do not depend on the number of threads.

How a plane is walked: phase planes
-----------------------------------
Tap ``(ki, kj)`` of output ``(oh, ow)`` reads input ``(oh*sh + ki*dh - ph, ow*sw + kj*dw - pw)``.
In a padded plane (origin moved by ``(ph, pw)``) the column is ``ow*sw + kj*dw``. Write
``kj*dw = qj*sw + pc`` (quotient and remainder by the stride): the column is
``(ow + qj)*sw + pc``. So if the padded plane is split into ``sw`` *column phases*, phase ``pc``
holding columns ``pc, pc + sw, pc + 2 sw, ...``, then the tap reads column ``ow + qj`` of phase
``pc``: a unit-stride access. Rows split the same way into ``sh`` row phases. Stored row-major
with ``wsub`` columns, and with the outputs kept on a grid of the same width, the tap for flat
output position ``f = oh*wsub + ow`` is phase element ``f + qi*wsub + qj``::

    split x into padded phase planes sub[pr, pc]            (one pass; padding = -inf or 0)
    for each tap (ki, kj) in row-major order:
        src, shift = sub[phase(ki, kj)], qi*wsub + qj
        for f in range(nflat):                              # one long, branch-free,
            acc[f] = combine(acc[f], src[f + shift])        # unit-stride loop: SIMD
    copy acc (dropping the wsub - wo spare columns) to the output

``wsub = wo + ((kw-1)*dw) // sw`` is only a column or two wider than the output for the usual
windows, so little work is wasted on the spare columns. The splitting pass itself is a
contiguous copy into a padded row followed by a de-interleave that, for strides 1 and 2
(specialized as compile-time constants), LLVM turns into vector shuffles. Each output still
sees its taps in row-major order, so "first maximum wins" and the summation order are the
reference's. (A direct loop over ``ow`` inside each tap reads the input with stride ``sw`` and
needs padding bounds per tap; it ran 1.7-8.5x slower on one core here, and 2.5x slower again
written with branches.) Hot loops index with unsigned integers: with signed ones Numba adds
negative-index wraparound to every access, which stops LLVM's vectorizer.

The backward pass of average pooling is the same walk in reverse: add ``g / divisor`` into the
phase planes tap by tap (again in the reference's order per input position), then interleave
the phases back into the gradient plane. The backward pass of max pooling is a scatter-add to
the saved indices, summed in float64 and rounded once as the reference's ``np.bincount`` does,
so float32 results are bitwise equal too.

Max-pooling details
-------------------
* A NaN in a window wins and its index is the *last* NaN, as torch's CPU kernel does (every
  NaN replaces the running maximum); ties go to the first maximum in window order.
* The winning tap is kept as its offset relative to the window origin (int32, one constant per
  tap, so the select is vectorizable) and turned into the flat ``row * W + col`` index at the end.
* A window whose values are all -inf reports its first in-bounds position, as torch does (the
  reference, which pads with -inf, can name a padded position there). A window with no
  in-bounds tap at all (possible with dilation, or with padding above half the window, which
  the ops reject) gives -inf and index -1, which ``max_pool2d_backward`` skips.

The kernels compile lazily, once per dtype, and are cached on disk (``cache=True``). None calls
``numba.get_num_threads()`` (that would make it uncacheable): the wrappers pass the thread count.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import uintp

from ..reference.pool import _avg_divisor as _reference_divisor
from ..reference.pool import pool_output_size

Pair = tuple[int, int]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_NO_TAP = -(2**31)  # int32 marker: no tap of this window won (all -inf, or no tap in bounds)


# ---- helpers, inlined into the kernels ---------------------------------------------------------


@numba.njit(inline="always")
def _tap_range(off, stride, size, n_out):
    """The outputs ``o`` in ``[lo, hi)`` whose tap ``o * stride + off`` lies in ``[0, size)``."""
    lo = 0 if off >= 0 else (-off + stride - 1) // stride
    last = size - 1 - off  # o * stride <= last
    hi = 0 if last < 0 else min(n_out, last // stride + 1)
    return lo, max(lo, hi)


@numba.njit(inline="always")
def _first_inside(start, dil, k, size):
    """The first tap ``start + i * dil`` (``0 <= i < k``) inside ``[0, size)``, or -1."""
    first = start if start >= 0 else start + ((-start + dil - 1) // dil) * dil
    if first >= size or first > start + (k - 1) * dil:
        return -1
    return first


@numba.njit(inline="always")
def _fill(dst, lo, hi, value):
    for j in range(lo, hi):
        dst[uintp(j)] = value


@numba.njit(inline="always")
def _split_row(padded, sub, pr, base, wsub, sw):
    """De-interleave a padded row into the ``sw`` column phases of row phase ``pr``."""
    if sw == 1:
        d0 = sub[pr]
        for j in range(wsub):
            d0[uintp(base + j)] = padded[uintp(j)]
    elif sw == 2:  # a constant stride: LLVM vectorizes the two-member interleave with shuffles
        d0, d1 = sub[2 * pr], sub[2 * pr + 1]
        for j in range(wsub):
            d0[uintp(base + j)] = padded[uintp(2 * j)]
            d1[uintp(base + j)] = padded[uintp(2 * j + 1)]
    else:
        for pc in range(sw):
            d = sub[pr * sw + pc]
            for j in range(wsub):
                d[uintp(base + j)] = padded[uintp(j * sw + pc)]


@numba.njit(inline="always")
def _merge_row(sub, padded, pr, base, wsub, sw):
    """The inverse of ``_split_row``: interleave the column phases into a padded row."""
    if sw == 1:
        d0 = sub[pr]
        for j in range(wsub):
            padded[uintp(j)] = d0[uintp(base + j)]
    elif sw == 2:
        d0, d1 = sub[2 * pr], sub[2 * pr + 1]
        for j in range(wsub):
            padded[uintp(2 * j)] = d0[uintp(base + j)]
            padded[uintp(2 * j + 1)] = d1[uintp(base + j)]
    else:
        for pc in range(sw):
            d = sub[pr * sw + pc]
            for j in range(wsub):
                padded[uintp(j * sw + pc)] = d[uintp(base + j)]


@numba.njit(inline="always")
def _split_plane(xp, sub, padded, sh, sw, ph, pw, hsub, wsub, fill):
    """Write plane ``xp`` (h, w), padded with ``fill``, as ``sh * sw`` phase planes into ``sub``.

    Phase plane ``pr * sw + pc`` holds, at flat position ``i * wsub + j``, padded element
    ``(i * sh + pr, j * sw + pc)``, i.e. input ``(i * sh + pr - ph, j * sw + pc - pw)``.
    """
    h, w = xp.shape
    _fill(padded, 0, pw, fill)  # padded.size >= pw + w
    _fill(padded, pw + w, padded.size, fill)
    for pr in range(sh):
        for i in range(hsub):
            r = i * sh + pr - ph
            base = i * wsub
            if r < 0 or r >= h:
                for pc in range(sw):
                    _fill(sub[pr * sw + pc], base, base + wsub, fill)
                continue
            row = xp[r]
            for c in range(w):
                padded[uintp(pw + c)] = row[uintp(c)]
            _split_row(padded, sub, pr, base, wsub, sw)


@numba.njit(inline="always")
def _merge_plane(sub, xp, padded, sh, sw, ph, pw, hsub, wsub):
    """Write the in-bounds part of the phase planes ``sub`` back into plane ``xp`` (h, w)."""
    h, w = xp.shape
    _fill(padded, sw * wsub, padded.size, 0.0)  # columns right of every window get no gradient
    for r in range(h):
        pr, i = (r + ph) % sh, (r + ph) // sh
        row = xp[r]
        if i >= hsub:  # below every window (only when ceil_mode is off): no gradient
            _fill(row, 0, w, 0.0)
            continue
        _merge_row(sub, padded, pr, i * wsub, wsub, sw)
        for c in range(w):
            row[uintp(c)] = padded[uintp(pw + c)]


# ---- the jitted kernels ------------------------------------------------------------------------


@numba.njit(parallel=True, cache=True)
def _max_pool_forward(x, out, idx, kh, kw, sh, sw, ph, pw, dh, dw, chunks):  # pragma: no cover
    planes, h, w = x.shape
    ho, wo = out.shape[1], out.shape[2]
    hsub, wsub = ho + ((kh - 1) * dh) // sh, wo + ((kw - 1) * dw) // sw
    nflat = (ho - 1) * wsub + wo  # the flat grid, without the spare columns of its last row
    no_tap = np.int32(_NO_TAP)
    for t in numba.prange(chunks):
        sub = np.empty((sh * sw, hsub * wsub), dtype=x.dtype)
        padded = np.empty(max(sw * wsub, pw + w), dtype=x.dtype)
        best = np.empty(ho * wsub, dtype=x.dtype)
        rel = np.empty(ho * wsub, dtype=np.int32)  # winning tap, as (row, col) offset from (oh*sh, ow*sw)
        for p in range(t * planes // chunks, (t + 1) * planes // chunks):
            _split_plane(x[p], sub, padded, sh, sw, ph, pw, hsub, wsub, -np.inf)
            _fill(best, 0, nflat, -np.inf)
            _fill(rel, 0, nflat, no_tap)
            for ki in range(kh):
                pr, qi = (ki * dh) % sh, (ki * dh) // sh
                for kj in range(kw):
                    pc, qj = (kj * dw) % sw, (kj * dw) // sw
                    src = sub[pr * sw + pc]
                    shift = qi * wsub + qj
                    tap = np.int32((ki * dh - ph) * w + kj * dw - pw)
                    for f in range(nflat):
                        v = src[uintp(f + shift)]
                        b = best[uintp(f)]
                        # v wins if larger, or if it is NaN (every NaN replaces the maximum, so
                        # the window's last NaN wins, as in torch; NaN > b is False)
                        take = (v > b) | (v != v)
                        best[uintp(f)] = v if take else b
                        rel[uintp(f)] = tap if take else rel[uintp(f)]
            op, ip = out[p], idx[p]
            for oh in range(ho):
                orow, irow = op[oh], ip[oh]
                base, origin = oh * wsub, oh * sh * w
                for ow in range(wo):
                    orow[uintp(ow)] = best[uintp(base + ow)]
                    irow[uintp(ow)] = origin + ow * sw + rel[uintp(base + ow)]
                for ow in range(wo):
                    if rel[uintp(base + ow)] == no_tap:  # rare: name the first in-bounds tap, or -1
                        r = _first_inside(oh * sh - ph, dh, kh, h)
                        c = _first_inside(ow * sw - pw, dw, kw, w)
                        irow[ow] = -1 if (r < 0 or c < 0) else r * w + c


@numba.njit(inline="always")
def _take(v, b):
    """Does ``v`` replace the running maximum ``b``? If larger, or if it is NaN (so the last
    NaN of a window wins, as in torch); ties keep the earlier tap."""
    return (v > b) | (v != v)


@numba.njit(parallel=True, cache=True)
def _max_pool_2x2(x, out, idx, chunks):  # pragma: no cover
    """The most common pooling -- 2 x 2 windows, stride 2, no padding or dilation -- read
    straight from the input rows: each output compares its four inputs in window order, so
    no phase planes are built (half the memory traffic of the general kernel)."""
    planes, h, w = x.shape
    ho, wo = out.shape[1], out.shape[2]
    for t in numba.prange(chunks):
        for p in range(t * planes // chunks, (t + 1) * planes // chunks):
            xp, op, ip = x[p], out[p], idx[p]
            for oh in range(ho):
                r0, r1 = xp[2 * oh], xp[2 * oh + 1]
                orow, irow = op[oh], ip[oh]
                base0 = 2 * oh * w
                base1 = base0 + w
                for ow in range(wo):
                    c = uintp(2 * ow)
                    b = r0[c]
                    bi = base0 + 2 * ow
                    v = r0[c + 1]
                    if _take(v, b):
                        b, bi = v, base0 + 2 * ow + 1
                    v = r1[c]
                    if _take(v, b):
                        b, bi = v, base1 + 2 * ow
                    v = r1[c + 1]
                    if _take(v, b):
                        b, bi = v, base1 + 2 * ow + 1
                    orow[uintp(ow)] = b
                    irow[uintp(ow)] = bi


@numba.njit(parallel=True, cache=True)
def _max_pool_backward(g, idx, gx, wide, chunks):  # pragma: no cover
    """``gx[p, idx[p, o]] += g[p, o]`` plane by plane; returns the count of bad indices.

    With ``wide`` (float32 gradients) the sums run in a float64 scratch plane per thread and
    are rounded once, as ``np.bincount`` in the reference does.
    """
    planes, n_out = g.shape
    hw = gx.shape[1]
    bad = 0
    for t in numba.prange(chunks):
        acc = np.empty(hw if wide else 0, dtype=np.float64)
        for p in range(t * planes // chunks, (t + 1) * planes // chunks):
            gp, ip, xp = g[p], idx[p], gx[p]
            if wide:
                _fill(acc, 0, hw, 0.0)
                for o in range(n_out):
                    i = ip[uintp(o)]
                    if 0 <= i < hw:
                        acc[uintp(i)] += gp[uintp(o)]
                    elif i != -1:
                        bad += 1
                for i in range(hw):
                    xp[uintp(i)] = acc[uintp(i)]
            else:
                _fill(xp, 0, hw, 0.0)
                for o in range(n_out):
                    i = ip[uintp(o)]
                    if 0 <= i < hw:
                        xp[uintp(i)] += gp[uintp(o)]
                    elif i != -1:
                        bad += 1
    return bad


@numba.njit(parallel=True, cache=True)
def _avg_pool_forward(x, out, div, kh, kw, sh, sw, ph, pw, chunks):  # pragma: no cover
    planes, h, w = x.shape
    ho, wo = out.shape[1], out.shape[2]
    hsub, wsub = ho + (kh - 1) // sh, wo + (kw - 1) // sw
    nflat = (ho - 1) * wsub + wo
    for t in numba.prange(chunks):
        sub = np.empty((sh * sw, hsub * wsub), dtype=x.dtype)
        padded = np.empty(max(sw * wsub, pw + w), dtype=x.dtype)
        acc = np.empty(ho * wsub, dtype=x.dtype)
        for p in range(t * planes // chunks, (t + 1) * planes // chunks):
            _split_plane(x[p], sub, padded, sh, sw, ph, pw, hsub, wsub, 0.0)
            _fill(acc, 0, nflat, 0.0)
            for ki in range(kh):
                for kj in range(kw):
                    src = sub[(ki % sh) * sw + kj % sw]
                    shift = (ki // sh) * wsub + kj // sw
                    for f in range(nflat):
                        acc[uintp(f)] += src[uintp(f + shift)]
            op = out[p]
            for oh in range(ho):
                orow, drow = op[oh], div[oh]
                base = oh * wsub
                for ow in range(wo):
                    orow[uintp(ow)] = acc[uintp(base + ow)] / drow[uintp(ow)]


@numba.njit(parallel=True, cache=True)
def _avg_pool_backward(g, div, gx, kh, kw, sh, sw, ph, pw, chunks):  # pragma: no cover
    planes, ho, wo = g.shape
    w = gx.shape[2]
    hsub, wsub = ho + (kh - 1) // sh, wo + (kw - 1) // sw
    nflat = (ho - 1) * wsub + wo
    for t in numba.prange(chunks):
        sub = np.empty((sh * sw, hsub * wsub), dtype=g.dtype)
        padded = np.empty(max(sw * wsub, pw + w), dtype=g.dtype)
        scaled = np.zeros(ho * wsub, dtype=g.dtype)  # the spare columns stay 0: they add nothing
        for p in range(t * planes // chunks, (t + 1) * planes // chunks):
            gp = g[p]
            for oh in range(ho):
                grow, drow = gp[oh], div[oh]
                base = oh * wsub
                for ow in range(wo):
                    scaled[uintp(base + ow)] = grow[uintp(ow)] / drow[uintp(ow)]
            for s in range(sh * sw):
                _fill(sub[s], 0, hsub * wsub, 0.0)
            # tap by tap, as the reference adds one shifted copy of g / div per kernel offset
            for ki in range(kh):
                for kj in range(kw):
                    dst = sub[(ki % sh) * sw + kj % sw]
                    shift = (ki // sh) * wsub + kj // sw
                    for f in range(nflat):
                        dst[uintp(f + shift)] += scaled[uintp(f)]
            _merge_plane(sub, gx[p], padded, sh, sw, ph, pw, hsub, wsub)


# ---- the Python wrappers -----------------------------------------------------------------------


def _pair(name: str, value, minimum: int) -> Pair:
    a, b = (int(v) for v in value)
    if a < minimum or b < minimum:
        raise ValueError(f"pool2d: {name} must be at least {minimum}, got {(a, b)}")
    return a, b


def _planes(name: str, x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous (N * C, H, W) stack of float32/float64 planes."""
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D (N, C, H, W) array, got shape {x.shape}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{name}: expected float32 or float64, got {x.dtype}")
    n, c, h, w = x.shape
    if h * w >= 2**31:
        raise ValueError(f"{name}: planes of {h}x{w} are too large for these kernels")
    return np.ascontiguousarray(x).reshape(n * c, h, w)


def _out_hw(name: str, h: int, w: int, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode) -> Pair:
    ho = pool_output_size(h, kernel[0], stride[0], padding[0], dilation[0], bool(ceil_mode))
    wo = pool_output_size(w, kernel[1], stride[1], padding[1], dilation[1], bool(ceil_mode))
    if ho < 0 or wo < 0:
        raise ValueError(
            f"{name}: window {kernel} (dilation {dilation}) does not fit input {(h, w)} + padding {padding}"
        )
    return ho, wo


def _chunks(planes: int) -> int:
    """How many runs of planes to deal out: one per thread (each run gets its own scratch)."""
    return max(1, min(numba.get_num_threads(), planes))


def max_pool2d_forward(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Window maxima of NCHW ``x`` and the flat (``row * W + col``) input index of each (int64)."""
    kernel, stride = _pair("kernel", kernel, 1), _pair("stride", stride, 1)
    padding, dilation = _pair("padding", padding, 0), _pair("dilation", dilation, 1)
    xs = _planes("max_pool2d", x)
    n, c, h, w = x.shape
    ho, wo = _out_hw("max_pool2d", h, w, kernel, stride, padding, dilation, ceil_mode)
    out = np.empty((n * c, ho, wo), dtype=x.dtype)
    idx = np.empty((n * c, ho, wo), dtype=np.int64)
    if out.size:
        if (
            kernel == (2, 2)
            and stride == (2, 2)
            and padding == (0, 0)
            and dilation == (1, 1)
            and 2 * ho <= h
            and 2 * wo <= w
        ):
            _max_pool_2x2(xs, out, idx, _chunks(n * c))
        else:
            _max_pool_forward(xs, out, idx, *kernel, *stride, *padding, *dilation, _chunks(n * c))
    return out.reshape(n, c, ho, wo), idx.reshape(n, c, ho, wo)


def max_pool2d_backward(grad_out: np.ndarray, indices: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Scatter-add each output gradient to the input position its maximum came from."""
    n, c, h, w = (int(v) for v in x_shape)
    g = _planes("max_pool2d_backward", grad_out)
    if indices.shape != grad_out.shape or grad_out.shape[:2] != (n, c):
        raise ValueError(
            f"max_pool2d_backward: grad_out {grad_out.shape} and indices {indices.shape} "
            f"do not match each other or the input shape {tuple(x_shape)}"
        )
    planes = n * c
    gx = np.empty((planes, h * w), dtype=grad_out.dtype)
    if gx.size:
        idx = np.ascontiguousarray(indices, dtype=np.int64).reshape(planes, -1)
        wide = grad_out.dtype != np.float64
        bad = _max_pool_backward(g.reshape(planes, -1), idx, gx, wide, _chunks(planes))
        if bad:
            raise IndexError(f"max_pool2d_backward: {bad} indices fall outside the {h}x{w} input plane")
    return gx.reshape(n, c, h, w)


@functools.lru_cache(maxsize=64)
def _avg_divisors(
    h: int, w: int, kernel: Pair, stride: Pair, padding: Pair, out_hw: Pair, count_include_pad, divisor_override, dtype
) -> np.ndarray:
    """The (ho, wo) table of divisors, by torch's rule (``reference.pool._avg_divisor``),
    cached: a layer asks for the same one every step, and building it costs more than pooling
    a small batch. The kernels only read it."""
    return _reference_divisor(h, w, kernel, stride, padding, out_hw, count_include_pad, divisor_override, dtype)


def avg_pool2d_forward(
    x: np.ndarray,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> np.ndarray:
    """Window sums of the zero-padded NCHW ``x``, each divided by torch's divisor."""
    kernel, stride, padding = _pair("kernel", kernel, 1), _pair("stride", stride, 1), _pair("padding", padding, 0)
    xs = _planes("avg_pool2d", x)
    n, c, h, w = x.shape
    ho, wo = _out_hw("avg_pool2d", h, w, kernel, stride, padding, (1, 1), ceil_mode)
    div = _avg_divisors(h, w, kernel, stride, padding, (ho, wo), bool(count_include_pad), divisor_override, x.dtype)
    out = np.empty((n * c, ho, wo), dtype=x.dtype)
    if out.size:
        _avg_pool_forward(xs, out, div, *kernel, *stride, *padding, _chunks(n * c))
    return out.reshape(n, c, ho, wo)


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
    """Spread each output gradient, divided by its window's divisor, evenly over its window."""
    kernel, stride, padding = _pair("kernel", kernel, 1), _pair("stride", stride, 1), _pair("padding", padding, 0)
    n, c, h, w = (int(v) for v in x_shape)
    g = _planes("avg_pool2d_backward", grad_out)
    ho, wo = _out_hw("avg_pool2d_backward", h, w, kernel, stride, padding, (1, 1), ceil_mode)
    if grad_out.shape != (n, c, ho, wo):
        raise ValueError(
            f"avg_pool2d_backward: grad_out {grad_out.shape} should be {(n, c, ho, wo)}, the output shape "
            f"of this pooling on input {(n, c, h, w)}"
        )
    div = _avg_divisors(
        h, w, kernel, stride, padding, (ho, wo), bool(count_include_pad), divisor_override, grad_out.dtype
    )
    planes = n * c
    gx = np.empty((planes, h, w), dtype=grad_out.dtype)
    if gx.size:
        if ho * wo == 0:
            gx.fill(0)
        else:
            _avg_pool_backward(g, div, gx, *kernel, *stride, *padding, _chunks(planes))
    return gx.reshape(n, c, h, w)
