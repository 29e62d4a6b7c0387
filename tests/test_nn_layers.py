"""Every standard layer of ``minidl.nn`` against its torch twin, from identical weights.

Each check builds the layer in both libraries with the same arguments, copies torch's
``state_dict`` (as NumPy arrays) into minidl's with a *strict* ``load_state_dict`` -- which
also proves the parameter and buffer names and shapes agree -- runs the same input, and
compares the output, the gradient of the input and the gradient of every parameter for a
random output gradient, and the buffers afterwards. float64 is compared tightly, float32
loosely; layers that behave differently in training and evaluation are run in both modes.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import minidl
import minidl.nn.functional as F
from minidl import nn

TOL = {"float64": dict(rtol=1e-9, atol=1e-11), "float32": dict(rtol=2e-4, atol=2e-5)}
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}


def make_pair(factory, dtype: str):
    """``factory(lib, **factory_kwargs)`` builds the layer from ``lib`` (``minidl.nn`` or
    ``torch.nn``); minidl's layer receives torch's weights through a strict load."""
    t_mod = factory(torch.nn, dtype=TORCH_DTYPE[dtype])
    m_mod = factory(nn, dtype=dtype)
    state = {k: v.detach().numpy().copy() for k, v in t_mod.state_dict().items()}
    result = m_mod.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert list(m_mod.state_dict()) == list(t_mod.state_dict())
    return m_mod, t_mod


def compare_state(m_mod, t_mod, dtype: str) -> None:
    """Equal parameters and buffers (the running statistics), name by name."""
    t_state = t_mod.state_dict()
    for name, value in m_mod.state_dict().items():
        np.testing.assert_allclose(value.numpy(), t_state[name].numpy(), **TOL[dtype], err_msg=name)


def check_layer(m_mod, t_mod, inputs: list[np.ndarray], dtype: str, rng, out_grad: bool = True) -> None:
    """Forward, input gradients and parameter gradients of ``m_mod`` against ``t_mod``."""
    tol = TOL[dtype]
    m_in, t_in = [], []
    for a in inputs:
        floating = a.dtype.kind == "f"
        arr = a.astype(dtype) if floating else a
        m_in.append(minidl.tensor(arr, requires_grad=floating))
        t_in.append(torch.tensor(arr, requires_grad=floating))
    for p in list(m_mod.parameters()) + list(t_mod.parameters()):
        p.grad = None
    m_out, t_out = m_mod(*m_in), t_mod(*t_in)
    assert m_out.dtype.name == str(t_out.dtype).replace("torch.", "")
    np.testing.assert_allclose(m_out.detach().numpy(), t_out.detach().numpy(), **tol, err_msg="forward")
    if not t_out.requires_grad:
        return
    g = rng.standard_normal(t_out.shape).astype(dtype) if out_grad else np.ones(t_out.shape, dtype)
    m_out.backward(minidl.tensor(g))
    t_out.backward(torch.tensor(g))
    for i, (m, t) in enumerate(zip(m_in, t_in)):
        if t.requires_grad:
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), **tol, err_msg=f"grad of input {i}")
    t_params = dict(t_mod.named_parameters())
    assert [n for n, _ in m_mod.named_parameters()] == list(t_params)
    for name, p in m_mod.named_parameters():
        if t_params[name].grad is None:
            assert p.grad is None, name
        else:
            np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), **tol, err_msg=f"grad of {name}")


def images(rng, shape=(2, 4, 7, 8)) -> np.ndarray:
    return rng.standard_normal(shape)


# ---- Linear and Identity ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear_matches_torch(dtype, bias, shape, rng):
    m, t = make_pair(lambda lib, **f: lib.Linear(4, 3, bias=bias, **f), dtype)
    assert m.weight.shape == (3, 4) and m.weight.dtype.name == dtype
    check_layer(m, t, [rng.standard_normal(shape)], dtype, rng)
    assert repr(m) == repr(t)


def test_linear_forward_is_one_fused_node():
    """The layer records exactly one node, the fused Linear primitive, reading x, W, b."""
    m = nn.Linear(4, 3)
    x = minidl.randn(2, 4)
    out = m(x)
    node = out.grad_fn
    assert node.op.name == "Linear"
    assert node._inputs[0] is x and node._inputs[1] is m.weight and node._inputs[2] is m.bias


def test_linear_errors_name_the_problem():
    with pytest.raises(minidl.ShapeError, match=r"\(2, 5\).*expects 4"):
        nn.Linear(4, 3)(minidl.randn(2, 5))
    with pytest.raises(TypeError, match="in_features must be an int"):
        nn.Linear(4.0, 3)
    with pytest.raises(ValueError, match="non-negative"):
        nn.Linear(4, -3)
    assert nn.Linear(np.int64(4), 3).in_features == 4  # NumPy integers are integers


def test_identity_returns_its_input_and_ignores_arguments():
    x = minidl.randn(3)
    assert nn.Identity(54, unused="x")(x) is x
    assert repr(nn.Identity()) == repr(torch.nn.Identity()) == "Identity()"


# ---- Conv2d ----------------------------------------------------------------------------------

CONV_CONFIGS = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2)),
    dict(padding="same", dilation=2),
    dict(padding="same", kernel_size=(2, 4)),
    dict(padding="valid", bias=False),
    dict(groups=2, padding=1),
    dict(groups=4, out=8, bias=False),
    dict(padding=2, padding_mode="reflect"),
    dict(padding=(1, 3), padding_mode="replicate", stride=2),
    dict(padding=2, padding_mode="circular", groups=2),
    dict(padding="same", padding_mode="reflect", kernel_size=(2, 3)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_conv2d_matches_torch(dtype, config, rng):
    config = dict(config)
    out = config.pop("out", 6)
    kernel = config.pop("kernel_size", 3)
    m, t = make_pair(lambda lib, **f: lib.Conv2d(4, out, kernel, **config, **f), dtype)
    check_layer(m, t, [images(rng)], dtype, rng)
    assert repr(m) == repr(t)


def test_conv2d_unbatched_input_and_attributes(rng):
    m, t = make_pair(lambda lib, **f: lib.Conv2d(4, 2, (3, 2), stride=(1, 2), padding=1, **f), "float64")
    check_layer(m, t, [images(rng, (4, 6, 5))], "float64", rng)
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
        assert getattr(m, attr) == getattr(t, attr), attr
    assert m._reversed_padding_repeated_twice == list(t._reversed_padding_repeated_twice)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groups=3), "divisible by groups"),
        (dict(padding="full"), "padding string"),
        (dict(padding="same", stride=2), "strided"),
        (dict(padding_mode="mirror"), "padding_mode"),
        (dict(groups=0), "positive"),
    ],
)
def test_conv2d_constructor_errors_like_torch(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.Conv2d(4, 6, 3, **kwargs)
    with pytest.raises(ValueError):
        torch.nn.Conv2d(4, 6, 3, **kwargs)


def test_conv2d_errors_before_compute():
    with pytest.raises(Exception, match="channels|groups|shape"):
        nn.Conv2d(4, 6, 3)(minidl.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="reflect.*padding"):
        nn.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(minidl.randn(1, 1, 3, 3))


# ---- pooling ---------------------------------------------------------------------------------

POOL_LAYERS = [
    lambda lib: lib.MaxPool2d(2),
    lambda lib: lib.MaxPool2d((3, 2), stride=(2, 1), padding=1),
    lambda lib: lib.MaxPool2d(3, stride=2, dilation=2, ceil_mode=True),
    lambda lib: lib.AvgPool2d(2),
    lambda lib: lib.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
    lambda lib: lib.AvgPool2d((2, 3), ceil_mode=True, divisor_override=4),
    lambda lib: lib.AdaptiveAvgPool2d(1),
    lambda lib: lib.AdaptiveAvgPool2d((3, 4)),
    lambda lib: lib.AdaptiveAvgPool2d((7, None)),
    lambda lib: lib.AdaptiveAvgPool2d((5, 11)),
    lambda lib: lib.AdaptiveMaxPool2d(1),
    lambda lib: lib.AdaptiveMaxPool2d((3, 4)),
    lambda lib: lib.AdaptiveMaxPool2d((None, 2)),
    lambda lib: lib.AdaptiveMaxPool2d((5, 11)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index", range(len(POOL_LAYERS)))
def test_pooling_matches_torch(dtype, index, rng):
    factory = POOL_LAYERS[index]
    m, t = make_pair(lambda lib, dtype: factory(lib), dtype)
    check_layer(m, t, [images(rng)], dtype, rng)
    check_layer(m, t, [images(rng, (3, 5, 9))], dtype, rng)  # unbatched
    assert repr(m) == repr(t)


@pytest.mark.parametrize("output_size", [(3, 4), 2, (1, 1), (5, 11)])
def test_pooling_return_indices_like_torch(output_size, rng):
    x = images(rng)
    for m, t in [
        (nn.AdaptiveMaxPool2d(output_size, True), torch.nn.AdaptiveMaxPool2d(output_size, True)),
        (nn.MaxPool2d(2, return_indices=True), torch.nn.MaxPool2d(2, return_indices=True)),
    ]:
        (m_out, m_idx), (t_out, t_idx) = m(minidl.tensor(x)), t(torch.tensor(x))
        np.testing.assert_array_equal(m_out.numpy(), t_out.numpy())
        np.testing.assert_array_equal(m_idx.numpy(), t_idx.numpy())


def test_adaptive_max_pool_breaks_ties_like_torch():
    """Equal values in a window: the first in row-major order wins, and gets the gradient."""
    x = np.zeros((1, 1, 5, 7))
    x[0, 0, 1, 3] = x[0, 0, 2, 1] = x[0, 0, 0, 6] = 1.0
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (m_out, m_idx), (t_out, t_idx) = (
        F.adaptive_max_pool2d(mx, (2, 3), True),
        torch.nn.functional.adaptive_max_pool2d(tx, (2, 3), True),
    )
    np.testing.assert_array_equal(m_idx.numpy(), t_idx.numpy())
    m_out.sum().backward()
    t_out.sum().backward()
    np.testing.assert_array_equal(mx.grad.numpy(), tx.grad.numpy())


def test_global_average_pool_is_a_mean_over_the_spatial_dims():
    x = minidl.randn(2, 3, 4, 5, requires_grad=True)
    out = F.adaptive_avg_pool2d(x, 1)
    assert out.shape == (2, 3, 1, 1)
    reference = x.mean((2, 3), keepdim=True)
    np.testing.assert_array_equal(out.detach().numpy(), reference.detach().numpy())
    assert out.grad_fn.op is reference.grad_fn.op  # the same reduction, no matmul or pool


@pytest.mark.parametrize("output_size, match", [((0, 2), "positive"), ("big", "output_size"), ((1, 2, 3), "pair")])
def test_adaptive_pool_argument_errors(output_size, match):
    with pytest.raises((ValueError, TypeError), match=match):
        F.adaptive_avg_pool2d(minidl.randn(1, 2, 4, 4), output_size)
    with pytest.raises(Exception, match="3-D|4-D"):
        nn.AdaptiveMaxPool2d(2)(minidl.randn(4, 4))


# ---- Flatten, Unflatten, Identity ------------------------------------------------------------


@pytest.mark.parametrize(
    "factory, shape",
    [
        (lambda lib: lib.Flatten(), (2, 3, 4, 5)),
        (lambda lib: lib.Flatten(0, 2), (2, 3, 4, 5)),
        (lambda lib: lib.Flatten(-3, -2), (2, 3, 4, 5)),
        (lambda lib: lib.Unflatten(1, (3, 4)), (2, 12, 5)),
        (lambda lib: lib.Unflatten(-1, [2, -1]), (2, 3, 6)),
    ],
)
def test_flatten_and_unflatten_match_torch(factory, shape, rng):
    m, t = factory(nn), factory(torch.nn)
    check_layer(m, t, [rng.standard_normal(shape)], "float64", rng)
    assert repr(m) == repr(t)


def test_unflatten_errors():
    with pytest.raises(Exception, match="multiply"):
        nn.Unflatten(1, (3, 5))(minidl.randn(2, 12))
    with pytest.raises(TypeError, match="tuple of ints"):
        nn.Unflatten(1, (3, 2.0))


# ---- Dropout ---------------------------------------------------------------------------------


def test_dropout_keep_rate_scaling_and_gradient():
    """With n = 20000 and p = 0.3, the kept fraction is within 4 standard deviations
    (sqrt(p (1 - p) / n) = 0.0032) of 0.7, kept values are scaled by 1 / 0.7, the mean is
    preserved, and the gradient is the same scaled mask."""
    minidl.manual_seed(5)
    layer = nn.Dropout(0.3)
    x = minidl.ones(20000, requires_grad=True)
    y = layer(x)
    kept = y.detach().numpy() != 0
    assert abs(kept.mean() - 0.7) < 4 * math.sqrt(0.3 * 0.7 / 20000)
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.detach().numpy().mean() - 1.0) < 0.02
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / 0.7, 0.0), rtol=1e-6)


def test_dropout_eval_identity_edge_probabilities_and_repr():
    x = minidl.randn(50, 50)
    layer = nn.Dropout(0.5)
    assert layer.eval()(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert np.all(nn.Dropout(1.0)(x).numpy() == 0)
    assert repr(nn.Dropout(0.2, True)) == repr(torch.nn.Dropout(0.2, True))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    minidl.manual_seed(1)
    a = nn.Dropout()(minidl.ones(64)).numpy()
    minidl.manual_seed(1)
    np.testing.assert_array_equal(a, nn.Dropout()(minidl.ones(64)).numpy())


def test_dropout_inplace_overwrites_its_input():
    minidl.manual_seed(2)
    x = minidl.ones(1000)
    y = nn.Dropout(0.5, inplace=True)(x)
    assert y is x and (x.numpy() == 0).any() and (x.numpy() == 2).any()


# ---- normalization ---------------------------------------------------------------------------

BN_CONFIGS = [
    dict(),
    dict(momentum=None),
    dict(momentum=0.3, eps=1e-3),
    dict(affine=False),
    dict(bias=False),
    dict(track_running_stats=False),
    dict(track_running_stats=False, momentum=None, affine=False),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", BN_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize(
    "layer, shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (3, 3, 4, 2))]
)
def test_batch_norm_training_steps_then_eval_match_torch(dtype, config, layer, shape, rng):
    """Three training steps (outputs, gradients, running statistics and the batch counter after
    each), then evaluation mode, which uses the running statistics when there are any."""
    m, t = make_pair(lambda lib, **f: getattr(lib, layer)(3, **config, **f), dtype)
    # start the running statistics away from (0, 1) so the eval check is not trivial
    if m.track_running_stats and m.affine:
        with torch.no_grad():
            t.weight.uniform_(0.5, 1.5)
        m.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    for step in range(3):
        check_layer(m, t, [rng.standard_normal(shape) * 2 + step], dtype, rng)
        compare_state(m, t, dtype)
    if m.track_running_stats:
        assert int(m.num_batches_tracked.item()) == 3
        assert m.num_batches_tracked.dtype is minidl.int64
    m.eval()
    t.eval()
    check_layer(m, t, [rng.standard_normal(shape)], dtype, rng)
    compare_state(m, t, dtype)
    assert repr(m) == repr(t)


def test_batch_norm_cumulative_average_with_momentum_none(rng):
    """momentum=None: the running mean is the plain average of the batch means seen."""
    layer = nn.BatchNorm1d(2, momentum=None, dtype="float64")
    means = []
    for _ in range(4):
        x = rng.standard_normal((5, 2)) + rng.standard_normal(2)
        means.append(x.mean(0))
        layer(minidl.tensor(x))
    np.testing.assert_allclose(layer.running_mean.numpy(), np.mean(means, 0), rtol=1e-12)


@pytest.mark.parametrize(
    "layer, shape, match",
    [
        (nn.BatchNorm1d, (2, 3, 4, 5), "expected 2D or 3D input \\(got 4D input"),
        (nn.BatchNorm1d, (3,), "expected 2D or 3D input \\(got 1D input"),
        (nn.BatchNorm2d, (2, 3), "expected 4D input \\(got 2D input"),
    ],
)
def test_batch_norm_input_dimension_errors_like_torch(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer(3)(minidl.randn(*shape))
    with pytest.raises(ValueError, match=match):
        getattr(torch.nn, layer.__name__)(3)(torch.randn(*shape))


def test_batch_norm_single_value_per_channel_in_training():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(minidl.randn(1, 3))
    nn.BatchNorm1d(3).eval()(minidl.randn(1, 3))  # evaluation needs no batch statistics


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "normalized_shape, shape", [(5, (3, 5)), (5, (2, 4, 5)), ([4, 5], (2, 3, 4, 5)), ((3, 2), (3, 2))]
)
@pytest.mark.parametrize("options", [dict(), dict(elementwise_affine=False), dict(bias=False, eps=1e-3)])
def test_layer_norm_matches_torch(dtype, normalized_shape, shape, options, rng):
    m, t = make_pair(lambda lib, **f: lib.LayerNorm(normalized_shape, **options, **f), dtype)
    if m.weight is not None:  # non-trivial affine parameters
        with torch.no_grad():
            t.weight.normal_()
        m.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    check_layer(m, t, [rng.standard_normal(shape) * 3 + 1], dtype, rng)
    assert m.normalized_shape == t.normalized_shape
    assert repr(m) == repr(t)


# ---- Embedding -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "options",
    [dict(), dict(padding_idx=2), dict(padding_idx=-1), dict(max_norm=1.0), dict(max_norm=1.5, norm_type=1.0)]
    + [dict(scale_grad_by_freq=True), dict(scale_grad_by_freq=True, padding_idx=0, max_norm=2.0)],
)
def test_embedding_matches_torch(dtype, options, rng):
    m, t = make_pair(lambda lib, **f: lib.Embedding(7, 3, **options, **f), dtype)
    idx = np.array([[0, 2, 2, 6], [5, 1, 2, 0]])
    check_layer(m, t, [idx], dtype, rng)
    compare_state(m, t, dtype)  # max_norm renormalizes the looked-up rows in place
    assert m.padding_idx == t.padding_idx
    assert repr(m) == repr(t)


def test_embedding_from_pretrained_shares_and_freezes(rng):
    w = rng.standard_normal((5, 2)).astype(np.float32)
    table = minidl.tensor(w)
    m = nn.Embedding.from_pretrained(table, padding_idx=1)
    t = torch.nn.Embedding.from_pretrained(torch.tensor(w), padding_idx=1)
    assert not m.weight.requires_grad and isinstance(m.weight, nn.Parameter)
    np.testing.assert_array_equal(m.weight.numpy()[1], w[1])  # the padding row is kept as given
    idx = np.array([4, 1, 0])
    np.testing.assert_array_equal(m(minidl.tensor(idx)).numpy(), t(torch.tensor(idx)).numpy())
    assert repr(m) == repr(t)
    table._data[0, 0] = 42.0  # shared storage, as in torch
    assert m.weight.numpy()[0, 0] == 42.0
    trainable = nn.Embedding.from_pretrained(minidl.tensor(w), freeze=False)
    trainable(minidl.tensor(idx)).sum().backward()
    assert trainable.weight.grad is not None
    with pytest.raises(AssertionError, match="2-D"):
        nn.Embedding.from_pretrained(minidl.randn(3))


def test_embedding_errors():
    with pytest.raises(AssertionError, match="padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)
    with pytest.raises(NotImplementedError, match="sparse"):
        nn.Embedding(4, 2, sparse=True)
    with pytest.raises(Exception, match="integer"):
        nn.Embedding(4, 2)(minidl.randn(3))
    with pytest.raises(IndexError, match="out of range"):
        nn.Embedding(4, 2)(minidl.tensor([4]))


# ---- activations -----------------------------------------------------------------------------

ACTIVATIONS = [
    lambda lib: lib.ReLU(),
    lambda lib: lib.LeakyReLU(),
    lambda lib: lib.LeakyReLU(0.2),
    lambda lib: lib.ELU(),
    lambda lib: lib.ELU(alpha=0.5),
    lambda lib: lib.GELU(),
    lambda lib: lib.GELU(approximate="tanh"),
    lambda lib: lib.SiLU(),
    lambda lib: lib.Softplus(),
    lambda lib: lib.Softplus(beta=2.0, threshold=1.0),
    lambda lib: lib.Sigmoid(),
    lambda lib: lib.Tanh(),
    lambda lib: lib.Softmax(dim=1),
    lambda lib: lib.Softmax(dim=-1),
    lambda lib: lib.LogSoftmax(dim=0),
    lambda lib: lib.LogSoftmax(dim=2),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index", range(len(ACTIVATIONS)))
def test_activation_matches_torch(dtype, index, rng):
    m, t = ACTIVATIONS[index](nn), ACTIVATIONS[index](torch.nn)
    check_layer(m, t, [rng.standard_normal((3, 4, 5)) * 2], dtype, rng)
    assert repr(m) == repr(t)


INPLACE = [
    lambda lib: lib.ReLU(inplace=True),
    lambda lib: lib.LeakyReLU(0.1, inplace=True),
    lambda lib: lib.ELU(inplace=True),
    lambda lib: lib.SiLU(inplace=True),
]


@pytest.mark.parametrize("index", range(len(INPLACE)))
def test_inplace_activation_matches_torch(index, rng):
    m, t = INPLACE[index](nn), INPLACE[index](torch.nn)
    x = rng.standard_normal((4, 5))
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    m_mid, t_mid = mx * 2, tx * 2
    m_out, t_out = m(m_mid), t(t_mid)
    assert m_out is m_mid  # overwritten in place
    np.testing.assert_allclose(m_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-12)
    g = rng.standard_normal((4, 5))
    m_out.backward(minidl.tensor(g))
    t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    assert repr(m) == repr(t)


@pytest.mark.parametrize("layer", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 3, 4), (2, 3, 4, 2)])
def test_softmax_without_dim_uses_torchs_implicit_choice(layer, shape, rng):
    x = rng.standard_normal(shape)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        m_out = getattr(nn, layer)()(minidl.tensor(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_out = getattr(torch.nn, layer)()(torch.tensor(x))
    np.testing.assert_allclose(m_out.numpy(), t_out.numpy(), rtol=1e-12)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("erf")


# ---- losses ----------------------------------------------------------------------------------


def _loss_inputs(kind: str, rng) -> list[np.ndarray]:
    if kind == "regression":
        return [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))]
    if kind == "classes":
        return [rng.standard_normal((5, 4)), np.array([0, 3, 1, 3, 2])]
    if kind == "classes-ignored":  # ignore_index=7
        return [rng.standard_normal((5, 4)), np.array([0, 3, 7, 1, 7])]
    if kind == "classes-default-ignored":  # the default ignore_index, -100
        return [rng.standard_normal((5, 4)), np.array([0, -100, 2, 1, -100])]
    if kind == "classes-spatial":
        return [rng.standard_normal((2, 4, 3, 2)), rng.integers(0, 4, (2, 3, 2))]
    if kind == "probabilities":
        return [rng.standard_normal((5, 4)), rng.dirichlet(np.ones(4), 5)]
    if kind == "binary-probabilities":
        return [rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3))]
    if kind == "binary-logits":
        return [rng.standard_normal((4, 3)) * 3, (rng.uniform(0, 1, (4, 3)) > 0.5).astype(np.float64)]
    raise AssertionError(kind)


LOSSES = [
    ("MSELoss", {}, "regression"),
    ("MSELoss", {"reduction": "sum"}, "regression"),
    ("L1Loss", {"reduction": "none"}, "regression"),
    ("L1Loss", {}, "regression"),
    ("SmoothL1Loss", {}, "regression"),
    ("SmoothL1Loss", {"beta": 0.5, "reduction": "sum"}, "regression"),
    ("SmoothL1Loss", {"beta": 0.0}, "regression"),
    ("NLLLoss", {}, "classes"),
    ("NLLLoss", {"weight": "class-weight", "reduction": "mean"}, "classes"),
    ("NLLLoss", {"ignore_index": 7, "reduction": "none"}, "classes-ignored"),
    ("NLLLoss", {"weight": "class-weight"}, "classes-spatial"),
    ("NLLLoss", {"weight": "class-weight"}, "classes-default-ignored"),
    ("CrossEntropyLoss", {}, "classes"),
    ("CrossEntropyLoss", {"weight": "class-weight", "ignore_index": 7}, "classes-ignored"),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}, "classes"),
    ("CrossEntropyLoss", {"reduction": "sum"}, "classes-default-ignored"),
    ("CrossEntropyLoss", {"label_smoothing": 0.2, "weight": "class-weight", "ignore_index": 7}, "classes-ignored"),
    ("CrossEntropyLoss", {"reduction": "none", "label_smoothing": 0.05}, "classes-spatial"),
    ("CrossEntropyLoss", {}, "probabilities"),
    ("CrossEntropyLoss", {"label_smoothing": 0.3, "weight": "class-weight"}, "probabilities"),
    ("BCELoss", {}, "binary-probabilities"),
    ("BCELoss", {"weight": "element-weight", "reduction": "sum"}, "binary-probabilities"),
    ("BCEWithLogitsLoss", {}, "binary-logits"),
    ("BCEWithLogitsLoss", {"pos_weight": "class-weight-3", "weight": "element-weight"}, "binary-logits"),
    ("BCEWithLogitsLoss", {"pos_weight": "class-weight-3", "reduction": "none"}, "binary-logits"),
]

WEIGHTS = {
    "class-weight": np.array([0.5, 2.0, 1.0, 3.0]),
    "class-weight-3": np.array([0.5, 2.0, 3.0]),
    "element-weight": np.array([1.0, 0.2, 3.0]),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, options, kind", LOSSES, ids=lambda v: str(v))
def test_loss_matches_torch(dtype, name, options, kind, rng):
    """Loss value and input gradient; weight buffers loaded from torch's state_dict."""

    def factory(lib, dtype):
        tensor = minidl.tensor if lib is nn else torch.tensor
        kwargs = {
            k: tensor(WEIGHTS[v].astype(str(dtype).replace("torch.", "")))
            if isinstance(v, str) and k != "reduction"
            else v
            for k, v in options.items()
        }
        return getattr(lib, name)(**kwargs)

    m, t = make_pair(factory, dtype)
    check_layer(m, t, _loss_inputs(kind, rng), dtype, rng)
    assert repr(m) == repr(t)
    for attr in ("reduction", "ignore_index", "label_smoothing", "beta"):
        assert getattr(m, attr, None) == getattr(t, attr, None), attr


def test_loss_weight_buffers_are_state_like_torch():
    w = np.array([1.0, 2.0, 3.0], np.float32)
    m = nn.BCEWithLogitsLoss(weight=minidl.tensor(w), pos_weight=minidl.tensor(w))
    t = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), pos_weight=torch.tensor(w))
    assert list(m.state_dict()) == list(t.state_dict()) == ["weight", "pos_weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    assert list(nn.NLLLoss(weight=minidl.tensor(w)).state_dict()) == ["weight"]
    assert list(m.parameters()) == []


def test_loss_legacy_size_average_and_reduce():
    for size_average, reduce, expected in [(False, None, "sum"), (None, False, "none"), (True, True, "mean")]:
        with pytest.warns(UserWarning, match=f"reduction='{expected}'"):
            m = nn.MSELoss(size_average=size_average, reduce=reduce)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = torch.nn.MSELoss(size_average=size_average, reduce=reduce)
        assert m.reduction == t.reduction == expected


def test_loss_argument_errors():
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="average")
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="beta"):
        nn.SmoothL1Loss(beta=-1.0)


# ---- gradient clipping -----------------------------------------------------------------------


def _grads_pair(rng, scale: float = 1.0, dtype: str = "float64"):
    """Three parameters with gradients and one without, in both libraries."""
    shapes = [(3, 4), (4,), (2, 2, 2), (5,)]
    m_params, t_params = [], []
    for i, shape in enumerate(shapes):
        w = rng.standard_normal(shape).astype(dtype)
        mp, tp = nn.Parameter(minidl.tensor(w)), torch.nn.Parameter(torch.tensor(w))
        if i != 3:
            g = (rng.standard_normal(shape) * scale).astype(dtype)
            mp.grad, tp.grad = minidl.tensor(g), torch.tensor(g)
        m_params.append(mp)
        t_params.append(tp)
    return m_params, t_params


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm, rng):
    m_params, t_params = _grads_pair(rng, dtype=dtype)
    m_total = nn.utils.clip_grad_norm_(iter(m_params), max_norm, norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(iter(t_params), max_norm, norm_type)
    assert isinstance(m_total, minidl.Tensor) and m_total.shape == () and m_total.dtype.name == dtype
    np.testing.assert_allclose(m_total.numpy(), t_total.numpy(), **TOL[dtype])
    for mp, tp in zip(m_params, t_params):
        if tp.grad is None:
            assert mp.grad is None
        else:
            np.testing.assert_allclose(mp.grad.numpy(), tp.grad.numpy(), **TOL[dtype])
    if max_norm < 1:  # clipping happened: the new total norm is max_norm
        clipped = nn.utils.get_total_norm([p.grad for p in m_params if p.grad is not None], norm_type)
        np.testing.assert_allclose(clipped.item(), max_norm, rtol=1e-4)


def test_clip_grad_norm_single_tensor_empty_and_nonfinite(rng):
    p = nn.Parameter(minidl.ones(3))
    p.grad = minidl.tensor([3.0, 4.0, 0.0])
    assert nn.utils.clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8, 0.0], rtol=1e-5)
    assert nn.utils.clip_grad_norm_([nn.Parameter(minidl.ones(2))], 1.0).item() == 0.0
    p.grad = minidl.tensor([1.0, float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    t = torch.nn.Parameter(torch.ones(3))
    t.grad = torch.tensor([1.0, float("inf"), 1.0])
    np.testing.assert_array_equal(
        nn.utils.clip_grad_norm_(p, 1.0).numpy(), torch.nn.utils.clip_grad_norm_(t, 1.0).numpy()
    )
    np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("clip_value", [0.1, 1.0])
def test_clip_grad_value_matches_torch(clip_value, rng):
    m_params, t_params = _grads_pair(rng, scale=2.0)
    assert nn.utils.clip_grad_value_(m_params, clip_value) is None
    torch.nn.utils.clip_grad_value_(t_params, clip_value)
    for mp, tp in zip(m_params, t_params):
        if tp.grad is None:
            assert mp.grad is None
        else:
            np.testing.assert_array_equal(mp.grad.numpy(), tp.grad.numpy())


def test_clip_grad_norm_on_a_trained_model_matches_torch(rng):
    """End to end: the same model and batch in both libraries, clipped at 0.1."""
    m, t = make_pair(
        lambda lib, **f: lib.Sequential(lib.Linear(4, 8, **f), lib.Tanh(), lib.Linear(8, 2, **f)), "float64"
    )
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    nn.MSELoss()(m(minidl.tensor(x)), minidl.tensor(y)).backward()
    torch.nn.MSELoss()(t(torch.tensor(x)), torch.tensor(y)).backward()
    m_total = nn.utils.clip_grad_norm_(m.parameters(), 0.1)
    t_total = torch.nn.utils.clip_grad_norm_(t.parameters(), 0.1)
    np.testing.assert_allclose(m_total.numpy(), t_total.numpy(), rtol=1e-10)
    for (name, mp), tp in zip(m.named_parameters(), t.parameters()):
        np.testing.assert_allclose(mp.grad.numpy(), tp.grad.numpy(), rtol=1e-10, err_msg=name)


# ---- a small network, trained in both libraries ----------------------------------------------


def test_small_cnn_training_steps_match_torch(rng):
    """Conv -> BatchNorm -> ReLU -> MaxPool -> Dropout(eval) -> AdaptiveAvgPool -> Flatten ->
    Linear, three SGD steps from identical weights: losses, gradients and all state agree."""

    def build(lib, **f):
        return lib.Sequential(
            lib.Conv2d(3, 4, 3, padding=1, **f),
            lib.BatchNorm2d(4, **f),
            lib.ReLU(),
            lib.MaxPool2d(2),
            lib.AdaptiveAvgPool2d((2, 1)),
            lib.Flatten(),
            lib.Linear(8, 3, **f),
        )

    m, t = make_pair(build, "float64")
    assert repr(m) == repr(t)
    for _ in range(3):
        x, y = rng.standard_normal((4, 3, 6, 6)), rng.integers(0, 3, 4)
        m_loss = nn.CrossEntropyLoss()(m(minidl.tensor(x)), minidl.tensor(y))
        t_loss = torch.nn.CrossEntropyLoss()(t(torch.tensor(x)), torch.tensor(y))
        np.testing.assert_allclose(m_loss.item(), t_loss.item(), rtol=1e-10)
        m.zero_grad()
        t.zero_grad()
        m_loss.backward()
        t_loss.backward()
        with minidl.no_grad(), torch.no_grad():
            for mp, tp in zip(m.parameters(), t.parameters()):
                np.testing.assert_allclose(mp.grad.numpy(), tp.grad.numpy(), rtol=1e-8, atol=1e-11)
                mp -= 0.1 * mp.grad
                tp -= 0.1 * tp.grad
        compare_state(m, t, "float64")
