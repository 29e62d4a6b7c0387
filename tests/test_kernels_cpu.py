"""The Numba CPU kernels against NumPy: rank-1 products (serial and parallel paths), the
BLAS-backed matmul wrapper, fused log-softmax + NLL, and erf against the C library."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidl.backend.kernel_loader import import_kernels

import_kernels()
import minidl.kernels.cpu.matmul as cpu_matmul  # noqa: E402
import minidl.kernels.cpu.softmax as cpu_softmax  # noqa: E402
import minidl.kernels.cpu.special as cpu_special  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,n", [(1, 1), (3, 7), (10, 256), (400, 400)])
def test_outer_matches_numpy(m, n, dtype):
    """Both the serial (small) and the two-thread (large) rank-1 kernels."""
    rng = np.random.default_rng(m * n)
    a, b = rng.standard_normal((m, 1)).astype(dtype), rng.standard_normal((1, n)).astype(dtype)
    got = cpu_matmul.matmul(a, b)
    assert got.dtype == np.dtype(dtype) and got.shape == (m, n)
    np.testing.assert_array_equal(got, a * b)  # one multiply per element: bitwise equal


@pytest.mark.parametrize(
    "shape_a,shape_b",
    [((3, 4), (4, 5)), ((4,), (4, 2)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 1), (4, 1, 6)), ((0, 3), (3, 2))],
)
def test_matmul_wrapper_matches_numpy(shape_a, shape_b):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    np.testing.assert_allclose(cpu_matmul.matmul(a, b), np.matmul(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_softmax_nll_matches_numpy(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 5)) * 20).astype(dtype)
    x[1] = [1e4, -1e4, 0, 3, 3]
    x[4] = -np.inf
    x[4, 2] = 0.0
    t = np.array([0, 1, 4, 3, 2, 0])
    logp, losses, counted = cpu_softmax.log_softmax_nll(x, t)
    m = x.max(1, keepdims=True)
    want = x - (m + np.log(np.exp(x - m).sum(1, keepdims=True)))
    # the kernel sums in float64, so in float32 it differs from NumPy by NumPy's rounding
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 0}
    np.testing.assert_allclose(logp, want, **tol)
    np.testing.assert_allclose(losses, -want[np.arange(6), t], **tol)
    assert counted == 6


def test_log_softmax_nll_ignores_and_checks_targets():
    x = np.zeros((3, 4), np.float32)
    _, losses, counted = cpu_softmax.log_softmax_nll(x, np.array([1, -100, 2]))
    assert counted == 2 and losses[1] == 0
    with pytest.raises(IndexError, match="target 4 is out of bounds for 4 classes"):
        cpu_softmax.log_softmax_nll(x, np.array([1, 4, 2]))


def test_log_softmax_nll_propagates_nan():
    x = np.array([[0.0, np.nan, 1.0]])
    logp, losses, _ = cpu_softmax.log_softmax_nll(x, np.array([0]))
    assert np.isnan(logp).all() and np.isnan(losses).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_erf_matches_the_c_library(dtype):
    x = np.linspace(-6, 6, 97).astype(dtype).reshape(97, 1)
    got = cpu_special.erf(x)
    want = np.array([[math.erf(float(v))] for v in x[:, 0]], dtype=dtype)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == "float32" else 1e-15, atol=0)


@pytest.mark.parametrize(
    "shape_a,shape_b,dtype,numba_gemm",
    [
        ((64, 784), (784, 256), "float32", True),  # OpenBLAS would thread it: the Numba GEMM
        ((3, 128, 64), (64, 96), "float64", True),  # a batch, broadcast
        ((64, 64), (64, 64), "float32", False),  # small enough for OpenBLAS's calling thread
        ((1, 4096), (4096, 512), "float32", False),  # a matrix-vector product
        ((512, 300), (300, 1), "float32", False),
        ((300, 300), (300, 300), "int64", False),  # not a float
        ((300, 300), (300,), "float32", False),  # a 1-D operand
    ],
)
def test_auto_matmul_keeps_threaded_products_on_numba(monkeypatch, shape_a, shape_b, dtype, numba_gemm):
    import minidl.kernels.cpu.gemm as gemm

    calls = []
    real = gemm.matmul
    monkeypatch.setattr(gemm, "matmul", lambda a, b: calls.append(1) or real(a, b))
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape_a).astype(dtype)
    b = rng.standard_normal(shape_b).astype(dtype)
    got = cpu_matmul.matmul_auto(a, b)
    assert bool(calls) == numba_gemm
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=tol, atol=tol * np.sqrt(shape_a[-1]))
