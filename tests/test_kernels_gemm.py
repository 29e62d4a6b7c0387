"""The packed Numba GEMM against NumPy: odd sizes, size 1, every layout, batches with
broadcasting, ``out=``, float32 and float64; and the generated micro-kernels are current."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.backend.kernel_loader import import_kernels

import_kernels()
import minidl.kernels.cpu.gemm as gemm  # noqa: E402
import minidl.kernels.cpu.gemm_codegen as codegen  # noqa: E402
from minidl.kernels.cpu.transpose import transpose8  # noqa: E402

TOL = {"float32": {"rtol": 2e-5, "atol": 2e-5}, "float64": {"rtol": 1e-12, "atol": 1e-12}}


def _layout(a: np.ndarray, kind: str) -> np.ndarray:
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        return np.repeat(a, 2, axis=-1)[..., ::2]
    return a


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "m,k,n", [(1, 1, 1), (1, 7, 1), (7, 1, 9), (8, 32, 32), (9, 33, 31), (97, 300, 65), (300, 257, 530)]
)
def test_matches_numpy_across_block_edges(m, k, n, dtype):
    """Sizes around the register tile (8 x 32), KC (512), MC (96) and NC (512) boundaries."""
    rng = np.random.default_rng(m * 10000 + k * 100 + n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    np.testing.assert_allclose(gemm.matmul(a, b), a @ b, **TOL[dtype])


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 70),
    k=st.integers(1, 70),
    n=st.integers(1, 70),
    layouts=st.tuples(st.sampled_from(["C", "F", "strided"]), st.sampled_from(["C", "F", "strided"])),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_any_layout(m, k, n, layouts, dtype):
    rng = np.random.default_rng(m + k + n)
    a = _layout(rng.standard_normal((m, k)).astype(dtype), layouts[0])
    b = _layout(rng.standard_normal((k, n)).astype(dtype), layouts[1])
    np.testing.assert_allclose(gemm.matmul(a, b), np.asarray(a) @ np.asarray(b), **TOL[dtype])


@pytest.mark.parametrize(
    "shape_a,shape_b",
    [
        ((5,), (5,)),
        ((5,), (5, 3)),
        ((4, 5), (5,)),
        ((2, 3, 4, 5), (5, 6)),
        ((2, 1, 4, 5), (3, 5, 6)),
        ((6, 4, 5), (6, 5, 2)),
    ],
)
def test_one_dimensional_and_batched_operands(shape_a, shape_b):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    got = gemm.matmul(a, b)
    assert got.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-12, atol=1e-12)


def test_large_batch_of_small_matrices_runs_one_per_thread():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((64, 7, 9)).astype(np.float32), rng.standard_normal((64, 9, 5)).astype(np.float32)
    np.testing.assert_allclose(gemm.matmul(a, b), a @ b, rtol=2e-5, atol=2e-5)


def test_out_parameter_is_overwritten_even_when_strided():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 3))
    out = np.full((6, 3), 7.0)
    assert gemm.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)
    strided = np.full((6, 6), 7.0)[:, ::2]
    gemm.matmul(a, b, out=strided)
    np.testing.assert_allclose(strided, a @ b, rtol=1e-12)
    with pytest.raises(ValueError, match="out has shape"):
        gemm.matmul(a, b, out=np.empty((3, 6)))


def test_empty_and_zero_k():
    assert gemm.matmul(np.ones((0, 3)), np.ones((3, 4))).shape == (0, 4)
    np.testing.assert_array_equal(gemm.matmul(np.ones((2, 0)), np.ones((0, 4))), np.zeros((2, 4)))


def test_rejects_mixed_or_integer_dtypes():
    with pytest.raises(TypeError, match="float32 or two float64"):
        gemm.matmul(np.ones((2, 2), np.float32), np.ones((2, 2)))
    with pytest.raises(TypeError):
        gemm.matmul(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))


def test_nan_and_inf_propagate_like_blas():
    a = np.array([[1.0, np.nan], [2.0, 3.0]])
    b = np.array([[1.0, 0.0], [np.inf, 1.0]])
    np.testing.assert_array_equal(np.isnan(gemm.matmul(a, b)), np.isnan(a @ b))


def test_one_compiled_version_serves_every_layout():
    """Compiled once per dtype for 'A'-layout operands; C and F inputs reuse it."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((10, 10)).astype(np.float32)
    gemm.matmul(a, a)
    gemm.matmul(np.asfortranarray(a), a.T)
    float32_versions = [s for s in gemm._gemm_grid.signatures if str(s[2].dtype) == "float32"]
    assert len(float32_versions) == 1


def test_generated_micro_kernels_are_current():
    """``gemm_micro.py`` is exactly what ``gemm_codegen.py`` generates."""
    assert codegen.TARGET.read_text() == codegen.module_source()


def _multiply(a: np.ndarray, b: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``a @ b`` through the parallel driver with C cut into a ``grid`` of blocks (more
    blocks than the machine has threads is allowed: they queue)."""
    gemm._ensure_compiled(a.dtype)
    mr, nr = gemm._TILE[a.dtype]
    (m, k), n = a.shape, b.shape[1]
    af, a_rs, a_cs = gemm._flat(a)
    bf, b_rs, b_cs = gemm._flat(b)
    c = np.full((m, n), np.nan, dtype=a.dtype)
    gemm._multiply(mr, nr, af, (0, a_rs, a_cs), bf, (0, b_rs, b_cs), m, k, n, c, grid)
    return c


@pytest.mark.parametrize("grid", [(1, 1), (1, 2), (2, 1), (2, 3), (5, 1), (1, 5)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "m,k,n,layouts",
    [
        (9, 10, 33, "CC"),  # fewer micro-panels than blocks: some threads get none
        (64, 784, 256, "CT"),  # an MLP layer: x W^T, two K slices
        (256, 64, 784, "TC"),  # its weight gradient
        (130, 1030, 70, "CC"),  # three K slices, a partial last one; rows past MC = 96
        (40, 20, 1100, "TC"),  # a thread's columns past NC = 512
        (33, 517, 70, "CT"),  # 8 x 8 transposes of A and B, with partial panels and k % 8 left over
    ],
)
def test_every_thread_grid(m, k, n, layouts, dtype, grid):
    """Each thread packing its own block's operands, for every cut of C, including cuts
    that leave threads idle, against NumPy."""
    rng = np.random.default_rng(m + k + n)
    a = _layout(rng.standard_normal((m, k)).astype(dtype), "F" if layouts[0] == "T" else "C")
    b = _layout(rng.standard_normal((k, n)).astype(dtype), "F" if layouts[1] == "T" else "C")
    # against the float64 product of the same values, within k roundings of one unit
    # (both operands are standard normal, so |a_ik b_kj| is about 1)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(_multiply(a, b, grid), exact, rtol=0, atol=2 * k * np.finfo(dtype).eps)


def test_thread_grid_cuts_c_across_its_longer_side():
    """Two threads cut C across its longer side, packing the smaller operand twice; many
    threads give a squarish product a squarish grid, and never more blocks than panels."""
    assert gemm._thread_grid(64, 784, 256, 8, 32, 2) == (1, 2)
    assert gemm._thread_grid(3136, 64, 128, 8, 32, 2) == (2, 1)
    assert gemm._thread_grid(2048, 2048, 2048, 8, 32, 16) == (4, 4)
    assert gemm._thread_grid(64, 64, 4096, 8, 32, 8) == (1, 8)
    assert gemm._thread_grid(8, 1000, 64, 8, 32, 4) == (1, 2)


@numba.njit(cache=True)
def _transpose_block(src, src_at, src_stride, dst, dst_at, dst_stride):
    transpose8(src, src_at, src_stride, dst, dst_at, dst_stride)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("src_at,src_stride,dst_at,dst_stride", [(0, 8, 0, 8), (3, 21, 5, 9), (1, 784, 0, 32)])
def test_transpose8_moves_each_value_once(dtype, src_at, src_stride, dst_at, dst_stride):
    """The register transpose against index arithmetic: rows at any offset and stride,
    unaligned, written into a strided destination without touching anything else."""
    src = np.arange(src_at + 8 * src_stride + 8, dtype=dtype)
    dst = np.full(dst_at + 8 * dst_stride + 8, -1.0, dtype=dtype)
    _transpose_block(src, src_at, src_stride, dst, dst_at, dst_stride)
    expected = np.full_like(dst, -1.0)
    for j in range(8):
        for k in range(8):
            expected[dst_at + k * dst_stride + j] = src[src_at + j * src_stride + k]
    np.testing.assert_array_equal(dst, expected)
