"""minidl.optim against torch.optim: every optimizer, every option that changes the math.

Each run feeds the same random gradients, 20 steps, to minidl and torch parameters that start
from identical values, then compares the parameters and every state buffer.

Tolerances. torch's CPU kernels fuse each multiply-add into one FMA (``add_`` with ``alpha``,
``addcmul_``, ``lerp_``) and take square roots through MKL, which is not correctly rounded;
NumPy rounds the product and the sum separately and its ``sqrt`` is exact. The two therefore
agree to about an ulp per operation, not bitwise. Errors are measured against the array's
scale (``atol = rtol * max|expected|``) because a coordinate that passes near zero keeps the
absolute error of its larger past values. Measured worst cases over these runs: about 3e-7
(float32) and 5e-16 (float64) of the scale; asserted: 1e-6 and 1e-13.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import minidl
import minidl.optim as optim
from minidl.optim import adagrad_update, adam_update, rmsprop_update, sgd_update

RTOL = {"float32": 1e-6, "float64": 1e-13}
SHAPES = ((4, 6), (6,), (17,))
STEPS = 20


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: str, what: str = "") -> None:
    assert actual.dtype == expected.dtype, what
    rtol = RTOL[dtype]
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def make_pair(dtype: str, rng: np.random.Generator, shapes=SHAPES):
    """The same initial values as minidl and torch leaf tensors."""
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    mine = [minidl.tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    return mine, theirs


def set_grads(mine, theirs, grads) -> None:
    for p, q, g in zip(mine, theirs, grads):
        if g is None:
            p.grad, q.grad = None, None
        else:
            p.grad, q.grad = minidl.tensor(g.copy()), torch.tensor(g.copy())


def assert_same_state(mopt, topt, mine, theirs, dtype: str) -> None:
    """Parameters, state keys and every state value equal torch's."""
    for i, (p, q) in enumerate(zip(mine, theirs)):
        assert_close(p.detach().numpy(), q.detach().numpy(), dtype, f"parameter {i}")
        tstate = topt.state.get(q, {})
        mstate = mopt.state.get(p, {})
        assert list(mstate) == list(tstate), f"state keys of parameter {i}"
        for key, value in tstate.items():
            if key == "step":
                assert isinstance(mstate[key], float)
                assert mstate[key] == value.item()
            else:
                assert_close(mstate[key].numpy(), value.numpy(), dtype, f"state {key!r} of parameter {i}")


def run_both(mcls, tcls, kwargs, dtype, steps=STEPS, grad_none=None, seed=0):
    """``steps`` steps of both optimizers on identical gradients; ``grad_none(step, i)`` says
    which gradients to leave unset."""
    rng = np.random.default_rng(seed)
    mine, theirs = make_pair(dtype, rng)
    mopt = mcls(mine, **kwargs)
    topt = tcls(theirs, foreach=False, **kwargs)
    for k in range(steps):
        grads = [
            None if grad_none and grad_none(k, i) else rng.standard_normal(s).astype(dtype)
            for i, s in enumerate(SHAPES)
        ]
        set_grads(mine, theirs, grads)
        mopt.step()
        topt.step()
    return mopt, topt, mine, theirs


def sgd_configs():
    configs = []
    for momentum, dampening, nesterov in [(0, 0, False), (0.9, 0, False), (0.9, 0.3, False), (0.9, 0, True)]:
        for weight_decay, maximize in itertools.product([0, 0.1], [False, True]):
            configs.append(
                dict(
                    lr=0.1,
                    momentum=momentum,
                    dampening=dampening,
                    nesterov=nesterov,
                    weight_decay=weight_decay,
                    maximize=maximize,
                )
            )
    return configs


def adam_configs():
    configs = [
        dict(lr=0.01, weight_decay=wd, amsgrad=ams, maximize=mx, decoupled_weight_decay=dec)
        for wd, ams, mx, dec in itertools.product([0, 0.1], [False, True], [False, True], [False, True])
    ]
    configs.append(dict(lr=0.01, betas=(0.3, 0.9)))  # 1 - beta1 >= 0.5: lerp's other formula
    return configs


def rmsprop_configs():
    configs = [
        dict(lr=0.01, centered=c, momentum=m, weight_decay=wd, maximize=mx)
        for c, m, wd, mx in itertools.product([False, True], [0, 0.9], [0, 0.1], [False, True])
    ]
    configs.append(dict(lr=0.01, alpha=0.3, centered=True))  # grad_avg's lerp with weight 0.7
    return configs


def adagrad_configs():
    return [
        dict(lr=0.1, lr_decay=d, weight_decay=wd, initial_accumulator_value=acc, maximize=mx)
        for d, wd, acc, mx in itertools.product([0, 0.05], [0, 0.1], [0, 0.2], [False, True])
    ]


CASES = (
    [("SGD", optim.SGD, torch.optim.SGD, c) for c in sgd_configs()]
    + [("Adam", optim.Adam, torch.optim.Adam, c) for c in adam_configs()]
    + [("AdamW", optim.AdamW, torch.optim.AdamW, c) for c in [dict(lr=0.01), dict(lr=0.01, amsgrad=True)]]
    + [("RMSprop", optim.RMSprop, torch.optim.RMSprop, c) for c in rmsprop_configs()]
    + [("Adagrad", optim.Adagrad, torch.optim.Adagrad, c) for c in adagrad_configs()]
)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "name,mcls,tcls,kwargs", CASES, ids=[f"{c[0]}-{'-'.join(f'{k}={v}' for k, v in c[3].items())}" for c in CASES]
)
def test_matches_torch_over_20_steps(name, mcls, tcls, kwargs, dtype):
    mopt, topt, mine, theirs = run_both(mcls, tcls, kwargs, dtype)
    assert_same_state(mopt, topt, mine, theirs, dtype)


@pytest.mark.parametrize(
    "mcls,tcls,kwargs",
    [
        (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
        (optim.Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
        (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.5)),
        (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1)),
    ],
)
def test_params_without_grad_are_skipped(mcls, tcls, kwargs):
    """A parameter whose grad is None is not touched (no step counted, no state created until
    its first gradient), as in torch; parameter 2 gets its first gradient at step 5."""

    def grad_none(step, i):
        return (i == 1 and step % 3 == 0) or (i == 2 and step < 5)

    mopt, topt, mine, theirs = run_both(mcls, tcls, kwargs, "float64", grad_none=grad_none)
    assert_same_state(mopt, topt, mine, theirs, "float64")
    before = mine[0].detach().numpy().copy()
    for p in mine:
        p.grad = None
    mopt.step()
    np.testing.assert_array_equal(mine[0].detach().numpy(), before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameter_groups_with_different_options(dtype):
    rng = np.random.default_rng(3)
    mine, theirs = make_pair(dtype, rng)
    m_groups = [{"params": mine[:1]}, {"params": mine[1:], "lr": 0.05, "weight_decay": 0.1, "amsgrad": True}]
    t_groups = [{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.05, "weight_decay": 0.1, "amsgrad": True}]
    mopt = optim.Adam(m_groups, lr=0.01, betas=(0.8, 0.99))
    topt = torch.optim.Adam(t_groups, lr=0.01, betas=(0.8, 0.99), foreach=False)
    assert mopt.param_groups[1]["betas"] == (0.8, 0.99) and mopt.param_groups[1]["lr"] == 0.05
    assert mopt.param_groups[0]["amsgrad"] is False
    for _ in range(STEPS):
        set_grads(mine, theirs, [rng.standard_normal(s).astype(dtype) for s in SHAPES])
        mopt.step()
        topt.step()
    assert_same_state(mopt, topt, mine, theirs, dtype)


def test_add_param_group_later_and_sgd_groups():
    rng = np.random.default_rng(4)
    mine, theirs = make_pair("float64", rng)
    mopt = optim.SGD(mine[:2], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(theirs[:2], lr=0.1, momentum=0.9, foreach=False)
    for k in range(STEPS):
        if k == 5:
            mopt.add_param_group({"params": mine[2], "lr": 0.3, "nesterov": True})
            topt.add_param_group({"params": theirs[2], "lr": 0.3, "nesterov": True})
        set_grads(mine, theirs, [rng.standard_normal(s) for s in SHAPES])
        mopt.step()
        topt.step()
    assert_same_state(mopt, topt, mine, theirs, "float64")


def test_adagrad_state_exists_from_construction_and_for_added_groups():
    rng = np.random.default_rng(5)
    mine, theirs = make_pair("float64", rng)
    mopt = optim.Adagrad(mine[:2], lr=0.1, initial_accumulator_value=0.5)
    topt = torch.optim.Adagrad(theirs[:2], lr=0.1, initial_accumulator_value=0.5, foreach=False)
    assert_same_state(mopt, topt, mine, theirs, "float64")  # before any step
    mopt.add_param_group({"params": [mine[2]]})
    mine[2].grad = minidl.ones(*SHAPES[2], dtype=minidl.float64)
    mopt.step()  # torch would fail here (no state for a parameter added later); minidl creates it
    assert mopt.state[mine[2]]["step"] == 1.0
    np.testing.assert_allclose(mopt.state[mine[2]]["sum"].numpy(), 1.5)


def test_closure_is_evaluated_with_grad_enabled_and_its_loss_returned():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 4))
    w0 = rng.standard_normal(4)
    mw = minidl.tensor(w0.copy(), requires_grad=True)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    mopt = optim.SGD([mw], lr=0.1, momentum=0.5)
    topt = torch.optim.SGD([tw], lr=0.1, momentum=0.5, foreach=False)

    def m_closure():
        mopt.zero_grad()
        loss = ((minidl.tensor(x) @ mw) ** 2).mean()
        loss.backward()
        return loss

    def t_closure():
        topt.zero_grad()
        loss = ((torch.tensor(x) @ tw) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(5):
        with minidl.no_grad():  # the closure still records: step turns grad mode on for it
            m_loss = mopt.step(m_closure)
        t_loss = topt.step(t_closure)
        assert isinstance(m_loss, minidl.Tensor)
        np.testing.assert_allclose(m_loss.item(), t_loss.item(), rtol=1e-13)
    np.testing.assert_allclose(mw.detach().numpy(), tw.detach().numpy(), rtol=1e-13)
    assert optim.SGD([mw]).step() is None


def test_zero_grad_both_modes():
    p = minidl.tensor([1.0, 2.0], requires_grad=True)
    q = minidl.tensor([3.0], requires_grad=True)
    opt = optim.SGD([p, q], lr=0.1)
    (p * p).sum().backward()
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad  # the same tensor, zeroed in place
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])
    assert not p.grad.requires_grad and q.grad is None
    (p * 3).sum().backward()  # accumulates into the zeroed gradient
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 3.0])
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_step_bumps_the_version_counter_and_records_nothing():
    p = minidl.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    p.grad = minidl.tensor([0.5, -0.5])
    v0 = p._version
    opt.step()
    assert p._version == v0 + 1
    assert p.is_leaf and p.grad_fn is None
    # a value saved for backward before the step is now stale, and backward says so
    y = (p * p).sum()
    opt.step()
    with pytest.raises(RuntimeError):
        y.backward()


def test_update_functions_work_on_raw_arrays():
    """The update functions are plain functions of arrays: calling them directly gives the same
    numbers as the optimizer classes (and as torch)."""
    rng = np.random.default_rng(7)
    p0, g = rng.standard_normal(10), rng.standard_normal(10)

    param = p0.copy()
    buf = sgd_update(param, g, None, lr=0.1, momentum=0.9, dampening=0, weight_decay=0, nesterov=False, maximize=False)
    sgd_update(param, g, buf, lr=0.1, momentum=0.9, dampening=0, weight_decay=0, nesterov=False, maximize=False)
    t = torch.tensor(p0.copy(), requires_grad=True)
    topt = torch.optim.SGD([t], lr=0.1, momentum=0.9, foreach=False)
    for _ in range(2):
        t.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(param, t.detach().numpy(), rtol=1e-14)

    param, m, v = p0.copy(), np.zeros(10), np.zeros(10)
    g_before = g.copy()
    adam_update(
        param,
        g,
        m,
        v,
        None,
        1.0,
        lr=0.01,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=0.1,
        amsgrad=False,
        maximize=True,
    )
    np.testing.assert_array_equal(g, g_before)  # the gradient is only read
    t = torch.tensor(p0.copy(), requires_grad=True)
    t.grad = torch.tensor(g)
    torch.optim.Adam([t], lr=0.01, weight_decay=0.1, maximize=True, foreach=False).step()
    np.testing.assert_allclose(param, t.detach().numpy(), rtol=1e-14)

    param, sq = p0.copy(), np.zeros(10)
    rmsprop_update(
        param,
        g,
        sq,
        None,
        None,
        lr=0.01,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        maximize=False,
    )
    t = torch.tensor(p0.copy(), requires_grad=True)
    t.grad = torch.tensor(g)
    torch.optim.RMSprop([t], lr=0.01, foreach=False).step()
    np.testing.assert_allclose(param, t.detach().numpy(), rtol=1e-14)

    param, s = p0.copy(), np.zeros(10)
    adagrad_update(param, g, s, 1.0, lr=0.1, lr_decay=0, weight_decay=0, eps=1e-10, maximize=False)
    t = torch.tensor(p0.copy(), requires_grad=True)
    t.grad = torch.tensor(g)
    torch.optim.Adagrad([t], lr=0.1, foreach=False).step()
    np.testing.assert_allclose(param, t.detach().numpy(), rtol=1e-14)


def test_trains_a_small_model_like_torch():
    """A two-layer model trained by each library's own Linear, loss and optimizer, from the
    same weights: the losses agree step by step."""
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((16, 5)).astype(np.float32), rng.standard_normal((16, 2)).astype(np.float32)
    m_model = minidl.nn.Sequential(minidl.nn.Linear(5, 8), minidl.nn.Tanh(), minidl.nn.Linear(8, 2))
    t_model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    with torch.no_grad():
        for mp, tp in zip(m_model.parameters(), t_model.parameters()):
            tp.copy_(torch.from_numpy(mp.detach().numpy().copy()))
    mopt = optim.AdamW(m_model.parameters(), lr=0.01)
    topt = torch.optim.AdamW(t_model.parameters(), lr=0.01, foreach=False)
    for _ in range(10):
        mopt.zero_grad()
        m_loss = minidl.nn.functional.mse_loss(m_model(minidl.tensor(x)), minidl.tensor(y))
        m_loss.backward()
        mopt.step()
        topt.zero_grad()
        t_loss = torch.nn.functional.mse_loss(t_model(torch.tensor(x)), torch.tensor(y))
        t_loss.backward()
        topt.step()
        np.testing.assert_allclose(m_loss.item(), t_loss.item(), rtol=1e-5)


# ---- state_dict ------------------------------------------------------------------------------

STATE_CASES = [
    (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=0.01)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.01)),
]
STATE_IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(STATE_CASES)]

#: options torch keeps to pick one of its implementations (foreach/fused kernels, CUDA graphs,
#: differentiable steps); minidl has one implementation, so its groups do not carry them
TORCH_ONLY_OPTIONS = {"foreach", "fused", "capturable", "differentiable"}


def two_groups(params, lr):
    return [{"params": params[:1]}, {"params": params[1:], "lr": lr}]


@pytest.mark.parametrize("mcls,tcls,kwargs", STATE_CASES, ids=STATE_IDS)
def test_state_dict_round_trip_mid_run_is_bitwise(mcls, tcls, kwargs):
    """Save at step 10, restore into fresh parameters and a fresh optimizer, run 10 more steps:
    bitwise the same as 20 uninterrupted steps."""
    rng = np.random.default_rng(9)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(20)]

    straight = [minidl.tensor(a.copy(), requires_grad=True) for a in init]
    opt = mcls(two_groups(straight, 0.02), **kwargs)
    for k in range(20):
        for p, g in zip(straight, grads[k]):
            p.grad = minidl.tensor(g.copy())
        opt.step()

    first = [minidl.tensor(a.copy(), requires_grad=True) for a in init]
    opt1 = mcls(two_groups(first, 0.02), **kwargs)
    for k in range(10):
        for p, g in zip(first, grads[k]):
            p.grad = minidl.tensor(g.copy())
        opt1.step()
    saved = opt1.state_dict()
    saved_params = [p.detach().numpy().copy() for p in first]
    for value in (v for s in saved["state"].values() for v in s.values()):
        assert isinstance(value, (minidl.Tensor, float))

    second = [minidl.tensor(a, requires_grad=True) for a in saved_params]
    opt2 = mcls(two_groups(second, 0.02), **kwargs)
    opt2.load_state_dict(saved)
    for k in range(10, 20):
        for p, g in zip(second, grads[k]):
            p.grad = minidl.tensor(g.copy())
        opt2.step()
    for a, b in zip(second, straight):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    for a, b in zip(second, straight):
        for key, value in opt.state[b].items():
            other = opt2.state[a][key]
            if key == "step":
                assert other == value
            else:
                np.testing.assert_array_equal(other.numpy(), value.numpy())
    # the loaded state is a copy: the first optimizer's buffers were not touched by the second
    assert all(
        opt1.state[p][k] is not opt2.state[q][k] for p, q in zip(first, second) for k in opt1.state[p] if k != "step"
    )


@pytest.mark.parametrize("mcls,tcls,kwargs", STATE_CASES, ids=STATE_IDS)
def test_state_dict_layout_matches_torch(mcls, tcls, kwargs):
    rng = np.random.default_rng(10)
    mine, theirs = make_pair("float32", rng)
    mopt = mcls(two_groups(mine, 0.02), **kwargs)
    topt = tcls(two_groups(theirs, 0.02), foreach=False, **kwargs)
    for _ in range(3):
        set_grads(mine, theirs, [rng.standard_normal(s).astype(np.float32) for s in SHAPES[:2]] + [None])
        mopt.step()
        topt.step()
    msd, tsd = mopt.state_dict(), topt.state_dict()
    assert list(msd) == list(tsd) == ["state", "param_groups"]
    assert list(msd["state"]) == list(tsd["state"])  # the same parameter indices, in the same order
    for index, tstate in tsd["state"].items():
        assert list(msd["state"][index]) == list(tstate)
    assert len(msd["param_groups"]) == len(tsd["param_groups"])
    for mg, tg in zip(msd["param_groups"], tsd["param_groups"]):
        assert list(mg) == [k for k in tg if k not in TORCH_ONLY_OPTIONS]
        for key, value in mg.items():
            assert value == tg[key], key


def test_state_dict_with_named_parameters_matches_torch():
    m_model = minidl.nn.Linear(3, 2)
    t_model = torch.nn.Linear(3, 2)
    mopt = optim.SGD(m_model.named_parameters(), lr=0.1)
    topt = torch.optim.SGD(t_model.named_parameters(), lr=0.1)
    assert mopt.state_dict()["param_groups"][0]["param_names"] == topt.state_dict()["param_groups"][0]["param_names"]
    with pytest.raises(ValueError, match="with/without names"):
        mopt.add_param_group({"params": [minidl.zeros(2, requires_grad=True)]})


def to_minidl(value):
    """A torch state dict with its tensors converted to minidl tensors (as a checkpoint reader
    would produce it)."""
    if isinstance(value, torch.Tensor):
        return minidl.tensor(value.detach().numpy().copy())
    if isinstance(value, dict):
        return {k: to_minidl(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_minidl(v) for v in value]
    return value


@pytest.mark.parametrize("mcls,tcls,kwargs", STATE_CASES, ids=STATE_IDS)
def test_loading_a_torch_state_dict_continues_torch_training(mcls, tcls, kwargs):
    rng = np.random.default_rng(11)
    theirs = [torch.tensor(rng.standard_normal(s), requires_grad=True) for s in SHAPES]
    topt = tcls(two_groups(theirs, 0.02), foreach=False, **kwargs)
    for _ in range(10):
        for q, s in zip(theirs, SHAPES):
            q.grad = torch.tensor(rng.standard_normal(s))
        topt.step()
    mine = [minidl.tensor(q.detach().numpy().copy(), requires_grad=True) for q in theirs]
    mopt = mcls(two_groups(mine, 0.5), **kwargs)
    mopt.load_state_dict(to_minidl(topt.state_dict()))
    assert mopt.param_groups[1]["lr"] == 0.02  # the groups' options come from the state dict
    for _ in range(10):
        grads = [rng.standard_normal(s) for s in SHAPES]
        set_grads(mine, theirs, grads)
        mopt.step()
        topt.step()
    assert_same_state(mopt, topt, mine, theirs, "float64")


def test_load_state_dict_casts_state_to_the_parameters_dtype():
    p64 = minidl.tensor(np.arange(3.0), requires_grad=True)
    opt64 = optim.Adam([p64])
    p64.grad = minidl.ones(3, dtype=minidl.float64)
    opt64.step()
    p32 = minidl.tensor(np.arange(3.0, dtype=np.float32), requires_grad=True)
    opt32 = optim.Adam([p32])
    opt32.load_state_dict(opt64.state_dict())
    assert opt32.state[p32]["exp_avg"].dtype == minidl.float32
    assert opt32.state[p32]["step"] == 1.0
    np.testing.assert_allclose(opt32.state[p32]["exp_avg"].numpy(), 0.1, rtol=1e-6)


def test_load_state_dict_validates_before_changing_anything():
    a, b = minidl.zeros(2, 3, requires_grad=True), minidl.zeros(4, requires_grad=True)
    opt = optim.Adam([a, b])
    a.grad, b.grad = minidl.ones(2, 3), minidl.ones(4)
    opt.step()
    sd = opt.state_dict()

    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        optim.Adam([a]).load_state_dict(sd)
    swapped = optim.Adam([b, a])
    with pytest.raises(
        ValueError, match=r"'exp_avg' of parameter 0 has shape \(2, 3\), but the parameter has shape \(4,\)"
    ):
        swapped.load_state_dict(sd)
    assert len(swapped.state) == 0  # nothing was loaded
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


# ---- errors ----------------------------------------------------------------------------------


def test_params_must_be_an_iterable_of_leaf_tensors():
    p = minidl.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts.*single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="can only optimize Tensors.*ndarray"):
        optim.SGD([np.zeros(3)])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([p * 2])
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD({p})
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p], "lr": 0.5}])
    opt = optim.SGD([p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": p})
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([p, p])


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: optim.SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: optim.SGD(p, momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda p: optim.SGD(p, weight_decay=-1), "Invalid weight_decay value: -1"),
        (lambda p: optim.SGD(p, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        (lambda p: optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda p: optim.Adam(p, lr=-1e-3), "Invalid learning rate: -0.001"),
        (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (lambda p: optim.Adam(p, betas=(0.9,)), "betas must be a pair"),
        (lambda p: optim.AdamW(p, weight_decay=-0.01), "Invalid weight_decay value: -0.01"),
        (lambda p: optim.RMSprop(p, alpha=-0.9), "Invalid alpha value: -0.9"),
        (lambda p: optim.RMSprop(p, momentum=-0.1), "Invalid momentum value: -0.1"),
        (lambda p: optim.RMSprop(p, eps=-1.0), "Invalid epsilon value: -1.0"),
        (lambda p: optim.Adagrad(p, lr_decay=-0.1), "Invalid lr_decay value: -0.1"),
        (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
        (lambda p: optim.Adagrad(p, eps=-1e-10), "Invalid epsilon value"),
        (lambda p: optim.SGD([{"params": p, "lr": -2.0}], lr=0.1), r"SGD: Invalid learning rate: -2.0"),
    ],
)
def test_invalid_hyperparameters_name_the_problem(make, message):
    with pytest.raises(ValueError, match=message):
        make([minidl.zeros(2, requires_grad=True)])


def test_hyperparameters_must_be_numbers():
    p = [minidl.zeros(2, requires_grad=True)]
    with pytest.raises(TypeError, match="learning rate must be a Python number, got a Tensor"):
        optim.SGD(p, lr=minidl.tensor(0.1))
    with pytest.raises(TypeError, match="learning rate must be a number, got str"):
        optim.Adam(p, lr="0.1")


def test_repr_lists_the_groups():
    opt = optim.SGD([minidl.zeros(2, requires_grad=True)], lr=0.1)
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.1\n" in text and text.endswith(")")


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize(
    "mcls,kwargs",
    [
        (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
        (optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
        (optim.AdamW, dict(lr=0.01)),
        (optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
        (optim.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    ],
)
def test_same_update_functions_on_cuda_tensors(mcls, kwargs):
    """The update functions read the array module off the parameter: on CUDA tensors they run
    in CuPy, with the CPU's results, and the state lives on the GPU; a CPU state dict loads
    onto the GPU."""
    rng = np.random.default_rng(12)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(10)]
    cpu = [minidl.tensor(a.copy(), requires_grad=True) for a in init]
    gpu = [minidl.tensor(a.copy()).cuda().requires_grad_() for a in init]
    ocpu, ogpu = mcls(cpu, **kwargs), mcls(gpu, **kwargs)
    for k in range(10):
        for p, q, g in zip(cpu, gpu, grads[k]):
            p.grad, q.grad = minidl.tensor(g.copy()), minidl.tensor(g.copy()).cuda()
        ocpu.step()
        ogpu.step()
    for p, q in zip(cpu, gpu):
        assert q.is_cuda
        assert_close(q.detach().cpu().numpy(), p.detach().numpy(), "float64")
        for key, value in ogpu.state[q].items():
            if key != "step":
                assert value.is_cuda
    ogpu.load_state_dict(ocpu.state_dict())
    assert all(v.is_cuda for s in ogpu.state.values() for k, v in s.items() if k != "step")


def test_options_switched_on_mid_run_create_their_state():
    """torch raises KeyError when a group turns amsgrad (or RMSprop's momentum) on after the
    first step; minidl creates the missing buffer, starting from zeros."""
    p = minidl.tensor([1.0, -2.0], requires_grad=True)
    adam = optim.Adam([p], lr=0.1)
    p.grad = minidl.tensor([0.5, 0.5])
    adam.step()
    adam.param_groups[0]["amsgrad"] = True
    adam.step()
    np.testing.assert_array_equal(adam.state[p]["max_exp_avg_sq"].numpy(), adam.state[p]["exp_avg_sq"].numpy())
    rms = optim.RMSprop([p])
    rms.step()
    rms.param_groups[0].update(momentum=0.9, centered=True)
    rms.step()
    assert list(rms.state[p]) == ["step", "square_avg", "momentum_buffer", "grad_avg"]
