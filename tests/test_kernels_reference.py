"""The NumPy reference kernels on their own, against direct loop implementations of the
definitions (no tensors, no autograd): conv2d and its two backward passes, pooling, matmul."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.backend.kernel_loader import import_kernels

ref = import_kernels().reference


def direct_conv(x, w, stride, padding, dilation, groups):
    """out[n, k, y, x] = sum over c, i, j of w[k, c, i, j] * xpad[n, g*cg + c, y*s + i*d, x*s + j*d]."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    ho, wo = ref.conv2d_output_size(h, wd, kh, kw, stride, padding, dilation)
    out = np.zeros((n, k, ho, wo))
    kg = k // groups
    for b, o, yy, xx in itertools.product(range(n), range(k), range(ho), range(wo)):
        g = o // kg
        acc = 0.0
        for ci, i, j in itertools.product(range(cg), range(kh), range(kw)):
            acc += (
                w[o, ci, i, j] * xp[b, g * cg + ci, yy * stride[0] + i * dilation[0], xx * stride[1] + j * dilation[1]]
            )
        out[b, o, yy, xx] = acc
    return out


@st.composite
def conv_case(draw):
    groups = draw(st.integers(1, 2))
    cg = draw(st.integers(1, 2))
    kg = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 7))
    w = draw(st.integers(dilation[1] * (kw - 1) + 1, 7))
    n = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, groups * cg, h, w))
    weight = rng.standard_normal((groups * kg, cg, kh, kw))
    return x, weight, stride, padding, dilation, groups


@settings(max_examples=30, deadline=None)
@given(case=conv_case())
def test_conv2d_forward_matches_direct_loops(case):
    x, w, stride, padding, dilation, groups = case
    got = ref.conv2d_forward(x, w, stride, padding, dilation, groups)
    np.testing.assert_allclose(got, direct_conv(x, w, stride, padding, dilation, groups), rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(case=conv_case())
def test_conv2d_backward_passes_are_adjoint(case):
    """<g, conv(x, w)> = <backward_input(g, w), x> = <backward_weight(x, g), w>: the two
    backward kernels are the exact adjoints of the forward one."""
    x, w, stride, padding, dilation, groups = case
    out = ref.conv2d_forward(x, w, stride, padding, dilation, groups)
    g = np.random.default_rng(0).standard_normal(out.shape)
    gx = ref.conv2d_backward_input(g, w, x.shape, stride, padding, dilation, groups)
    gw = ref.conv2d_backward_weight(x, g, w.shape, stride, padding, dilation, groups)
    assert gx.shape == x.shape and gw.shape == w.shape
    total = np.sum(g * out)
    np.testing.assert_allclose(np.sum(gx * x), total, rtol=1e-10)
    np.testing.assert_allclose(np.sum(gw * w), total, rtol=1e-10)


def direct_max_pool(x, k, s, p, d, ceil_mode):
    n, c, h, w = x.shape
    ho = ref.pool_output_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    wo = ref.pool_output_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    out = np.full((n, c, ho, wo), -np.inf)
    idx = np.zeros((n, c, ho, wo), dtype=np.int64)
    for b, ch, yy, xx in itertools.product(range(n), range(c), range(ho), range(wo)):
        for i, j in itertools.product(range(k[0]), range(k[1])):
            r, col = yy * s[0] - p[0] + i * d[0], xx * s[1] - p[1] + j * d[1]
            if 0 <= r < h and 0 <= col < w and x[b, ch, r, col] > out[b, ch, yy, xx]:
                out[b, ch, yy, xx] = x[b, ch, r, col]
                idx[b, ch, yy, xx] = r * w + col
    return out, idx


@st.composite
def pool_case(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = tuple(draw(st.integers(0, (dd * (kk - 1) + 1) // 2)) for kk, dd in zip(k, d))
    h = draw(st.integers(d[0] * (k[0] - 1) + 1, 8))
    w = draw(st.integers(d[1] * (k[1] - 1) + 1, 8))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((2, 2, h, w))
    return x, k, s, p, d, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(case=pool_case())
def test_max_pool2d_matches_direct_loops(case):
    x, k, s, p, d, ceil_mode = case
    out, idx = ref.max_pool2d_forward(x, k, s, p, d, ceil_mode)
    want, want_idx = direct_max_pool(x, k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)
    g = np.random.default_rng(1).standard_normal(out.shape)
    gx = ref.max_pool2d_backward(g, idx, x.shape)
    expect = np.zeros(x.shape)
    for b, ch, yy, xx in itertools.product(*map(range, out.shape)):
        r, col = divmod(idx[b, ch, yy, xx], x.shape[3])
        expect[b, ch, r, col] += g[b, ch, yy, xx]
    np.testing.assert_allclose(gx, expect, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(case=pool_case(), count_include_pad=st.booleans())
def test_avg_pool2d_backward_is_adjoint(case, count_include_pad):
    x, k, s, p, _, ceil_mode = case
    out = ref.avg_pool2d_forward(x, k, s, p, ceil_mode, count_include_pad, None)
    g = np.random.default_rng(2).standard_normal(out.shape)
    gx = ref.avg_pool2d_backward(g, x.shape, k, s, p, ceil_mode, count_include_pad, None)
    np.testing.assert_allclose(np.sum(gx * x), np.sum(g * out), rtol=1e-10)


def test_avg_pool2d_divisors_follow_torch_rules():
    """A 3x3 window, stride 2, padding 1 on a 4x4 input of ones: with count_include_pad the
    corner window averages 4 ones over 9 cells; without it, over the 4 real cells."""
    x = np.ones((1, 1, 4, 4))
    with_pad = ref.avg_pool2d_forward(x, (3, 3), (2, 2), (1, 1), False, True, None)
    without = ref.avg_pool2d_forward(x, (3, 3), (2, 2), (1, 1), False, False, None)
    assert with_pad[0, 0, 0, 0] == 4 / 9
    assert np.all(without == 1.0)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 6), k=st.integers(1, 6), n=st.integers(1, 6), batch=st.integers(0, 2))
def test_matmul_matches_einsum(m, k, n, batch):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    shape_a = (2,) * batch + (m, k)
    a, b = rng.standard_normal(shape_a), rng.standard_normal((k, n))
    np.testing.assert_allclose(ref.matmul(a, b), np.einsum("...ij,jk->...ik", a, b), rtol=1e-12, atol=1e-12)
