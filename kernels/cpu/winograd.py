"""3 x 3 convolution by Winograd's minimal filtering algorithm F(2 x 2, 3 x 3).

A direct 3 x 3 convolution spends 9 multiply-adds per input channel on every output. Winograd
(as brought to convolutional networks by Lavin and Gray, 2016) computes a 2 x 2 block of
outputs from a 4 x 4 patch of input with 16 multiplications instead of 36:

    Y = A^T [ (G g G^T)  *  (B^T d B) ] A          (* elementwise, 4 x 4)

with g the 3 x 3 filter, d the 4 x 4 input patch (its tiles overlap by two), and

    B^T = | 1  0 -1  0 |     G = |  1    0    0  |     A^T = | 1  1  1  0 |
          | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
          | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
          | 0  1  0 -1 |         |  0    0    1  |

Summed over input channels, the elementwise product becomes, for each of the 16 positions
``xn`` of the 4 x 4 transform, a matrix product over channels:

    M[xn][k, t] = sum_c U[xn][k, c] V[xn][c, t]        U = G g G^T,  V = B^T d B

for every tile t of the output. So a convolution is 16 GEMMs of (K x C) by (C x tiles), with
2.25 times fewer multiply-adds than the direct or implicit-GEMM one, plus the transforms,
which are additions only. The GEMMs run on the implicit-GEMM micro-kernel of ``conv.py``
(``conv_micro``), whose B operand is read from a matrix with a row stride: here V.

The price is rounding: each output is a signed sum of transformed values instead of a plain
dot product, so it carries about twice the rounding error of the direct sum (still far below
the test tolerance of float32 sums; larger tiles such as F(4 x 4, 3 x 3) save more
multiplications but grow the error by an order of magnitude, which is why this is F(2, 3)).

How the work is laid out, per thread, one block of tiles at a time:

1. **Input planes.** The zero-padded image is split into four *parity planes*,
   ``plane[rp][cp][c][i, j] = xpad[c, 2i + rp, 2j + cp]``. The 4 x 4 patch of tile
   (ty, tx) is then rows ty and ty+1, columns tx and tx+1 of the four planes: in a plane with
   ``half`` columns per row the tile sits at offset ``f = ty * half + tx``, and every element
   of its patch at ``f`` plus a constant. One flat loop over f then transforms all the tiles of
   an image with unit-stride loads, which vectorize. ``half = tw + 1`` (a row needs the next
   column), so the slot ``f = ty * half + tw`` of each row is a junk tile, transformed and
   multiplied like the others and never written out (1 slot in 8 for a 14 x 14 image, 1 in
   15 for 28 x 28).
2. **V = B^T d B**, as 16 loops (one per ``xn``) of four signed loads each: a loop that wrote
   all 16 outputs at once would have 32 data streams, too many for LLVM's alias checks, and
   it would stay scalar.
3. **The 16 GEMMs**, one MR-row panel of output channels at a time, into M.
4. **Y = A^T M A** for the panel's channels, vectorized over the tiles into four planes
   (top-left, top-right, bottom-left, bottom-right of each 2 x 2 block), then scattered to
   the output rows with the bias added.

A block holds whole small images, about ``BLOCK_TILES`` = 256 tiles of them (four 14 x 14
images), or one large image whole, while its V fits in ``V_BLOCK_BYTES``, or slices of a
larger one. Each value of V that the micro-kernel loads serves a panel of 8 output channels
(16 flops per load), which the L3 cache keeps up with, so a large image's V need not fit in
L2 -- cut to L2's size, the 28 x 28 x 128-channel layer took 16.5 ms instead of 11.6. Small
images gain nothing from bigger blocks, and lose when the caches are cold, as they are in a
training step, where the other layers evict V between calls: the 14 x 14 layer took 1.10 ms
with blocks of four images against 1.32 with 32, after a pass that flushed the caches. A
block of 256 tiles beat one sized by bytes (512 KB of V) by 5-20% where the channel count
was 64 or more, and tied elsewhere.
"""

from __future__ import annotations

import numba
import numpy as np

from . import gemm
from .conv_tiles import conv_micro
from .gemm import _jit

# A block of tiles per thread (see the docstring): small images are grouped up to about
# BLOCK_TILES tiles; a large image is taken whole up to V_BLOCK_BYTES of V, and cut beyond.
BLOCK_TILES = 256
V_BLOCK_BYTES = 4 * 1024 * 1024
# Rows of B^T as (tap, sign, tap, sign): row i of B^T d is s0 d[tap0] + s1 d[tap1].
B_T_ROWS = np.array([[0, 1, 2, -1], [1, 1, 2, 1], [2, 1, 1, -1], [1, 1, 3, -1]], dtype=np.int64)
# Padding of row strides, in elements: a stride that is a multiple of 4 KB makes every
# stream of a transform fall into the same L1 set (and alias in the store buffer).
STRIDE_PAD = 16


def tile_efficiency(ho: int, wo: int) -> float:
    """The share of the computed outputs that are real: 2 x 2 tiles, plus one junk tile per
    row of tiles (0.875 for a 14 x 14 output, 0.61 for 7 x 7)."""
    th, tw = -(-ho // 2), -(-wo // 2)
    return ho * wo / (4 * th * (tw + 1))


def applicable(x_shape, w_shape, stride, padding, dilation, groups) -> bool:
    """Whether F(2x2, 3x3) computes this convolution: 3 x 3, stride 1, no dilation, one group."""
    return (
        tuple(w_shape[2:]) == (3, 3)
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and groups == 1
        and x_shape[2] + 2 * padding[0] >= 3
        and x_shape[3] + 2 * padding[1] >= 3
    )


@_jit(parallel=True)
def transform_weights(w, mr):
    """U[xn] = G g G^T for every filter g = w[k, c], as MR-row panels of each (K, C) matrix
    U[xn], the layout ``conv_micro`` reads A in: ``up[xn, panel * MR * C + c * MR + i]``."""
    k, c = w.shape[0], w.shape[1]
    rows = -(-k // mr) * mr
    # rows padded off a multiple of 4 KB: the 16 output streams would share one L1 set
    up = np.empty((16, rows * c + STRIDE_PAD), dtype=w.dtype)
    if rows > k:  # the last panel's missing rows are zero: they add nothing
        for xn in range(16):
            for ch in range(c):
                for i in range(k % mr, mr):
                    up[xn, (rows - mr) * c + ch * mr + i] = 0.0
    flat = up.reshape(-1)
    wf = w.reshape(-1)
    stride = np.uint64(rows * c + STRIDE_PAD)
    half = w.dtype.type(0.5)
    for kk in numba.prange(k):
        at0 = (kk // mr) * mr * c + kk % mr
        for ch in range(c):  # consecutive kk of a panel write neighbouring values
            o = np.uint64((kk * c + ch) * 9)
            g00, g01, g02 = wf[o], wf[o + np.uint64(1)], wf[o + np.uint64(2)]
            g10, g11, g12 = wf[o + np.uint64(3)], wf[o + np.uint64(4)], wf[o + np.uint64(5)]
            g20, g21, g22 = wf[o + np.uint64(6)], wf[o + np.uint64(7)], wf[o + np.uint64(8)]
            # G g: four rows of three
            t = (
                (g00, g01, g02),
                (half * (g00 + g10 + g20), half * (g01 + g11 + g21), half * (g02 + g12 + g22)),
                (half * (g00 - g10 + g20), half * (g01 - g11 + g21), half * (g02 - g12 + g22)),
                (g20, g21, g22),
            )
            at = np.uint64(at0 + ch * mr)
            for a in range(4):  # (G g) G^T, row a: four values
                t0, t1, t2 = t[a]
                base = np.uint64(4 * a) * stride + at
                flat[base] = t0
                flat[base + stride] = half * (t0 + t1 + t2)
                flat[base + np.uint64(2) * stride] = half * (t0 - t1 + t2)
                flat[base + np.uint64(3) * stride] = t2
    return up


@_jit
def _fill_planes(image, ph, pw, planes, half, psize):
    """Copy one (C, H, W) image into its four parity planes (see the module docstring):
    ``planes[((rp * 2 + cp) * C + c) * psize + i * half + j] = xpad[c, 2i + rp, 2j + cp]``.
    Only the image's own positions are written; the padding stays zero from the start.
    Returns whether every value was finite (``v * 0`` is 0 exactly for finite v, NaN else)."""
    c, h, w = image.shape
    first = pw % 2  # the column parity of input column 2m (padded column 2m + pw)
    ja, jb = pw // 2, (pw + 1) // 2
    pairs = w // 2
    probe = image.dtype.type(0.0)
    for ch in range(c):
        for y in range(h):
            rp, i = (y + ph) % 2, (y + ph) // 2
            src = image[ch, y]
            at_a = np.uint64(((rp * 2 + first) * c + ch) * psize + i * half + ja)
            at_b = np.uint64(((rp * 2 + 1 - first) * c + ch) * psize + i * half + jb)
            for m in range(pairs):  # columns 2m and 2m+1 land in the two planes, side by side
                um = np.uint64(m)
                even, odd = src[2 * um], src[2 * um + np.uint64(1)]
                planes[at_a + um] = even
                planes[at_b + um] = odd
                probe += even * 0.0 + odd * 0.0
            if w % 2:
                planes[at_a + np.uint64(pairs)] = src[w - 1]
                probe += src[w - 1] * 0.0
    return probe == 0.0


@_jit
def _input_transform(planes, c, psize, half, f0, nf, v, slot0, vx, ldv, bt):
    """V[xn][c, slot0 + f - f0] = (B^T d B)[xn] for the tiles f0 <= f < f0+nf of one image.

    Entry (i, j) of B^T d B is ``sum s_a s_b d[row_a, col_b]`` over the two taps of row i and
    the two of row j of B^T: four signed loads. Patch element (dy, dx) of tile f lives in
    plane (dy % 2, dx % 2) at ``f + (dy // 2) * half + dx // 2``."""
    for i in range(4):
        for j in range(4):
            ra, sra, rb, srb = bt[i, 0], bt[i, 1], bt[i, 2], bt[i, 3]
            ca, sca, cb, scb = bt[j, 0], bt[j, 1], bt[j, 2], bt[j, 3]
            o_aa = ((ra % 2) * 2 + ca % 2) * c * psize + (ra // 2) * half + ca // 2
            o_ab = ((ra % 2) * 2 + cb % 2) * c * psize + (ra // 2) * half + cb // 2
            o_ba = ((rb % 2) * 2 + ca % 2) * c * psize + (rb // 2) * half + ca // 2
            o_bb = ((rb % 2) * 2 + cb % 2) * c * psize + (rb // 2) * half + cb // 2
            s_aa = planes.dtype.type(sra * sca)
            s_ab = planes.dtype.type(sra * scb)
            s_ba = planes.dtype.type(srb * sca)
            s_bb = planes.dtype.type(srb * scb)
            for ch in range(c):
                at = np.uint64(ch * psize + f0)
                p_aa, p_ab = at + np.uint64(o_aa), at + np.uint64(o_ab)
                p_ba, p_bb = at + np.uint64(o_ba), at + np.uint64(o_bb)
                dst = np.uint64((i * 4 + j) * vx + ch * ldv + slot0)
                for f in range(nf):
                    u = np.uint64(f)
                    v[dst + u] = (
                        s_aa * planes[p_aa + u]
                        + s_ab * planes[p_ab + u]
                        + s_ba * planes[p_ba + u]
                        + s_bb * planes[p_bb + u]
                    )


@_jit
def _output_transform(m, mx, kk, ldm, nb, y):
    """The 2 x 2 outputs Y = A^T M A of channel ``kk`` (of the panel in M) for the block's
    ``nb`` tiles, as four planes ``y[p * ldm + t]``: p = 0, 1 the top row's left and right
    output, p = 2, 3 the bottom row's."""
    ux = np.uint64(mx)
    src = np.uint64(kk * ldm)
    y1, y2, y3 = np.uint64(ldm), np.uint64(2 * ldm), np.uint64(3 * ldm)
    for t in range(nb):
        u = np.uint64(t)
        o = src + u
        m0 = m[o]
        m1 = m[o + ux]
        m2 = m[o + np.uint64(2) * ux]
        m3 = m[o + np.uint64(3) * ux]
        m4 = m[o + np.uint64(4) * ux]
        m5 = m[o + np.uint64(5) * ux]
        m6 = m[o + np.uint64(6) * ux]
        m7 = m[o + np.uint64(7) * ux]
        m8 = m[o + np.uint64(8) * ux]
        m9 = m[o + np.uint64(9) * ux]
        m10 = m[o + np.uint64(10) * ux]
        m11 = m[o + np.uint64(11) * ux]
        m12 = m[o + np.uint64(12) * ux]
        m13 = m[o + np.uint64(13) * ux]
        m14 = m[o + np.uint64(14) * ux]
        m15 = m[o + np.uint64(15) * ux]
        # A^T M: the top row sums M's rows 0, 1, 2; the bottom row is rows 1 - 2 - 3
        a0, a1, a2, a3 = m0 + m4 + m8, m1 + m5 + m9, m2 + m6 + m10, m3 + m7 + m11
        b0, b1, b2, b3 = m4 - m8 - m12, m5 - m9 - m13, m6 - m10 - m14, m7 - m11 - m15
        # ... times A: the same on the columns
        y[u] = a0 + a1 + a2
        y[y1 + u] = a1 - a2 - a3
        y[y2 + u] = b0 + b1 + b2
        y[y3 + u] = b1 - b2 - b3


@_jit
def _scatter(y, ldm, slot0, f0, nf, half, tw, ho, wo, plane, shift):
    """Write the outputs of tiles f0 <= f < f0+nf of one image (at y's slots slot0 + f - f0)
    into its (Ho, Wo) output ``plane`` (flat), adding ``shift``; the junk tiles (tx = tw)
    and the outputs past an odd Ho or Wo are dropped.

    One flat walk over the tiles, counting (ty, tx) along: a loop per row of tiles would be
    too short (7 tiles for a 14 x 14 output) for LLVM's vector code, and entering it, with
    its overlap checks, cost more than the stores (0.23 ms of a 1.1 ms layer, now 0.17)."""
    y1, y2, y3 = np.uint64(ldm), np.uint64(2 * ldm), np.uint64(3 * ldm)
    uwo = np.uint64(wo)
    ty, tx = f0 // half, f0 % half
    at = np.uint64(slot0)
    for _ in range(nf):
        if tx < tw:
            top = np.uint64(2 * ty * wo + 2 * tx)
            right = 2 * tx + 1 < wo
            plane[top] = y[at] + shift
            if right:
                plane[top + np.uint64(1)] = y[y1 + at] + shift
            if 2 * ty + 1 < ho:
                plane[top + uwo] = y[y2 + at] + shift
                if right:
                    plane[top + uwo + np.uint64(1)] = y[y3 + at] + shift
        at += np.uint64(1)
        tx += 1
        if tx == half:
            tx = 0
            ty += 1


@_jit
def _scratch_sizes(c, th, tw, ldv, vx, mr, nr):
    """Elements of a thread's planes, V, M, Y and register tile, each rounded up to whole
    cache lines of float32 (16 values) so that every part starts on one."""
    psize = (th + 1) * (tw + 1) + 1
    parts = (4 * c * psize, 16 * vx + nr, 16 * (mr * ldv + STRIDE_PAD), 4 * ldv, mr * nr)
    return [-(-p // 16) * 16 for p in parts]


@_jit(parallel=True)
def _winograd(
    mr, nr, x, up, koffs, ldv, vx, k, ph, pw, th, tw, images_per_block, slots_per_block, chunks, bias, out, finite, work
):
    """The forward pass. Work items are blocks of tiles -- ``images_per_block`` whole images,
    or (one image, cut in ``chunks``) its tiles f0 .. f0+slots_per_block -- dealt to the
    threads in turn; each thread keeps its own planes, V, M and output scratch in its row of
    ``work`` (reused from call to call: fresh megabytes would be faulted in on every call).
    V is ``v[xn * vx + c * ldv + t]`` (``koffs[xn, c]`` locates its rows for ``conv_micro``),
    M ``m[xn * mx + kk * ldm + t]``.
    ``finite[t]`` is cleared when thread t met a NaN or infinity in the input."""
    n, c = x.shape[0], x.shape[1]
    ho, wo = out.shape[2], out.shape[3]
    half = tw + 1
    psize = (th + 1) * half + 1  # tile f reads up to f + half + 1
    slots = th * half  # tiles of one image, junk ones included
    ldm = ldv
    mx = mr * ldm + STRIDE_PAD
    nthreads = work.shape[0]
    sizes = _scratch_sizes(c, th, tw, ldv, vx, mr, nr)
    items = -(-n // images_per_block) * chunks
    flat_out = out.reshape(n, k, ho * wo)
    for t in numba.prange(nthreads):
        at = 0
        planes = work[t, at : at + sizes[0]]
        planes[:] = 0.0
        at += sizes[0]
        v = work[t, at : at + sizes[1]]
        at += sizes[1]
        m = work[t, at : at + sizes[2]]
        at += sizes[2]
        y = work[t, at : at + sizes[3]]
        at += sizes[3]
        tile = work[t, at : at + mr * nr].reshape(mr, nr)
        filled = -1
        for item in range(t, items, nthreads):
            if images_per_block > 1:
                b0, b1 = item * images_per_block, min(n, (item + 1) * images_per_block)
                f0, nf = 0, slots
            else:
                b0, b1 = item // chunks, item // chunks + 1
                f0 = (item % chunks) * slots_per_block
                nf = min(slots_per_block, slots - f0)
            nb = (b1 - b0) * nf
            for b in range(b0, b1):
                if b != filled:
                    if not _fill_planes(x[b], ph, pw, planes, half, psize):
                        finite[t] = False
                    filled = b
                _input_transform(planes, c, psize, half, f0, nf, v, (b - b0) * nf, vx, ldv, B_T_ROWS)
            for row in range(0, k, mr):
                rows = min(mr, k - row)
                for xn in range(16):
                    conv_micro(
                        c, up[xn, row * c : (row + mr) * c], v, koffs[xn], 0, nb, m, xn * mx, ldm, rows, tile, False
                    )
                for kk in range(rows):
                    _output_transform(m, mx, kk, ldm, nb, y)
                    shift = bias[row + kk] if bias.size else 0.0
                    for b in range(b0, b1):
                        _scatter(y, ldm, (b - b0) * nf, f0, nf, half, tw, ho, wo, flat_out[b, row + kk], shift)


def conv2d_forward(x: np.ndarray, w: np.ndarray, padding, bias: np.ndarray, tile: tuple[int, int]) -> np.ndarray | None:
    """Cross-correlation of (N, C, H, W) ``x`` with (K, C, 3, 3) ``w`` (stride 1, no dilation,
    one group), plus ``bias`` (shape (K,), or empty for none), by F(2x2, 3x3).
    ``tile`` is the micro-kernel's (MR, NR) for the dtype; the arrays are C-contiguous.

    Returns None when the input or the weights hold a NaN or an infinity: the transforms mix
    the values of a tile, so an infinity would come out as NaN, and spread to outputs whose
    direct sum never reads it. The caller then convolves by a direct sum instead."""
    if not np.isfinite(w).all():
        return None
    mr, nr = tile
    n, c, h, wd = x.shape
    k = w.shape[0]
    ph, pw = padding
    ho, wo = h + 2 * ph - 2, wd + 2 * pw - 2
    th, tw = -(-ho // 2), -(-wo // 2)
    slots = th * (tw + 1)
    # a block: small images grouped up to BLOCK_TILES tiles, a large image whole while its V
    # (16 C values per tile) fits in V_BLOCK_BYTES, and cut beyond that
    per_slot = 16 * c * x.itemsize
    budget = max(nr, V_BLOCK_BYTES // per_slot // nr * nr)
    nthreads = numba.get_num_threads()
    if slots <= budget and n >= nthreads:
        slots_per_block = slots
        images_per_block = max(1, min(BLOCK_TILES // slots, -(-n // nthreads)))
    elif slots <= budget:  # fewer images than threads: cut each one's tiles between them
        slots_per_block = max(nr, -(-slots // -(-nthreads // n) // nr) * nr)
        images_per_block = 1
    else:
        pieces = -(-slots // budget)
        slots_per_block = -(-slots // pieces // nr) * nr
        images_per_block = 1
    chunks = 1 if images_per_block > 1 else -(-slots // slots_per_block)  # work items per image
    items = -(-n // images_per_block) * chunks
    # the micro-kernel reads whole NR-wide tiles: V's rows hold the block rounded up
    ldv = -(-(images_per_block * slots_per_block) // nr) * nr + STRIDE_PAD
    vx = c * ldv + STRIDE_PAD
    koffs = (np.arange(16)[:, None] * vx + np.arange(c)[None, :] * ldv).astype(np.uint64)
    up = transform_weights(w, mr)
    out = np.empty((n, k, ho, wo), dtype=x.dtype)
    threads = min(nthreads, items)
    finite = np.ones(threads, dtype=np.bool_)
    # the threads' scratch rows, kept between calls (fresh megabytes would fault in each time)
    row = sum(_scratch_sizes(c, th, tw, ldv, vx, mr, nr))
    work = gemm.scratch(x.dtype, threads * row)[: threads * row].reshape(threads, row)
    with gemm.slp_vectorize():
        _winograd(
            mr, nr, x, up, koffs, ldv, vx, k, ph, pw, th, tw, images_per_block, slots_per_block, chunks,
            bias, out, finite, work,
        )  # fmt: skip
    return out if finite.all() else None
