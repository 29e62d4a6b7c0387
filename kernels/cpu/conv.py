"""2-D convolution (NCHW) as an implicit GEMM on the packed-GEMM machinery of ``gemm.py``.

For one image and one group, a stride-1 convolution is the matrix product

    out[k, q] = sum_r  W[k, r] * X[r, q]          r = (c, i, j) a kernel tap, q a position

where X is the im2col matrix. The trick that avoids building X: lay each channel of the
input on a *padded grid* -- its rows one after another, each followed by ``gap`` zeros, with
``pitch = W + gap`` values per row and zero rows above and below -- and index the positions
``q`` on the same grid, q = oh * pitch + ow. Then the column of X for tap r is the flat grid
shifted by ``koff[r] = (c Hp + i dh) pitch + j dw + gap - pw``:

    X[r, q] = xgrid[koff[r] + q]

so NR consecutive positions read NR consecutive input values. The ``conv_micro`` kernel
(generated beside the GEMM one) reads them straight from the grid: no im2col buffer, no
packing of B. One call of it sweeps a whole row of tiles: with only a few hundred taps, a
call per tile spent about a tenth of its time entering and leaving the function. A run of
``gap`` zeros is the right padding of one row and the left padding of the next, so ``gap``
is only pw (see ``_geometry``). The positions with ow >= Wo fall on the gap; they are
computed and dropped (1 of every 29 positions for 28 x 28 with padding 1).

Each thread pads its own images, one at a time, into a buffer that stays in its core's cache
(``_forward_per_thread``), so no padded copy of the batch goes through memory; with fewer
images than make an even split, a padded copy is made first and the threads share work
items of (image, group, chunk of positions) instead (``_forward_implicit``).

The backward passes reuse the same pieces:

* **input gradient**: for stride 1, ``dx`` is the forward convolution of ``g`` with the
  kernel flipped and its in/out channels swapped, padding ``dilation (k - 1) - padding``;
* **weight gradient**: ``dW[k, r] = sum_n sum_q G[k, q] X[r, q]`` is a GEMM over q (and
  the batch), computed transposed, ``dW^T = X G^T``, so that A's rows are the shifted input
  rows themselves (read by ``dw_micro``, unpacked) and only G -- the output gradient on the
  same grid -- is packed, straight from the gradient array (``_pack_gradient``). Each thread
  pads its own images, sums its share of them into its own dW, and the partial sums are
  added at the end (no two threads write one element).

Strided convolutions, and the input gradient of a padding larger than the kernel's reach
(whose equivalent forward padding would be negative), fall back to the NumPy im2col
reference, which handles every case.

A 3 x 3, stride-1 layer with enough channels goes instead to Winograd's F(2x2, 3x3)
(``winograd.py``), which needs 2.25 times fewer multiply-adds; ``choose_algorithm`` says
which method a geometry gets, and ``algorithm=`` overrides it.
"""

from __future__ import annotations

import numba
import numpy as np

from ..reference import conv as reference
from . import gemm, winograd
from .conv_tiles import conv_micro, dw_micro
from .gemm import KC, _jit, _pack_a

QC = 512  # positions per work item: a multiple of both tiles' NR
DIRECT_TAPS = 27  # up to this many taps per output (3 channels of 3 x 3), convolve directly
# when 'auto' chooses Winograd (see _winograd_pays): channels in and out, their product, and
# the share of real outputs among those computed (winograd.tile_efficiency)
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_CHANNEL_PRODUCT = 2048
WINOGRAD_MIN_EFFICIENCY = 0.75


@_jit(parallel=True)
def _pad_flat(x, ph, gap, tail):
    """Each image's channels on the padded grid, flattened, plus ``tail`` zeros:
    (N, C*Hp*pitch + tail), with ``pitch = W + gap`` (see ``_geometry``)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c * (h + 2 * ph) * (w + gap) + tail), dtype=x.dtype)
    for item in numba.prange(n * c):
        b, ch = item // c, item % c
        _fill_channel(x[b, ch], out[b], ch, ph, gap)
    return out


@_jit(inline="always")
def _fill_channel(plane, flat, ch, ph, gap):
    """Copy one (H, W) channel into its place on the padded grid; the gaps are left alone."""
    h, w = plane.shape
    pitch = w + gap
    base = ch * (h + 2 * ph) * pitch + ph * pitch + gap
    for i in range(h):
        row = np.uint64(base + i * pitch)
        for j in range(w):
            flat[row + np.uint64(j)] = plane[i, j]


@_jit
def _tap_offsets(c0, cg, kh, kw, dh, dw, hp, pitch, shift):
    """koff[r] for the taps r = (c, i, j) of channels c0..c0+cg: the shift of that tap
    (``shift = gap - pw``: where column -pw of the input sits in a row of the grid)."""
    koff = np.empty(cg * kh * kw, dtype=np.uint64)
    r = 0
    for ch in range(c0, c0 + cg):
        for i in range(kh):
            for j in range(kw):
                koff[r] = (ch * hp + i * dh) * pitch + j * dw + shift
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


@_jit(inline="always")
def _forward_chunk(mr, xf, wpacked, koff, kc_block, qc_block, q0, qc, kg, k0, wo, pitch, bias, out, acc, tile):
    """One group's outputs ``out[k0 + k]`` (k < Kg, plus ``bias[k0 + k]`` when ``bias`` is not
    empty) at the positions q0 .. q0+qc of one image's grid. The tiles are summed into
    ``acc`` (Kg x qc_block, flat; the first K slice stores), and the real positions
    (ow < Wo) copied out, the bias added on the way, so it costs no pass of its own."""
    crs = koff.shape[0]
    for blk in range(wpacked.shape[0]):
        pc = blk * kc_block
        kc = min(kc_block, crs - pc)
        ap = wpacked[blk]
        koff_slice = koff[pc : pc + kc]
        for row in range(0, kg, mr):  # each call sweeps all the chunk's positions
            conv_micro(
                kc, ap[row * kc : (row + mr) * kc], xf, koff_slice, q0, qc, acc, row * qc_block, qc_block,
                min(mr, kg - row), tile, blk > 0,
            )  # fmt: skip
    # keep the real output positions (ow < Wo), one contiguous row segment at a time
    first_row, last_row = q0 // pitch, (q0 + qc - 1) // pitch
    plane = out.shape[1] * wo
    flat = out.reshape(-1)
    for k in range(kg):
        base = k * qc_block - q0
        for oh in range(first_row, last_row + 1):
            lo = max(oh * pitch, q0)
            hi = min(oh * pitch + wo, q0 + qc)
            src = np.uint64(base + lo)
            dst = np.uint64((k0 + k) * plane + oh * wo + lo - oh * pitch)
            # explicit loops on unsigned offsets: they vectorize, and no view or temporary is made
            if bias.size:
                shift = bias[k0 + k]
                for i in range(hi - lo):
                    flat[dst + np.uint64(i)] = acc[src + np.uint64(i)] + shift
            else:
                for i in range(hi - lo):
                    flat[dst + np.uint64(i)] = acc[src + np.uint64(i)]


@_jit(parallel=True)
def _forward_implicit(mr, nr, xflat, wpacked, koffs, kc_block, qc_block, kg, groups, ho, wo, pitch, bias, out):
    """The forward pass over work items (image, group, chunk of positions) of an input padded
    beforehand (``_pad_flat``): for few images, where items balance the threads better."""
    n = xflat.shape[0]
    q_total = ho * pitch
    chunks = (q_total + qc_block - 1) // qc_block
    for item in numba.prange(n * groups * chunks):
        b = item // (groups * chunks)
        g = (item // chunks) % groups
        q0 = (item % chunks) * qc_block
        acc = np.empty(kg * qc_block, dtype=out.dtype)
        tile = np.empty((mr, nr), dtype=out.dtype)
        _forward_chunk(
            mr, xflat[b], wpacked[g], koffs[g], kc_block, qc_block, q0, min(qc_block, q_total - q0),
            kg, g * kg, wo, pitch, bias, out[b], acc, tile,
        )  # fmt: skip


@_jit(parallel=True)
def _forward_per_thread(
    mr, nr, x, wpacked, koffs, kc_block, qc_block, kg, groups, ho, wo, ph, gap, tail, nthreads, bias, out
):
    """The forward pass with each thread padding its own images, one at a time, into a
    buffer of its own: the padded image (a few hundred KB) is written into, and read from,
    the core's own cache, instead of a padded copy of the whole batch going through memory
    first. The gaps of the buffer are zeroed once; each image only fills the interior."""
    n, c, h, w = x.shape
    pitch = w + gap
    q_total = ho * pitch
    for t in numba.prange(nthreads):
        xf = np.zeros(c * (h + 2 * ph) * pitch + tail, dtype=x.dtype)
        acc = np.empty(kg * qc_block, dtype=out.dtype)
        tile = np.empty((mr, nr), dtype=out.dtype)
        for b in range(t, n, nthreads):
            for ch in range(c):
                _fill_channel(x[b, ch], xf, ch, ph, gap)
            for g in range(groups):
                for q0 in range(0, q_total, qc_block):
                    _forward_chunk(
                        mr, xf, wpacked[g], koffs[g], kc_block, qc_block, q0, min(qc_block, q_total - q0),
                        kg, g * kg, wo, pitch, bias, out[b], acc, tile,
                    )  # fmt: skip


@_jit(parallel=True)
def _forward_direct(xflat, w2, koffs, groups, ho, wo, pitch, bias, out):
    """Direct convolution for very few taps (a first layer on 1-3 channels), where a GEMM with
    K = C*kh*kw = 9 would spend its time storing tiles, or very few output channels (the input
    gradient of such a layer), where most of an 8-row register tile would be empty.

    Each output plane is computed on the padded grid, where tap r of position q reads
    ``xpad_flat[koff[r] + q]``: a sum over taps of shifted rows, one long vector loop per
    group of taps. Summing three taps per pass (and all nine of a one-channel 3 x 3 layer in
    one pass) keeps the running sum in registers: a pass per tap would store the whole row
    back to memory after every multiply-add. Indices are unsigned offsets, so the loops
    vectorize. The real columns (ow < Wo) are then copied out, adding the bias (when
    ``bias`` is not empty) on the way."""
    n = xflat.shape[0]
    k, crs = w2.shape
    kg = k // groups
    q_total = ho * pitch
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
                _copy_real_columns_plus(acc, out_b[ch], ho, wo, pitch, bias[ch])
            else:
                _copy_real_columns(acc, out_b[ch], 0, ho, wo, pitch)


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
def _copy_real_columns_plus(acc, plane, rows, wo, pitch, shift):
    """plane[oh * Wo + ow] = acc[oh * pitch + ow] + shift for ow < Wo."""
    for oh in range(rows):
        src = np.uint64(oh * pitch)
        dst = np.uint64(oh * wo)
        for o in range(wo):
            plane[dst + np.uint64(o)] = acc[src + np.uint64(o)] + shift


@_jit
def _copy_real_columns(acc, plane, q0, rows, wo, pitch):
    """plane[oh * Wo + ow] = acc[oh * pitch + ow - q0] for ow < Wo: drop the gap columns."""
    for oh in range(rows):
        src = np.uint64(oh * pitch - q0)
        dst = np.uint64(oh * wo)
        for o in range(wo):
            plane[dst + np.uint64(o)] = acc[src + np.uint64(o)]


@_jit(parallel=True)
def _weight_grad_implicit(mr, nr, x, g, koffs, groups, ph, gap, tail, nthreads, partial):
    """partial[t, grp, r, k] = sum over thread t's images b of sum_q X_b[r, q] G_b[grp Kg + k, q].

    The GEMM is dW^T (taps x channels) = X (taps x positions) @ G^T (positions x channels):
    A's rows are read by ``dw_micro`` from the padded image itself (no packing); B = G^T,
    the output gradient on the same grid, is packed straight from ``g`` (it is small:
    channels x positions). Each thread pads its images into a buffer of its own, as the
    forward pass does, and owns its ``partial``; the partial sums are added later.
    """
    n, c, h, w = x.shape
    kg = g.shape[1] // groups
    ho, wo = g.shape[2], g.shape[3]
    pitch = w + gap
    crs = koffs.shape[1]
    q_total = ho * pitch
    panels_b = (kg + nr - 1) // nr
    for t in numba.prange(nthreads):
        xf = np.zeros(c * (h + 2 * ph) * pitch + tail, dtype=x.dtype)
        tile = np.empty((mr, nr), dtype=g.dtype)
        bp = np.empty(panels_b * nr * KC, dtype=g.dtype)
        for b in range(t, n, nthreads):
            for ch in range(c):
                _fill_channel(x[b, ch], xf, ch, ph, gap)
            gb = g[b].reshape(-1)
            for grp in range(groups):
                c_flat = partial[t, grp].reshape(-1)  # (CRS, Kg), flat
                koff = koffs[grp]
                for pc in range(0, q_total, KC):
                    kc = min(KC, q_total - pc)
                    _pack_gradient(gb, grp * kg, kg, ho * wo, pc, kc, pitch, wo, nr, bp)
                    for col in range(0, kg, nr):  # each call sweeps all the taps
                        dw_micro(
                            kc, xf, koff, crs, pc, bp[col * kc : (col + nr) * kc], c_flat, col, kg,
                            min(nr, kg - col), tile, True,
                        )  # fmt: skip


@_jit
def _pack_gradient(gb, k0, kg, plane, pc, kc, pitch, wo, nr, bp):
    """B = G^T for the positions pc..pc+kc of the grid, as NR-column panels:
    ``bp[panel][q - pc][j] = g[k0 + panel NR + j, oh, ow]`` for q = oh pitch + ow, and 0 where
    ow >= Wo (the grid's gap) or past the last channel. ``gb`` is one image's (K, Ho, Wo)
    gradient, flat; each channel's row is read contiguously."""
    for panel in range(0, kg, nr):
        cols = min(nr, kg - panel)
        dst = np.uint64(panel * kc)
        if cols < nr:
            for t in range(kc * nr):
                bp[dst + np.uint64(t)] = 0.0
        first_row, last_row = pc // pitch, (pc + kc - 1) // pitch
        for j in range(cols):
            src = np.uint64((k0 + panel + j) * plane)
            for oh in range(first_row, last_row + 1):
                start = oh * pitch
                lo, mid, hi = max(start, pc), min(start + wo, pc + kc), min(start + pitch, pc + kc)
                for q in range(lo, mid):
                    bp[dst + np.uint64((q - pc) * nr + j)] = gb[src + np.uint64(oh * wo + q - start)]
                for q in range(max(mid, lo), hi):
                    bp[dst + np.uint64((q - pc) * nr + j)] = 0.0


def _geometry(x_shape, w_shape, stride, padding, dilation, groups):
    """Sizes of the padded grid the kernels work on.

    Each channel becomes Hp = H + 2 ph rows of ``pitch = W + gap`` values: the input row,
    then ``gap`` zeros. One run of zeros serves as the right padding of a row *and* the left
    padding of the next, so ``gap`` is pw (or more, when the padding reaches beyond the
    kernel's span, to keep pitch >= Wo), not 2 pw: for a 14 x 14 image with padding 1 a row
    costs 15 positions, not 16. Input column ``j`` of row ``i`` of channel ``c`` sits at
    ``(c Hp + i + ph) pitch + gap + j``; output position (oh, ow) is ``q = oh pitch + ow``.
    """
    n, c, h, w = x_shape
    k, cg, kh, kw = w_shape
    ph, pw = padding
    dh, dw = dilation
    hp = h + 2 * ph
    ho, wo = hp - dh * (kh - 1), w + 2 * pw - dw * (kw - 1)
    gap = pw + max(0, pw - dw * (kw - 1))
    return n, c, k, cg, kh, kw, ph, pw, dh, dw, hp, gap, w + gap, ho, wo


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


def _offsets(groups, cg, kh, kw, dh, dw, hp, pitch, shift):
    return np.stack([_tap_offsets(g * cg, cg, kh, kw, dh, dw, hp, pitch, shift) for g in range(groups)])


def _winograd_pays(x_shape, w_shape, padding) -> bool:
    """Whether F(2x2, 3x3) beats the implicit GEMM on this shape (measured over batches 1-64,
    32-256 channels, 7-56 pixels): its 16 GEMMs must be big enough to pay for the transforms
    -- 32 channels in and out, and C K >= 2048 (32 -> 32 lost by 5-20%, 32 -> 64 won by up to
    25%) -- and most of its 2 x 2 tiles must be real outputs (a 7 x 7 output computes 64%
    more than it keeps: 0.94x the implicit GEMM at 64 channels, 1.1-1.3x at 128-256)."""
    c, k = x_shape[1], w_shape[0]
    ho, wo = x_shape[2] + 2 * padding[0] - 2, x_shape[3] + 2 * padding[1] - 2
    return (
        min(c, k) >= WINOGRAD_MIN_CHANNELS
        and c * k >= WINOGRAD_MIN_CHANNEL_PRODUCT
        and winograd.tile_efficiency(ho, wo) >= WINOGRAD_MIN_EFFICIENCY
    )


def _threads_per_image(n: int, nthreads: int) -> bool:
    """Whether to give each thread whole images (padding each in its own cache): when the
    images split evenly enough between the threads; otherwise items of (image, group, chunk)."""
    return n % nthreads == 0 or n >= 4 * nthreads


ALGORITHMS = ("auto", "implicit", "winograd")


def choose_algorithm(x_shape, w_shape, stride, padding, dilation, groups, algorithm: str = "auto") -> str:
    """The method ``conv2d_forward`` uses for this geometry: ``'winograd'`` (F(2x2, 3x3),
    ``winograd.py``), ``'direct'`` (very few taps or output channels: ``_forward_direct``),
    ``'implicit'`` (the implicit GEMM) or ``'im2col'`` (strided: the NumPy reference).

    ``algorithm`` is the caller's wish: ``'auto'`` takes Winograd where it applies and
    ``_winograd_pays`` says it is faster; ``'implicit'`` never takes it; ``'winograd'``
    insists, and is an error where it does not apply."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"conv2d: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    fits = winograd.applicable(x_shape, w_shape, stride, padding, dilation, groups)
    if algorithm == "winograd" and not fits:
        raise ValueError(
            f"conv2d: the 'winograd' algorithm needs a 3x3 kernel, stride 1, dilation 1 and groups 1; got kernel "
            f"{tuple(w_shape[2:])}, stride {tuple(stride)}, dilation {tuple(dilation)}, groups {groups} "
            "(use algorithm='auto')"
        )
    if fits and (algorithm == "winograd" or (algorithm == "auto" and _winograd_pays(x_shape, w_shape, padding))):
        return "winograd"
    if not _implicit_ok(stride, padding, dilation, x_shape, w_shape):
        return "im2col"
    k, cg, kh, kw = w_shape
    return "direct" if cg * kh * kw <= DIRECT_TAPS or k // groups < gemm.MR else "implicit"


def conv2d_forward(x, w, stride, padding, dilation, groups, bias=None, algorithm="auto"):
    """Cross-correlation of (N, C, H, W) ``x`` with (K, C/groups, kh, kw) ``w``, plus the
    (K,) ``bias`` per output channel if given (added as the output is written).

    ``algorithm``: ``'implicit'`` (the implicit GEMM below), ``'winograd'`` (F(2x2, 3x3) in
    ``winograd.py``: 3 x 3, stride 1, no dilation, one group) or ``'auto'``; see
    ``choose_algorithm``."""
    method = choose_algorithm(x.shape, w.shape, stride, padding, dilation, groups, algorithm)
    if method == "im2col":
        return reference.conv2d_forward(x, w, stride, padding, dilation, groups, bias)
    mr, nr = _tile(x, w)
    if bias is None:
        bias = np.empty(0, dtype=x.dtype)
    elif bias.shape != (w.shape[0],) or bias.dtype != x.dtype:
        raise ValueError(
            f"conv2d: bias must have shape ({w.shape[0]},) and dtype {x.dtype}, got {bias.shape} {bias.dtype}"
        )
    bias = np.ascontiguousarray(bias)
    x = np.ascontiguousarray(x)
    if method == "winograd":
        out = winograd.conv2d_forward(x, np.ascontiguousarray(w), padding, bias, (mr, nr))
        if out is not None:
            return out
        # a NaN or an infinity: the implicit GEMM (or direct sum) keeps them where they belong
        method = choose_algorithm(x.shape, w.shape, stride, padding, dilation, groups, "implicit")
    n, c, k, cg, kh, kw, ph, pw, dh, dw, hp, gap, pitch, ho, wo = _geometry(
        x.shape, w.shape, stride, padding, dilation, groups
    )
    kg = k // groups
    crs = cg * kh * kw
    koffs = _offsets(groups, cg, kh, kw, dh, dw, hp, pitch, gap - pw)
    tail = dw * (kw - 1) + gap + nr  # the reads of the last tile run past the last row
    out = np.empty((n, k, ho, wo), dtype=x.dtype)
    if method == "direct":  # too few taps, or too few output channels for a tile
        xflat = _pad_flat(x, ph, gap, tail)
        _forward_direct(xflat, np.ascontiguousarray(w).reshape(k, crs), koffs, groups, ho, wo, pitch, bias, out)
        return out
    # B is read from the input, not packed, so one K slice can hold every tap (up to 2048):
    # each output tile is then written once. Positions are cut into equal chunks of <= QC.
    kc_block = crs if crs <= 2048 else 1024
    q_total = ho * pitch
    chunks = -(-q_total // QC)
    qc_block = -(-q_total // chunks // nr) * nr
    w2 = np.ascontiguousarray(w).reshape(groups, kg, crs)
    wpacked = np.stack([_pack_weights(w2[g], mr, kc_block) for g in range(groups)])
    nthreads = numba.get_num_threads()
    with gemm.slp_vectorize():
        if _threads_per_image(n, nthreads):
            threads = min(nthreads, n)
            _forward_per_thread(
                mr, nr, x, wpacked, koffs, kc_block, qc_block, kg, groups, ho, wo, ph, gap, tail, threads, bias, out
            )
        else:
            xflat = _pad_flat(x, ph, gap, tail)
            _forward_implicit(mr, nr, xflat, wpacked, koffs, kc_block, qc_block, kg, groups, ho, wo, pitch, bias, out)
    return out


def conv2d_backward_input(grad_out, w, x_shape, stride, padding, dilation, groups, algorithm="auto"):
    """dx: for stride 1, the forward convolution of ``grad_out`` with the flipped, transposed
    kernel and padding ``dilation (k - 1) - padding`` (by ``algorithm``, as in the forward pass)."""
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
    return conv2d_forward(grad_out, np.ascontiguousarray(flipped), (1, 1), pad, dilation, groups, algorithm=algorithm)


def conv2d_backward_weight(x, grad_out, w_shape, stride, padding, dilation, groups):
    """dW: a GEMM over positions and images of the output gradient and the shifted input."""
    if not _implicit_ok(stride, padding, dilation, x.shape, w_shape):
        return reference.conv2d_backward_weight(x, grad_out, w_shape, stride, padding, dilation, groups)
    mr, nr = _tile(x, grad_out)
    n, c, k, cg, kh, kw, ph, pw, dh, dw, hp, gap, pitch, ho, wo = _geometry(
        x.shape, w_shape, stride, padding, dilation, groups
    )
    kg = k // groups
    crs = cg * kh * kw
    koffs = _offsets(groups, cg, kh, kw, dh, dw, hp, pitch, gap - pw)
    nthreads = max(1, min(numba.get_num_threads(), n))
    partial = np.zeros((nthreads, groups, crs, kg), dtype=x.dtype)  # per thread and group: dW^T
    with gemm.slp_vectorize():
        _weight_grad_implicit(
            mr, nr, np.ascontiguousarray(x), np.ascontiguousarray(grad_out), koffs, groups, ph, gap,
            dw * (kw - 1) + gap, nthreads, partial,
        )  # fmt: skip
    # (groups, CRS, Kg) -> (groups, Kg, CRS) -> (K, Cg, kh, kw)
    return np.ascontiguousarray(partial.sum(axis=0).transpose(0, 2, 1)).reshape(w_shape)


def conv2d_forward_implicit(x, w, stride, padding, dilation, groups, bias=None):
    """``conv2d_forward`` without Winograd: the kernel registry's ``'implicit'`` choice."""
    return conv2d_forward(x, w, stride, padding, dilation, groups, bias, algorithm="implicit")


def conv2d_backward_input_implicit(grad_out, w, x_shape, stride, padding, dilation, groups):
    """``conv2d_backward_input`` without Winograd: the kernel registry's ``'implicit'`` choice."""
    return conv2d_backward_input(grad_out, w, x_shape, stride, padding, dilation, groups, algorithm="implicit")
