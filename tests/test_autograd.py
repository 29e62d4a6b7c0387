"""The autograd engine's semantics, checked against PyTorch.

Every test builds the same computation in minidl and in torch from the same NumPy values and
compares what autograd produces: ``backward`` (retain_graph, create_graph, inputs=), ``grad``,
``.grad`` accumulation and aliasing, hooks and ``retain_grad``, grad modes, in-place ops and
version counters, higher-order derivatives, the iterative engine on a very deep graph, the
release of saved values, anomaly detection, and ``gradcheck`` / ``gradgradcheck``.
Where torch is not the reference, an analytic derivative is.
"""

from __future__ import annotations

import gc
import re
import threading
import time
import warnings
import weakref

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch.autograd.gradcheck import GradcheckError as TorchGradcheckError

import minidl

LIBS = (minidl, torch)
by_lib = pytest.mark.parametrize("lib", LIBS, ids=["minidl", "torch"])
RTOL, ATOL = 1e-10, 1e-12
RTOL2, ATOL2 = 1e-8, 1e-10
# torch warns that backward(create_graph=True) makes a parameter/.grad reference cycle.
quiet_create_graph = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")


def npy(t) -> np.ndarray:
    """A copy of a minidl or torch tensor's values as a NumPy array."""
    return np.array(t.detach().numpy(), copy=True)


def same(m, t, rtol: float = RTOL, atol: float = ATOL) -> None:
    """A minidl tensor equals a torch tensor: both present, same dtype, same values."""
    assert (m is None) == (t is None), f"minidl gives {m!r}, torch gives {t!r}"
    if m is None:
        return
    a, b = npy(m), npy(t)
    assert a.dtype == b.dtype, f"dtype {a.dtype} (minidl) vs {b.dtype} (torch)"
    assert a.shape == b.shape, f"shape {a.shape} (minidl) vs {b.shape} (torch)"
    assert_allclose(a, b, rtol=rtol, atol=atol)


def leaf(lib, array: np.ndarray, requires_grad: bool = True):
    """A leaf of ``lib`` holding a copy of ``array``."""
    return lib.tensor(np.array(array, copy=True), requires_grad=requires_grad)


def both(fn):
    """``fn(lib)`` for minidl and for torch."""
    return fn(minidl), fn(torch)


def both_raise(fn, exc=RuntimeError):
    """``fn(lib)`` raises ``exc`` in both libraries; returns the two exceptions."""
    errors = []
    for lib in LIBS:
        with pytest.raises(exc) as info:
            fn(lib)
        errors.append(info.value)
    return errors


@pytest.fixture
def xa(rng) -> np.ndarray:
    return rng.standard_normal(5)


@pytest.fixture
def ya(rng) -> np.ndarray:
    return rng.standard_normal(5)


# ---- backward ----------------------------------------------------------------------------------


def test_backward_scalar_default_gradient(xa, ya):
    """loss.backward() on a scalar seeds with 1 and fills every leaf's .grad."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        (x * y + x.sin() * y.exp()).sum().backward()
        return x.grad, y.grad

    (mx, my), (tx, ty) = both(run)
    same(mx, tx)
    same(my, ty)


def test_backward_with_gradient_argument(xa, ya, rng):
    """A non-scalar output takes gradient= (the vector of the vector-Jacobian product)."""
    v = rng.standard_normal(5)

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        out = x * y.tanh() + x**2
        out.backward(gradient=lib.tensor(v))
        return x.grad, y.grad

    (mx, my), (tx, ty) = both(run)
    same(mx, tx)
    same(my, ty)


def test_backward_nonscalar_without_gradient_raises(xa):
    """backward() on a non-scalar needs an explicit gradient."""
    errors = both_raise(lambda lib: (leaf(lib, xa) * 2).backward())
    assert "scalar" in str(errors[0])


def test_backward_wrong_gradient_shape_raises(xa):
    """gradient= must have the output's shape."""
    both_raise(lambda lib: (leaf(lib, xa) * 2).backward(gradient=lib.tensor(np.ones(3))))


def test_backward_on_tensor_without_grad_raises(xa):
    """backward on something that does not require grad is an error."""
    both_raise(lambda lib: (leaf(lib, xa, requires_grad=False) * 2).sum().backward())


def test_gradients_accumulate_across_backward_calls(xa, ya):
    """Two separate graphs sharing a leaf add their gradients into .grad."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        (x * y).sum().backward()
        first = x.grad.clone()
        (x.exp() * y).sum().backward()
        return first, x.grad, y.grad

    (m1, mx, my), (t1, tx, ty) = both(run)
    same(m1, t1)
    same(mx, tx)
    same(my, ty)
    assert_allclose(npy(mx), ya + np.exp(xa) * ya, rtol=RTOL)


def test_accumulation_writes_into_existing_grad_like_torch(xa):
    """A reference to .grad taken after the first backward sees the second one's sum (as torch)."""

    def run(lib):
        x = leaf(lib, xa)
        (x * x).sum().backward()
        held = x.grad
        (x * 3).sum().backward()
        return held, x.grad

    (mh, mg), (th, tg) = both(run)
    same(mh, th)
    same(mg, tg)


def test_backward_twice_without_retain_graph_raises(xa):
    """The first backward frees the graph; the error says to pass retain_graph=True."""

    def run(lib):
        x = leaf(lib, xa)
        loss = (x.sin() * x).sum()
        loss.backward()
        loss.backward()

    errors = both_raise(run)
    assert "retain_graph=True" in str(errors[0])
    assert "retain_graph=True" in str(errors[1])


def test_backward_twice_with_retain_graph_accumulates(xa):
    """retain_graph=True keeps the graph; the second pass adds the same gradient again."""

    def run(lib):
        x = leaf(lib, xa)
        loss = (x.sin() * x.exp()).sum()
        loss.backward(retain_graph=True)
        first = x.grad.clone()
        loss.backward()
        return first, x.grad

    (m1, m2), (t1, t2) = both(run)
    same(m1, t1)
    same(m2, t2)
    assert_allclose(npy(m2), 2 * npy(m1), rtol=RTOL)


def test_backward_on_scalar_leaf():
    """x.backward() on a scalar leaf sets x.grad to 1."""

    def run(lib):
        x = leaf(lib, np.array(2.5))
        x.backward()
        return x.grad

    same(*both(run))


def test_backward_on_leaf_with_gradient(xa, rng):
    """x.backward(gradient=v) on a leaf gives x.grad == v."""
    v = rng.standard_normal(5)

    def run(lib):
        x = leaf(lib, xa)
        x.backward(gradient=lib.tensor(v))
        return x.grad

    m, t = both(run)
    same(m, t)
    assert_allclose(npy(m), v)


@quiet_create_graph
def test_create_graph_implies_retain_graph(xa):
    """backward(create_graph=True) keeps the graph for a second pass."""

    def run(lib):
        x = leaf(lib, xa)
        loss = (x**3).sum()
        loss.backward(create_graph=True)
        loss.backward(create_graph=True)
        return x.grad

    m, t = both(run)
    same(m, t)
    assert m.requires_grad and t.requires_grad


# ---- .grad must own its memory ----------------------------------------------------------------


def test_leaf_grads_do_not_alias_each_other(xa, ya):
    """(a + b).sum().backward(): zeroing a.grad in place leaves b.grad alone."""

    def run(lib):
        a, b = leaf(lib, xa), leaf(lib, ya)
        (a + b).sum().backward()
        a.grad.zero_()
        return a.grad, b.grad

    (ma, mb), (ta, tb) = both(run)
    same(ma, ta)
    same(mb, tb)
    assert_allclose(npy(mb), np.ones(5))


def test_leaf_grads_do_not_alias_with_gradient_argument(xa, ya, rng):
    """Same for a + b with an explicit gradient: neither .grad aliases the other or v."""
    v = rng.standard_normal(5)

    def run(lib):
        a, b = leaf(lib, xa), leaf(lib, ya)
        vt = lib.tensor(v)
        (a + b).backward(gradient=vt)
        a.grad.mul_(3)
        vt.add_(100)
        return a.grad, b.grad

    (ma, mb), (ta, tb) = both(run)
    same(ma, ta)
    same(mb, tb)
    assert_allclose(npy(mb), v)


def test_leaf_backward_grad_does_not_alias_gradient(xa, rng):
    """x.backward(gradient=v) on a leaf copies v: changing v afterwards leaves x.grad alone."""
    v = rng.standard_normal(5)

    def run(lib):
        x = leaf(lib, xa)
        vt = lib.tensor(v)
        x.backward(gradient=vt)
        vt.mul_(0)
        first = x.grad.clone()
        x.grad.add_(1)
        return first, vt

    (mg, mv), (tg, tv) = both(run)
    same(mg, tg)
    same(mv, tv)
    assert_allclose(npy(mg), v)


def test_grad_through_view_does_not_alias_gradient(xa, rng):
    """A reshape sends back a view of gradient=; .grad must still own its storage.

    (torch steals that view here, so x.grad would follow v; minidl's rule is stricter: a
    leaf's .grad never shares memory with a tensor the user holds.)
    """
    v = rng.standard_normal((5, 1))
    x = leaf(minidl, xa)
    vt = minidl.tensor(v)
    x.reshape(5, 1).backward(gradient=vt)
    assert not np.shares_memory(x.grad.numpy(), vt.numpy())
    vt.zero_()
    assert_allclose(npy(x.grad), v.reshape(5))


def test_grad_of_broadcast_is_writable(xa):
    """The grad of a sum (a broadcast of the seed) is an ordinary writable tensor."""

    def run(lib):
        x = leaf(lib, xa)
        x.sum().backward()
        x.grad.mul_(2)
        y = leaf(lib, xa)
        (x.sum() + y.sum()).backward()
        x.grad.add_(1)
        return x.grad, y.grad

    (mx, my), (tx, ty) = both(run)
    same(mx, tx)
    same(my, ty)


# ---- autograd.grad -----------------------------------------------------------------------------


def test_grad_multiple_outputs_and_inputs(xa, ya, rng):
    """grad(outputs, inputs, grad_outputs) sums the vector-Jacobian products of every output."""
    v1, v2 = rng.standard_normal(5), rng.standard_normal(())

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        o1 = x * y.sin()
        o2 = (x.exp() * y).sum()
        return lib.autograd.grad([o1, o2], [x, y], grad_outputs=[lib.tensor(v1), lib.tensor(v2)])

    (mx, my), (tx, ty) = both(run)
    same(mx, tx)
    same(my, ty)


def test_grad_single_tensor_arguments(xa):
    """grad accepts a single output and a single input (not lists); returns a tuple."""

    def run(lib):
        x = leaf(lib, xa)
        return lib.autograd.grad((x * x.cos()).sum(), x)

    m, t = both(run)
    assert isinstance(m, tuple) and len(m) == 1
    same(m[0], t[0])


def test_grad_non_leaf_input(xa):
    """Gradients with respect to an intermediate tensor."""

    def run(lib):
        x = leaf(lib, xa)
        h = x * 2 + 1
        out = (h.sin() * h).sum()
        return lib.autograd.grad(out, [h, x])

    (mh, mx), (th, tx) = both(run)
    same(mh, th)
    same(mx, tx)


def test_grad_unused_input_raises_by_default(xa, ya):
    """An input the outputs don't depend on is an error unless allow_unused=True."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        lib.autograd.grad((x * 2).sum(), [x, y])

    errors = both_raise(run)
    assert "allow_unused" in str(errors[0])


def test_grad_unused_input_allow_unused_gives_none(xa, ya):
    """allow_unused=True returns None for the unused input."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        return lib.autograd.grad((x * 2).sum(), [x, y], allow_unused=True)

    (mx, my), (tx, ty) = both(run)
    same(mx, tx)
    assert my is None and ty is None


def test_grad_materialize_grads_gives_zeros(xa, ya):
    """materialize_grads=True returns zeros for the unused input."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        return lib.autograd.grad((x * 2).sum(), [x, y], materialize_grads=True)

    (mx, my), (tx, ty) = both(run)
    same(mx, tx)
    same(my, ty)


def test_grad_does_not_touch_dot_grad(xa, ya):
    """autograd.grad returns gradients and leaves every .grad as it was."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        (x * 5).sum().backward()
        before = x.grad.clone()
        h = x * y
        h.retain_grad()
        (gx,) = lib.autograd.grad((h * h).sum(), [x])
        return before, x.grad, y.grad, gx

    (mb, mx, my, mg), (tb, tx, ty, tg) = both(run)
    same(mx, tx)
    same(mx, mb)
    assert my is None and ty is None
    same(mg, tg)


def test_grad_frees_graph_unless_retained(xa):
    """grad without retain_graph frees the graph; with it, a second call works."""

    def twice(lib, retain):
        x = leaf(lib, xa)
        out = (x.exp() * x).sum()
        g1 = lib.autograd.grad(out, x, retain_graph=retain)
        g2 = lib.autograd.grad(out, x)
        return g1[0], g2[0]

    (m1, m2), (t1, t2) = both(lambda lib: twice(lib, True))
    same(m1, t1)
    same(m2, t2)
    errors = both_raise(lambda lib: twice(lib, False))
    assert "retain_graph=True" in str(errors[0])


def test_grad_create_graph_result_is_differentiable(xa):
    """With create_graph=True the returned gradient has a history; without, it has none."""

    def run(lib):
        x = leaf(lib, xa)
        (g,) = lib.autograd.grad((x**3).sum(), x, create_graph=True)
        (g_plain,) = lib.autograd.grad((x**3).sum(), x)
        return g, g_plain

    (mg, mp), (tg, tp) = both(run)
    same(mg, tg)
    same(mp, tp)
    assert mg.requires_grad == tg.requires_grad is True
    assert mp.requires_grad == tp.requires_grad is False


# ---- retain_grad and hooks ---------------------------------------------------------------------


def test_retain_grad_on_non_leaf(xa):
    """retain_grad() keeps a non-leaf's gradient in .grad, accumulating over passes."""

    def run(lib):
        x = leaf(lib, xa)
        h = x.sin() * 3
        h.retain_grad()
        out = (h * h.exp()).sum()
        out.backward(retain_graph=True)
        first = h.grad.clone()
        out.backward()
        return first, h.grad, x.grad, h.retains_grad

    (m1, m2, mx, mr), (t1, t2, tx, tr) = both(run)
    same(m1, t1)
    same(m2, t2)
    same(mx, tx)
    assert mr and tr


def test_non_leaf_grad_is_none_without_retain_grad(xa):
    """A non-leaf's .grad stays None after backward unless retain_grad() was called."""

    def run(lib):
        x = leaf(lib, xa)
        h = x * 2
        (h * h).sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return h.grad

    m, t = both(run)
    assert m is None and t is None


def test_hook_on_leaf_doubles_gradient(xa):
    """A leaf hook's return value replaces the gradient accumulated into .grad."""

    def run(lib):
        x = leaf(lib, xa)
        x.register_hook(lambda g: g * 2)
        (x * x.sin()).sum().backward()
        return x.grad

    same(*both(run))


def test_hook_on_non_leaf_doubles_gradient(xa, ya):
    """A non-leaf hook's return value is what flows on to the inputs."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        h = x * y
        h.register_hook(lambda g: g * 2)
        (h.exp() + x).sum().backward()
        return x.grad, y.grad

    (mx, my), (tx, ty) = both(run)
    same(mx, tx)
    same(my, ty)


def test_hook_removal(xa):
    """handle.remove() takes a hook off again, on leaves and non-leaves."""

    def run(lib):
        x = leaf(lib, xa)
        h = x.tanh()
        hx = x.register_hook(lambda g: g * 10)
        hh = h.register_hook(lambda g: g * 3)
        hx.remove()
        out = (h * h).sum()
        out.backward(retain_graph=True)
        first = x.grad.clone()
        hh.remove()
        x.grad = None
        out.backward()
        return first, x.grad

    (m1, m2), (t1, t2) = both(run)
    same(m1, t1)
    same(m2, t2)


def test_hook_order_and_values(xa):
    """Hooks run in torch's order (output side first, registration order per tensor) and see
    the same gradients, including one changed by an earlier hook."""

    def run(lib):
        log = []
        x = leaf(lib, xa)
        h1 = x * 2
        h2 = h1.sin()
        out = (h2 * h2 + h1).sum()
        x.register_hook(lambda g: log.append(("x", npy(g))))
        h1.register_hook(lambda g: log.append(("h1-a", npy(g))))
        h1.register_hook(lambda g: g * 2)
        h1.register_hook(lambda g: log.append(("h1-b", npy(g))))
        h2.register_hook(lambda g: log.append(("h2", npy(g))))
        out.backward()
        return log, x.grad

    (mlog, mx), (tlog, tx) = both(run)
    assert [name for name, _ in mlog] == [name for name, _ in tlog]
    for (_, a), (_, b) in zip(mlog, tlog):
        assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    same(mx, tx)


def test_hook_called_once_on_summed_gradient(xa):
    """A tensor used twice has its hook called once, on the total gradient."""

    def run(lib):
        seen = []
        x = leaf(lib, xa)
        h = x.exp()
        h.register_hook(lambda g: seen.append(("h", npy(g))))
        x.register_hook(lambda g: seen.append(("x", npy(g))))
        (h * x + h.sin() + x * 3).sum().backward()
        return seen

    mseen, tseen = both(run)
    assert [n for n, _ in mseen] == [n for n, _ in tseen]
    for (_, a), (_, b) in zip(mseen, tseen):
        assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_retain_grad_sees_hooked_gradient(xa):
    """A hook that changes a non-leaf's gradient also changes what retain_grad stores (torch
    runs retain_grad last, whatever the registration order)."""

    def run(lib):
        x = leaf(lib, xa)
        h = x.sin()
        h.retain_grad()
        h.register_hook(lambda g: g * 2)
        (h * h).sum().backward()
        return h.grad, x.grad

    (mh, mx), (th, tx) = both(run)
    same(mh, th)
    same(mx, tx)


def test_hooks_run_under_autograd_grad(xa):
    """Hooks apply to the gradients autograd.grad returns: on a non-leaf input, on what flows
    through a hooked non-leaf to a leaf, and on a leaf input (as torch)."""

    def run(lib):
        x = leaf(lib, xa)
        h = x.cos()
        h.register_hook(lambda g: g * 3)
        out = (h * x).sum()
        (gh,) = lib.autograd.grad(out, [h], retain_graph=True)
        (gx,) = lib.autograd.grad(out, [x])
        y = leaf(lib, xa)
        y.register_hook(lambda g: g * 5)
        (gy,) = lib.autograd.grad((y * y).sum(), y)
        return gh, gx, gy

    (mh, mx, my), (th, tx, ty) = both(run)
    same(mh, th)
    same(mx, tx)
    same(my, ty)


def test_register_hook_on_tensor_without_grad_raises(xa):
    """A hook needs a tensor that requires grad."""
    both_raise(lambda lib: leaf(lib, xa, requires_grad=False).register_hook(lambda g: g))


# ---- grad modes --------------------------------------------------------------------------------


@by_lib
def test_no_grad_context_manager(lib, xa):
    """Inside no_grad nothing is recorded; the mode is restored on exit, even after an error."""
    x = leaf(lib, xa)
    with lib.no_grad():
        assert not lib.is_grad_enabled()
        y = x * 2
    assert lib.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(ValueError):
        with lib.no_grad():
            raise ValueError("boom")
    assert lib.is_grad_enabled()
    assert (x * 2).requires_grad


@by_lib
def test_no_grad_decorator(lib, xa):
    """@no_grad() applies inside the function only."""

    @lib.no_grad()
    def double(t):
        return t * 2, lib.is_grad_enabled()

    x = leaf(lib, xa)
    y, inside = double(x)
    assert not inside and not y.requires_grad
    assert lib.is_grad_enabled()


@by_lib
def test_enable_grad_inside_no_grad(lib, xa):
    """enable_grad turns recording back on, as a context manager and as a decorator."""

    @lib.enable_grad()
    def double(t):
        return t * 2

    x = leaf(lib, xa)
    with lib.no_grad():
        with lib.enable_grad():
            y = x * 2
            assert lib.is_grad_enabled()
        assert not lib.is_grad_enabled()
        z = double(x)
        assert not lib.is_grad_enabled()
    assert y.requires_grad and z.requires_grad


@by_lib
def test_set_grad_enabled_plain_call(lib):
    """set_grad_enabled(False) as a plain call switches recording off until switched back."""
    x = leaf(lib, np.ones(2))
    try:
        lib.set_grad_enabled(False)
        assert not lib.is_grad_enabled()
        assert not (x * 2).requires_grad
        lib.set_grad_enabled(True)
        assert lib.is_grad_enabled()
        assert (x * 2).requires_grad
    finally:
        lib.set_grad_enabled(True)


@by_lib
def test_set_grad_enabled_context_manager_and_decorator(lib):
    """As a context manager it restores the previous mode; as a decorator it acts only inside."""
    x = leaf(lib, np.ones(2))
    with lib.set_grad_enabled(False):
        assert not lib.is_grad_enabled()
        with lib.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not lib.is_grad_enabled()
    assert lib.is_grad_enabled()

    @lib.set_grad_enabled(False)
    def inner():
        return lib.is_grad_enabled()

    assert lib.is_grad_enabled(), f"{lib.__name__}: decorating must not change the mode"
    assert inner() is False
    assert lib.is_grad_enabled()


@by_lib
def test_grad_mode_is_per_thread(lib):
    """no_grad in one thread does not switch recording off in another."""
    seen = []
    with lib.no_grad():
        thread = threading.Thread(target=lambda: seen.append(lib.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_requires_grad_(xa):
    """requires_grad_ sets the flag in place and returns the tensor."""

    def run(lib):
        x = leaf(lib, xa, requires_grad=False)
        assert x.requires_grad_() is x
        assert x.requires_grad and x.is_leaf
        (x * x).sum().backward()
        x.requires_grad_(False)
        return x.grad, x.requires_grad, (x * 2).requires_grad

    (mg, mr, mr2), (tg, tr, tr2) = both(run)
    same(mg, tg)
    assert (mr, mr2) == (tr, tr2) == (False, False)


def test_requires_grad_errors():
    """Integer tensors can't require grad; a non-leaf's flag can't be switched off."""
    both_raise(lambda lib: lib.tensor(np.arange(3)).requires_grad_())
    both_raise(lambda lib: (leaf(lib, np.ones(3)) * 2).requires_grad_(False))


def test_detach(xa):
    """detach cuts the graph but shares storage and the version counter."""

    def run(lib):
        x = leaf(lib, xa)
        d = x.detach()
        assert not d.requires_grad and d.grad_fn is None and d.is_leaf
        (x * x.detach()).sum().backward()
        h = x * 3
        hd = h.detach()
        hd.add_(1)  # shares storage with h
        return x.grad, h, hd._version, h._version

    (mg, mh, mvd, mvh), (tg, th, tvd, tvh) = both(run)
    same(mg, tg)
    same(mh, th)
    assert (mvd, mvh) == (tvd, tvh)


def test_modifying_detached_saved_tensor_is_detected(xa, ya):
    """Changing a saved input through detach() bumps the shared version: backward raises."""

    def run(lib):
        x, w = leaf(lib, xa), leaf(lib, ya)
        y = x * w
        x.detach().mul_(2)
        y.sum().backward()

    errors = both_raise(run)
    assert "version" in str(errors[0])


# ---- in-place ops ------------------------------------------------------------------------------

# Each case takes leaves x, w (shape (5,)) and returns a scalar loss through an in-place op.
INPLACE = {
    "add_": lambda x, w: _sq(_then(x * 2, lambda y: y.add_(w))),
    "add_alpha": lambda x, w: _sq(_then(x * 2, lambda y: y.add_(w, alpha=0.5))),
    "sub_": lambda x, w: _sq(_then(x.sin(), lambda y: y.sub_(w))),
    "mul_scalar": lambda x, w: _sq(_then(x * 2, lambda y: y.mul_(3.0))),
    "mul_const_tensor": lambda x, w: _sq(_then(x * 2, lambda y: y.mul_(w.detach()))),
    "mul_grad_tensor": lambda x, w: _sq(_then(x + 1, lambda y: y.mul_(w))),
    "div_scalar": lambda x, w: _sq(_then(x * 2, lambda y: y.div_(4.0))),
    "div_const_tensor": lambda x, w: _sq(_then(x * 2, lambda y: y.div_(w.detach() + 3))),
    "div_grad_tensor": lambda x, w: _sq(_then(x + 1, lambda y: y.div_(w + 3))),
    "zero_": lambda x, w: (_then(x * 2, lambda y: y.zero_()) + x * x).sum(),
    "fill_": lambda x, w: (_then(x * 2, lambda y: y.fill_(1.5)) * x).sum(),
    "fill_tensor": lambda x, w: (_then(x * 2, lambda y: y.fill_(w.sum())) * x).sum(),
    "clamp_": lambda x, w: _sq(_then(x * 2, lambda y: y.clamp_(min=-0.5, max=0.5))),
    "clamp_min": lambda x, w: _sq(_then(x * 2, lambda y: y.clamp_(min=0.0))),
    "setitem_slice": lambda x, w: _sq(_then(x * 2, lambda y: y.__setitem__(slice(1, 3), w[1:3]))),
    "setitem_int": lambda x, w: _sq(_then(x.sin(), lambda y: y.__setitem__(0, 0.5))),
    "setitem_list": lambda x, w: _sq(_then(x * 2, lambda y: y.__setitem__([0, 3], w[:2] * 3))),
    "setitem_mask": lambda x, w: _sq(_then(x * 2, lambda y: y.__setitem__(y.detach() > 0, 0.0))),
    "iadd": lambda x, w: _sq(_iop(x * 2, "__iadd__", w)),
    "isub": lambda x, w: _sq(_iop(x * 2, "__isub__", w)),
    "imul": lambda x, w: _sq(_iop(x * 2, "__imul__", 3.0)),
    "itruediv": lambda x, w: _sq(_iop(x * 2, "__itruediv__", 4.0)),
    "chain": lambda x, w: _sq(_then(x * 1.5, lambda y: y.add_(1).mul_(2).sub_(w).div_(3.0))),
}


def _then(y, fn):
    """Apply the in-place ``fn`` to ``y``; return ``y`` (now carrying the in-place history)."""
    fn(y)
    return y


def _iop(y, name, other):
    """``y <op>= other``, returning the result as Python's augmented assignment would."""
    return getattr(y, name)(other)


def _sq(y):
    return (y * y).sum()


@pytest.mark.parametrize("case", list(INPLACE))
def test_inplace_gradients_match_torch(case, xa, ya):
    """In-place ops on non-leaf tensors give the same values and gradients as torch."""
    fn = INPLACE[case]

    def run(lib):
        x, w = leaf(lib, xa), leaf(lib, ya)
        loss = fn(x, w)
        loss.backward()
        return loss, x.grad, w.grad

    (ml, mx, mw), (tl, tx, tw) = both(run)
    same(ml, tl)
    same(mx, tx)
    same(mw, tw)


@by_lib
def test_iadd_keeps_identity_and_bumps_version(lib, xa, ya):
    """``y += w`` modifies y in place (same object), bumps _version and records the op."""
    x, w = leaf(lib, xa), leaf(lib, ya)
    y = x * 2
    before = y
    y += w
    assert y is before
    assert y._version == 1
    assert y.grad_fn is not None and y.requires_grad


def test_inplace_then_backward_safe_case(xa):
    """y = x * 2; y.mul_(3): nothing saved is overwritten, and dy/dx = 6."""

    def run(lib):
        x = leaf(lib, xa)
        y = x * 2
        y.mul_(3)
        y.sum().backward()
        return x.grad

    m, t = both(run)
    same(m, t)
    assert_allclose(npy(m), np.full(5, 6.0))


# Each case modifies, in place, a tensor that an earlier op saved for its backward rule.
# The second field is a name the minidl error must mention (the op whose saved value changed).
SAVED_MODIFIED = {
    "exp_output": (lambda x: _then(x.exp(), lambda y: y.add_(1)).sum(), "ExpBackward"),
    "tanh_output": (lambda x: _then(x.tanh(), lambda y: y.mul_(2)).sum(), "TanhBackward"),
    "sigmoid_output": (lambda x: _then(x.sigmoid(), lambda y: y.zero_()).sum(), "SigmoidBackward"),
    "sqrt_output": (lambda x: _then((x * x + 1).sqrt(), lambda y: y.fill_(2.0)).sum(), "SqrtBackward"),
    "sin_input": (lambda x: _modify_input(x, lambda h: h.sin(), lambda h: h.add_(1)), "SinBackward"),
    "mul_input": (lambda x: _modify_input(x, lambda h: h * x, lambda h: h.zero_()), "MulBackward"),
    "pow_input": (lambda x: _modify_input(x, lambda h: h**3, lambda h: h.mul_(2)), "PowBackward"),
    "matmul_input": (
        lambda x: _modify_input(x, lambda h: h.reshape(5, 1) @ x.reshape(1, 5), lambda h: h.sub_(1)),
        "MatmulBackward",
    ),
    "setitem_input": (
        lambda x: _modify_input(x, lambda h: h.exp() * h, lambda h: h.__setitem__(0, 1.0)),
        "MulBackward",
    ),
}


def _modify_input(x, use, modify):
    h = x * 2
    out = use(h)
    modify(h)
    return out.sum()


@pytest.mark.parametrize("case", list(SAVED_MODIFIED))
def test_modified_saved_tensor_raises(case, xa):
    """Backward through a value overwritten in place raises, naming the op and the versions."""
    fn, op_name = SAVED_MODIFIED[case]

    def run(lib):
        x = leaf(lib, xa)
        fn(x).backward()

    merr, terr = both_raise(run)
    assert "modified by an inplace operation" in str(terr)
    message = str(merr)
    assert "in-place" in message and op_name in message, message
    assert re.search(r"version 1\D.*expected (version )?0", message), message


def test_inplace_on_leaf_requiring_grad_raises(xa):
    """In-place ops on a leaf that requires grad are refused, in every form."""
    ops = [
        lambda x: x.add_(1),
        lambda x: x.mul_(2),
        lambda x: x.zero_(),
        lambda x: x.fill_(1.0),
        lambda x: x.clamp_(min=0.0),
        lambda x: x.__setitem__(0, 1.0),
        lambda x: x.__iadd__(1.0),
    ]
    for op in ops:
        both_raise(lambda lib, op=op: op(leaf(lib, xa)))


def test_inplace_on_leaf_under_no_grad_is_allowed_and_detected(xa):
    """Under no_grad a leaf may be updated (as optimizers do); a graph that saved it then raises."""

    def update(lib):
        x = leaf(lib, xa)
        with lib.no_grad():
            x.mul_(2)
            x[0] = 7.0
        (x * x).sum().backward()
        return x.grad, x._version

    (mg, mv), (tg, tv) = both(update)
    same(mg, tg)
    assert mv == tv

    def stale(lib):
        x = leaf(lib, xa)
        y = x * x
        with lib.no_grad():
            x.add_(1)
        y.sum().backward()

    both_raise(stale)


def test_version_counter_increments_like_torch():
    """_version counts every in-place change, shared by views and detached aliases."""

    def run(lib):
        t = lib.tensor(np.zeros(4))
        versions = [t._version]
        steps = [
            lambda: t.add_(1),
            lambda: t.mul_(2),
            lambda: t.sub_(0.5),
            lambda: t.div_(2.0),
            lambda: t.__setitem__(0, 5.0),
            lambda: t.__setitem__(slice(1, 3), lib.tensor(np.ones(2))),
            lambda: t.zero_(),
            lambda: t.fill_(2.0),
            lambda: t.clamp_(min=0.0, max=1.0),
            lambda: t.__iadd__(1.0),
            lambda: t[1:3].add_(1),
            lambda: t.detach().mul_(3),
        ]
        for step in steps:
            step()
            versions.append(t._version)
        (t * 2).sum()  # out-of-place ops do not count
        versions.append(t._version)
        return versions, t

    (mv, mt), (tv, tt) = both(run)
    assert mv == tv
    same(mt, tt)


# ---- higher order ------------------------------------------------------------------------------

# Smooth functions of x (shape (6,)); third derivatives are compared with torch.
SMOOTH = {
    "cube": lambda lib, x: x**3,
    "sin": lambda lib, x: x.sin(),
    "exp": lambda lib, x: x.exp(),
    "tanh": lambda lib, x: x.tanh(),
    "matmul": lambda lib, x: (x.reshape(2, 3) @ x.reshape(3, 2)).tanh(),
    "softmax": lambda lib, x: lib.nn.functional.softmax(x.reshape(2, 3), dim=-1),
    "logsumexp": lambda lib, x: x.reshape(2, 3).logsumexp(dim=1),
}


@pytest.mark.parametrize("name", list(SMOOTH))
def test_higher_order_derivatives(name, rng):
    """First, second and third derivatives (as nested vector products) equal torch's."""
    fn = SMOOTH[name]
    xa = rng.standard_normal(6) * 0.7
    u1, u2 = rng.standard_normal(6), rng.standard_normal(6)

    def run(lib):
        x = leaf(lib, xa)
        out = fn(lib, x)
        v = lib.tensor(np.random.default_rng(7).standard_normal(tuple(out.shape)))
        (g1,) = lib.autograd.grad(out, x, v, create_graph=True)
        (g2,) = lib.autograd.grad(g1, x, lib.tensor(u1), create_graph=True)
        (g3,) = lib.autograd.grad(g2, x, lib.tensor(u2))
        return g1, g2, g3

    (m1, m2, m3), (t1, t2, t3) = both(run)
    same(m1, t1, RTOL2, ATOL2)
    same(m2, t2, RTOL2, ATOL2)
    same(m3, t3, RTOL2, ATOL2)


@pytest.mark.parametrize(
    ("name", "f", "d1", "d2", "d3"),
    [
        ("cube", lambda x: x**3, lambda x: 3 * x**2, lambda x: 6 * x, lambda x: 6 + 0 * x),
        ("sin", lambda x: x.sin(), np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x)),
        ("exp", lambda x: x.exp(), np.exp, np.exp, np.exp),
        (
            "tanh",
            lambda x: x.tanh(),
            lambda x: 1 - np.tanh(x) ** 2,
            lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2),
            lambda x: (1 - np.tanh(x) ** 2) * (6 * np.tanh(x) ** 2 - 2),
        ),
    ],
)
def test_elementwise_derivatives_analytic(name, f, d1, d2, d3, rng):
    """Elementwise derivatives up to third order equal the textbook formulas."""
    xa = rng.standard_normal(6)
    x = leaf(minidl, xa)
    (g1,) = minidl.autograd.grad(f(x).sum(), x, create_graph=True)
    (g2,) = minidl.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = minidl.autograd.grad(g2.sum(), x)
    assert_allclose(npy(g1), d1(xa), rtol=RTOL2, atol=ATOL2)
    assert_allclose(npy(g2), d2(xa), rtol=RTOL2, atol=ATOL2)
    assert_allclose(npy(g3), d3(xa), rtol=RTOL2, atol=ATOL2)


def test_hessian_vector_product(rng):
    """H v through grad of (grad . v), for two inputs, equals torch; for (x**4).sum() it is 12 x^2 v."""
    xa, wa = rng.standard_normal(4), rng.standard_normal((3, 4))
    vx, vw = rng.standard_normal(4), rng.standard_normal((3, 4))

    def run(lib):
        x, w = leaf(lib, xa), leaf(lib, wa)
        f = ((w @ x).tanh() ** 2).sum() + (x**4).sum()
        gx, gw = lib.autograd.grad(f, [x, w], create_graph=True)
        dot = (gx * lib.tensor(vx)).sum() + (gw * lib.tensor(vw)).sum()
        return lib.autograd.grad(dot, [x, w])

    (mx, mw), (tx, tw) = both(run)
    same(mx, tx, RTOL2, ATOL2)
    same(mw, tw, RTOL2, ATOL2)

    x = leaf(minidl, xa)
    (g,) = minidl.autograd.grad((x**4).sum(), x, create_graph=True)
    (hv,) = minidl.autograd.grad((g * minidl.tensor(vx)).sum(), x)
    assert_allclose(npy(hv), 12 * xa**2 * vx, rtol=RTOL2)


def test_gradient_penalty(rng):
    """WGAN-GP style: backward through the norm of an input gradient."""
    xa, wa, ba = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)

    def run(lib):
        x, w, b = leaf(lib, xa), leaf(lib, wa), leaf(lib, ba)
        critic = ((x @ w + b).tanh() ** 2).sum()
        (gx,) = lib.autograd.grad(critic, x, create_graph=True)
        penalty = (gx.norm() - 1) ** 2
        penalty.backward()
        return penalty, x.grad, w.grad, b.grad

    (mp, mx, mw, mb), (tp, tx, tw, tb) = both(run)
    same(mp, tp, RTOL2, ATOL2)
    same(mx, tx, RTOL2, ATOL2)
    same(mw, tw, RTOL2, ATOL2)
    same(mb, tb, RTOL2, ATOL2)


@quiet_create_graph
def test_backward_create_graph_then_differentiate_grad(xa):
    """backward(create_graph=True) leaves a differentiable .grad; its own backward gives d2."""

    def run(lib):
        x = leaf(lib, xa)
        (x**3 * x.sin()).sum().backward(create_graph=True)
        g = x.grad
        x.grad = None
        g.sum().backward()
        return g, x.grad

    (mg, m2), (tg, t2) = both(run)
    same(mg, tg, RTOL2, ATOL2)
    same(m2, t2, RTOL2, ATOL2)


# ---- the engine on deep graphs ------------------------------------------------------------------


def test_deep_chain_is_iterative():
    """100,000 chained ops backpropagate without recursion, quickly, to the analytic gradient."""
    n = 100_000
    start = time.perf_counter()
    x = minidl.tensor(np.array([0.5, -2.0]), requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0001
    y.sum().backward()
    del y
    gc.collect()
    elapsed = time.perf_counter() - start
    assert_allclose(npy(x.grad), np.full(2, 1.0001**n), rtol=1e-9)
    assert elapsed < 10, f"100k-op chain took {elapsed:.1f} s"


def test_deep_chain_of_additions():
    """y = y + 0.0 a 100,000 times: gradient 1, with grad() as well as backward()."""
    x = minidl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 0.0
    (g,) = minidl.autograd.grad(y.sum(), x)
    assert_allclose(npy(g), np.ones(3))


# ---- saved values are released -----------------------------------------------------------------


def _graph_with_big_intermediate(rng):
    x = minidl.tensor(rng.standard_normal(100_000), requires_grad=True)
    h = x * 2
    array_ref, tensor_ref = weakref.ref(h._data), weakref.ref(h)
    loss = (h.sin() * 3).sum()
    nodes = []
    node = loss.grad_fn
    while node is not None:  # the chain loss <- Mul <- Sin <- Mul(x * 2)
        nodes.append(node)
        node = next((e for e in node.edges if type(e) is type(node)), None)
    return x, loss, nodes, array_ref, tensor_ref


def test_saved_values_freed_after_backward(rng):
    """After backward, nodes drop their inputs and outputs, and the intermediate dies."""
    x, loss, nodes, array_ref, tensor_ref = _graph_with_big_intermediate(rng)
    assert len(nodes) == 4
    assert array_ref() is not None and tensor_ref() is not None  # held by the graph
    loss.backward()
    assert all(n._inputs is None and n._out_data is None for n in nodes)
    assert tensor_ref() is None
    assert array_ref() is None
    assert_allclose(npy(x.grad), 6 * np.cos(2 * npy(x)), rtol=1e-12)


def test_saved_values_kept_with_retain_graph(rng):
    """With retain_graph=True the saved values stay until a backward without it."""
    x, loss, nodes, array_ref, tensor_ref = _graph_with_big_intermediate(rng)
    loss.backward(retain_graph=True)
    assert all(n._inputs is not None for n in nodes)
    assert array_ref() is not None and tensor_ref() is not None
    loss.backward()
    assert array_ref() is None and tensor_ref() is None
    assert_allclose(npy(x.grad), 12 * np.cos(2 * npy(x)), rtol=1e-12)


def test_graph_freed_when_output_dropped(rng):
    """Dropping the output of an un-differentiated graph frees it (no reference cycles)."""
    x, loss, nodes, array_ref, tensor_ref = _graph_with_big_intermediate(rng)
    del loss, nodes
    assert array_ref() is None and tensor_ref() is None


# ---- anomaly detection -------------------------------------------------------------------------

NAN_BACKWARD = {
    "sqrt": (lambda x: (x.sqrt() * 0).sum(), "SqrtBackward"),
    "log": (lambda x: (x.log() * 0).sum(), "LogBackward"),
}


@pytest.mark.parametrize("case", list(NAN_BACKWARD))
def test_detect_anomaly_names_the_op(case):
    """Inside detect_anomaly a NaN produced by a backward rule raises, naming that rule."""
    fn, name = NAN_BACKWARD[case]
    errors = []
    for lib in LIBS:
        x = leaf(lib, np.array([0.0, 1.0]))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            with lib.autograd.detect_anomaly():
                assert lib.is_anomaly_enabled() if lib is torch else lib.autograd.is_anomaly_enabled()
                loss = fn(x)
                with pytest.raises(RuntimeError) as info:
                    loss.backward()
        errors.append(str(info.value))
        assert not (torch.is_anomaly_enabled() if lib is torch else minidl.autograd.is_anomaly_enabled())
    assert name in errors[0] and name in errors[1]
    assert "nan" in errors[0].lower()
    assert "test_autograd.py" in errors[0], "the error should show where the op was called"


@pytest.mark.parametrize("case", list(NAN_BACKWARD))
def test_nan_gradients_without_anomaly_mode(case):
    """Without anomaly mode the same backward silently yields NaN gradients, as in torch."""
    fn, _ = NAN_BACKWARD[case]

    def run(lib):
        x = leaf(lib, np.array([0.0, 1.0]))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fn(x).backward()
        return x.grad

    m, t = both(run)
    assert np.isnan(npy(t)[0])
    same(m, t)


def test_detect_anomaly_decorator_and_switch():
    """detect_anomaly works as a decorator; set_detect_anomaly switches it globally."""

    @minidl.autograd.detect_anomaly()
    def inside():
        return minidl.autograd.is_anomaly_enabled()

    assert inside() is True
    assert minidl.autograd.is_anomaly_enabled() is False
    try:
        minidl.autograd.set_detect_anomaly(True)
        assert minidl.autograd.is_anomaly_enabled()
    finally:
        minidl.autograd.set_detect_anomaly(False)
    assert not minidl.autograd.is_anomaly_enabled()


# ---- gradcheck ---------------------------------------------------------------------------------


def _correct(lib):
    return lambda x, w: (x @ w).tanh() * x.sum() + lib.nn.functional.softmax(x, dim=-1).sum(dim=-1, keepdim=True)


def _wrong_first(lib):
    """A function whose backward is wrong: a hook doubles an intermediate gradient."""

    def f(x, w):
        y = (x @ w).sin()
        if y.requires_grad:
            y.register_hook(lambda g: g * 2)
        return y * x.sum()

    return f


def _wrong_second(lib):
    """First derivative right, second wrong: a hook detaches the gradient flowing back."""

    def f(x, w):
        y = (x @ w) ** 3
        if y.requires_grad:
            y.register_hook(lambda g: None if g is None else g.detach())
        return y

    return f


def _gc_inputs(lib, rng_seed=3):
    r = np.random.default_rng(rng_seed)
    return leaf(lib, r.standard_normal((2, 3))), leaf(lib, r.standard_normal((3, 2)))


GRADCHECK_LIBS = pytest.mark.parametrize(
    ("lib", "error"),
    [(minidl, minidl.autograd.GradcheckError), (torch, TorchGradcheckError)],
    ids=["minidl", "torch"],
)


@by_lib
def test_gradcheck_passes_on_correct_function(lib):
    """gradcheck accepts correct float64 gradients (torch too)."""
    assert lib.autograd.gradcheck(_correct(lib), _gc_inputs(lib))


@GRADCHECK_LIBS
def test_gradcheck_catches_wrong_gradient(lib, error):
    """A wrong backward raises GradcheckError, or returns False with raise_exception=False."""
    with pytest.raises(error):
        lib.autograd.gradcheck(_wrong_first(lib), _gc_inputs(lib))
    assert lib.autograd.gradcheck(_wrong_first(lib), _gc_inputs(lib), raise_exception=False) is False
    assert issubclass(error, RuntimeError)


def test_gradcheck_refuses_float32():
    """float32 inputs are refused with a message pointing at float64."""
    x = minidl.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    w = minidl.tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    with pytest.raises((TypeError, ValueError)) as info:
        minidl.autograd.gradcheck(_correct(minidl), (x, w))
    assert "float64" in str(info.value)


@by_lib
def test_gradgradcheck_passes_on_correct_function(lib):
    """gradgradcheck accepts correct second derivatives (torch too)."""
    assert lib.autograd.gradgradcheck(_correct(lib), _gc_inputs(lib))


@GRADCHECK_LIBS
def test_gradgradcheck_catches_wrong_second_derivative(lib, error):
    """A first derivative that is right in value but not differentiable passes gradcheck and
    fails gradgradcheck (as in torch)."""
    assert lib.autograd.gradcheck(_wrong_second(lib), _gc_inputs(lib))
    with pytest.raises(error):
        lib.autograd.gradgradcheck(_wrong_second(lib), _gc_inputs(lib))
    assert lib.autograd.gradgradcheck(_wrong_second(lib), _gc_inputs(lib), raise_exception=False) is False


# ---- backward(inputs=...) ----------------------------------------------------------------------


def test_backward_inputs_restricts_accumulation(xa, ya):
    """backward(inputs=[x]) fills x.grad only; other leaves stay None."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        loss = (x * y + y.sin()).sum()
        loss.backward(inputs=[x], retain_graph=True)
        x_only = x.grad.clone()
        y_before = y.grad
        loss.backward(inputs=y)
        return x_only, y_before, x.grad, y.grad

    (m1, mb, mx, my), (t1, tb, tx, ty) = both(run)
    same(m1, t1)
    assert mb is None and tb is None
    same(mx, tx)
    same(my, ty)


def test_backward_inputs_non_leaf(xa):
    """A non-leaf listed in inputs= receives its gradient in .grad (as torch); leaves do not."""

    def run(lib):
        x = leaf(lib, xa)
        h = x.exp()
        (h * h).sum().backward(inputs=[h])
        return h.grad, x.grad

    (mh, mx), (th, tx) = both(run)
    same(mh, th)
    assert mx is None and tx is None


def test_backward_inputs_accumulates(xa, ya):
    """inputs= accumulates into existing .grad like a plain backward."""

    def run(lib):
        x, y = leaf(lib, xa), leaf(lib, ya)
        (x * y).sum().backward()
        (x.exp() * y).sum().backward(inputs=[x])
        return x.grad, y.grad

    (mx, my), (tx, ty) = both(run)
    same(mx, tx)
    same(my, ty)


# ---- dtypes ------------------------------------------------------------------------------------


def test_mixed_dtype_gradients_match_input_dtypes(rng):
    """float32 tensor times a float64 0-d tensor: each gradient has its own input's dtype."""
    aa, sa = rng.standard_normal(4).astype(np.float32), np.array(1.7)

    def run(lib):
        a, s = leaf(lib, aa), leaf(lib, sa)
        out = a * s
        (out * out).sum().backward()
        return out, a.grad, s.grad

    (mo, ma, ms), (to, ta, ts) = both(run)
    same(mo, to, 1e-6, 1e-6)
    same(ma, ta, 1e-5, 1e-6)
    same(ms, ts, 1e-5, 1e-6)


def test_mixed_dtype_promoting_gradients(rng):
    """float32 + float64 tensors (same rank) compute in float64; grads keep the input dtypes."""
    aa, ba = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3)

    def run(lib):
        a, b = leaf(lib, aa), leaf(lib, ba)
        out = (a * b).sin()
        out.sum().backward()
        return out, a.grad, b.grad

    (mo, ma, mb), (to, ta, tb) = both(run)
    same(mo, to)
    same(ma, ta, 1e-6, 1e-7)
    same(mb, tb, 1e-6, 1e-7)
