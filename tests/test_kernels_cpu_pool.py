"""The Numba pooling kernels (``kernels/cpu/pool.py``) against the NumPy reference kernels.

Hypothesis draws the window (kernel, stride, padding, dilation, ceil_mode, count_include_pad,
divisor_override), odd and size-1 planes, batch and channel counts above 1, the memory layout
(contiguous, transposed, sliced) and the values (random, many ties, NaN and +-inf), in float32
and float64. Max pooling and its backward pass must agree exactly (values and indices); average
pooling to rounding, since NumPy may sum a window in another order.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minidl.backend.kernel_loader import import_kernels

ref = import_kernels().reference
import minidl.kernels.cpu.pool as pool  # noqa: E402

DTYPES = ("float32", "float64")
AVG_TOL = {"float32": {"rtol": 1e-6, "atol": 1e-6}, "float64": {"rtol": 1e-12, "atol": 1e-13}}


def make_input(rng: np.random.Generator, shape, dtype: str, values: str, layout: str) -> np.ndarray:
    """An NCHW array of ``shape`` with the given kind of values, laid out as asked."""
    if values == "ties":  # few distinct values: most windows hold several equal maxima
        x = rng.integers(-2, 3, shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    if values == "special":  # NaN and infinities sprinkled in
        x[rng.random(shape) < 0.08] = np.nan
        x[rng.random(shape) < 0.08] = np.inf
        x[rng.random(shape) < 0.15] = -np.inf
    if layout == "transposed":  # the same values, stored W-major (strides not C order)
        return np.ascontiguousarray(x.swapaxes(2, 3)).swapaxes(2, 3)
    if layout == "sliced":  # every other column of a wider array
        wide = np.zeros((*shape[:3], 2 * shape[3]), dtype=dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


@st.composite
def windows(draw, dilation: bool):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    # torch's (and minidl's) limit: padding at most half the effective window
    p = tuple(draw(st.integers(0, (dd * (kk - 1) + 1) // 2)) for kk, dd in zip(k, d))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    ceil_mode = draw(st.booleans())
    for size, kk, ss, pp, dd in zip(shape[2:], k, s, p, d):
        assume(ref.pool_output_size(size, kk, ss, pp, dd, ceil_mode) >= 1)
    return shape, k, s, p, d, ceil_mode


def first_in_bounds(x_shape, k, s, p, d, out_shape) -> np.ndarray:
    """For each window, the flat index of its first in-bounds tap, or -1 if it has none."""
    h, w = x_shape[2:]

    def first(o, size, kk, ss, pp, dd):
        taps = [o * ss - pp + i * dd for i in range(kk)]
        inside = [t for t in taps if 0 <= t < size]
        return inside[0] if inside else -1

    out = np.empty(out_shape[2:], dtype=np.int64)
    for oh in range(out_shape[2]):
        for ow in range(out_shape[3]):
            r, c = first(oh, h, k[0], s[0], p[0], d[0]), first(ow, w, k[1], s[1], p[1], d[1])
            out[oh, ow] = -1 if r < 0 or c < 0 else r * w + c
    return np.broadcast_to(out, out_shape)


@settings(max_examples=250, deadline=None)
@given(
    case=windows(dilation=True),
    dtype=st.sampled_from(DTYPES),
    values=st.sampled_from(["normal", "ties", "special"]),
    layout=st.sampled_from(["contiguous", "transposed", "sliced"]),
    seed=st.integers(0, 2**16),
)
def test_max_pool2d_matches_reference(case, dtype, values, layout, seed):
    shape, k, s, p, d, ceil_mode = case
    rng = np.random.default_rng(seed)
    x = make_input(rng, shape, dtype, values, layout)
    out, idx = pool.max_pool2d_forward(x, k, s, p, d, ceil_mode)
    want, want_idx = ref.max_pool2d_forward(x, k, s, p, d, ceil_mode)
    assert out.dtype == x.dtype and idx.dtype == np.int64 and out.shape == want.shape == idx.shape
    np.testing.assert_array_equal(out, want)  # NaN compares equal to NaN here
    # Where a window's maximum is -inf (all its values -inf, or no tap in bounds), the
    # reference, which pads with -inf, may name a padded tap; the kernel names the first
    # in-bounds tap (as torch does), or -1.
    all_neg_inf = out == -np.inf
    want_idx = np.where(all_neg_inf, first_in_bounds(shape, k, s, p, d, out.shape), want_idx)
    np.testing.assert_array_equal(idx, want_idx)

    g = rng.standard_normal(out.shape).astype(dtype)
    gx = pool.max_pool2d_backward(g, idx, shape)
    # the reference's bincount takes no -1; send those (window with no input) nowhere instead
    none = idx < 0
    want_gx = ref.max_pool2d_backward(np.where(none, 0, g).astype(dtype), np.where(none, 0, idx), shape)
    assert gx.dtype == g.dtype and gx.shape == shape
    np.testing.assert_array_equal(gx, want_gx)  # both sum in float64 in the same order


@settings(max_examples=250, deadline=None)
@given(
    case=windows(dilation=False),
    count_include_pad=st.booleans(),
    divisor_override=st.sampled_from([None, None, 1, 3, 7]),
    dtype=st.sampled_from(DTYPES),
    layout=st.sampled_from(["contiguous", "transposed", "sliced"]),
    seed=st.integers(0, 2**16),
)
def test_avg_pool2d_matches_reference(case, count_include_pad, divisor_override, dtype, layout, seed):
    shape, k, s, p, _, ceil_mode = case
    rng = np.random.default_rng(seed)
    x = make_input(rng, shape, dtype, "normal", layout)
    args = (k, s, p, ceil_mode, count_include_pad, divisor_override)
    out = pool.avg_pool2d_forward(x, *args)
    want = ref.avg_pool2d_forward(x, *args)
    assert out.dtype == x.dtype and out.shape == want.shape
    np.testing.assert_allclose(out, want, **AVG_TOL[dtype])

    g = make_input(rng, out.shape, dtype, "normal", layout)
    gx = pool.avg_pool2d_backward(g, shape, *args)
    want_gx = ref.avg_pool2d_backward(g, shape, *args)
    assert gx.dtype == g.dtype and gx.shape == shape
    np.testing.assert_allclose(gx, want_gx, **AVG_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1))])
def test_common_layers_match_reference(kernel, stride, padding, dtype):
    """The benchmarked shapes (scaled down), many planes: every thread gets several."""
    x = np.random.default_rng(0).standard_normal((4, 8, 28, 28)).astype(dtype)
    out, idx = pool.max_pool2d_forward(x, kernel, stride, padding, (1, 1), False)
    want, want_idx = ref.max_pool2d_forward(x, kernel, stride, padding, (1, 1), False)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(
        pool.max_pool2d_backward(out, idx, x.shape), ref.max_pool2d_backward(out, idx, x.shape)
    )
    args = (kernel, stride, padding, False, True, None)
    avg = pool.avg_pool2d_forward(x, *args)
    np.testing.assert_allclose(avg, ref.avg_pool2d_forward(x, *args), **AVG_TOL[dtype])
    np.testing.assert_array_equal(
        pool.avg_pool2d_backward(avg, x.shape, *args), ref.avg_pool2d_backward(avg, x.shape, *args)
    )


def test_results_do_not_depend_on_the_thread_count():
    x = np.random.default_rng(1).standard_normal((3, 5, 11, 9)).astype(np.float32)
    window = ((3, 3), (1, 1), (1, 1))

    def run():
        out, idx = pool.max_pool2d_forward(x, *window, (1, 1), True)
        avg = pool.avg_pool2d_forward(x, *window, True, False, None)
        gx_max = pool.max_pool2d_backward(out, idx, x.shape)
        return out, idx, gx_max, avg, pool.avg_pool2d_backward(avg, x.shape, *window, True, False, None)

    threads = numba.get_num_threads()
    runs = []
    for n in sorted({1, threads}):
        numba.set_num_threads(n)
        try:
            runs.append(run())
        finally:
            numba.set_num_threads(threads)
    for a, b in zip(runs[0], runs[-1]):
        np.testing.assert_array_equal(a, b)


def test_max_pool2d_nan_and_ties_pick_the_first():
    x = np.array([[[[1.0, 3.0, 3.0, np.nan], [np.nan, 3.0, 0.0, 2.0]]]], dtype=np.float32)
    out, idx = pool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert np.isnan(out[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 4  # the only NaN of window 0
    assert np.isnan(out[0, 0, 0, 1]) and idx[0, 0, 0, 1] == 3
    out, idx = pool.max_pool2d_forward(x[..., :1, :3], (1, 3), (1, 1), (0, 0), (1, 1), False)
    assert out[0, 0, 0, 0] == 3.0 and idx[0, 0, 0, 0] == 1  # a tie: the first 3 wins


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values", ["normal", "ties", "special"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
@pytest.mark.parametrize("hw, ceil_mode", [((8, 8), False), ((7, 9), False), ((7, 9), True), ((3, 2), False)])
def test_max_pool2d_2x2_fast_path_matches_torch(hw, ceil_mode, dtype, values, layout):
    """2x2 windows with stride 2 (the common layer) take their own kernel: same maxima and
    indices as torch, including NaNs, ties, -inf, odd sizes (and ceil_mode, which falls back
    to the general kernel for the partial windows)."""
    rng = np.random.default_rng(7)
    x = make_input(rng, (2, 3, *hw), dtype, values, layout)
    out, idx = pool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), ceil_mode)
    t_out, t_idx = torch.nn.functional.max_pool2d(
        torch.from_numpy(np.ascontiguousarray(x)), 2, 2, ceil_mode=ceil_mode, return_indices=True
    )
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())


def test_max_pool2d_all_neg_inf_window_matches_torch():
    """A window of -inf values reaching into padding points at its first in-bounds element."""
    x = np.full((1, 2, 3, 4), -np.inf, dtype=np.float32)
    x[0, 1, 2, 3] = 1.0
    out, idx = pool.max_pool2d_forward(x, (2, 2), (1, 1), (1, 1), (1, 1), False)
    t_out, t_idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, 1, 1, return_indices=True)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(idx, t_idx.numpy())


def test_empty_batch_and_bad_inputs():
    x = np.zeros((0, 3, 5, 5), np.float32)
    out, idx = pool.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert out.shape == idx.shape == (0, 3, 2, 2)
    assert pool.avg_pool2d_backward(out, x.shape, (2, 2), (2, 2), (0, 0), False, True, None).shape == x.shape
    with pytest.raises(TypeError, match="float32 or float64"):
        pool.max_pool2d_forward(np.zeros((1, 1, 4, 4), np.int32), (2, 2), (2, 2), (0, 0), (1, 1), False)
    with pytest.raises(ValueError, match="4-D"):
        pool.avg_pool2d_forward(np.zeros((4, 4)), (2, 2), (2, 2), (0, 0), False, True, None)
    g = np.ones((1, 1, 2, 2))
    with pytest.raises(IndexError, match="outside the 4x4 input plane"):
        pool.max_pool2d_backward(g, np.array([[[[0, 5], [16, 3]]]]), (1, 1, 4, 4))
    with pytest.raises(ValueError, match="should be"):
        pool.avg_pool2d_backward(g, (1, 1, 4, 4), (3, 3), (2, 2), (0, 0), False, True, None)
