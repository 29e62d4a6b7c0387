"""minidl.optim.lr_scheduler against torch.optim.lr_scheduler, step by step.

Schedules are plain float arithmetic written in torch's order, so the learning rates (and
momenta) must agree exactly, not just closely. Every comparison uses an optimizer with two
parameter groups of different learning rates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import minidl
import minidl.optim as optim
from minidl.optim import lr_scheduler as lrs

STEPS = 35


def optimizers(kind: str = "SGD", **kwargs):
    """The same two-group optimizer in minidl and in torch."""
    m = [minidl.zeros(2, requires_grad=True), minidl.zeros(3, requires_grad=True)]
    t = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    mopt = getattr(optim, kind)([{"params": m[:1]}, {"params": m[1:], "lr": 0.01}], lr=0.1, **kwargs)
    topt = getattr(torch.optim, kind)([{"params": t[:1]}, {"params": t[1:], "lr": 0.01}], lr=0.1, **kwargs)
    return mopt, topt


def group_values(opt, key):
    return [g[key] for g in opt.param_groups]


SCHEDULES = {
    "StepLR": lambda lib, opt: lib.StepLR(opt, step_size=7, gamma=0.5),
    "MultiStepLR": lambda lib, opt: lib.MultiStepLR(opt, milestones=[5, 12, 12, 20], gamma=0.3),
    "ExponentialLR": lambda lib, opt: lib.ExponentialLR(opt, gamma=0.9),
    "CosineAnnealingLR": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=10, eta_min=0.001),
    "CosineAnnealingLR-no-min": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=7),
    "LambdaLR": lambda lib, opt: lib.LambdaLR(opt, lambda e: 0.95**e),
    "LambdaLR-per-group": lambda lib, opt: lib.LambdaLR(opt, [lambda e: 1 / (e + 1), lambda e: 0.9 ** (e // 3)]),
    "MultiplicativeLR": lambda lib, opt: lib.MultiplicativeLR(opt, lambda e: 0.97),
    "LinearLR": lambda lib, opt: lib.LinearLR(opt, start_factor=0.2, end_factor=0.9, total_iters=8),
    "ConstantLR": lambda lib, opt: lib.ConstantLR(opt, factor=0.25, total_iters=6),
    "SequentialLR": lambda lib, opt: lib.SequentialLR(
        opt,
        [lib.LinearLR(opt, start_factor=0.1, total_iters=5), lib.CosineAnnealingLR(opt, T_max=12)],
        milestones=[5],
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch_step_by_step(name):
    mopt, topt = optimizers("SGD", momentum=0.9)
    msched, tsched = SCHEDULES[name](lrs, mopt), SCHEDULES[name](torch.optim.lr_scheduler, topt)
    assert msched.get_last_lr() == tsched.get_last_lr()
    assert group_values(mopt, "initial_lr") == group_values(topt, "initial_lr")
    for _ in range(STEPS):
        mopt.step()
        topt.step()
        msched.step()
        tsched.step()
        assert msched.get_last_lr() == tsched.get_last_lr()
        assert group_values(mopt, "lr") == group_values(topt, "lr")
    assert msched.last_epoch == tsched.last_epoch


def test_two_schedulers_compose_on_one_optimizer():
    """Recursive schedules multiply in each other's changes, as in torch."""
    mopt, topt = optimizers()
    mine = [lrs.ExponentialLR(mopt, gamma=0.9), lrs.StepLR(mopt, step_size=4, gamma=0.5)]
    theirs = [torch.optim.lr_scheduler.ExponentialLR(topt, 0.9), torch.optim.lr_scheduler.StepLR(topt, 4, 0.5)]
    for _ in range(12):
        mopt.step()
        topt.step()
        for s in mine + theirs:
            s.step()
        assert group_values(mopt, "lr") == group_values(topt, "lr")


def test_cosine_annealing_follows_the_closed_form_up_to_rounding():
    mopt, _ = optimizers()
    sched = lrs.CosineAnnealingLR(mopt, T_max=10, eta_min=0.001)
    for t in range(1, 25):
        mopt.step()
        sched.step()
        expected = 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 10)) / 2
        assert sched.get_last_lr()[0] == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_matches_torch_with_momentum_or_betas(kind, anneal_strategy, three_phase):
    kwargs = {"momentum": 0.9} if kind == "SGD" else {}
    mopt, topt = optimizers(kind, **kwargs)
    options = dict(
        max_lr=[0.5, 0.05],
        total_steps=40,
        pct_start=0.25,
        anneal_strategy=anneal_strategy,
        three_phase=three_phase,
        div_factor=10.0,
        final_div_factor=100.0,
        base_momentum=0.8,
        max_momentum=0.95,
    )
    msched = lrs.OneCycleLR(mopt, **options)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, **options)
    key = "momentum" if kind == "SGD" else "betas"
    for step in range(40):
        assert msched.get_last_lr() == tsched.get_last_lr(), step
        assert group_values(mopt, key) == group_values(topt, key), step
        for k in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
            assert group_values(mopt, k) == group_values(topt, k)
        if step < 39:
            mopt.step()
            topt.step()
            msched.step()
            tsched.step()
    if kind == "Adam":
        assert all(g["betas"][1] == 0.999 for g in mopt.param_groups)  # only beta1 cycles
    # one step more is still allowed (torch's convention); past that, an error
    msched.step()
    with pytest.raises(ValueError, match="Tried to step 41 times. The specified number of total steps is 40"):
        msched.step()


def test_one_cycle_with_epochs_and_steps_per_epoch_and_no_momentum_cycling():
    mopt, topt = optimizers("Adagrad")
    msched = lrs.OneCycleLR(mopt, max_lr=0.3, epochs=3, steps_per_epoch=7, cycle_momentum=False)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.3, epochs=3, steps_per_epoch=7, cycle_momentum=False)
    assert msched.total_steps == 21
    for _ in range(20):
        mopt.step()
        topt.step()
        msched.step()
        tsched.step()
        assert msched.get_last_lr() == tsched.get_last_lr()


METRICS = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.5, 0.5, 0.49999, 0.6, 0.7, 0.8, 0.3, 0.3, 0.31, 0.4, 0.29, 0.5]
METRICS = METRICS + [2.0 - m for m in METRICS]  # then rising, for 'max' mode


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
def test_reduce_on_plateau_matches_torch(mode, threshold_mode):
    mopt, topt = optimizers()
    options = dict(
        mode=mode,
        factor=0.5,
        patience=2,
        threshold=0.02,
        threshold_mode=threshold_mode,
        cooldown=1,
        min_lr=[0.0, 0.004],
    )
    msched = lrs.ReduceLROnPlateau(mopt, **options)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **options)
    reductions = 0
    for metric in METRICS:
        before = group_values(mopt, "lr")
        mopt.step()
        topt.step()
        msched.step(minidl.tensor(metric))  # a one-element tensor works as the metric
        tsched.step(torch.tensor(metric))
        reductions += group_values(mopt, "lr") != before
        assert group_values(mopt, "lr") == group_values(topt, "lr")
        assert msched.get_last_lr() == tsched.get_last_lr()
        assert (msched.best, msched.num_bad_epochs, msched.cooldown_counter) == (
            tsched.best,
            tsched.num_bad_epochs,
            tsched.cooldown_counter,
        )
    assert reductions >= 2  # the sequence does exercise the reductions
    assert min(group_values(mopt, "lr")[1:]) >= 0.004


def test_reduce_on_plateau_eps_skips_tiny_changes():
    mopt, _ = optimizers()
    sched = lrs.ReduceLROnPlateau(mopt, patience=0, factor=0.5, eps=0.02)
    for metric in [1.0, 2.0, 3.0]:
        sched.step(metric)
    # group 0: 0.1 -> 0.05 -> 0.025 (changes of 0.05 and 0.025 beat eps); group 1's 0.005 does not
    assert group_values(mopt, "lr") == [0.025, 0.01]


# ---- state_dict --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "CosineAnnealingLR", "LambdaLR", "SequentialLR"])
def test_scheduler_state_dict_round_trip(name):
    """Stop after 10 steps, save optimizer and scheduler, restore both into fresh objects, and
    continue: the same rates as an uninterrupted run. The keys are torch's."""
    mopt, topt = optimizers()
    straight = SCHEDULES[name](lrs, mopt)
    expected = []
    for _ in range(25):
        mopt.step()
        straight.step()
        expected.append(straight.get_last_lr())

    opt1, _ = optimizers()
    sched1 = SCHEDULES[name](lrs, opt1)
    for _ in range(10):
        opt1.step()
        sched1.step()
    opt_state, sched_state = opt1.state_dict(), sched1.state_dict()
    assert "optimizer" not in sched_state

    tsched = SCHEDULES[name](torch.optim.lr_scheduler, topt)
    assert set(sched_state) == set(tsched.state_dict())

    opt2, _ = optimizers()
    sched2 = SCHEDULES[name](lrs, opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    got = []
    for _ in range(15):
        opt2.step()
        sched2.step()
        got.append(sched2.get_last_lr())
    assert got == expected[10:]


def test_one_cycle_and_plateau_state_dict_round_trip():
    opt1, _ = optimizers("Adam")
    one = lrs.OneCycleLR(opt1, max_lr=0.2, total_steps=30)
    for _ in range(7):
        opt1.step()
        one.step()
    opt2, _ = optimizers("Adam")
    two = lrs.OneCycleLR(opt2, max_lr=0.9, total_steps=99)
    opt2.load_state_dict(opt1.state_dict())
    two.load_state_dict(one.state_dict())
    for _ in range(10):
        opt1.step()
        opt2.step()
        one.step()
        two.step()
        assert one.get_last_lr() == two.get_last_lr()
        assert group_values(opt1, "betas") == group_values(opt2, "betas")

    opt3, _ = optimizers()
    plateau = lrs.ReduceLROnPlateau(opt3, mode="max", patience=1)
    for m in [1.0, 0.5, 0.5]:
        plateau.step(m)
    opt4, _ = optimizers()
    again = lrs.ReduceLROnPlateau(opt4)
    again.load_state_dict(plateau.state_dict())
    assert (again.mode, again.best, again.num_bad_epochs, again.mode_worse) == ("max", 1.0, 0, -math.inf)


def test_resuming_with_last_epoch_needs_initial_lr():
    mopt, _ = optimizers()
    with pytest.raises(KeyError, match="initial_lr"):
        lrs.StepLR(mopt, step_size=3, last_epoch=4)


# ---- errors and warnings -----------------------------------------------------------------------


def test_scheduler_errors_name_the_problem():
    mopt, _ = optimizers()
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        lrs.StepLR([], step_size=3)
    with pytest.raises(TypeError, match="dict is not an Optimizer"):
        lrs.ReduceLROnPlateau({})
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        lrs.LambdaLR(mopt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        lrs.ReduceLROnPlateau(mopt, factor=1.5)
    with pytest.raises(ValueError, match="mode sideways is unknown"):
        lrs.ReduceLROnPlateau(mopt, mode="sideways")
    with pytest.raises(ValueError, match="threshold mode relative is unknown"):
        lrs.ReduceLROnPlateau(mopt, threshold_mode="relative")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 3"):
        lrs.ReduceLROnPlateau(mopt, min_lr=[0, 0, 0])
    with pytest.raises(ValueError, match="either total_steps OR"):
        lrs.OneCycleLR(mopt, max_lr=0.1)
    with pytest.raises(ValueError, match="positive integer total_steps"):
        lrs.OneCycleLR(mopt, max_lr=0.1, total_steps=0)
    with pytest.raises(ValueError, match="pct_start"):
        lrs.OneCycleLR(mopt, max_lr=0.1, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear'"):
        lrs.OneCycleLR(mopt, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr must have the same length as optimizer.param_groups"):
        lrs.OneCycleLR(mopt, max_lr=[0.1, 0.2, 0.3], total_steps=10)
    adagrad, _ = optimizers("Adagrad")
    with pytest.raises(ValueError, match="must support momentum or beta1"):
        lrs.OneCycleLR(adagrad, max_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        lrs.StepLR(mopt, step_size=0)
    with pytest.raises(ValueError, match="number of milestone points"):
        lrs.SequentialLR(mopt, [lrs.ConstantLR(mopt)], milestones=[3])


def test_warnings_as_torch():
    mopt, _ = optimizers()
    sched = lrs.StepLR(mopt, step_size=3)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    with pytest.warns(UserWarning, match="use `get_last_lr\\(\\)`"):
        sched.get_lr()
    mopt, _ = optimizers()
    sched = lrs.StepLR(mopt, step_size=3)
    mopt.step()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()  # in the right order: no warning


def test_optimizer_uses_the_scheduled_learning_rate():
    """The optimizer reads group['lr'] at each step: a parameter moved by SGD with a schedule
    moves by the scheduled amounts."""
    p = minidl.zeros(1, requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = lrs.StepLR(opt, step_size=2, gamma=0.5)
    moves = []
    for _ in range(6):
        p.grad = minidl.ones(1)
        before = p.item()
        opt.step()
        sched.step()
        moves.append(before - p.item())
    np.testing.assert_allclose(moves, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
