"""Recurrent layers (RNN, LSTM, GRU) and cells against torch: outputs, final states, and the
gradients of inputs, initial states and every parameter, from identical weights (torch's state
dict loaded into minidl), for every layout the layers accept; plus initialization, state dict
keys, repr, dropout between layers, the blocked time slicing, op counts and error messages."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import minidl
from minidl import nn
from minidl.autograd.engine import toposort
from minidl.nn.rnn import _time_steps

TOL = {"float64": dict(rtol=1e-9, atol=1e-10), "float32": dict(rtol=1e-4, atol=1e-5)}
TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32}


# ---- comparing a minidl module with a torch module -------------------------------------------


def _convert(obj, lib, dtype, leaves):
    """Arrays -> tensors of ``lib`` (float ones require grad and are collected in ``leaves``)."""
    if obj is None:
        return None
    if isinstance(obj, tuple):
        return tuple(_convert(o, lib, dtype, leaves) for o in obj)
    arr = obj.astype(dtype) if obj.dtype.kind == "f" else obj
    t = torch.tensor(arr) if lib == "torch" else minidl.tensor(arr)
    if arr.dtype.kind == "f":
        t.requires_grad_(True)
        leaves.append(t)
    return t


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in _flat(o)]
    return [out]


def compare(t_mod, m_mod, args, kwargs=None, dtype="float64", seed=0):
    """Load torch's weights into minidl, run both on ``args`` (NumPy arrays, or tuples of them),
    backpropagate the same random cotangent, and compare everything; return the outputs."""
    kwargs = kwargs or {}
    t_mod = t_mod.to(TORCH_DTYPE[dtype])
    m_mod = m_mod.to(dtype)
    m_mod.load_state_dict({k: v.detach().numpy() for k, v in t_mod.state_dict().items()})
    t_leaves, m_leaves = [], []
    t_out = t_mod(*_convert(tuple(args), "torch", dtype, t_leaves), **kwargs)
    m_out = m_mod(*_convert(tuple(args), "minidl", dtype, m_leaves), **kwargs)
    t_flat, m_flat = _flat(t_out), _flat(m_out)
    assert len(t_flat) == len(m_flat)
    tol = TOL[dtype]
    rng = np.random.default_rng(seed)
    t_loss, m_loss = 0, 0
    for t, m in zip(t_flat, m_flat):
        assert tuple(m.shape) == tuple(t.shape)
        np.testing.assert_allclose(m.detach().numpy(), t.detach().numpy(), **tol)
        g = rng.standard_normal(tuple(t.shape)).astype(dtype)
        t_loss = t_loss + (t * torch.tensor(g)).sum()
        m_loss = m_loss + (m * minidl.tensor(g)).sum()
    t_loss.backward()
    m_loss.backward()
    for t, m in zip(t_leaves, m_leaves):
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), **tol)
    t_params = dict(t_mod.named_parameters())
    m_params = dict(m_mod.named_parameters())
    assert list(m_params) == list(t_params)
    for name, tp in t_params.items():
        np.testing.assert_allclose(m_params[name].grad.numpy(), tp.grad.numpy(), **tol, err_msg=name)
    return t_out, m_out


def make(kind, *args, **kwargs):
    """The same layer in both libraries; ``kind`` is RNN, RNN_RELU, LSTM, GRU or a cell name."""
    if kind == "RNN_RELU":
        kind, kwargs = "RNN", {**kwargs, "nonlinearity": "relu"}
    return getattr(torch.nn, kind)(*args, **kwargs), getattr(nn, kind)(*args, **kwargs)


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


L, N, H_IN, H = 5, 3, 4, 6


# ---- layers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RNN", "RNN_RELU", "LSTM", "GRU"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_matches_torch(kind, num_layers, batch_first, bidirectional, with_state):
    t_mod, m_mod = make(kind, H_IN, H, num_layers, batch_first=batch_first, bidirectional=bidirectional)
    x = randn(N, L, H_IN) if batch_first else randn(L, N, H_IN)
    args = [x]
    if with_state:
        states = num_layers * (2 if bidirectional else 1)
        h0 = randn(states, N, H, seed=2)
        args.append((h0, randn(states, N, H, seed=3)) if kind == "LSTM" else h0)
    t_out, _ = compare(t_mod, m_mod, args)
    assert t_out[0].shape == ((N, L) if batch_first else (L, N)) + (H * (2 if bidirectional else 1),)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_unbatched_input_matches_torch(kind, with_state, bidirectional):
    t_mod, m_mod = make(kind, H_IN, H, 2, bidirectional=bidirectional, batch_first=True)
    args = [randn(L, H_IN)]
    if with_state:
        states = 2 * (2 if bidirectional else 1)
        h0 = randn(states, H, seed=2)
        args.append((h0, randn(states, H, seed=3)) if kind == "LSTM" else h0)
    t_out, m_out = compare(t_mod, m_mod, args)
    assert tuple(m_out[0].shape) == (L, H * (2 if bidirectional else 1))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_float32_matches_torch(kind):
    t_mod, m_mod = make(kind, H_IN, H, 2, bidirectional=True)
    compare(t_mod, m_mod, [randn(L, N, H_IN)], dtype="float32")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_without_bias_matches_torch(kind):
    t_mod, m_mod = make(kind, H_IN, H, 2, bias=False)
    compare(t_mod, m_mod, [randn(L, N, H_IN)])
    assert not any("bias" in name for name, _ in m_mod.named_parameters())


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_projection_matches_torch(bidirectional):
    t_mod, m_mod = make("LSTM", H_IN, H, 2, proj_size=3, bidirectional=bidirectional)
    d = 2 if bidirectional else 1
    states = (randn(2 * d, N, 3, seed=2), randn(2 * d, N, H, seed=3))
    t_out, _ = compare(t_mod, m_mod, [randn(L, N, H_IN), states])
    assert t_out[0].shape == (L, N, 3 * d)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_long_sequence_is_sliced_in_blocks_and_still_matches_torch(kind):
    """Past _LEAF_STEPS steps the time axis is cut in blocks first (to keep backward linear in
    the length); the result must not change."""
    t_mod, m_mod = make(kind, H_IN, H, 1, bidirectional=True, batch_first=True)
    compare(t_mod, m_mod, [randn(2, 37, H_IN)])


@pytest.mark.parametrize("n", [1, 8, 9, 37, 100])
def test_time_steps_returns_every_step_in_order(n):
    x = minidl.tensor(np.arange(2 * n * 3, dtype=np.float64).reshape(2, n, 3), requires_grad=True)
    steps = _time_steps(x, 1)
    assert len(steps) == n
    for t, s in enumerate(steps):
        np.testing.assert_array_equal(s.detach().numpy(), x.detach().numpy()[:, t])
    minidl.stack(steps, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, n, 3)))


def test_inter_layer_dropout_matches_torch_at_p_1_and_is_off_in_eval():
    """With p = 1 dropout zeroes the second layer's input in both libraries (no randomness),
    so training mode can be compared exactly; eval mode switches dropout off."""
    for kind in ("LSTM", "GRU"):
        t_mod, m_mod = make(kind, H_IN, H, 2, dropout=1.0)
        t_out, _ = compare(t_mod, m_mod, [randn(L, N, H_IN)])
        t_mod.eval()
        m_mod.eval()
        compare(t_mod, m_mod, [randn(L, N, H_IN)])


def test_inter_layer_dropout_is_random_in_training():
    m = nn.GRU(H_IN, H, 2, dropout=0.5).double()
    x = minidl.tensor(randn(L, N, H_IN))
    with minidl.no_grad():
        a, b = m(x)[0].numpy(), m(x)[0].numpy()
        assert not np.allclose(a, b)
        m.eval()
        np.testing.assert_array_equal(m(x)[0].numpy(), m(x)[0].numpy())
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.LSTM(2, 3, 1, dropout=0.5)


def test_gradients_accumulate_over_two_sequences_like_torch():
    """Backprop through time twice into the same parameters: .grad sums, as in torch."""
    t_mod, m_mod = make("LSTM", H_IN, H)
    t_mod.double()
    m_mod.double().load_state_dict({k: v.detach().numpy() for k, v in t_mod.state_dict().items()})
    for seed in (1, 2):
        x = randn(L, N, H_IN, seed=seed)
        t_mod(torch.tensor(x))[0].pow(2).sum().backward()
        m_mod(minidl.tensor(x))[0].pow(2).sum().backward()
    for (name, tp), (_, mp) in zip(t_mod.named_parameters(), m_mod.named_parameters()):
        np.testing.assert_allclose(mp.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-10, err_msg=name)


# ---- cells --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RNNCell", "RNNCell_relu", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(kind, batched, with_state, bias):
    kwargs = {"bias": bias}
    if kind == "RNNCell_relu":
        kind, kwargs = "RNNCell", {**kwargs, "nonlinearity": "relu"}
    t_mod, m_mod = make(kind, H_IN, H, **kwargs)
    lead = (N,) if batched else ()
    args = [randn(*lead, H_IN)]
    if with_state:
        h = randn(*lead, H, seed=2)
        args.append((h, randn(*lead, H, seed=3)) if kind == "LSTMCell" else h)
    compare(t_mod, m_mod, args)


def test_cell_float32_matches_torch():
    for kind in ("RNNCell", "LSTMCell", "GRUCell"):
        t_mod, m_mod = make(kind, H_IN, H)
        compare(t_mod, m_mod, [randn(N, H_IN)], dtype="float32")


def test_lstm_cell_unrolled_equals_lstm_layer():
    """The layer is the cell applied step by step (with the same weights)."""
    layer, cell = nn.LSTM(H_IN, H).double(), nn.LSTMCell(H_IN, H).double()
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = minidl.tensor(randn(L, N, H_IN))
    layer.requires_grad_(False)
    cell.requires_grad_(False)
    out, (h_n, c_n) = layer(x)
    h = c = minidl.zeros(N, H, dtype=minidl.float64)
    for t in range(L):
        h, c = cell(x[t], (h, c))
        np.testing.assert_allclose(out[t].numpy(), h.numpy(), rtol=1e-12)
    np.testing.assert_allclose(c_n[0].numpy(), c.numpy(), rtol=1e-12)


# ---- parameters, initialization, repr ----------------------------------------------------------


@pytest.mark.parametrize(
    "kind, kwargs",
    [
        ("RNN", dict(num_layers=2, bidirectional=True)),
        ("LSTM", dict(num_layers=2, proj_size=2, bidirectional=True)),
        ("GRU", dict(num_layers=3, bias=False)),
        ("LSTMCell", {}),
        ("GRUCell", dict(bias=False)),
    ],
)
def test_state_dict_keys_and_shapes_equal_torch(kind, kwargs):
    t_mod, m_mod = make(kind, H_IN, H, **kwargs)
    t_sd, m_sd = t_mod.state_dict(), m_mod.state_dict()
    assert list(m_sd) == list(t_sd)
    for k in t_sd:
        assert tuple(m_sd[k].shape) == tuple(t_sd[k].shape), k


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_initialization_is_uniform_within_one_over_sqrt_hidden(kind):
    hidden = 64
    m = getattr(nn, kind)(32, hidden)
    bound = 1 / math.sqrt(hidden)
    values = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert values.min() >= -bound and values.max() <= bound
    # U(-b, b) has mean 0 and standard deviation b / sqrt(3); thousands of draws pin both down.
    assert abs(values.mean()) < 0.05 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert all(p.dtype == minidl.float32 for p in m.parameters())
    assert all(p.dtype == minidl.float64 for p in getattr(nn, kind)(3, 4, dtype=minidl.float64).parameters())


@pytest.mark.parametrize(
    "kind, args, kwargs",
    [
        ("RNN", (4, 6), {}),
        ("RNN", (4, 6, 2), dict(nonlinearity="relu", bias=False, batch_first=True, dropout=0.5)),
        ("LSTM", (4, 6), dict(num_layers=2, bidirectional=True, proj_size=3)),
        ("GRU", (4, 6), dict(batch_first=True)),
        ("RNNCell", (4, 6), dict(nonlinearity="relu", bias=False)),
        ("LSTMCell", (4, 6), {}),
        ("GRUCell", (4, 6), dict(bias=False)),
    ],
)
def test_repr_equals_torch(kind, args, kwargs):
    assert repr(getattr(nn, kind)(*args, **kwargs)) == repr(getattr(torch.nn, kind)(*args, **kwargs))


def test_all_weights_and_flatten_parameters():
    m = nn.LSTM(H_IN, H, 2, bidirectional=True)
    assert len(m.all_weights) == 4 and all(len(w) == 4 for w in m.all_weights)
    assert m.all_weights[1][0] is m.weight_ih_l0_reverse
    m.flatten_parameters()  # accepted for torch compatibility; nothing to do


# ---- the recorded graph ---------------------------------------------------------------------


def _nodes(out) -> int:
    return len(toposort([out._node]))


@pytest.mark.parametrize("kind, most", [("RNN", 5), ("LSTM", 15), ("GRU", 15)])
def test_each_time_step_records_few_ops(kind, most):
    """One more step adds at most ``most`` nodes to the tape (the step's ops, its slice of
    the input projection and its place in the output)."""
    m = getattr(nn, kind)(H_IN, H)
    counts = [_nodes(m(minidl.randn(n, N, H_IN))[0].sum()) for n in (6, 7)]
    assert 0 < counts[1] - counts[0] <= most


# ---- errors -------------------------------------------------------------------------------------


def test_wrong_input_feature_size_names_layer_and_shapes():
    with pytest.raises(RuntimeError, match=r"LSTM: input.size\(-1\) must be equal to input_size. Expected 4, got 5"):
        nn.LSTM(4, 6)(minidl.randn(5, 3, 5))
    with pytest.raises(ValueError, match=r"GRU: Expected input to be 2D or 3D, got 4D"):
        nn.GRU(4, 6)(minidl.randn(1, 5, 3, 4))
    with pytest.raises(RuntimeError, match=r"LSTMCell: input has inconsistent input_size: got 5, expected 4"):
        nn.LSTMCell(4, 6)(minidl.randn(3, 5))


def test_wrong_hidden_state_shape_names_expected_shape():
    with pytest.raises(RuntimeError, match=r"RNN: Expected hx of shape \(2, 3, 6\).*got \(1, 3, 6\)"):
        nn.RNN(4, 6, 2)(minidl.randn(5, 3, 4), minidl.randn(1, 3, 6))
    with pytest.raises(RuntimeError, match=r"LSTM: Expected c_0 of shape \(1, 3, 6\).*got \(1, 3, 5\)"):
        nn.LSTM(4, 6)(minidl.randn(5, 3, 4), (minidl.randn(1, 3, 6), minidl.randn(1, 3, 5)))
    with pytest.raises(RuntimeError, match=r"For unbatched 2-D input, hx should also be 2-D but got 3-D"):
        nn.GRU(4, 6)(minidl.randn(5, 4), minidl.randn(1, 1, 6))
    with pytest.raises(TypeError, match=r"LSTM: expected hx to be a tuple \(h_0, c_0\)"):
        nn.LSTM(4, 6)(minidl.randn(5, 3, 4), minidl.randn(1, 3, 6))
    with pytest.raises(RuntimeError, match=r"GRUCell: hx has shape \(2, 6\), expected \(3, 6\)"):
        nn.GRUCell(4, 6)(minidl.randn(3, 4), minidl.randn(2, 6))


def test_dtype_mismatch_says_how_to_convert():
    with pytest.raises(ValueError, match=r"LSTM: input dtype \(float64\) does not match weight dtype \(float32\)"):
        nn.LSTM(4, 6)(minidl.randn(5, 3, 4, dtype=minidl.float64))
    with pytest.raises(ValueError, match=r"hx dtype \(float64\) does not match the input dtype \(float32\)"):
        nn.RNN(4, 6)(minidl.randn(5, 3, 4), minidl.randn(1, 3, 6, dtype=minidl.float64))


def test_constructor_checks():
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(4, 6, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.GRU(4, 0)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(4, 6, proj_size=6)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNN(4, 6, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNNCell(4, 6, nonlinearity="gelu")


# ---- GPU ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_layer_on_the_gpu_matches_the_cpu(kind):
    cpu = getattr(nn, kind)(H_IN, H, 2, bidirectional=True, batch_first=True).double()
    gpu = copy.deepcopy(cpu).to("cuda")
    x = randn(N, L, H_IN)
    xc = minidl.tensor(x, requires_grad=True)
    xg = minidl.tensor(x, device="cuda", requires_grad=True)
    oc, og = cpu(xc)[0], gpu(xg)[0]
    np.testing.assert_allclose(og.detach().cpu().numpy(), oc.detach().numpy(), rtol=1e-9, atol=1e-12)
    (oc * oc).sum().backward()
    (og * og).sum().backward()
    np.testing.assert_allclose(xg.grad.cpu().numpy(), xc.grad.numpy(), rtol=1e-8, atol=1e-10)
    for (name, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(pg.grad.cpu().numpy(), pc.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
