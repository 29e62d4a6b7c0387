"""Fused primitives against the compositions they replace (which stay as the reference):
``Linear`` vs ``x @ W.T + b``; ``CrossEntropy`` vs ``nll_loss(log_softmax(x))``;
``ReluBackward`` through relu's second derivative. Values, gradients and second derivatives."""

from __future__ import annotations

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl.ops.linalg import linear as fused_linear


def _leaf(rng, *shape, dtype="float64"):
    return minidl.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)


def _first_and_second(fn, inputs, rng):
    out = fn(*inputs)
    g = minidl.tensor(rng.standard_normal(out.shape))
    firsts = minidl.autograd.grad(out, inputs, g, create_graph=True)
    vs = [minidl.tensor(rng.standard_normal(x.shape)) for x in inputs]
    total = sum((f * v).sum() for f, v in zip(firsts, vs))
    seconds = minidl.autograd.grad(total, inputs, allow_unused=True, materialize_grads=True)
    return out, firsts, seconds


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear_matches_composition(shape):
    rng = np.random.default_rng(0)
    x, w, b = _leaf(rng, *shape), _leaf(rng, 3, 4), _leaf(rng, 3)
    fused = _first_and_second(lambda x, w, b: fused_linear(x, w, b), [x, w, b], np.random.default_rng(1))
    composed = _first_and_second(lambda x, w, b: x @ w.T + b, [x, w, b], np.random.default_rng(1))
    assert fused[0].grad_fn.name() == "LinearBackward"
    for a, c in zip([fused[0], *fused[1], *fused[2]], [composed[0], *composed[1], *composed[2]]):
        np.testing.assert_allclose(a.detach().numpy(), c.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_ignored", [False, True])
def test_cross_entropy_matches_composition(reduction, with_ignored):
    rng = np.random.default_rng(2)
    x = _leaf(rng, 6, 5)
    target = minidl.tensor([0, 4, 2, 2, 1, 3])
    if with_ignored:
        target = minidl.tensor([0, -100, 2, 2, -100, 3])

    def fused(x):
        return F.cross_entropy(x, target, reduction=reduction)

    def composed(x):
        return F.nll_loss(F.log_softmax(x, 1), target, reduction=reduction)

    a = _first_and_second(fused, [x], np.random.default_rng(3))
    c = _first_and_second(composed, [x], np.random.default_rng(3))
    assert a[0].grad_fn.name() == "CrossEntropyBackward"
    for u, v in zip([a[0], *a[1], *a[2]], [c[0], *c[1], *c[2]]):
        np.testing.assert_allclose(u.detach().numpy(), v.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_cross_entropy_kernel_reports_bad_targets_before_computing():
    x = minidl.randn(3, 4, requires_grad=True)
    with pytest.raises(IndexError, match="target 7 is out of bounds for 4 classes"):
        F.cross_entropy(x, minidl.tensor([0, 7, 1]))


def test_cross_entropy_numba_and_reference_kernels_agree():
    from minidl.backend.kernel_loader import import_kernels

    kernels = import_kernels()
    import minidl.kernels.cpu.softmax as fast

    rng = np.random.default_rng(4)
    x = (rng.standard_normal((7, 9)) * 30).astype(np.float32)
    x[2, 3] = 1e4
    t = rng.integers(0, 9, 7)
    t[5] = -100
    for ref, got in zip(kernels.reference.log_softmax_nll(x, t), fast.log_softmax_nll(x, t)):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_relu_second_derivative_through_relu_backward():
    rng = np.random.default_rng(5)
    x = minidl.tensor(np.array([-1.5, -0.2, 0.3, 2.0]), requires_grad=True)
    out, firsts, seconds = _first_and_second(lambda x: F.relu(x) * x, [x], rng)
    # d/dx relu(x) x = 2x for x > 0 and 0 otherwise; the second derivative is 2 or 0
    assert np.all((seconds[0].numpy() == 0) == (x.detach().numpy() <= 0))
