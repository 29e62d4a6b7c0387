"""The Numba convolution kernels against the NumPy reference kernels (themselves checked
against direct loops in ``test_kernels_reference.py``): forward, input gradient and weight
gradient, float32 and float64, for every conv parameter, on each of the kernels' paths --
direct (few taps or few output channels), implicit GEMM (one K slice, or several when
C*kh*kw > 2048), position chunks, and the strided fallback."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.backend.kernel_loader import import_kernels

kernels = import_kernels()
ref = kernels.reference
import minidl.kernels.cpu.conv as conv  # noqa: E402


def _tolerance(dtype, terms):
    """Sums of ``terms`` products of N(0, 1) values: allow rounding that grows like sqrt(terms)."""
    eps = 2e-6 if dtype == np.float32 else 1e-14
    scale = np.sqrt(max(terms, 1))
    return {"rtol": 50 * eps, "atol": 50 * eps * scale}


def _check_all_three(x, w, stride, padding, dilation, groups):
    """Forward, input gradient and weight gradient of the Numba kernels equal the reference."""
    dtype = x.dtype.type
    terms = w.shape[1] * w.shape[2] * w.shape[3]
    out = conv.conv2d_forward(x, w, stride, padding, dilation, groups)
    expected = ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), stride, padding, dilation, groups)
    assert out.dtype == x.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, **_tolerance(dtype, terms))

    g = np.random.default_rng(7).standard_normal(out.shape).astype(x.dtype)
    gx = conv.conv2d_backward_input(g, w, x.shape, stride, padding, dilation, groups)
    gx_ref = ref.conv2d_backward_input(
        g.astype(np.float64), w.astype(np.float64), x.shape, stride, padding, dilation, groups
    )
    assert gx.dtype == x.dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, gx_ref, **_tolerance(dtype, w.shape[0] // groups * w.shape[2] * w.shape[3]))

    gw = conv.conv2d_backward_weight(x, g, w.shape, stride, padding, dilation, groups)
    gw_ref = ref.conv2d_backward_weight(
        x.astype(np.float64), g.astype(np.float64), w.shape, stride, padding, dilation, groups
    )
    assert gw.dtype == x.dtype and gw.shape == w.shape
    np.testing.assert_allclose(gw, gw_ref, **_tolerance(dtype, x.shape[0] * out.shape[2] * out.shape[3]))


@st.composite
def conv_case(draw):
    """Any stride-1 geometry (the kernels' own paths) and sometimes a stride of 2 (fallback).
    Channel counts reach both sides of the direct/implicit split (27 taps, 8 output channels)."""
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, 6))
    kg = draw(st.sampled_from([1, 3, 8, 9, 17]))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.sampled_from([(1, 1), (1, 1), (1, 1), (2, 1)]))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 11))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 11))
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, groups * cg, h, w)).astype(dtype)
    weight = rng.standard_normal((groups * kg, cg, kh, kw)).astype(dtype)
    return x, weight, stride, padding, dilation, groups


@settings(max_examples=60, deadline=None)
@given(case=conv_case())
def test_numba_conv_matches_reference(case):
    _check_all_three(*case)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n,c,h,w,k,kh,padding,groups",
    [
        (2, 1, 28, 28, 32, 3, 1, 1),  # a first layer: 9 taps, direct path
        (3, 16, 9, 13, 24, 3, 1, 1),  # implicit GEMM, one K slice, edge tiles in both directions
        (2, 8, 30, 29, 16, 3, 0, 1),  # more positions than one chunk (QC)
        (1, 240, 5, 4, 9, 3, 1, 1),  # C*kh*kw = 2160 > 2048: several K slices
        (2, 12, 6, 7, 20, 3, 2, 2),  # groups on the implicit path, padding beyond the kernel's reach
        (5, 10, 4, 4, 8, 1, 0, 1),  # 1 x 1 kernel, more images than threads
        (1, 4, 1, 1, 8, 3, 1, 1),  # a 1 x 1 image
    ],
)
def test_numba_conv_paths(n, c, h, w, k, kh, padding, groups, dtype):
    rng = np.random.default_rng(n * 1000 + c * 10 + k)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c // groups, kh, kh)).astype(dtype)
    _check_all_three(x, weight, (1, 1), (padding, padding), (1, 1), groups)


@pytest.mark.parametrize("per_image", [True, False], ids=["threads-own-images", "shared-work-items"])
@pytest.mark.parametrize(
    "n,c,h,w,k,kh,padding,dilation,groups",
    [
        (4, 16, 14, 14, 40, 3, 1, 1, 1),  # the padded grid's pitch is W + 1; a partial column panel
        (3, 8, 30, 29, 72, 3, 1, 1, 1),  # several chunks of positions and KC slices of the gradient
        (2, 6, 7, 9, 16, 1, 2, 1, 2),  # padding beyond the kernel's reach: a wider gap, groups
        (5, 10, 9, 8, 9, 3, (2, 1), (2, 1), 1),  # dilation, unequal padding
    ],
)
def test_numba_conv_both_thread_layouts(monkeypatch, per_image, n, c, h, w, k, kh, padding, dilation, groups):
    """The forward pass pads each thread's images in a buffer of its own, or pads the batch
    first and shares (image, group, chunk) items; both must give the reference's result."""
    monkeypatch.setattr(conv, "_threads_per_image", lambda n, threads: per_image)
    rng = np.random.default_rng(n + c + h)
    padding = padding if isinstance(padding, tuple) else (padding, padding)
    dilation = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((k, c // groups, kh, kh)).astype(np.float32)
    _check_all_three(x, weight, (1, 1), padding, dilation, groups)


def test_numba_conv_takes_non_contiguous_operands():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 12, 9, 16)).astype(np.float32)[:, ::2, :, ::2]  # strided view
    w = np.asfortranarray(rng.standard_normal((16, 6, 3, 3)).astype(np.float32))
    _check_all_three(x, w, (1, 1), (1, 1), (1, 1), 1)


def test_numba_conv_propagates_nan_and_inf():
    x = np.ones((1, 4, 5, 5))
    x[0, 1, 2, 2] = np.nan
    x[0, 2, 0, 0] = np.inf
    w = np.ones((8, 4, 3, 3))
    got = conv.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
    expected = ref.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))


def test_numba_conv_rejects_mixed_dtypes():
    with pytest.raises(TypeError, match="conv2d: expected float32 or float64"):
        conv.conv2d_forward(np.ones((1, 4, 5, 5), np.float32), np.ones((8, 4, 3, 3)), (1, 1), (1, 1), (1, 1), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, w_shape, stride, groups",
    [
        ((2, 1, 9, 7), (5, 1, 3, 3), (1, 1), 1),  # direct path (nine taps)
        ((2, 2, 6, 6), (3, 2, 1, 2), (1, 1), 1),  # direct path (few taps, few channels)
        ((2, 8, 7, 9), (16, 4, 3, 3), (1, 1), 2),  # implicit GEMM, groups
        ((2, 3, 9, 9), (4, 3, 3, 3), (2, 2), 1),  # strided: the im2col fallback
    ],
)
def test_fused_bias_equals_adding_it_afterwards(x_shape, w_shape, stride, groups, dtype):
    """The forward kernels add a bias while writing the output: the result must equal the
    convolution without bias plus the bias broadcast over (N, H, W) -- exactly, since each
    output gets the same one addition -- and infinities and NaNs in the bias propagate."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(w_shape[0]).astype(dtype)
    bias[0] = np.inf
    args = (stride, (1, 1), (1, 1), groups)
    for impl in (conv, ref):
        plain = impl.conv2d_forward(x, w, *args)
        fused = impl.conv2d_forward(x, w, *args, bias=bias)
        np.testing.assert_array_equal(fused, plain + bias.reshape(1, -1, 1, 1))
