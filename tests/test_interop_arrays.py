"""Arrays and weights shared with other libraries: DLPack both ways (minidl <-> NumPy, minidl
<-> torch, CuPy when a GPU is there), zero copy checked by writing through one side and reading
the other, and torch state dicts loaded into the matching minidl modules, whose outputs must
then equal torch's (eval mode, float32 tolerance)."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
import torch

import minidl
from minidl import nn

RTOL, ATOL = 1e-4, 1e-5  # float32, after a few layers of summation in a different order

DTYPES = [
    (np.float32, torch.float32, minidl.float32),
    (np.float64, torch.float64, minidl.float64),
    (np.int32, torch.int32, minidl.int32),
    (np.int64, torch.int64, minidl.int64),
    (np.bool_, torch.bool, minidl.bool_),
]


def _ptr(t: minidl.Tensor) -> int:
    return t._data.ctypes.data


# ---- DLPack: NumPy ---------------------------------------------------------------------------


def test_from_dlpack_numpy_shares_memory_both_ways():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = minidl.from_dlpack(a)
    assert isinstance(t, minidl.Tensor) and t.shape == (2, 3) and t.dtype is minidl.float32
    assert np.shares_memory(t._data, a)
    t.add_(10.0)  # a minidl in-place op writes into NumPy's memory
    np.testing.assert_array_equal(a, np.arange(6).reshape(2, 3) + 10)
    a[1, 2] = -1.0  # and a NumPy write shows in the tensor
    assert t[1, 2].item() == -1.0


def test_numpy_from_dlpack_of_minidl_shares_memory():
    t = minidl.arange(6.0).reshape(2, 3)
    a = np.from_dlpack(t)
    assert np.shares_memory(a, t._data) and a.flags.writeable
    a[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    t.mul_(2.0)
    assert a[0, 0] == 84.0


def test_numpy_and_from_numpy_share_memory():
    a = np.zeros(4)
    t = minidl.from_numpy(a)
    t.add_(1.0)
    np.testing.assert_array_equal(a, np.ones(4))
    b = t.numpy()
    assert b is t._data
    b[0] = 5.0
    assert a[0] == 5.0 and t[0].item() == 5.0


def test_dlpack_device():
    assert tuple(int(v) for v in minidl.zeros(2).__dlpack_device__()) == (1, 0)
    assert tuple(int(v) for v in minidl.zeros(2).__dlpack_device__()) == tuple(
        int(v) for v in torch.zeros(2).__dlpack_device__()
    )


# ---- DLPack: torch -------------------------------------------------------------------------


def test_torch_to_minidl_zero_copy():
    src = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    t = minidl.from_dlpack(src)
    assert _ptr(t) == src.data_ptr()
    src[0, 0] = 100.0  # a torch write shows in minidl
    assert t[0, 0].item() == 100.0
    t.sub_(1.0)  # a minidl in-place op shows in torch
    torch.testing.assert_close(src[2, 3], torch.tensor(10.0))


def test_minidl_to_torch_zero_copy():
    t = minidl.randn(3, 4)
    out = torch.from_dlpack(t)
    assert out.data_ptr() == _ptr(t)
    out.mul_(0.0)
    assert not t._data.any()
    t.add_(2.0)
    assert bool((out == 2.0).all())


def test_from_dlpack_of_a_minidl_tensor_shares_memory_and_is_a_new_leaf():
    x = minidl.ones(3)
    y = minidl.from_dlpack(x)
    assert y is not x and np.shares_memory(x._data, y._data)
    assert not y.requires_grad and y.is_leaf


@pytest.mark.parametrize("np_dtype, torch_dtype, md_dtype", DTYPES, ids=lambda d: str(d))
def test_dtypes_round_trip(np_dtype, torch_dtype, md_dtype, rng):
    values = (rng.standard_normal((3, 2)) * 5).astype(np_dtype)
    src = torch.from_numpy(values.copy())
    t = minidl.from_dlpack(src)
    assert t.dtype is md_dtype
    np.testing.assert_array_equal(t.numpy(), values)
    back = torch.from_dlpack(t)
    assert back.dtype == torch_dtype and back.data_ptr() == src.data_ptr()
    assert np.from_dlpack(minidl.from_dlpack(values)).dtype == np_dtype


@pytest.mark.parametrize("torch_dtype", [torch.float16, torch.bfloat16, torch.uint8, torch.int16, torch.complex64])
def test_unsupported_dtypes_raise_a_clear_error(torch_dtype):
    src = torch.zeros(2, 3, dtype=torch_dtype)
    with pytest.raises((TypeError, RuntimeError), match="from_dlpack") as info:
        minidl.from_dlpack(src)
    assert str(torch_dtype).removeprefix("torch.") in str(info.value)  # names the dtype


def test_non_contiguous_views_keep_their_strides():
    src = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    view = src.t()[1:, ::2]  # transposed and strided
    t = minidl.from_dlpack(view)
    assert t.shape == tuple(view.shape) and t.stride() == view.stride()
    assert not t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), view.numpy())
    src.zero_()  # still a view of torch's memory
    assert not t._data.any()

    base = minidl.arange(24.0).reshape(2, 3, 4)
    perm = base.permute(2, 0, 1)
    out = torch.from_dlpack(perm)
    assert out.stride() == perm.stride() and out.data_ptr() == _ptr(base)
    np.testing.assert_array_equal(out.numpy(), perm.numpy())


def test_negative_strides_are_exported_as_a_copy():
    # DLPack allows negative strides, but torch cannot represent them (it aborts on them).
    x = minidl.arange(6.0).reshape(2, 3)
    flipped = x[:, ::-1]
    assert any(s < 0 for s in flipped._data.strides)
    out = torch.from_dlpack(flipped)
    np.testing.assert_array_equal(out.numpy(), flipped.numpy())
    assert out.data_ptr() != _ptr(x)
    with pytest.raises(BufferError, match="negative strides.*contiguous"):
        flipped.__dlpack__(copy=False)


@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (2, 0, 4)])
def test_zero_dim_and_empty(shape):
    src = torch.zeros(shape) + (7.0 if shape == () else 0.0)
    t = minidl.from_dlpack(src)
    assert t.shape == shape and t.dtype is minidl.float32
    if shape == ():
        assert t.item() == 7.0
    back = torch.from_dlpack(t)
    assert tuple(back.shape) == shape
    assert np.from_dlpack(t).shape == shape


def test_requires_grad_cannot_be_exported():
    x = minidl.randn(3, requires_grad=True)
    msg = "Can't export tensors that require gradient, use tensor.detach()"
    with pytest.raises(BufferError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        x.__dlpack__()
    with pytest.raises(BufferError, match="require gradient"):
        torch.from_dlpack(x)
    with pytest.raises(BufferError, match="require gradient"):
        np.from_dlpack(x)
    with pytest.raises(BufferError, match="require gradient"):
        minidl.from_dlpack(x)
    assert torch.from_dlpack(x.detach()).data_ptr() == _ptr(x)
    # torch says the same for its own tensors, and minidl passes that on
    with pytest.raises(BufferError, match="from_dlpack.*require gradient"):
        minidl.from_dlpack(torch.ones(2, requires_grad=True))


def test_read_only_producer_is_copied_with_a_warning():
    a = np.arange(4.0)
    a.flags.writeable = False
    with pytest.warns(UserWarning, match="read-only.*copy"):
        t = minidl.from_dlpack(a)
    assert not np.shares_memory(t._data, a)
    t.add_(1.0)  # an in-place op works (on the copy) instead of failing deep in NumPy
    t[0] = 9.0
    np.testing.assert_array_equal(a, np.arange(4.0))
    np.testing.assert_array_equal(t.numpy(), [9.0, 2.0, 3.0, 4.0])
    with pytest.raises(BufferError, match="read-only.*copy=None"):
        minidl.from_dlpack(a, copy=False)


def test_copy_argument():
    src = torch.arange(3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copied = minidl.from_dlpack(src, copy=True)
    assert _ptr(copied) != src.data_ptr()
    src.add_(1.0)
    np.testing.assert_array_equal(copied.numpy(), [0.0, 1.0, 2.0])
    shared = minidl.from_dlpack(src, copy=False, device="cpu")
    assert _ptr(shared) == src.data_ptr()
    with pytest.raises(TypeError, match="copy must be"):
        minidl.from_dlpack(src, copy="yes")


def test_bad_input():
    with pytest.raises(TypeError, match="from_dlpack.*DLPack.*list.*minidl.tensor"):
        minidl.from_dlpack([1.0, 2.0])


def test_imported_memory_outlives_the_producer():
    # The capsule's deleter keeps the producer's buffer alive as long as the consumer needs it.
    src = torch.arange(1000, dtype=torch.float64)
    t = minidl.from_dlpack(src)
    del src
    gc.collect()
    torch.zeros(1000, dtype=torch.float64)  # would reuse the memory had it been freed
    np.testing.assert_array_equal(t.numpy(), np.arange(1000.0))


def test_cupy_round_trip():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA GPU")
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("no CUDA GPU")
    a = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
    t = minidl.from_dlpack(a)
    assert t.is_cuda and t._data.data.ptr == a.data.ptr
    a[0, 0] = 7.0
    assert t[0, 0].item() == 7.0
    back = cupy.from_dlpack(t)
    assert back.data.ptr == a.data.ptr
    assert tuple(int(v) for v in t.__dlpack_device__())[0] == 2


def test_cuda_producer_without_cupy_says_so(monkeypatch):
    class FakeCuda:
        def __dlpack_device__(self):
            return (2, 0)

        def __dlpack__(self, **kwargs):  # pragma: no cover - never reached
            raise AssertionError

    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)  # makes ``import cupy`` fail
    with pytest.raises(RuntimeError, match="CUDA GPU 0.*CuPy"):
        minidl.from_dlpack(FakeCuda())

    class FakeOther(FakeCuda):
        def __dlpack_device__(self):
            return (8, 0)  # Metal

    with pytest.raises(RuntimeError, match="device type 8.*CPU"):
        minidl.from_dlpack(FakeOther())


# ---- torch state dicts -----------------------------------------------------------------------


def _load(t_mod: torch.nn.Module, m_mod: nn.Module) -> None:
    m_mod.load_state_dict(minidl.from_torch_state_dict(t_mod.state_dict()))
    t_mod.eval()
    m_mod.eval()


def _close(m_out, t_out) -> None:
    np.testing.assert_allclose(m_out.detach().numpy(), t_out.detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")
@pytest.mark.parametrize(
    "kind, kwargs",
    [
        ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True)),
        ("LSTM", dict(proj_size=3, bidirectional=True)),
        ("GRU", dict(num_layers=2, bias=False)),
        ("RNN", dict(nonlinearity="relu", bidirectional=True)),
    ],
)
def test_recurrent_from_torch(kind, kwargs, rng):
    t_mod = getattr(torch.nn, kind)(4, 5, **kwargs)
    m_mod = getattr(nn, kind)(4, 5, **kwargs)
    _load(t_mod, m_mod)
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    t_out, t_state = t_mod(torch.from_numpy(x))
    m_out, m_state = m_mod(minidl.tensor(x))
    _close(m_out, t_out)
    for m, t in zip(m_state if kind == "LSTM" else (m_state,), t_state if kind == "LSTM" else (t_state,)):
        _close(m, t)


class _TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU()),
            torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 6), torch.nn.BatchNorm1d(6))

    def forward(self, x):
        return self.head(self.features(x))


class _MinidlCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()), nn.MaxPool2d(2)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 6), nn.BatchNorm1d(6))

    def forward(self, x):
        return self.head(self.features(x))


def test_cnn_with_batch_norm_from_torch(rng):
    t_mod = _TorchCNN()
    with torch.no_grad():  # a few training-mode passes give the running statistics real values
        for _ in range(3):
            t_mod(torch.randn(5, 3, 8, 8) * 2 + 1)
    sd = t_mod.state_dict()
    assert (
        sd["features.0.1.num_batches_tracked"].dtype == torch.int64 and sd["features.0.1.num_batches_tracked"].ndim == 0
    )
    m_mod = _MinidlCNN()
    _load(t_mod, m_mod)
    bn = m_mod.features[0][1]
    assert bn.num_batches_tracked.dtype is minidl.int64 and bn.num_batches_tracked.item() == 3
    np.testing.assert_array_equal(bn.running_var.numpy(), t_mod.features[0][1].running_var.numpy())
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    _close(m_mod(minidl.tensor(x)), t_mod(torch.from_numpy(x)))


@pytest.mark.parametrize("norm_first, activation", [(False, "relu"), (True, "gelu")])
def test_transformer_encoder_layer_from_torch(norm_first, activation, rng):
    kw = dict(dim_feedforward=16, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first)
    t_mod = torch.nn.TransformerEncoderLayer(8, 2, **kw)
    m_mod = nn.TransformerEncoderLayer(8, 2, **kw)
    _load(t_mod, m_mod)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    mask = np.array([[False] * 5, [False] * 3 + [True] * 2])
    t_out = t_mod(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(mask))
    m_out = m_mod(minidl.tensor(x), src_key_padding_mask=minidl.tensor(mask))
    _close(m_out, t_out)


def test_embedding_layer_norm_and_attention_from_torch(rng):
    t_emb, m_emb = torch.nn.Embedding(10, 8, padding_idx=0), nn.Embedding(10, 8, padding_idx=0)
    t_ln, m_ln = torch.nn.LayerNorm(8), nn.LayerNorm(8)
    t_mha = torch.nn.MultiheadAttention(8, 2, kdim=6, vdim=4, add_bias_kv=True)
    m_mha = nn.MultiheadAttention(8, 2, kdim=6, vdim=4, add_bias_kv=True)
    with torch.no_grad():  # LayerNorm starts at ones/zeros: make the loaded values matter
        t_ln.weight.normal_()
        t_ln.bias.normal_()
    for t, m in ((t_emb, m_emb), (t_ln, m_ln), (t_mha, m_mha)):
        _load(t, m)
    idx = rng.integers(0, 10, (4, 3))
    q = t_ln(t_emb(torch.from_numpy(idx)))
    mq = m_ln(m_emb(minidl.tensor(idx)))
    _close(mq, q)
    k = rng.standard_normal((5, 3, 6)).astype(np.float32)
    v = rng.standard_normal((5, 3, 4)).astype(np.float32)
    t_out, t_w = t_mha(q, torch.from_numpy(k), torch.from_numpy(v))
    m_out, m_w = m_mha(mq, minidl.tensor(k), minidl.tensor(v))
    _close(m_out, t_out)
    _close(m_w, t_w)


def test_state_dict_values_are_copies():
    t_mod = torch.nn.Linear(3, 2)
    sd = minidl.from_torch_state_dict(t_mod.state_dict(keep_vars=True))  # parameters requiring grad
    assert list(sd) == ["weight", "bias"]
    before = t_mod.weight.detach().numpy().copy()
    with torch.no_grad():
        t_mod.weight.add_(1.0)
    np.testing.assert_array_equal(sd["weight"].numpy(), before)
    assert not sd["weight"].requires_grad and sd["weight"]._data.flags.writeable


def test_state_dict_dtypes():
    sd = minidl.from_torch_state_dict(
        {
            "half": torch.tensor([1.5, -2.0], dtype=torch.float16),
            "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
            "small_int": torch.tensor([-3, 4], dtype=torch.int8),
            "count": torch.tensor(7),
            "flag": torch.tensor([True, False]),
            "array": np.arange(3, dtype=np.float64),
            "minidl": minidl.ones(2),
            "number": 2.5,
        }
    )
    assert {k: v.dtype for k, v in sd.items()} == {
        "half": minidl.float32,
        "bf16": minidl.float32,
        "small_int": minidl.int64,
        "count": minidl.int64,
        "flag": minidl.bool_,
        "array": minidl.float64,
        "minidl": minidl.float32,
        "number": minidl.float64,
    }
    np.testing.assert_array_equal(sd["bf16"].numpy(), [1.5, -2.0])
    np.testing.assert_array_equal(sd["small_int"].numpy(), [-3, 4])


def test_state_dict_bad_values():
    with pytest.raises(TypeError, match="'w'.*complex64"):
        minidl.from_torch_state_dict({"w": torch.zeros(2, dtype=torch.complex64)})
    with pytest.raises(TypeError, match="'extra'.*str"):
        minidl.from_torch_state_dict({"extra": "hello"})
    with pytest.raises(TypeError, match=r"module\.state_dict\(\)"):
        minidl.from_torch_state_dict(torch.nn.Linear(2, 2))


def test_wrong_state_dict_is_reported_by_name():
    t_mod = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    sd = dict(t_mod.state_dict())
    del sd["1.running_var"]  # missing
    sd["1.extra"] = torch.zeros(1)  # unexpected
    sd["0.weight"] = torch.zeros(3, 5)  # shape mismatch
    m_mod = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    before = m_mod[0].bias.detach().numpy().copy()
    with pytest.raises(RuntimeError) as info:
        m_mod.load_state_dict(minidl.from_torch_state_dict(sd))
    text = str(info.value)
    assert 'Missing key(s) in state_dict: "1.running_var"' in text
    assert 'Unexpected key(s) in state_dict: "1.extra"' in text
    assert "size mismatch for 0.weight: copying a param with shape (3, 5)" in text
    np.testing.assert_array_equal(m_mod[0].bias.detach().numpy(), before)  # nothing was copied
    # torch reports the same three problems for the same dict
    with pytest.raises(RuntimeError, match="Missing key.*1.running_var(.|\n)*Unexpected key.*1.extra"):
        torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).load_state_dict(sd)

    del sd["0.weight"], sd["1.extra"]
    sd["0.weight"] = t_mod[0].weight.detach()
    result = m_mod.load_state_dict(minidl.from_torch_state_dict(sd), strict=False)
    assert result.missing_keys == ["1.running_var"] and result.unexpected_keys == []
    np.testing.assert_array_equal(m_mod[0].weight.detach().numpy(), t_mod[0].weight.detach().numpy())
