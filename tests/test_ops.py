"""Every op in ``op_db.OPS`` against PyTorch: forward, inference, backward, second order, and
numerical gradient checks (see ``harness.py`` for what each check does and its tolerances)."""

from __future__ import annotations

import numpy as np
import pytest

from harness import check_backward, check_forward, check_second_order, run_gradcheck, small
from op_db import OPS

DTYPES = ("float32", "float64")


def _cases(filter_fn=lambda info: True, dtypes=DTYPES):
    for info in OPS:
        if not filter_fn(info):
            continue
        for dtype in dtypes:
            if dtype in info.dtypes:
                yield pytest.param(info, dtype, id=f"{info.name}-{dtype}")


def _samples(info, seed=0):
    return info.samples(np.random.default_rng(seed))


@pytest.mark.parametrize("info,dtype", list(_cases()))
def test_forward(info, dtype):
    for sample in _samples(info):
        check_forward(info, sample, dtype)


@pytest.mark.parametrize("info,dtype", list(_cases(lambda i: i.noncontiguous, ("float32",))))
def test_forward_noncontiguous(info, dtype):
    for sample in _samples(info):
        check_forward(info, sample, dtype, noncontiguous=True)


@pytest.mark.parametrize("info,dtype", list(_cases(lambda i: i.differentiable)))
def test_backward(info, dtype):
    rng = np.random.default_rng(1)
    for sample in _samples(info):
        check_backward(info, sample, dtype, rng)


@pytest.mark.parametrize("info,dtype", list(_cases(lambda i: i.differentiable and i.noncontiguous, ("float64",))))
def test_backward_noncontiguous(info, dtype):
    rng = np.random.default_rng(2)
    for sample in _samples(info):
        check_backward(info, sample, dtype, rng, noncontiguous=True)


@pytest.mark.parametrize("info,dtype", list(_cases(lambda i: i.differentiable and i.second_order)))
def test_second_order(info, dtype):
    rng = np.random.default_rng(3)
    for sample in _samples(info):
        check_second_order(info, sample, dtype, rng)


@pytest.mark.parametrize("info", [i for i in OPS if i.differentiable and i.gradcheck], ids=lambda i: i.name)
def test_gradcheck(info):
    checked = 0
    for sample in _samples(info):
        if small(sample, 120):
            run_gradcheck(info, sample, second=False)
            checked += 1
    assert checked, f"{info.name} has no sample small enough for gradcheck"


@pytest.mark.parametrize(
    "info", [i for i in OPS if i.differentiable and i.gradcheck and i.second_order], ids=lambda i: i.name
)
def test_gradgradcheck(info):
    checked = 0
    for sample in _samples(info):
        if small(sample, 30):
            run_gradcheck(info, sample, second=True)
            checked += 1
    assert checked, f"{info.name} has no sample small enough for gradgradcheck"
