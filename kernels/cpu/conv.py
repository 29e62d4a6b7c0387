"""2-D convolution (NCHW) as an implicit GEMM on the packed-GEMM machinery of ``gemm.py``.

For one image and one group, a stride-1 convolution is the matrix product

    out[k, q] = sum_r  W[k, r] * X[r, q]          r = (c, i, j) a kernel tap, q a position

where X is the im2col matrix. The trick that avoids building X: index the positions ``q`` on
the *padded-width grid*, q = oh * Wp + ow with Wp the padded input width. Then the column of
X for tap r is the flat padded input shifted by ``koff[r] = (c Hp + i dh) Wp + j dw``:

    X[r, q] = xpad_flat[koff[r] + q]

so NR consecutive positions read NR consecutive input values. The ``conv_micro`` kernel
(generated beside the GEMM one) reads them straight from the padded input: no im2col buffer,
no packing of B. The positions with ow >= Wo wrap into the next row; they are computed and
dropped (Wp - Wo of every Wp, e.g. 2 of 30 for 28 x 28 with padding 1).

The backward passes reuse the same pieces:

* **input gradient**: for stride 1, ``dx`` is the forward convolution of ``g`` with the
  kernel flipped and its in/out channels swapped, padding ``dilation (k - 1) - padding``;
* **weight gradient**: ``dW[k, r] = sum_n sum_q gpad[k, q] X[r, q]`` is a GEMM over q (and
  the batch), computed transposed, ``dW^T = X G^T``, so that A's rows are the shifted input
  rows themselves (read by ``dw_micro``, unpacked) and only G -- the output gradient laid on
  the same padded-width grid -- is packed. Each thread sums its share of the images into its
  own dW, and the partial sums are added at the end (no two threads write one element).

Strided convolutions (and the rare padding larger than the kernel's reach) fall back to the
NumPy im2col reference, which handles every case.
"""

from __future__ import annotations

import numba
import numba.extending
import numpy as np

from ..reference import conv as reference
from . import gemm, gemm_micro
from .gemm import FASTMATH, KC, _jit, _pack_a, _pack_b

conv_micro_f32 = _jit(gemm_micro.conv_micro_f32)
conv_micro_f64 = _jit(gemm_micro.conv_micro_f64)
dw_micro_f32 = _jit(gemm_micro.dw_micro_f32)
dw_micro_f64 = _jit(gemm_micro.dw_micro_f64)

QC = 512  # positions per work item: a multiple of both tiles' NR
DIRECT_TAPS = 27  # up to this many taps per output (3 channels of 3 x 3), convolve directly


def conv_micro(kc, ap, xf, koff, q, c, c_off, ldc, mr, nr, tile, add):
    """The implicit-GEMM micro-kernel for the arrays' dtype (chosen at compile time)."""
    raise NotImplementedError("conv_micro is only callable from compiled code")


@numba.extending.overload(conv_micro, jit_options={"cache": True, "fastmath": set(FASTMATH)})
def _conv_micro_for_dtype(kc, ap, xf, koff, q, c, c_off, ldc, mr, nr, tile, add):
    if ap.dtype == numba.types.float32:
        return lambda kc, ap, xf, koff, q, c, c_off, ldc, mr, nr, tile, add: conv_micro_f32(
            kc, ap, xf, koff, q, c, c_off, ldc, mr, nr, tile, add
        )
    if ap.dtype == numba.types.float64:
        return lambda kc, ap, xf, koff, q, c, c_off, ldc, mr, nr, tile, add: conv_micro_f64(
            kc, ap, xf, koff, q, c, c_off, ldc, mr, nr, tile, add
        )
    return None


def dw_micro(kc, xf, aoff, q, bp, c, c_off, ldc, mr, nr, tile, add):
    """The weight-gradient micro-kernel for the arrays' dtype (chosen at compile time)."""
    raise NotImplementedError("dw_micro is only callable from compiled code")


@numba.extending.overload(dw_micro, jit_options={"cache": True, "fastmath": set(FASTMATH)})
def _dw_micro_for_dtype(kc, xf, aoff, q, bp, c, c_off, ldc, mr, nr, tile, add):
    if bp.dtype == numba.types.float32:
        return lambda kc, xf, aoff, q, bp, c, c_off, ldc, mr, nr, tile, add: dw_micro_f32(
            kc, xf, aoff, q, bp, c, c_off, ldc, mr, nr, tile, add
        )
    if bp.dtype == numba.types.float64:
        return lambda kc, xf, aoff, q, bp, c, c_off, ldc, mr, nr, tile, add: dw_micro_f64(
            kc, xf, aoff, q, bp, c, c_off, ldc, mr, nr, tile, add
        )
    return None


@_jit(parallel=True)
def _pad_flat(x, ph, pw, tail):
    """Each image's zero-padded channels, flattened, plus ``tail`` zeros: (N, C*Hp*Wp + tail)."""
    n, c, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    out = np.zeros((n, c * hp * wp + tail), dtype=x.dtype)
    for item in numba.prange(n * c):
        b, ch = item // c, item % c
        base = ch * hp * wp
        for i in range(h):
            row = base + (i + ph) * wp + pw
            for j in range(w):
                out[b, row + j] = x[b, ch, i, j]
    return out


@_jit
def _tap_offsets(c0, cg, kh, kw, dh, dw, hp, wp):
    """koff[r] for the taps r = (c, i, j) of channels c0..c0+cg: the shift of that tap."""
    koff = np.empty(cg * kh * kw, dtype=np.uint64)
    r = 0
    for ch in range(c0, c0 + cg):
        for i in range(kh):
            for j in range(kw):
                koff[r] = (ch * hp + i * dh) * wp + j * dw
                r += 1
    return koff


@_jit
def _pack_weights(w2, mr, kc_block):
    """A group's (Kg, CRS) weights as packed A, once per call: one buffer per K slice."""
    kg, crs = w2.shape
    rows = ((kg + mr - 1) // mr) * mr
    blocks = (crs + kc_block - 1) // kc_block
    packed = np.zeros((blocks, rows * kc_block), dtype=w2.dtype)
    wf = w2.reshape(-1)
    for blk in range(blocks):
        pc = blk * kc_block
        _pack_a(wf, 0, crs, 1, 0, kg, pc, min(kc_block, crs - pc), mr, packed[blk])
    return packed


@_jit(parallel=True)
def _forward_implicit(mr, nr, xflat, wpacked, koffs, kc_block, qc_block, kg, groups, ho, wo, wp, bias, out):
    """out[n, g*Kg + k, oh, ow] (+ bias[g*Kg + k] when ``bias`` is not empty) for every item
    (image, group, chunk of positions). The bias is added while the tile is copied out, so it
    costs no pass of its own."""
    n = xflat.shape[0]
    crs = koffs.shape[1]
    q_total = ho * wp
    chunks = (q_total + qc_block - 1) // qc_block
    for item in numba.prange(n * groups * chunks):
        b = item // (groups * chunks)
        g = (item // chunks) % groups
        q0 = (item % chunks) * qc_block
        qc = min(qc_block, q_total - q0)
        acc = np.empty(kg * qc_block, dtype=out.dtype)  # (Kg, qc), flat; the first K slice stores
        tile = np.empty((mr, nr), dtype=out.dtype)
        xf = xflat[b]
        for blk in range(wpacked.shape[1]):
            pc = blk * kc_block
            kc = min(kc_block, crs - pc)
            ap = wpacked[g, blk]
            koff = koffs[g, pc : pc + kc]
            for col in range(0, qc, nr):
                for row in range(0, kg, mr):
                    conv_micro(
                        kc,
                        ap[row * kc : (row + mr) * kc],
                        xf,
                        koff,
                        q0 + col,
                        acc,
                        row * qc_block + col,
                        qc_block,
                        min(mr, kg - row),
                        min(nr, qc - col),
                        tile,
                        blk > 0,
                    )
        # keep the real output positions (ow < Wo), one contiguous row segment at a time
        first_row, last_row = q0 // wp, (q0 + qc - 1) // wp
        for k in range(kg):
            dst = out[b, g * kg + k]
            base = k * qc_block - q0
            for oh in range(first_row, last_row + 1):
                lo = max(oh * wp, q0)
                hi = min(oh * wp + wo, q0 + qc)
                if hi > lo:
                    row = dst[oh]
                    if bias.size:  # an explicit loop: a slice expression would allocate a temporary
                        shift = bias[g * kg + k]
                        src = np.uint64(base + lo)
                        dst_off = np.uint64(lo - oh * wp)
                        for i in range(hi - lo):
                            row[dst_off + np.uint64(i)] = acc[src + np.uint64(i)] + shift
                    else:
                        row[lo - oh * wp : hi - oh * wp] = acc[base + lo : base + hi]


@_jit(parallel=True)
def _forward_direct(xflat, w2, koffs, groups, ho, wo, wp, bias, out):
    """Direct convolution for very few taps (a first layer on 1-3 channels), where a GEMM with
    K = C*kh*kw = 9 would spend its time storing tiles, or very few output channels (the input
    gradient of such a layer), where most of an 8-row register tile would be empty.

    Each output plane is computed on the padded-width grid, where tap r of position q reads
    ``xpad_flat[koff[r] + q]``: a sum over taps of shifted rows, one long vector loop per
    group of taps. Summing three taps per pass (and all nine of a one-channel 3 x 3 layer in
    one pass) keeps the running sum in registers: a pass per tap would store the whole row
    back to memory after every multiply-add. Indices are unsigned offsets, so the loops
    vectorize. The real columns (ow < Wo) are then copied out, adding the bias (when
    ``bias`` is not empty) on the way."""
    n = xflat.shape[0]
    k, crs = w2.shape
    kg = k // groups
    q_total = ho * wp
    for b in numba.prange(n):  # one image per item: its channels share the scratch row
        xf = xflat[b]
        acc = np.empty(q_total, dtype=out.dtype)
        out_b = out[b].reshape(k, ho * wo)
        for ch in range(k):
            koff = koffs[ch // kg]
            wr = w2[ch]
            if crs == 9:
                _nine_taps(acc, xf, wr, koff, q_total)
            else:
                for r in range(0, crs, 3):
                    _three_taps(acc, xf, wr, koff, r, min(3, crs - r), q_total, r > 0)
            if bias.size:
                _copy_real_columns_plus(acc, out_b[ch], ho, wo, wp, bias[ch])
            else:
                _copy_real_columns(acc, out_b[ch], 0, ho, wo, wp)


@_jit
def _nine_taps(acc, xf, w, koff, q_total):
    """acc[q] = sum of w[r] * xf[koff[r] + q] over nine taps, in one pass."""
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]
    o0, o1, o2, o3, o4, o5, o6, o7, o8 = koff[0], koff[1], koff[2], koff[3], koff[4], koff[5], koff[6], koff[7], koff[8]
    for i in range(q_total):
        q = np.uint64(i)
        acc[i] = (
            w0 * xf[o0 + q]
            + w1 * xf[o1 + q]
            + w2 * xf[o2 + q]
            + w3 * xf[o3 + q]
            + w4 * xf[o4 + q]
            + w5 * xf[o5 + q]
            + w6 * xf[o6 + q]
            + w7 * xf[o7 + q]
            + w8 * xf[o8 + q]
        )


@_jit
def _three_taps(acc, xf, w, koff, r, taps, q_total, add):
    """acc[q] (+)= the sum over taps r .. r+taps-1 (taps <= 3) of w * shifted input."""
    w0 = w[r]
    o0 = koff[r]
    if taps == 1:
        for i in range(q_total):
            q = np.uint64(i)
            s = w0 * xf[o0 + q]
            acc[i] = acc[i] + s if add else s
        return
    w1 = w[r + 1]
    o1 = koff[r + 1]
    if taps == 2:
        for i in range(q_total):
            q = np.uint64(i)
            s = w0 * xf[o0 + q] + w1 * xf[o1 + q]
            acc[i] = acc[i] + s if add else s
        return
    w2 = w[r + 2]
    o2 = koff[r + 2]
    for i in range(q_total):
        q = np.uint64(i)
        s = w0 * xf[o0 + q] + w1 * xf[o1 + q] + w2 * xf[o2 + q]
        acc[i] = acc[i] + s if add else s


@_jit
def _copy_real_columns_plus(acc, plane, rows, wo, wp, shift):
    """plane[oh * Wo + ow] = acc[oh * Wp + ow] + shift for ow < Wo."""
    for oh in range(rows):
        src = np.uint64(oh * wp)
        dst = np.uint64(oh * wo)
        for o in range(wo):
            plane[dst + np.uint64(o)] = acc[src + np.uint64(o)] + shift


@_jit
def _copy_real_columns(acc, plane, q0, rows, wo, wp):
    """plane[oh * Wo + ow] = acc[oh * Wp + ow - q0] for ow < Wo: drop the padded-width columns."""
    for oh in range(rows):
        src = np.uint64(oh * wp - q0)
        dst = np.uint64(oh * wo)
        for o in range(wo):
            plane[dst + np.uint64(o)] = acc[src + np.uint64(o)]


@_jit(parallel=True)
def _weight_grad_implicit(mr, nr, xflat, gpad, koffs, kg, groups, nthreads, partial):
    """partial[t, g, r, k] = sum over thread t's images b of sum_q X_b[r, q] gpad[b, g*Kg + k, q].

    The GEMM is dW^T (taps x channels) = X (taps x positions) @ G^T (positions x channels):
    A's rows are read from the padded input by ``dw_micro`` (no packing), B = G^T is packed
    (it is small: channels x positions). Each thread owns its ``partial``; they are summed later.
    """
    n = xflat.shape[0]
    crs = koffs.shape[1]
    q_total = gpad.shape[2]
    panels_b = (kg + nr - 1) // nr
    for t in numba.prange(nthreads):
        tile = np.empty((mr, nr), dtype=gpad.dtype)
        bp = np.empty(panels_b * nr * KC, dtype=gpad.dtype)
        aoff = np.zeros(mr, dtype=np.uint64)
        for b in range(t, n, nthreads):
            xf = xflat[b]
            for g in range(groups):
                # B = G^T (positions x Kg): B[q, k] = gf[g Kg q_total + k q_total + q]
                gf = gpad[b].reshape(-1)
                c_flat = partial[t, g].reshape(-1)  # (CRS, Kg), flat
                koff = koffs[g]
                for pc in range(0, q_total, KC):
                    kc = min(KC, q_total - pc)
                    _pack_b(gf, g * kg * q_total, 1, q_total, pc, kc, 0, kg, nr, bp)
                    for row in range(0, crs, mr):
                        rows = min(mr, crs - row)
                        for i in range(mr):  # offsets of this panel's taps (a partial panel repeats one)
                            aoff[i] = koff[row + min(i, rows - 1)]
                        for col in range(0, kg, nr):
                            dw_micro(
                                kc,
                                xf,
                                aoff,
                                pc,
                                bp[col * kc : (col + nr) * kc],
                                c_flat,
                                row * kg + col,
                                kg,
                                rows,
                                min(nr, kg - col),
                                tile,
                                True,
                            )


@_jit(parallel=True)
def _grid_gradient(g, wp, tail):
    """The output gradient laid on the padded-width grid: gpad[b, k, oh*Wp + ow] (0 elsewhere)."""
    n, k, ho, wo = g.shape
    out = np.zeros((n, k, ho * wp + tail), dtype=g.dtype)
    for item in numba.prange(n * k):
        b, ch = item // k, item % k
        for i in range(ho):
            for j in range(wo):
                out[b, ch, i * wp + j] = g[b, ch, i, j]
    return out


def _geometry(x_shape, w_shape, stride, padding, dilation, groups):
    n, c, h, w = x_shape
    k, cg, kh, kw = w_shape
    ph, pw = padding
    dh, dw = dilation
    hp, wp = h + 2 * ph, w + 2 * pw
    ho, wo = hp - dh * (kh - 1), wp - dw * (kw - 1)
    return n, c, k, cg, kh, kw, ph, pw, dh, dw, hp, wp, ho, wo


def _implicit_ok(stride, padding, dilation, x_shape, w_shape) -> bool:
    return tuple(stride) == (1, 1)


def _tile(*arrays: np.ndarray) -> tuple[int, int]:
    """The register tile (MR, NR) for the arrays' common dtype, or a TypeError."""
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays) or dtype not in gemm._TILE:
        raise TypeError(
            f"conv2d: expected float32 or float64 arrays of one dtype, got {[str(a.dtype) for a in arrays]}"
        )
    return gemm._TILE[dtype]


def _offsets(groups, cg, kh, kw, dh, dw, hp, wp):
    return np.stack([_tap_offsets(g * cg, cg, kh, kw, dh, dw, hp, wp) for g in range(groups)])


def conv2d_forward(x, w, stride, padding, dilation, groups, bias=None):
    """Cross-correlation of (N, C, H, W) ``x`` with (K, C/groups, kh, kw) ``w``, plus the
    (K,) ``bias`` per output channel if given (added as the output is written)."""
    if not _implicit_ok(stride, padding, dilation, x.shape, w.shape):
        return reference.conv2d_forward(x, w, stride, padding, dilation, groups, bias)
    mr, nr = _tile(x, w)
    if bias is None:
        bias = np.empty(0, dtype=x.dtype)
    elif bias.shape != (w.shape[0],) or bias.dtype != x.dtype:
        raise ValueError(
            f"conv2d: bias must have shape ({w.shape[0]},) and dtype {x.dtype}, got {bias.shape} {bias.dtype}"
        )
    bias = np.ascontiguousarray(bias)
    n, c, k, cg, kh, kw, ph, pw, dh, dw, hp, wp, ho, wo = _geometry(x.shape, w.shape, stride, padding, dilation, groups)
    kg = k // groups
    crs = cg * kh * kw
    if crs <= DIRECT_TAPS or kg < mr:  # too few taps, or too few output channels for a tile
        xflat = _pad_flat(np.ascontiguousarray(x), ph, pw, dw * (kw - 1))
        out = np.empty((n, k, ho, wo), dtype=x.dtype)
        koffs = _offsets(groups, cg, kh, kw, dh, dw, hp, wp)
        _forward_direct(xflat, np.ascontiguousarray(w).reshape(k, crs), koffs, groups, ho, wo, wp, bias, out)
        return out
    # B is read from the input, not packed, so one K slice can hold every tap (up to 2048):
    # each output tile is then written once. Positions are cut into equal chunks of <= QC.
    kc_block = crs if crs <= 2048 else 1024
    q_total = ho * wp
    chunks = -(-q_total // QC)
    qc_block = -(-q_total // chunks // nr) * nr
    xflat = _pad_flat(np.ascontiguousarray(x), ph, pw, qc_block + dw * (kw - 1) + nr)
    w2 = np.ascontiguousarray(w).reshape(groups, kg, crs)
    wpacked = np.stack([_pack_weights(w2[g], mr, kc_block) for g in range(groups)])
    koffs = _offsets(groups, cg, kh, kw, dh, dw, hp, wp)
    out = np.empty((n, k, ho, wo), dtype=x.dtype)
    with gemm.slp_vectorize():
        _forward_implicit(mr, nr, xflat, wpacked, koffs, kc_block, qc_block, kg, groups, ho, wo, wp, bias, out)
    return out


def conv2d_backward_input(grad_out, w, x_shape, stride, padding, dilation, groups):
    """dx: for stride 1, the forward convolution of ``grad_out`` with the flipped, transposed
    kernel and padding ``dilation (k - 1) - padding``."""
    kh, kw = w.shape[2], w.shape[3]
    pad = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1])
    if not _implicit_ok(stride, padding, dilation, x_shape, w.shape) or min(pad) < 0:
        return reference.conv2d_backward_input(grad_out, w, x_shape, stride, padding, dilation, groups)
    k, cg = w.shape[0], w.shape[1]
    kg = k // groups
    # w'[g*Cg + c, k, i, j] = w[g*Kg + k, c, kh-1-i, kw-1-j]: in and out channels swap per group
    flipped = (
        w[:, :, ::-1, ::-1].reshape(groups, kg, cg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(groups * cg, kg, kh, kw)
    )
    return conv2d_forward(grad_out, np.ascontiguousarray(flipped), (1, 1), pad, dilation, groups)


def conv2d_backward_weight(x, grad_out, w_shape, stride, padding, dilation, groups):
    """dW: a GEMM over positions and images of the output gradient and the shifted input."""
    if not _implicit_ok(stride, padding, dilation, x.shape, w_shape):
        return reference.conv2d_backward_weight(x, grad_out, w_shape, stride, padding, dilation, groups)
    mr, nr = _tile(x, grad_out)
    n, c, k, cg, kh, kw, ph, pw, dh, dw, hp, wp, ho, wo = _geometry(x.shape, w_shape, stride, padding, dilation, groups)
    kg = k // groups
    crs = cg * kh * kw
    xflat = _pad_flat(np.ascontiguousarray(x), ph, pw, KC + dw * (kw - 1))
    gpad = _grid_gradient(np.ascontiguousarray(grad_out), wp, 0)
    koffs = _offsets(groups, cg, kh, kw, dh, dw, hp, wp)
    nthreads = max(1, min(numba.get_num_threads(), n))
    partial = np.zeros((nthreads, groups, crs, kg), dtype=x.dtype)  # per thread and group: dW^T
    with gemm.slp_vectorize():
        _weight_grad_implicit(mr, nr, xflat, gpad, koffs, kg, groups, nthreads, partial)
    # (groups, CRS, Kg) -> (groups, Kg, CRS) -> (K, Cg, kh, kw)
    return np.ascontiguousarray(partial.sum(axis=0).transpose(0, 2, 1)).reshape(w_shape)
