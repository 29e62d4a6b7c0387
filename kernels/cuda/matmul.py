"""Matrix products on the GPU: minidl's tiled GEMM (``matmul.cu``) and cuBLAS as the reference.

``matmul(a, b)`` has NumPy's semantics (1-D operands, broadcast batch dimensions) and runs the
CUDA C kernel of ``matmul.cu``. ``gemm`` is the lower-level entry point the convolution uses:
one launch computes a batch of products whose operands are addressed by leading dimensions and
per-batch strides, so that views (row slices, broadcast weights) need no copies.

How a call is planned, on the host:

* **Batch layout.** The broadcast batch shape is collapsed into at most two levels (outer,
  inner) with one element stride per level and operand (0 = broadcast). Dimensions merge when
  both operands are contiguous across them; if more than two levels remain, the operands are
  materialized (rare: e.g. ``(2, 1, 3, m, k) @ (1, 4, 3, k, n)``).
* **Tile shape.** float32 uses 128 x 128 tiles when there are enough of them to give every SM
  a block, else 64 x 64 tiles (4x more blocks); float64 uses 64 x 64.
* **Vector loads.** The 16-byte (float4 / double2) kernel variant needs k, n, the leading
  dimensions, the batch strides and the pointers to be multiples of 16 bytes; otherwise the
  scalar variant of the same kernel runs.
* **Split-K.** When even the small tiles leave SMs idle and k is long (the weight gradient of
  a convolution: a 128 x 1152 result summed over 25,088 positions), the k range is cut into
  chunks computed by separate blocks into separate partial results, which are then summed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .loader import float_suffix, function, i32, i64, import_cupy, sm_count

# name: (kernel name prefix, BM, BN, threads per block, dtype). The suffix _v4 / _v2 / _v1
# is the width of the global loads (see matmul.cu).
CONFIGS: dict[str, tuple[str, int, int, int, str]] = {
    "f32_128x128": ("gemm_f32_128x128", 128, 128, 256, "float32"),
    "f32_128x128occ2": ("gemm_f32_128x128occ2", 128, 128, 256, "float32"),
    "f32_128x64": ("gemm_f32_128x64", 128, 64, 128, "float32"),
    "f32_64x64": ("gemm_f32_64x64", 64, 64, 256, "float32"),
    "f64_64x64": ("gemm_f64_64x64", 64, 64, 256, "float64"),
    "f64_128x64": ("gemm_f64_128x64", 128, 64, 256, "float64"),
}
#: The tile shapes used when there are at least as many tiles as SMs, and otherwise.
LARGE = {"float32": "f32_128x128", "float64": "f64_64x64"}
SMALL = {"float32": "f32_64x64", "float64": "f64_64x64"}
_VECTOR = {"float32": 4, "float64": 2}  # elements per 16 bytes
_INT32_MAX = 2**31 - 1


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _padded_area(config: str, m: int, n: int) -> int:
    """Elements of C the tiles of ``config`` cover, edge tiles included (>= m * n)."""
    _, bm, bn, _, _ = CONFIGS[config]
    return _ceil_div(m, bm) * bm * _ceil_div(n, bn) * bn


def choose_config(dtype: str, m: int, n: int, count: int) -> str:
    """The tile shape for ``count`` products of size ``m x n``.

    Large tiles do more work per byte loaded, but only pay when there are enough of them to
    give every SM a block, and when the edge tiles do not waste much: a 64-row product in
    128 x 128 tiles computes twice the rows it needs (conv2d with 64 output channels).
    """
    large, small = LARGE[dtype], SMALL[dtype]
    _, bm, bn, _, _ = CONFIGS[large]
    enough = _ceil_div(m, bm) * _ceil_div(n, bn) * count >= sm_count()
    if enough and _padded_area(large, m, n) <= 1.15 * _padded_area(small, m, n):
        return large
    return small


def choose_splits(blocks: int, k: int) -> int:
    """How many k chunks to use when ``blocks`` tiles alone would leave SMs idle.

    Aim for about two blocks per SM, keep each chunk at least 256 long (so the extra partial
    results and their sum stay cheap next to the product), and never more than 64 chunks.
    """
    sms = sm_count()
    if blocks >= sms or k < 1024:
        return 1
    return max(1, min(_ceil_div(2 * sms, blocks), k // 256, 64))


def gemm(
    a: Any,
    b: Any,
    out: Any,
    m: int,
    n: int,
    k: int,
    lda: int,
    ldb: int,
    batch: tuple[int, int] = (1, 1),
    a_batch: tuple[int, int] = (0, 0),
    b_batch: tuple[int, int] = (0, 0),
    config: str | None = None,
    splits: int | None = None,
) -> Any:
    """``out[o, i] = A[o, i] @ B[o, i]`` for a batch of ``outer x inner`` products, in one launch.

    ``a`` and ``b`` are CuPy arrays used only for their data pointer (the first element) and
    dtype: ``A[o, i]`` is the ``m x k`` matrix at element offset ``o * a_batch[0] + i *
    a_batch[1]`` with rows ``lda`` elements apart; ``B[o, i]`` likewise (``k x n``, ``ldb``).
    A stride of 0 broadcasts the operand over that level. ``out`` must be C-contiguous and hold
    ``outer * inner * m * n`` elements, product ``(o, i)`` at offset ``(o * inner + i) * m * n``.
    ``config`` (a key of :data:`CONFIGS`) and ``splits`` override the automatic choices.
    """
    cp = import_cupy()
    outer, inner = batch
    count = outer * inner
    dtype = np.dtype(out.dtype).name
    if a.dtype != out.dtype or b.dtype != out.dtype or dtype not in _VECTOR:
        raise TypeError(f"gemm (cuda): operands must all be float32 or float64, got {a.dtype}, {b.dtype}, {out.dtype}")
    if not out.flags.c_contiguous or out.size != count * m * n:
        raise ValueError("gemm (cuda): out must be C-contiguous with outer * inner * m * n elements")
    if m == 0 or n == 0 or count == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    for name, value in (("m", m), ("n", n), ("k", k)):
        if value > _INT32_MAX:
            raise ValueError(f"gemm (cuda): {name} = {value} exceeds the kernel's 32-bit dimensions")
    config = config or choose_config(dtype, m, n, count)
    prefix, bm, bn, threads, config_dtype = CONFIGS[config]
    if config_dtype != dtype:
        raise ValueError(f"gemm (cuda): tile config {config!r} is for {config_dtype}, not {dtype}")

    # 16-byte vector loads only where every row start and vector is 16-byte aligned.
    vec = _VECTOR[dtype]
    aligned = all(v % vec == 0 for v in (k, n, lda, ldb, *a_batch, *b_batch)) and all(
        x.data.ptr % 16 == 0 for x in (a, b, out)
    )
    width = vec if aligned else 1

    tiles = _ceil_div(m, bm) * _ceil_div(n, bn)
    if splits is None:
        splits = choose_splits(tiles * count, k)
    # Chunks are whole multiples of 16 elements, so a chunk's A pointer stays 16-byte aligned.
    kchunk = _ceil_div(_ceil_div(k, max(1, splits)), 16) * 16
    splits = _ceil_div(k, kchunk)
    target = out if splits == 1 else cp.empty((splits, count * m * n), dtype=out.dtype)

    kernel = function("matmul.cu", f"{prefix}_v{width}")
    grid = (min(tiles, _INT32_MAX), 1, min(count * splits, 65535))
    kernel(
        grid,
        (threads,),
        (
            a,
            b,
            target,
            i32(m),
            i32(n),
            i32(k),
            i64(lda),
            i64(ldb),
            i64(n),
            i64(count),
            i64(inner),
            i64(a_batch[0]),
            i64(a_batch[1]),
            i64(b_batch[0]),
            i64(b_batch[1]),
            i64(inner * m * n),
            i64(m * n),
            i32(splits),
            i32(kchunk),
            i64(count * m * n),
        ),
    )
    if splits > 1:
        cp.sum(target, axis=0, out=out.reshape(-1))
    return out


def _matrix_operand(x: Any) -> tuple[Any, int]:
    """``x`` (copied only if its last two axes cannot be addressed as rows) and its row stride.

    The kernel reads element (r, c) of a matrix at ``r * ld + c``: the columns must be unit
    stride; the rows may be any non-negative distance apart (0 for rows broadcast by
    ``broadcast_to``). Negative or misaligned strides force a contiguous copy.
    """
    cp = import_cupy()
    item = x.itemsize
    rows, cols = x.shape[-2], x.shape[-1]
    strides = x.strides
    ok = all(s >= 0 and s % item == 0 for s in strides) and (cols == 1 or strides[-1] == item)
    if not ok:
        x = cp.ascontiguousarray(x)
        strides = x.strides
    ld = strides[-2] // item if rows > 1 else cols
    return x, ld


def _batch_strides(x: Any, batch: tuple[int, ...]) -> list[int]:
    """Element strides of ``x``'s batch axes, right-aligned to ``batch``; 0 where broadcast."""
    nb = x.ndim - 2
    out = [0] * len(batch)
    for d in range(nb):
        if x.shape[d] != 1:
            out[len(batch) - nb + d] = x.strides[d] // x.itemsize
    return out


def _collapse(batch: tuple[int, ...], sa: list[int], sb: list[int]) -> list[tuple[int, int, int]]:
    """Merge batch axes into as few (size, stride_a, stride_b) levels as the strides allow.

    Two neighbouring axes are one axis of size s1 * s2 when, for both operands, the outer
    stride equals the inner stride times the inner size (true for contiguous and for broadcast
    axes alike). The output is contiguous, so it always merges.
    """
    levels: list[tuple[int, int, int]] = []
    for size, a_stride, b_stride in zip(batch, sa, sb):
        if size == 1:
            continue
        if levels:
            psize, pa, pb = levels[-1]
            if pa == a_stride * size and pb == b_stride * size:
                levels[-1] = (psize * size, a_stride, b_stride)
                continue
        levels.append((size, a_stride, b_stride))
    return levels


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` with NumPy's semantics (1-D, 2-D, batched and broadcast operands), by ``matmul.cu``.

    Operands must be float32 or float64 CuPy arrays; mixed float dtypes promote as in NumPy.
    """
    return matmul_with(a, b, None)


def matmul_with(a: Any, b: Any, config: str | None) -> Any:
    """:func:`matmul` with a forced tile shape ``config`` (a key of :data:`CONFIGS`), for benchmarks."""
    cp = import_cupy()
    a, b = cp.asarray(a), cp.asarray(b)
    if a.dtype != b.dtype:
        common = np.result_type(a.dtype, b.dtype)
        a, b = a.astype(common, copy=False), b.astype(common, copy=False)
    float_suffix("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes {a.shape} and {b.shape}")
    # An outer product (k = 1) is one multiply per element: a broadcast multiply beats a GEMM.
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1 and b.shape[-2] == 1:
        with a.device:
            return cp.multiply(a, b)
    va = a[None, :] if a.ndim == 1 else a
    vb = b[:, None] if b.ndim == 1 else b
    m, k = va.shape[-2:]
    k2, n = vb.shape[-2:]
    if k != k2:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied: {k} != {k2}")
    try:
        batch = tuple(np.broadcast_shapes(va.shape[:-2], vb.shape[:-2]))
    except ValueError:
        raise ValueError(
            f"matmul: batch dimensions of shapes {a.shape} and {b.shape} cannot be broadcast together"
        ) from None
    with a.device:  # allocate and launch on the operands' GPU
        out = cp.empty(batch + (m, n), dtype=a.dtype)
        if out.size:
            _batched(va, vb, out, batch, m, n, k, config)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


def _batched(a: Any, b: Any, out: Any, batch: tuple[int, ...], m: int, n: int, k: int, config: str | None) -> None:
    """Plan the batch of ``a @ b`` into (at most) two stride levels and run one GEMM launch."""
    cp = import_cupy()
    a, lda = _matrix_operand(a)
    b, ldb = _matrix_operand(b)
    levels = _collapse(batch, _batch_strides(a, batch), _batch_strides(b, batch))
    if len(levels) > 2:
        a = cp.ascontiguousarray(cp.broadcast_to(a, batch + (m, k)))
        b = cp.ascontiguousarray(cp.broadcast_to(b, batch + (k, n)))
        lda, ldb = k, n
        count = int(np.prod(batch))
        levels = [(count, m * k, k * n)]
    while len(levels) < 2:
        levels.insert(0, (1, 0, 0))
    (outer, sao, sbo), (inner, sai, sbi) = levels
    gemm(a, b, out, m, n, k, lda, ldb, (outer, inner), (sao, sai), (sbo, sbi), config=config)


def matmul_cublas(a: Any, b: Any) -> Any:
    """``a @ b`` by ``cupy.matmul`` (cuBLAS): the reference path, and the one to compare against."""
    cp = import_cupy()
    return cp.matmul(a, b)
