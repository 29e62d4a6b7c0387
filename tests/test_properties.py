"""Property-based tests (hypothesis): random shapes, broadcasting pairs, non-contiguous layouts
and edge values, each run through minidl and torch and compared, forward and backward."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
from harness import MINIDL, TORCH, assert_close

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)
edge = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-30, 1e30, -1e30, 3.5, -2.25])
values = st.one_of(finite, edge)


def arrays(shape, elements=values):
    return hnp.arrays(np.float64, shape, elements=elements)


@st.composite
def layouts(draw, array):
    """The same values, possibly in a non-contiguous layout (transposed or strided view)."""
    kind = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    if kind == "transposed" and array.ndim >= 2:
        return np.ascontiguousarray(array.T).T
    if kind == "strided" and array.ndim >= 1 and array.size:
        return np.repeat(array, 2, axis=-1)[..., ::2]
    return array


def both(array, dtype, requires_grad=True):
    m = minidl.Tensor(array.astype(dtype))
    t = torch.from_numpy(array.astype(dtype))
    if requires_grad:
        m.requires_grad_()
        t.requires_grad_()
    return m, t


def compare_grads(m_out, t_out, m_in, t_in, rtol, atol, seed=0):
    g = np.random.default_rng(seed).standard_normal(tuple(t_out.shape)).astype(m_out._data.dtype)
    m_grads = minidl.autograd.grad(m_out, m_in, minidl.Tensor(g), allow_unused=True)
    t_grads = torch.autograd.grad(t_out, t_in, torch.from_numpy(g), allow_unused=True)
    for mg, tg, x in zip(m_grads, t_grads, t_in):
        tg = torch.zeros_like(x) if tg is None else tg
        mg = np.zeros(tuple(x.shape)) if mg is None else mg
        assert_close(mg, tg, rtol, atol, "gradient")


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": lambda a, b: a.maximum(b),
}


@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4),
    op=st.sampled_from(sorted(BINARY)),
    dtype=st.sampled_from(["float32", "float64"]),
    data=st.data(),
)
def test_binary_broadcasting(shapes, op, dtype, data):
    """Elementwise binary ops on any broadcastable pair of shapes (0-d and size-0 included)."""
    a_shape, b_shape = shapes.input_shapes
    elements = st.floats(0.25, 4.0) if op == "div" else finite
    a = data.draw(layouts(data.draw(arrays(a_shape, finite))))
    b = data.draw(layouts(data.draw(arrays(b_shape, elements))))
    ma, ta = both(a, dtype)
    mb, tb = both(b, dtype)
    fn = BINARY[op]
    m_out, t_out = fn(ma, mb), fn(ta, tb)
    rtol, atol = (1e-5, 1e-5) if dtype == "float32" else (1e-12, 1e-12)
    assert_close(m_out, t_out, rtol, atol, op)
    if op != "maximum":  # random floats can tie in maximum, where both libraries split the gradient
        compare_grads(m_out, t_out, [ma, mb], [ta, tb], rtol * 10, atol * 10)


UNARY = {
    "exp": lambda lib, x: lib.exp(x.clamp(max=50)),
    "tanh": lambda lib, x: lib.tanh(x),
    "sigmoid": lambda lib, x: lib.sigmoid(x),
    "abs": lambda lib, x: lib.abs(x),
    "neg": lambda lib, x: -x,
    "relu": lambda lib, x: lib.F.relu(x),
    "softplus": lambda lib, x: lib.F.softplus(x),
    "gelu": lambda lib, x: lib.F.gelu(x),
    "silu": lambda lib, x: lib.F.silu(x),
    "log1p_abs": lambda lib, x: lib.log1p(lib.abs(x)),
}


@SETTINGS
@given(
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    op=st.sampled_from(sorted(UNARY)),
    data=st.data(),
)
def test_unary_edge_values(shape, op, data):
    """Unary ops over edge values (signed zeros, 1e30, tiny numbers) in float64."""
    x = data.draw(layouts(data.draw(arrays(shape))))
    mx, tx = both(x, "float64")
    m_out, t_out = UNARY[op](MINIDL, mx), UNARY[op](TORCH, tx)
    assert_close(m_out, t_out, 1e-10, 1e-12, op)
    if op not in ("abs", "relu"):  # both are kinked at the zeros these samples contain
        compare_grads(m_out, t_out, [mx], [tx], 1e-8, 1e-10)


@st.composite
def reduction_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    dims = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1, max_size=len(shape)))
    return shape, tuple(dims), draw(st.booleans())


REDUCTIONS = {
    "sum": lambda lib, x, d, k: x.sum(d, keepdim=k),
    "mean": lambda lib, x, d, k: x.mean(d, keepdim=k),
    "amax": lambda lib, x, d, k: lib.amax(x, d, keepdim=k),
    "logsumexp": lambda lib, x, d, k: lib.logsumexp(x, d, keepdim=k),
    "var": lambda lib, x, d, k: lib.var(x, d, keepdim=k, correction=0),
    "norm": lambda lib, x, d, k: (
        torch.linalg.vector_norm(x, 2, d, k) if lib is TORCH else lib.norm(x, 2, dim=d, keepdim=k)
    ),
}


@SETTINGS
@given(case=reduction_case(), op=st.sampled_from(sorted(REDUCTIONS)), data=st.data())
def test_reductions(case, op, data):
    """Reductions over random sets of dimensions, with and without keepdim."""
    shape, dims, keepdim = case
    x = data.draw(layouts(data.draw(arrays(shape, st.floats(-10, 10)))))
    x = x + np.arange(x.size).reshape(x.shape) * 1e-3  # no exact ties for amax
    mx, tx = both(x, "float64")
    fn = REDUCTIONS[op]
    m_out, t_out = fn(MINIDL, mx, dims, keepdim), fn(TORCH, tx, dims, keepdim)
    assert_close(m_out, t_out, 1e-10, 1e-12, op)
    compare_grads(m_out, t_out, [mx], [tx], 1e-8, 1e-10)


@SETTINGS
@given(
    batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, min_side=1, max_side=3),
    m=st.integers(1, 5),
    k=st.integers(1, 5),
    n=st.integers(1, 5),
    vec=st.sampled_from(["none", "left", "right", "both"]),
    data=st.data(),
)
def test_matmul_shapes(batch, m, k, n, vec, data):
    """matmul over 1-D, 2-D and broadcast-batched operands, including k = 1 outer products."""
    a_shape = (k,) if vec in ("left", "both") else batch.input_shapes[0] + (m, k)
    b_shape = (k,) if vec in ("right", "both") else batch.input_shapes[1] + (k, n)
    a = data.draw(layouts(data.draw(arrays(a_shape, st.floats(-2, 2)))))
    b = data.draw(layouts(data.draw(arrays(b_shape, st.floats(-2, 2)))))
    ma, ta = both(a, "float64")
    mb, tb = both(b, "float64")
    m_out, t_out = ma @ mb, ta @ tb
    assert_close(m_out, t_out, 1e-10, 1e-12, "matmul")
    compare_grads(m_out, t_out, [ma, mb], [ta, tb], 1e-9, 1e-11)


@st.composite
def basic_index(draw, shape):
    index = []
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "full", "none"]))
        if kind == "int" and size > 0:
            index.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            start = draw(st.integers(-size - 1, size + 1))
            stop = draw(st.integers(-size - 1, size + 1))
            step = draw(st.integers(1, 3))
            index.append(slice(start, stop, step))
        elif kind == "none":
            index.append(None)
            index.append(slice(None))
        else:
            index.append(slice(None))
    return tuple(index)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), data=st.data())
def test_basic_indexing(shape, data):
    """Random int/slice/None indices: same view values and scattered gradients as torch."""
    x = data.draw(arrays(shape, st.floats(-5, 5)))
    index = data.draw(basic_index(shape))
    mx, tx = both(x, "float64")
    m_out, t_out = mx[index], tx[index]
    assert_close(m_out, t_out, 0, 0, "getitem")
    compare_grads(m_out, t_out, [mx], [tx], 1e-12, 1e-12)


@SETTINGS
@given(
    rows=st.integers(1, 4),
    classes=st.integers(2, 6),
    scale=st.sampled_from([1.0, 1e2, 1e4]),
    data=st.data(),
)
def test_stable_under_large_logits(rows, classes, scale, data):
    """softmax, log_softmax, logsumexp, cross_entropy and BCE-with-logits stay finite and equal
    torch's for logits of magnitude up to 1e4."""
    logits = data.draw(arrays((rows, classes), st.floats(-1, 1))) * scale
    target = np.asarray(data.draw(st.lists(st.integers(0, classes - 1), min_size=rows, max_size=rows)))
    probs = data.draw(arrays((rows, classes), st.floats(0, 1)))
    for dtype in ("float32", "float64"):
        mx, tx = both(logits, dtype)
        cases = {
            "softmax": (lambda lib, x: lib.F.softmax(x, 1)),
            "log_softmax": (lambda lib, x: lib.F.log_softmax(x, 1)),
            "logsumexp": (lambda lib, x: lib.logsumexp(x, 1)),
            "cross_entropy": (lambda lib, x: lib.F.cross_entropy(x, lib.from_numpy(target.copy()))),
            "bce_logits": (
                lambda lib, x, dtype=dtype: lib.F.binary_cross_entropy_with_logits(
                    x, lib.from_numpy(probs.astype(dtype))
                )
            ),
        }
        rtol, atol = (1e-4, 1e-3) if dtype == "float32" else (1e-10, 1e-8)
        for name, fn in cases.items():
            m_out, t_out = fn(MINIDL, mx), fn(TORCH, tx)
            assert np.all(np.isfinite(m_out.detach().numpy())), f"{name} is not finite for scale {scale}"
            assert_close(m_out, t_out, rtol, atol, name)
            compare_grads(m_out, t_out, [mx], [tx], rtol, atol)
