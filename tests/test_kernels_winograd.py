"""The Winograd F(2x2, 3x3) convolution (``kernels/cpu/winograd.py``) against the NumPy
reference in float64 and against its own definition: the weight transform against
G g G^T written with matrices, every geometry it accepts (odd sizes, 1 x 1 images, each
padding), each way it cuts the work into blocks, the fallback on NaN and infinity, and the
'auto' choice between it and the implicit GEMM."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.backend.kernel_loader import import_kernels

kernels = import_kernels()
ref = kernels.reference
import minidl.kernels.cpu.conv as conv  # noqa: E402
import minidl.kernels.cpu.winograd as winograd  # noqa: E402


def _tolerance(dtype, channels):
    """An output is a sum over C channels of 16 transformed products, each a signed sum of
    up to 9 inputs times 9 weights (scaled by 1/2 and 1/4): rounding grows like sqrt(9 C),
    with a few times the direct sum's constant (the transforms' own roundings)."""
    eps = 2e-6 if dtype == np.float32 else 1e-14
    scale = np.sqrt(9 * max(channels, 1))
    return {"rtol": 100 * eps, "atol": 100 * eps * scale}


def _winograd(x, w, padding, bias=None):
    return conv.conv2d_forward(x, w, (1, 1), padding, (1, 1), 1, bias=bias, algorithm="winograd")


def _check(x, w, padding, bias=None):
    got = _winograd(x, w, padding, bias)
    b64 = None if bias is None else bias.astype(np.float64)
    expected = ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), (1, 1), padding, (1, 1), 1, b64)
    assert got.dtype == x.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **_tolerance(x.dtype, x.shape[1]))


def test_weight_transform_is_g_times_filter_times_g_transposed():
    g_matrix = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    rng = np.random.default_rng(0)
    k, c, mr = 11, 3, 8  # a partial panel of output channels
    w = rng.standard_normal((k, c, 3, 3))
    packed = winograd.transform_weights(w, mr)
    expected = np.einsum("ai,kcij,bj->abkc", g_matrix, w, g_matrix).reshape(16, k, c)
    for xn in range(16):
        for kk in range(k):
            panel, i = divmod(kk, mr)
            got = packed[xn, panel * mr * c + i : (panel + 1) * mr * c : mr]
            np.testing.assert_allclose(got, expected[xn, kk], rtol=1e-15, atol=1e-15)
    # the padding rows of the last panel are zero, so they add nothing
    assert not packed[:, mr * c : 2 * mr * c].reshape(16, c, mr)[:, :, k - mr :].any()


def test_one_tile_equals_the_direct_sum_exactly_in_small_integers():
    """With small integer data every step is exact in float64: Y = A^T[(G g G^T)(B^T d B)]A
    must equal the 2 x 2 direct correlation to the last bit."""
    rng = np.random.default_rng(1)
    x = rng.integers(-4, 5, size=(1, 2, 4, 4)).astype(np.float64)
    w = rng.integers(-4, 5, size=(3, 2, 3, 3)).astype(np.float64) * 4  # G's halves stay exact
    got = _winograd(x, w, (0, 0))
    expected = ref.conv2d_forward(x, w, (1, 1), (0, 0), (1, 1), 1)
    np.testing.assert_array_equal(got, expected)


@st.composite
def winograd_case(draw):
    """Any geometry the algorithm accepts: odd and even sizes, 1 x 1 outputs, padding 0-2 on
    each side, channel counts off the micro-kernel's 8-row panel."""
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, 3 - 2 * padding[0]), 13))
    w = draw(st.integers(max(1, 3 - 2 * padding[1]), 13))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 40))
    k = draw(st.sampled_from([1, 5, 8, 9, 17]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype) if draw(st.booleans()) else None
    return x, weight, padding, bias


@settings(max_examples=60, deadline=None)
@given(case=winograd_case())
def test_winograd_matches_reference(case):
    _check(*case)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "block_bytes, n, c, h, w, k",
    [
        (None, 7, 33, 14, 14, 20),  # several images per block; the last block is short
        (None, 1, 8, 1, 1, 3),  # a 1 x 1 image: one tile, one junk tile
        (None, 1, 40, 30, 12, 9),  # fewer images than threads: the image's tiles are cut between them
        (16 * 1024, 2, 12, 23, 21, 10),  # an image's tiles cut into chunks; the last is partial
        (1, 3, 5, 9, 10, 9),  # the smallest budget: one micro-kernel tile per chunk
    ],
)
def test_every_block_layout(monkeypatch, block_bytes, n, c, h, w, k, dtype):
    if block_bytes is not None:
        monkeypatch.setattr(winograd, "V_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(n * 100 + c)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    _check(x, weight, (1, 1), rng.standard_normal(k).astype(dtype))


def test_thread_count_does_not_change_the_result():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _winograd(x, w, (1, 1))
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(one, _winograd(x, w, (1, 1)))


@pytest.mark.parametrize("where", ["input", "weight"])
def test_nan_and_inf_fall_back_to_the_direct_sum(where):
    """The transforms would turn an infinity into NaN and spread it over its tile: a
    non-finite input or weight is convolved by the implicit GEMM, so the non-finite outputs
    are exactly the reference's."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 8, 8))
    w = rng.standard_normal((5, 6, 3, 3))
    if where == "input":
        x[0, 1, 3, 3], x[1, 2, 0, 7] = np.inf, np.nan
    else:
        w[2, 1, 1, 1] = -np.inf
    got = _winograd(x, w, (1, 1))
    expected = ref.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "x_shape, w_shape, padding, chosen",
    [
        ((64, 32, 14, 14), (64, 32, 3, 3), (1, 1), True),  # enough channels, 2 x 2 tiles fit well
        ((8, 128, 28, 28), (128, 128, 3, 3), (1, 1), True),
        ((64, 16, 28, 28), (32, 16, 3, 3), (1, 1), False),  # too few input channels
        ((64, 64, 14, 14), (16, 64, 3, 3), (1, 1), False),  # too few output channels
        ((64, 32, 14, 14), (32, 32, 3, 3), (1, 1), False),  # 32 -> 32: GEMMs too small for the transforms
        ((64, 64, 8, 8), (64, 64, 3, 3), (1, 1), True),  # an 8 x 8 output: 80% of the tiles' outputs are real
        ((64, 64, 7, 7), (128, 64, 3, 3), (1, 1), False),  # a 7 x 7 output: only 61%
    ],
)
def test_auto_takes_winograd_where_it_pays(monkeypatch, x_shape, w_shape, padding, chosen):
    calls = []
    real = winograd.conv2d_forward
    monkeypatch.setattr(winograd, "conv2d_forward", lambda *a: calls.append(1) or real(*a))
    x = np.zeros(x_shape, np.float32)
    w = np.zeros(w_shape, np.float32)
    conv.conv2d_forward(x, w, (1, 1), padding, (1, 1), 1)
    assert bool(calls) == chosen
    calls.clear()
    conv.conv2d_forward(x, w, (1, 1), padding, (1, 1), 1, algorithm="implicit")
    assert not calls


@pytest.mark.parametrize(
    "w_shape, stride, dilation, groups",
    [((4, 2, 5, 5), (1, 1), (1, 1), 1), ((4, 2, 3, 3), (2, 2), (1, 1), 1), ((4, 2, 3, 3), (1, 1), (2, 2), 1),
     ((4, 1, 3, 3), (1, 1), (1, 1), 2)],
)  # fmt: skip
def test_winograd_refuses_what_it_cannot_compute(w_shape, stride, dilation, groups):
    x = np.zeros((1, 2, 9, 9), np.float32)
    with pytest.raises(ValueError, match="conv2d: the 'winograd' algorithm needs a 3x3 kernel.*algorithm='auto'"):
        conv.conv2d_forward(x, np.zeros(w_shape, np.float32), stride, (1, 1), dilation, groups, algorithm="winograd")


def test_unknown_algorithm_is_named():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: algorithm must be one of .*'auto'.*got 'fft'"):
        conv.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1, algorithm="fft")


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, groups, algorithm, method",
    [
        ((64, 32, 14, 14), (64, 32, 3, 3), (1, 1), 1, "auto", "winograd"),
        ((64, 32, 14, 14), (64, 32, 3, 3), (1, 1), 1, "implicit", "implicit"),
        ((2, 4, 9, 9), (8, 4, 3, 3), (1, 1), 1, "winograd", "winograd"),  # asked for, though it does not pay
        ((2, 4, 9, 9), (8, 4, 3, 3), (1, 1), 1, "auto", "implicit"),
        ((2, 1, 9, 9), (32, 1, 3, 3), (1, 1), 1, "auto", "direct"),  # 9 taps
        ((2, 64, 9, 9), (64, 32, 3, 3), (1, 1), 2, "auto", "implicit"),  # groups: no Winograd
        ((2, 64, 9, 9), (64, 64, 3, 3), (2, 2), 1, "auto", "im2col"),  # strided
    ],
)
def test_choose_algorithm_names_the_method(x_shape, w_shape, stride, groups, algorithm, method):
    assert conv.choose_algorithm(x_shape, w_shape, stride, (1, 1), (1, 1), groups, algorithm) == method


def test_input_gradient_takes_the_algorithm_too(monkeypatch):
    """dx is a forward convolution (flipped kernel): 'auto' runs it by Winograd where that
    pays, 'implicit' never; both equal the reference."""
    calls = []
    real = winograd.conv2d_forward
    monkeypatch.setattr(winograd, "conv2d_forward", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(6)
    g = rng.standard_normal((2, 64, 14, 14)).astype(np.float32)
    w = rng.standard_normal((64, 40, 3, 3)).astype(np.float32)
    expected = ref.conv2d_backward_input(
        g.astype(np.float64), w.astype(np.float64), (2, 40, 14, 14), (1, 1), (1, 1), (1, 1), 1
    )
    for algorithm, used in (("auto", True), ("implicit", False)):
        calls.clear()
        got = conv.conv2d_backward_input(g, w, (2, 40, 14, 14), (1, 1), (1, 1), (1, 1), 1, algorithm=algorithm)
        assert bool(calls) == used
        np.testing.assert_allclose(got, expected, **_tolerance(np.float32, 64))


def test_the_op_tables_wide_convolution_runs_through_winograd():
    """``op_db``'s "conv2d_wide" checks Winograd against torch (forward, both gradients,
    second order, eager and graph) only while 'auto' sends it there: the forward pass, and
    the input gradient (the forward convolution of the gradient with the flipped kernel)."""
    from op_db import OPS

    (sample,) = next(info for info in OPS if info.name == "conv2d_wide").samples(np.random.default_rng(0))
    x, w, _ = sample.args
    n, c, h, wd = x.shape
    k = w.shape[0]
    assert conv.choose_algorithm(x.shape, w.shape, (1, 1), (1, 1), (1, 1), 1) == "winograd"
    assert conv.choose_algorithm((n, k, h, wd), (c, k, 3, 3), (1, 1), (1, 1), (1, 1), 1) == "winograd"
