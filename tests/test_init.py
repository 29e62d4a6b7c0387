"""``nn.init`` and the layers' default initializations, against torch's formulas and draws.

Random draws cannot be compared value by value (the two libraries have different random
streams), so each distribution is checked two ways: its *parameters* (bound, standard
deviation, fans, gains) against torch's own functions, and its *samples*
statistically -- support, mean and standard deviation of enough draws, within a few
standard errors -- against the formula and against a sample drawn by torch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import minidl
from minidl import nn

N = 200_000  # draws for the statistical checks: the standard error of a std estimate is ~0.16%


SQRT5 = math.sqrt(5)


def torch_kaiming_uniform_bound(shape, a=SQRT5, mode="fan_in", nonlinearity="leaky_relu") -> float:
    """The bound of torch.nn.init.kaiming_uniform_, computed with torch's own functions."""
    fan = torch.nn.init._calculate_correct_fan(torch.empty(shape), mode)
    return math.sqrt(3.0) * torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)


def check_uniform(values: np.ndarray, low: float, high: float) -> None:
    """Samples of U(low, high): inside the interval, reaching close to both ends, with the
    mean (low + high) / 2 and the standard deviation (high - low) / sqrt(12)."""
    n = values.size
    width = high - low
    assert values.min() >= low and values.max() <= high
    if n >= 1000:
        assert values.min() < low + 0.01 * width and values.max() > high - 0.01 * width
    std = width / math.sqrt(12)
    assert abs(values.mean() - (low + high) / 2) < 5 * std / math.sqrt(n)
    assert abs(values.std() - std) < 5 * std / math.sqrt(2 * n) + 1e-12


def check_normal(values: np.ndarray, mean: float, std: float) -> None:
    n = values.size
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(n)
    assert abs(values.std() - std) < 5 * std / math.sqrt(2 * n)


# ---- gains and fans --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nonlinearity, param",
    [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", math.sqrt(5)),
        ("selu", None),
    ],
)
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert nn.init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15
    )


def test_calculate_gain_rejects_unknown_names():
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        nn.init.calculate_gain("swish")


@pytest.mark.parametrize("shape", [(3, 4), (6, 4, 3, 3), (5, 2, 1, 7), (2, 3, 4), (8, 1, 5, 5)])
def test_fans_match_torch(shape):
    ours = nn.init._fan_in_and_fan_out(minidl.empty(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(minidl.empty(5))


# ---- default initializations of the layers ---------------------------------------------------


@pytest.mark.parametrize("in_features, out_features", [(1, 5), (3, 7), (64, 32), (500, 400)])
def test_linear_default_bound_is_torchs_and_is_one_over_sqrt_fan_in(in_features, out_features):
    bound = torch_kaiming_uniform_bound((out_features, in_features))
    assert bound == pytest.approx(1 / math.sqrt(in_features), rel=1e-12)
    layer = nn.Linear(in_features, out_features)
    check_uniform(layer.weight.detach().numpy(), -bound, bound)
    check_uniform(layer.bias.detach().numpy(), -bound, bound)


def test_linear_default_distribution_matches_a_torch_sample():
    """Weights of a wide layer: the same spread as torch's, from the same interval."""
    ours = nn.Linear(400, 500).weight.detach().numpy()
    theirs = torch.nn.Linear(400, 500).weight.detach().numpy()
    assert abs(ours.std() - theirs.std()) < 0.01 * theirs.std()
    assert abs(np.abs(ours).max() - np.abs(theirs).max()) < 1e-3 * np.abs(theirs).max()


@pytest.mark.parametrize(
    "args, kwargs",
    [((3, 8, 3), {}), ((4, 6, (2, 5)), {"groups": 2}), ((16, 16, 3), {"groups": 16}), ((2, 400, 5), {})],
)
def test_conv2d_default_bound_is_torchs(args, kwargs):
    layer, reference = nn.Conv2d(*args, **kwargs), torch.nn.Conv2d(*args, **kwargs)
    assert layer.weight.shape == tuple(reference.weight.shape)
    bound = torch_kaiming_uniform_bound(tuple(reference.weight.shape))
    fan_in = layer.weight.shape[1] * layer.weight.shape[2] * layer.weight.shape[3]
    assert bound == pytest.approx(1 / math.sqrt(fan_in), rel=1e-12)
    check_uniform(layer.weight.detach().numpy(), -bound, bound)
    check_uniform(layer.bias.detach().numpy(), -bound, bound)
    assert np.abs(reference.weight.detach().numpy()).max() <= bound  # the oracle agrees on the support


def test_embedding_default_is_standard_normal_with_zero_padding_row():
    layer = nn.Embedding(2000, 100, padding_idx=3)
    w = layer.weight.detach().numpy()
    assert np.all(w[3] == 0)
    check_normal(np.delete(w, 3, axis=0), 0.0, 1.0)
    assert layer.weight.requires_grad


@pytest.mark.parametrize(
    "layer",
    [lambda: nn.BatchNorm1d(5), lambda: nn.BatchNorm2d(5, dtype=minidl.float64), lambda: nn.LayerNorm((5,))],
)
def test_norm_layers_start_as_the_identity(layer):
    m = layer()
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones(5))
    np.testing.assert_array_equal(m.bias.detach().numpy(), np.zeros(5))
    if hasattr(m, "running_mean"):
        np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(5))
        np.testing.assert_array_equal(m.running_var.numpy(), np.ones(5))
        assert m.num_batches_tracked.item() == 0


def test_batch_norm_reset_running_stats():
    m = nn.BatchNorm1d(3)
    m(minidl.randn(4, 3) * 3 + 1)
    m.reset_running_stats()
    np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(3))
    assert m.num_batches_tracked.item() == 0


def test_default_init_draws_from_minidls_generator():
    minidl.manual_seed(11)
    a = nn.Linear(4, 3)
    minidl.manual_seed(11)
    b = nn.Linear(4, 3)
    c = nn.Linear(4, 3)
    np.testing.assert_array_equal(a.weight.detach().numpy(), b.weight.detach().numpy())
    np.testing.assert_array_equal(a.bias.detach().numpy(), b.bias.detach().numpy())
    assert not np.array_equal(b.weight.detach().numpy(), c.weight.detach().numpy())


def test_factory_dtype_keeps_the_distribution():
    layer = nn.Linear(300, 300, dtype=minidl.float64)
    assert layer.weight.dtype is minidl.float64 and layer.bias.dtype is minidl.float64
    check_uniform(layer.weight.detach().numpy(), -1 / math.sqrt(300), 1 / math.sqrt(300))


def test_reset_parameters_redraws():
    layer = nn.Linear(10, 10)
    before = layer.weight.detach().numpy().copy()
    layer.reset_parameters()
    assert not np.array_equal(before, layer.weight.detach().numpy())


def test_zero_sized_layers_initialize_without_error():
    layer = nn.Linear(0, 3)
    np.testing.assert_array_equal(layer.bias.detach().numpy(), np.zeros(3))  # bound 0, as torch
    assert nn.Linear(3, 0).weight.shape == (0, 3)


# ---- the init functions ----------------------------------------------------------------------


def _sample(fn, shape=(400, 500), **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Draw with minidl's and torch's versions of the same init function."""
    ours = getattr(nn.init, fn)(minidl.empty(*shape), **kwargs).numpy()
    theirs = getattr(torch.nn.init, fn)(torch.empty(shape), **kwargs).numpy()
    return ours, theirs


@pytest.mark.parametrize(
    "fn, kwargs, expected_std",
    [
        ("xavier_normal_", {}, math.sqrt(2 / 900)),
        ("xavier_normal_", {"gain": 2.0}, 2 * math.sqrt(2 / 900)),
        ("kaiming_normal_", {}, math.sqrt(2 / 500)),
        ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2 / 400)),
        ("kaiming_normal_", {"a": 0.2}, math.sqrt(2 / (1 + 0.04) / 500)),
        ("normal_", {"mean": 1.0, "std": 0.3}, 0.3),
    ],
)
def test_normal_initializers_match_torch(fn, kwargs, expected_std):
    ours, theirs = _sample(fn, **kwargs)
    mean = kwargs.get("mean", 0.0)
    check_normal(ours, mean, expected_std)
    check_normal(theirs, mean, expected_std)  # the expected value is torch's formula


@pytest.mark.parametrize(
    "fn, kwargs, bound",
    [
        ("xavier_uniform_", {}, math.sqrt(6 / 900)),
        ("xavier_uniform_", {"gain": nn.init.calculate_gain("tanh")}, 5 / 3 * math.sqrt(6 / 900)),
        ("kaiming_uniform_", {}, math.sqrt(6 / 500)),
        ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(6 / 400)),
        ("kaiming_uniform_", {"a": math.sqrt(5)}, 1 / math.sqrt(500)),
    ],
)
def test_uniform_initializers_match_torch(fn, kwargs, bound):
    ours, theirs = _sample(fn, **kwargs)
    check_uniform(ours, -bound, bound)
    check_uniform(theirs, -bound, bound)


def test_uniform_range():
    ours, theirs = _sample("uniform_", a=-0.5, b=2.0)
    check_uniform(ours, -0.5, 2.0)
    check_uniform(theirs, -0.5, 2.0)


def test_trunc_normal_stays_in_its_bounds_and_matches_torch():
    ours, theirs = _sample("trunc_normal_", mean=0.5, std=1.0, a=-1.0, b=1.5)
    assert ours.min() >= -1.0 and ours.max() <= 1.5
    # the truncated distribution's mean and std, estimated from torch's sample
    assert abs(ours.mean() - theirs.mean()) < 0.01
    assert abs(ours.std() - theirs.std()) < 0.01
    with pytest.raises(ValueError, match="a < b"):
        nn.init.trunc_normal_(minidl.empty(3), a=1.0, b=0.0)


def test_deterministic_initializers_match_torch():
    for fn, kwargs in [("constant_", {"val": 0.25}), ("ones_", {}), ("zeros_", {}), ("eye_", {})]:
        ours, theirs = _sample(fn, shape=(3, 5), **kwargs)
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="2 dimensions"):
        nn.init.eye_(minidl.empty(2, 2, 2))


def test_init_writes_in_place_without_history_and_bumps_the_version():
    p = nn.Parameter(minidl.zeros(3, 4))
    version = p._version
    out = nn.init.kaiming_uniform_(p, a=math.sqrt(5))
    assert out is p and p.grad_fn is None and p.requires_grad and isinstance(p, nn.Parameter)
    assert p._version > version
    assert np.any(p.detach().numpy() != 0)


def test_init_keeps_dtype_and_rejects_non_tensors():
    t = nn.init.normal_(minidl.empty(4, 4, dtype=minidl.float64))
    assert t.dtype is minidl.float64
    with pytest.raises(TypeError, match="Tensor"):
        nn.init.normal_(np.zeros(3))
    with pytest.raises(ValueError, match="fan_in, fan_out"):
        nn.init.kaiming_uniform_(minidl.empty(3, 3), mode="fan_avg")
