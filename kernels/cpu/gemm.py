"""A packed, cache-blocked, register-tiled matrix multiply in Numba (the GotoBLAS design).

``C = A @ B`` costs 2 M N K flops but only M K + K N + M N memory. Doing it fast means
making every value loaded from memory feed as many multiply-adds as possible. Three levels:

1. **Register tile (the micro-kernel).** An MR x NR block of C (8 x 32 in float32) lives in
   16 AVX-512 registers for a whole sweep over k. Each step loads MR values of A and NR
   values of B and performs MR x NR fused multiply-adds: 40 loads feed 256 FMAs. The
   micro-kernels are generated straight-line code (``gemm_codegen.py``) so that LLVM's SLP
   vectorizer can put the accumulators in registers; Numba switches that vectorizer off by
   default, so this module turns it on while it compiles (``slp_vectorize``).
2. **Packing.** The micro-kernel reads A as MR-row panels and B as NR-column panels, each
   stored contiguously in the order it is consumed (``_pack_a``, ``_pack_b``). Packing copies
   O(MK + KN) values to make the O(MNK) loop read memory sequentially, whatever the
   original strides (a transposed operand costs nothing extra), and pads edges with zeros.
   The operands arrive flat, with their strides as plain numbers, and every index is
   unsigned, so that the copies vectorize: packing took half of a 64 x 784 x 256 product's
   time when it sliced the 2-D arrays, and a quarter to a third since. A row-major A and a
   transposed B turn rows into columns; they are transposed 8 x 8 at a time in vector
   registers (``transpose.py``).
3. **Cache blocking.** K is cut into KC = 512 slices, so that a B micro-panel (KC x NR)
   stays close to the core while the micro-kernel sweeps down a block of packed A (MC x KC)
   that stays in L2; B is packed NC columns at a time, a block that stays in L3.

Parallelism: C is cut into a grid of blocks, one per thread (``_gemm_grid``), and each thread
packs the rows of A and the columns of B that it reads itself. A packed panel that one core
writes and another reads has to cross between the cores' caches. With one packed copy
shared by the threads (GotoBLAS's way), a 64 x 784 x 256 product took 163 us in this
machine's slow spells, while its packing and its multiplying, timed apart, took 31 and 61. The
price is the smaller operand packed once per thread, which ``_thread_grid`` weighs against
the multiply-adds it saves. Batched products run one matrix per thread when there are enough
of them; products of a few million flops run on the calling thread.

Compile cost: a micro-kernel takes several seconds to compile, so every driver here is
compiled once per dtype (the operands' layout is data, not part of the type) and cached
on disk (``cache=True``); a warm process only loads the cache.
"""

from __future__ import annotations

import contextlib
import functools
import math

import numba
import numba.extending
import numpy as np

from . import gemm_micro
from .transpose import transpose8

# ``contract`` allows fused multiply-add. ``reassoc`` is left out on purpose: with it LLVM
# vectorizes the k-reduction instead of the tile and spills registers.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})
MC, KC, NC = 96, 512, 512
# Packing one value costs about as long as this many flops of the micro-kernel here (a copy
# runs at about 8 G values/s per core, the micro-kernel at about 270 GFLOP/s): the exchange
# rate by which ``_thread_grid`` weighs copies against multiply-adds.
COPY_FLOPS = 32
# Up to this many flops a product runs on the calling thread: starting the thread pool's
# parallel loop costs a couple of microseconds, a good part of such a product.
SERIAL_FLOPS = 2 * 1024 * 1024


def _jit(fn=None, **options):
    """``numba.njit`` with this module's options; usable as ``@_jit`` or ``@_jit(parallel=True)``."""
    decorate = numba.njit(cache=True, fastmath=set(FASTMATH), **options)
    return decorate if fn is None else decorate(fn)


micro_f32 = _jit(gemm_micro.micro_f32)
micro_f64 = _jit(gemm_micro.micro_f64)


def micro(kc, ap, bp, c, c_off0, ldc, mc, nr, tile, add):
    """The micro-kernel for the arrays' dtype, chosen when the caller is compiled."""
    raise NotImplementedError("micro is only callable from compiled code")


@numba.extending.overload(micro, jit_options={"cache": True, "fastmath": set(FASTMATH)})
def _micro_for_dtype(kc, ap, bp, c, c_off0, ldc, mc, nr, tile, add):
    # Resolved during type inference, so the drivers below are written once for both
    # dtypes and still cache on disk (a jitted function passed as an *argument* would put
    # the dispatcher object into the signature, which no later process can match).
    if ap.dtype == numba.types.float32:
        return lambda kc, ap, bp, c, c_off0, ldc, mc, nr, tile, add: micro_f32(
            kc, ap, bp, c, c_off0, ldc, mc, nr, tile, add
        )
    if ap.dtype == numba.types.float64:
        return lambda kc, ap, bp, c, c_off0, ldc, mc, nr, tile, add: micro_f64(
            kc, ap, bp, c, c_off0, ldc, mc, nr, tile, add
        )
    return None


@_jit
def _pack_a(af, a_off, rs, cs, i0, mc, p0, kc, mr, ap):
    """Rows i0..i0+mc, columns p0..p0+kc of A, as MR-row panels: ap[panel][k][i].

    A is given flat: ``A[i, k] = af[a_off + i * rs + k * cs]``. Every index is unsigned (Numba
    checks a signed index for wraparound, which stops LLVM from vectorizing the copy), and
    the common layouts get a loop of their own in which LLVM sees the unit stride: a
    transposed A (``rs == 1``) is copied in runs of MR; a row-major A (``cs == 1``) is
    transposed 8 x 8 at a time in vector registers (``transpose8``), and what is left of it
    (a partial panel, the last k steps) gathered, MR rows side by side.
    """
    urs, ucs = np.uint64(rs), np.uint64(cs)
    for panel in range(0, mc, mr):
        rows = min(mr, mc - panel)
        dst = np.uint64(panel * kc)
        src = np.uint64(a_off + (i0 + panel) * rs + p0 * cs)
        if rows < mr:
            for t in range(kc * mr):
                ap[dst + np.uint64(t)] = 0.0
        if rs == 1:
            for k in range(kc):
                d, s = dst + np.uint64(k * mr), src + np.uint64(k) * ucs
                for i in range(rows):
                    ap[d + np.uint64(i)] = af[s + np.uint64(i)]
        elif cs == 1:
            done = 0  # a full panel is transposed 8 x 8 in registers, the rest gathered
            if rows == mr == 8:
                done = kc - kc % 8
                for k0 in range(0, done, 8):
                    transpose8(af, src + np.uint64(k0), urs, ap, dst + np.uint64(k0 * 8), 8)
            for k in range(done, kc):
                d, s = dst + np.uint64(k * mr), src + np.uint64(k)
                for i in range(rows):
                    ap[d + np.uint64(i)] = af[s + np.uint64(i) * urs]
        else:
            for k in range(kc):
                d, s = dst + np.uint64(k * mr), src + np.uint64(k) * ucs
                for i in range(rows):
                    ap[d + np.uint64(i)] = af[s + np.uint64(i) * urs]


@_jit
def _pack_b(bf, b_off, rs, cs, p0, kc, j0, nc, nr, bp):
    """Rows p0..p0+kc, columns j0..j0+nc of B, as NR-column panels: bp[panel][k][j], with
    ``B[k, j] = bf[b_off + k * rs + j * cs]`` (see ``_pack_a``: a row-major B is copied in
    runs of NR, a transposed one -- the weights of ``x @ W.T`` -- transposed 8 x 8 at a time)."""
    urs, ucs = np.uint64(rs), np.uint64(cs)
    for panel in range(0, nc, nr):
        cols = min(nr, nc - panel)
        dst = np.uint64(panel * kc)
        src = np.uint64(b_off + p0 * rs + (j0 + panel) * cs)
        if cols < nr:
            for t in range(kc * nr):
                bp[dst + np.uint64(t)] = 0.0
        if cs == 1:
            for k in range(kc):
                d, s = dst + np.uint64(k * nr), src + np.uint64(k) * urs
                for j in range(cols):
                    bp[d + np.uint64(j)] = bf[s + np.uint64(j)]
        elif rs == 1:
            done = 0  # a full panel is transposed 8 x 8 blocks at a time, the rest gathered
            if cols == nr and nr % 8 == 0:
                done = kc - kc % 8
                for k0 in range(0, done, 8):
                    for j8 in range(0, nr, 8):
                        at = src + np.uint64(k0) + np.uint64(j8) * ucs
                        transpose8(bf, at, ucs, bp, dst + np.uint64(k0 * nr + j8), nr)
            for k in range(done, kc):
                d, s = dst + np.uint64(k * nr), src + np.uint64(k)
                for j in range(cols):
                    bp[d + np.uint64(j)] = bf[s + np.uint64(j) * ucs]
        else:
            for k in range(kc):
                d, s = dst + np.uint64(k * nr), src + np.uint64(k) * urs
                for j in range(cols):
                    bp[d + np.uint64(j)] = bf[s + np.uint64(j) * ucs]


@_jit
def _private_size(m, k, n, mr, nr):
    """Elements of scratch one thread packs into: (A block, B block, both together), each
    rounded up to a multiple of 64 elements so that every block starts on a cache line."""
    a_size = (((min(MC, m) + mr - 1) // mr) * mr * min(KC, k) + 63) // 64 * 64
    b_size = (((min(NC, n) + nr - 1) // nr) * nr * min(KC, k) + 63) // 64 * 64
    return a_size, b_size, a_size + b_size


@_jit
def _tiles(mc, nc, kc, nr, ap, bp, c, ldc, c_row, c_col, tile, add):
    """C[c_row:c_row+mc, c_col:c_col+nc] (+)= (packed A block) @ (packed B block).

    The B micro-panel (KC x NR) stays close to the core while the micro-kernel sweeps down
    the A block's MR-row panels, which stay in L2: one call per column of tiles.
    """
    for col in range(0, nc, nr):
        c_off = c_row * ldc + c_col + col
        micro(kc, ap, bp[col * kc : (col + nr) * kc], c, c_off, ldc, mc, min(nr, nc - col), tile, add)


@_jit
def _gemm_block(mr, nr, af, a_at, bf, b_at, k, i0, i1, j0, j1, c, ap, bp, tile):
    """C[i0:i1, j0:j1] = A[i0:i1, :] @ B[:, j0:j1] on the calling thread, packing block by
    block into ``ap`` (MC x KC) and ``bp`` (KC x NC)."""
    n = c.shape[1]
    cflat = c.reshape(-1)
    for jc in range(j0, j1, NC):
        nc = min(NC, j1 - jc)
        for pc in range(0, k, KC):
            kc = min(KC, k - pc)
            _pack_b(bf, b_at[0], b_at[1], b_at[2], pc, kc, jc, nc, nr, bp)
            for ic in range(i0, i1, MC):
                mc = min(MC, i1 - ic)
                _pack_a(af, a_at[0], a_at[1], a_at[2], ic, mc, pc, kc, mr, ap)
                _tiles(mc, nc, kc, nr, ap, bp, cflat, n, ic, jc, tile, pc > 0)


@_jit
def _gemm_serial(mr, nr, af, a_at, bf, b_at, m, k, n, c):
    """C = A B on the calling thread (for batches of small products)."""
    a_size, b_size, _ = _private_size(m, k, n, mr, nr)
    tile = np.empty((mr, nr), dtype=c.dtype)
    ap, bp = np.empty(a_size, dtype=c.dtype), np.empty(b_size, dtype=c.dtype)
    _gemm_block(mr, nr, af, a_at, bf, b_at, k, 0, m, 0, n, c, ap, bp, tile)


@_jit(parallel=True)
def _gemm_grid(mr, nr, af, a_at, bf, b_at, m, k, n, c, grid_rows, grid_cols, scratch):
    """C = A B on a grid of grid_rows x grid_cols threads.

    Thread (r, q) computes block (r, q) of C -- rows and columns cut at micro-panel
    boundaries, blocks differing by at most one panel -- and packs the A rows and B columns
    it reads itself, into its own ``_private_size`` elements of ``scratch``. So no packed
    panel is written by one core and read by another; the price is A packed grid_cols times
    and B grid_rows times, which ``_thread_grid`` keeps small.
    """
    panels_m, panels_n = (m + mr - 1) // mr, (n + nr - 1) // nr
    a_size, b_size, per = _private_size(m, k, n, mr, nr)
    for t in numba.prange(grid_rows * grid_cols):
        r, q = t // grid_cols, t % grid_cols
        i0, i1 = (r * panels_m // grid_rows) * mr, min(m, ((r + 1) * panels_m // grid_rows) * mr)
        j0, j1 = (q * panels_n // grid_cols) * nr, min(n, ((q + 1) * panels_n // grid_cols) * nr)
        ap = scratch[t * per : t * per + a_size]
        bp = scratch[t * per + a_size : t * per + a_size + b_size]
        tile = np.empty((mr, nr), dtype=c.dtype)
        if i0 < i1 and j0 < j1:
            _gemm_block(mr, nr, af, a_at, bf, b_at, k, i0, i1, j0, j1, c, ap, bp, tile)


@_jit(parallel=True)
def _gemm_batched(mr, nr, af, a_offs, a_strides, bf, b_offs, b_strides, m, k, n, c):
    """One matrix of the batch per thread: C[i] = A_i @ B_i, matrix i of A starting at
    ``af[a_offs[i]]`` with strides ``a_strides`` (and so for B)."""
    for i in numba.prange(c.shape[0]):
        a_at = (a_offs[i], a_strides[0], a_strides[1])
        b_at = (b_offs[i], b_strides[0], b_strides[1])
        _gemm_serial(mr, nr, af, a_at, bf, b_at, m, k, n, c[i])


_TILE = {np.dtype(np.float32): gemm_micro.MICRO_F32_TILE, np.dtype(np.float64): gemm_micro.MICRO_F64_TILE}
MR = gemm_micro.MICRO_F32_TILE[0]  # rows of the register tile (8 in both dtypes)


_compiled: set[np.dtype] = set()


@contextlib.contextmanager
def slp_vectorize():
    """Numba reads ``SLP_VECTORIZE`` when it compiles: switch it on around calls that may
    compile this package's micro-kernels (and off again: Numba keeps it off by default
    because of miscompilations elsewhere, so the kernels here are tested against NumPy)."""
    previous = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        numba.config.SLP_VECTORIZE = previous


def _ensure_compiled(dtype: np.dtype) -> None:
    """Compile (or load from the disk cache) the drivers for ``dtype``, once per process.

    The operands reach them flat, with their strides as numbers (``_flat``), so one
    compiled version serves every layout: a specialization per layout would cost the
    micro-kernel's compile time again. The result is always C-contiguous, which lets the
    micro-kernel store whole rows of its tile at once. Numba reads ``SLP_VECTORIZE`` at
    compile time, so it is switched on around the compilation.
    """
    if dtype in _compiled:
        return
    t = numba.from_dtype(dtype)
    flat = numba.types.Array(t, 1, "C")
    out, out_stack = numba.types.Array(t, 2, "C"), numba.types.Array(t, 3, "C")
    i64 = numba.types.int64
    offsets = numba.types.Array(i64, 1, "C")
    at, strides = numba.types.UniTuple(i64, 3), numba.types.UniTuple(i64, 2)
    with slp_vectorize():
        for driver, signature in (  # the serial driver first: the batched one calls it
            (_gemm_serial, (i64, i64, flat, at, flat, at, i64, i64, i64, out)),
            (_gemm_grid, (i64, i64, flat, at, flat, at, i64, i64, i64, out, i64, i64, flat)),
            (_gemm_batched, (i64, i64, flat, offsets, strides, flat, offsets, strides, i64, i64, i64, out_stack)),
        ):
            driver.disable_compile(False)
            driver.compile(signature)
            # From now on every call runs this machine code; nothing compiles without SLP.
            driver.disable_compile(True)
    _compiled.add(dtype)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for float32 or float64 with NumPy's semantics (1-D, 2-D, broadcast batches).

    ``out``, if given, must have the result's shape and dtype and is overwritten.
    """
    if a.dtype != b.dtype or a.dtype not in _TILE:
        raise TypeError(f"gemm: expected two float32 or two float64 arrays, got {a.dtype} and {b.dtype}")
    squeeze = []
    if a.ndim == 1:
        a = a[None, :]
        squeeze.append(-2)
    if b.ndim == 1:
        b = b[:, None]
        squeeze.append(-1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"gemm: shapes {a.shape} and {b.shape} cannot be multiplied")
    m, n = a.shape[-2], b.shape[-1]
    if a.ndim == b.ndim == 2:  # the common case, without the general bookkeeping's microseconds
        batch, shape = (), (m, n)
    else:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        shape = batch + (m, n)
    result_shape = tuple(s for i, s in enumerate(shape) if i - len(shape) not in squeeze) if squeeze else shape
    if out is not None and (out.shape != result_shape or out.dtype != a.dtype):
        raise ValueError(f"gemm: out has shape {out.shape} and dtype {out.dtype}; expected {result_shape}, {a.dtype}")
    if out is not None and out.flags.c_contiguous:
        c = out.reshape(shape)
    else:
        c = empty_faulted(shape, a.dtype)
    if c.size and a.shape[-1]:
        _run(a, b, c, batch)
    elif c.size:
        c[...] = 0  # an empty sum
    if out is None:
        return c.reshape(result_shape)
    if c.base is not out and c is not out:
        out[...] = c.reshape(result_shape)
    return out


_scratch: dict[np.dtype, np.ndarray] = {}


FAULT_IN_BYTES = 1 << 22


def empty_faulted(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, its pages touched on the calling thread when it is large.

    A fresh multi-megabyte array is backed by no memory until first written. Left to the
    parallel kernel, the first writes fault the pages in from two threads at once, which
    here cost a 2048 x 2048 float64 product 35 ms of its 85; one write per 4 KB page from the
    calling thread costs about 1 ms.
    """
    out = np.empty(shape, dtype=dtype)
    if out.nbytes >= FAULT_IN_BYTES:
        out.reshape(-1)[:: 4096 // out.itemsize] = 0
    return out


def aligned_empty(size: int, dtype: np.dtype, alignment: int = 64) -> np.ndarray:
    """An uninitialized 1-D array whose first element sits on a cache-line boundary.

    NumPy aligns large arrays to 16 bytes only; a 64-byte vector load from a packed panel
    that starts 16 bytes into a cache line touches two lines, every time.
    """
    raw = np.empty(size + alignment, dtype=dtype)
    skip = (-raw.ctypes.data % alignment) // raw.itemsize
    return raw[skip : skip + size]


def scratch(dtype: np.dtype, size: int) -> np.ndarray:
    """A reusable, cache-line aligned 1-D buffer of at least ``size`` elements (grown by half
    again when short)."""
    buf = _scratch.get(dtype)
    if buf is None or buf.size < size:
        buf = aligned_empty(max(size, int(1.5 * (0 if buf is None else buf.size))), dtype)
        _scratch[dtype] = buf
    return buf


def _flat(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A stack of matrices (..., rows, cols) as (flat data, row stride, column stride) in
    elements. Row-major and transposed (column-major) matrices are used in place; any other
    layout (a strided slice, say) is copied first."""
    if x.flags.c_contiguous:
        return x.reshape(-1), x.shape[-1], 1
    swapped = x.swapaxes(-1, -2)
    if swapped.flags.c_contiguous:
        return swapped.reshape(-1), 1, x.shape[-2]
    x = np.ascontiguousarray(x)
    return x.reshape(-1), x.shape[-1], 1


@functools.lru_cache(maxsize=1024)
def _thread_grid(m: int, k: int, n: int, mr: int, nr: int, nthreads: int) -> tuple[int, int]:
    """The grid (rows x columns of C) that ``_gemm_grid`` cuts an m x k x n product into.

    Each thread packs its own rows of A (once per NC-column chunk of its block) and its own
    columns of B, then multiplies them. The grid is the one whose slowest thread has the
    least to do, a copy counted as ``COPY_FLOPS`` flops. On two threads that cuts C across
    its longer side (a 64 x 784 x 256 product by columns: A, the smaller operand, is
    packed twice); on many threads, a squarish product gets a squarish grid.
    """
    panels_m, panels_n = -(-m // mr), -(-n // nr)
    best, best_cost = (1, 1), math.inf
    for rows in range(1, nthreads + 1):
        rows_used, cols_used = min(rows, panels_m), min(nthreads // rows, panels_n)
        mt, nt = -(-panels_m // rows_used) * mr, -(-panels_n // cols_used) * nr
        cost = COPY_FLOPS * (mt * k * -(-nt // NC) + k * nt) + 2 * mt * nt * k
        if cost < best_cost:
            best, best_cost = (rows_used, cols_used), cost
    return best


def _multiply(mr, nr, af, a_at, bf, b_at, m, k, n, c, grid: tuple[int, int]) -> None:
    """One product C = A B, C cut into a ``grid`` of (rows, columns) blocks, one per thread."""
    rows, cols = grid
    buf = scratch(c.dtype, rows * cols * _private_size(m, k, n, mr, nr)[2])
    _gemm_grid(mr, nr, af, a_at, bf, b_at, m, k, n, c, rows, cols, buf)


def _run(a: np.ndarray, b: np.ndarray, c: np.ndarray, batch: tuple) -> None:
    _ensure_compiled(a.dtype)
    mr, nr = _TILE[a.dtype]
    nthreads = numba.get_num_threads()
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    af, a_rs, a_cs = _flat(a)
    bf, b_rs, b_cs = _flat(b)
    if not batch:
        if nthreads == 1 or 2 * m * n * k <= SERIAL_FLOPS:
            _gemm_serial(mr, nr, af, (0, a_rs, a_cs), bf, (0, b_rs, b_cs), m, k, n, c)
        else:
            grid = _thread_grid(m, k, n, mr, nr, nthreads)
            _multiply(mr, nr, af, (0, a_rs, a_cs), bf, (0, b_rs, b_cs), m, k, n, c, grid)
        return
    count = math.prod(batch)
    # where each output matrix's operands start (broadcast batch dimensions repeat a matrix)
    a_offs = np.broadcast_to(np.arange(math.prod(a.shape[:-2])).reshape(a.shape[:-2]), batch).flatten() * (m * k)
    b_offs = np.broadcast_to(np.arange(math.prod(b.shape[:-2])).reshape(b.shape[:-2]), batch).flatten() * (k * n)
    c3 = c.reshape((count, m, n))
    if count >= nthreads and 2 * m * n * k < 2 * KC * MC * NC:
        _gemm_batched(mr, nr, af, a_offs, (a_rs, a_cs), bf, b_offs, (b_rs, b_cs), m, k, n, c3)
    else:
        grid = _thread_grid(m, k, n, mr, nr, nthreads)
        for i in range(count):
            a_at, b_at = (int(a_offs[i]), a_rs, a_cs), (int(b_offs[i]), b_rs, b_cs)
            _multiply(mr, nr, af, a_at, bf, b_at, m, k, n, c3[i], grid)
