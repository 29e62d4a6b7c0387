"""Attention against torch: ``scaled_dot_product_attention``, ``multi_head_attention_forward``,
``MultiheadAttention`` and the Transformer encoder -- outputs, attention weights and the
gradients of inputs and of every parameter, from identical weights, for each kind of mask and
layout; plus initialization, state dict keys, deep copies and error messages."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.nn.transformer import generate_square_subsequent_mask

TOL = {"float64": dict(rtol=1e-9, atol=1e-10), "float32": dict(rtol=1e-4, atol=1e-5)}
TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32}

E, HEADS, L, S, N = 8, 2, 5, 4, 3


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in _flat(o)]
    return [out]


def compare(call, arrays, t_mod=None, m_mod=None, dtype="float64", seed=0):
    """Run ``call(lib, module, tensors)`` with torch and with minidl on the same ``arrays``
    (each becomes a leaf that requires grad) and, if given, the same module weights; compare
    outputs (``None`` must match ``None``), then the gradients of the arrays and of every
    parameter for one random cotangent. Returns both outputs."""
    tol = TOL[dtype]
    if t_mod is not None:
        t_mod = t_mod.to(TORCH_DTYPE[dtype])
        m_mod = m_mod.to(dtype)
        m_mod.load_state_dict({k: v.detach().numpy() for k, v in t_mod.state_dict().items()})
    t_in = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    m_in = [minidl.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    t_out, m_out = call(torch, t_mod, t_in), call(minidl, m_mod, m_in)
    t_flat, m_flat = _flat(t_out), _flat(m_out)
    assert len(t_flat) == len(m_flat)
    rng = np.random.default_rng(seed)
    t_loss = m_loss = 0
    for t, m in zip(t_flat, m_flat):
        assert (t is None) == (m is None)
        if t is None:
            continue
        assert tuple(m.shape) == tuple(t.shape)
        np.testing.assert_allclose(m.detach().numpy(), t.detach().numpy(), **tol)
        g = rng.standard_normal(tuple(t.shape)).astype(dtype)
        t_loss = t_loss + (t * torch.tensor(g)).sum()
        m_loss = m_loss + (m * minidl.tensor(g)).sum()
    t_loss.backward()
    m_loss.backward()
    for t, m in zip(t_in, m_in):
        if t.grad is None:
            assert m.grad is None or not np.any(m.grad.numpy())
        else:
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), **tol)
    if t_mod is not None:
        t_params, m_params = dict(t_mod.named_parameters()), dict(m_mod.named_parameters())
        assert list(m_params) == list(t_params)
        for name, tp in t_params.items():
            if tp.grad is None:
                assert m_params[name].grad is None, name
            else:
                np.testing.assert_allclose(m_params[name].grad.numpy(), tp.grad.numpy(), **tol, err_msg=name)
    return t_out, m_out


def mask(lib, array, like):
    """A mask for ``lib``: bool stays bool; float takes the dtype of ``like``."""
    t = lib.tensor(array)
    return t if array.dtype == bool else t.to(like.dtype)


# ---- scaled_dot_product_attention -----------------------------------------------------------------

CAUSAL_BOOL = np.tril(np.ones((L, S), bool))


@pytest.mark.parametrize(
    "mask_array",
    [
        None,
        CAUSAL_BOOL,  # bool (L, S): True = may attend
        np.random.default_rng(2).random((N, 1, L, S)) > 0.3,  # broadcast over heads
        randn(L, S, seed=3),  # float, added to the scores
        randn(N, HEADS, L, S, seed=4),
    ],
    ids=["none", "bool", "bool-broadcast", "float", "float-full"],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sdpa_matches_torch(mask_array, dtype):
    mask_array = None if mask_array is None else mask_array
    if mask_array is not None and mask_array.dtype == bool:
        mask_array = mask_array | np.eye(L, S, dtype=bool)  # keep every row attending somewhere

    def call(lib, _, xs):
        m = None if mask_array is None else mask(lib, mask_array, xs[0])
        return lib.nn.functional.scaled_dot_product_attention(*xs, attn_mask=m)

    compare(call, [randn(N, HEADS, L, E), randn(N, HEADS, S, E, seed=2), randn(N, HEADS, S, 6, seed=3)], dtype=dtype)


@pytest.mark.parametrize("length", [(L, L), (L, S), (3, 6)])
def test_sdpa_causal_and_scale_match_torch(length):
    lq, lk = length

    def call(lib, _, xs):
        return lib.nn.functional.scaled_dot_product_attention(*xs, is_causal=True, scale=0.3)

    compare(call, [randn(2, lq, E), randn(2, lk, E, seed=2), randn(2, lk, E, seed=3)])


def test_sdpa_fully_masked_rows_are_zero_with_zero_gradients_like_torch():
    """A query that may attend to no key gets zero weights: output 0 and no gradient, not NaN."""
    allowed = CAUSAL_BOOL.copy()
    allowed[2] = False
    float_mask = np.where(allowed, 0.0, -np.inf)
    for m_arr in (allowed, float_mask):

        def call(lib, _, xs, m_arr=m_arr):
            return lib.nn.functional.scaled_dot_product_attention(*xs, attn_mask=mask(lib, m_arr, xs[0]))

        _, out = compare(call, [randn(N, L, E), randn(N, S, E, seed=2), randn(N, S, E, seed=3)])
        assert np.all(out.detach().numpy()[:, 2] == 0)


def test_sdpa_grouped_query_attention_matches_torch():
    def call(lib, _, xs):
        return lib.nn.functional.scaled_dot_product_attention(*xs, enable_gqa=True)

    compare(call, [randn(N, 4, L, E), randn(N, 2, S, E, seed=2), randn(N, 2, S, E, seed=3)])


def test_sdpa_dropout_keeps_the_expected_value():
    """Dropout on the weights is inverted (kept weights scaled by 1 / (1 - p)), so the mean of
    many dropped-out outputs approaches the plain output; p = 1 gives zeros, as torch."""
    q, k, v = (minidl.tensor(randn(1, 3, 4, seed=s)) for s in (1, 2, 3))
    plain = F.scaled_dot_product_attention(q, k, v).numpy()
    runs = np.stack([F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy() for _ in range(4000)])
    assert not np.allclose(runs[0], plain)
    np.testing.assert_allclose(runs.mean(0), plain, atol=0.06)
    assert np.all(F.scaled_dot_product_attention(q, k, v, dropout_p=1.0).numpy() == 0)


def test_sdpa_errors_name_the_shapes():
    q, k = minidl.randn(2, 5, 8), minidl.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 5\) does not broadcast"):
        F.scaled_dot_product_attention(q, k, k, attn_mask=minidl.ones(5, 5, dtype=minidl.bool))
    with pytest.raises(ValueError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, k, k, attn_mask=minidl.ones(5, 4, dtype=minidl.bool), is_causal=True)
    with pytest.raises(ValueError, match=r"key \(..., S, E\) \(2, 4, 7\).*must agree on E and S"):
        F.scaled_dot_product_attention(q, minidl.randn(2, 4, 7), k)
    with pytest.raises(TypeError, match="only bool and floating types"):
        F.scaled_dot_product_attention(q, k, k, attn_mask=minidl.ones(5, 4, dtype=minidl.int64))


# ---- MultiheadAttention -------------------------------------------------------------------------

KPM = np.zeros((N, S), bool)
KPM[0, 1] = KPM[2, 3] = True
AM = ~CAUSAL_BOOL  # MultiheadAttention's bool masks are True where attention is NOT allowed
MASKS = {
    "none": {},
    "kpm-bool": {"key_padding_mask": KPM},
    "kpm-float": {"key_padding_mask": np.where(KPM, -np.inf, 0.0) + randn(N, S, seed=7) * 0.1},
    "am-bool": {"attn_mask": AM},
    "am-float": {"attn_mask": randn(L, S, seed=5)},
    "am-bool-3d": {"attn_mask": np.random.default_rng(6).random((N * HEADS, L, S)) > 0.7},
    "both-bool": {"attn_mask": AM, "key_padding_mask": KPM},
    "both-float": {"attn_mask": randn(L, S, seed=5), "key_padding_mask": np.where(KPM, -np.inf, 0.0)},
}


def mha_call(masks=None, self_attention=False, **kwargs):
    masks = masks or {}

    def call(lib, mod, xs):
        q, k, v = (xs[0], xs[0], xs[0]) if self_attention else xs
        made = {name: mask(lib, arr, q) for name, arr in masks.items()}
        return mod(q, k, v, **made, **kwargs)

    return call


@pytest.mark.parametrize("masks", list(MASKS), ids=list(MASKS))
@pytest.mark.parametrize("weights", [dict(), dict(average_attn_weights=False), dict(need_weights=False)])
def test_mha_masks_and_weights_match_torch(masks, weights):
    t_mod, m_mod = torch.nn.MultiheadAttention(E, HEADS), nn.MultiheadAttention(E, HEADS)
    t_out, m_out = compare(
        mha_call(MASKS[masks], **weights),
        [randn(L, N, E), randn(S, N, E, seed=2), randn(S, N, E, seed=3)],
        t_mod,
        m_mod,
    )
    if weights.get("need_weights", True) is False:
        assert m_out[1] is None


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mha_self_attention_matches_torch(batch_first, dtype):
    """query is key is value: the packed path, one product with in_proj_weight."""
    t_mod = torch.nn.MultiheadAttention(E, HEADS, batch_first=batch_first)
    m_mod = nn.MultiheadAttention(E, HEADS, batch_first=batch_first)
    x = randn(N, L, E) if batch_first else randn(L, N, E)
    kpm = np.zeros((N, L), bool)
    kpm[1, -2:] = True
    compare(mha_call({"key_padding_mask": kpm}, self_attention=True), [x], t_mod, m_mod, dtype=dtype)


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_kdim_vdim_match_torch(batch_first):
    t_mod = torch.nn.MultiheadAttention(E, HEADS, kdim=5, vdim=6, batch_first=batch_first)
    m_mod = nn.MultiheadAttention(E, HEADS, kdim=5, vdim=6, batch_first=batch_first)
    lead = (N, S) if batch_first else (S, N)
    q = randn(N, L, E) if batch_first else randn(L, N, E)
    compare(mha_call(MASKS["both-bool"]), [q, randn(*lead, 5, seed=2), randn(*lead, 6, seed=3)], t_mod, m_mod)
    assert m_mod.in_proj_weight is None and tuple(m_mod.k_proj_weight.shape) == (E, 5)


@pytest.mark.parametrize(
    "masks",
    [
        {},
        {"key_padding_mask": KPM[0]},
        {"attn_mask": AM},
        {"attn_mask": np.random.default_rng(3).random((HEADS, L, S)) > 0.7},
    ],
    ids=["none", "kpm", "am-2d", "am-3d"],
)
def test_mha_unbatched_matches_torch(masks):
    t_mod, m_mod = torch.nn.MultiheadAttention(E, HEADS), nn.MultiheadAttention(E, HEADS)
    _, m_out = compare(mha_call(masks), [randn(L, E), randn(S, E, seed=2), randn(S, E, seed=3)], t_mod, m_mod)
    assert tuple(m_out[0].shape) == (L, E) and tuple(m_out[1].shape) == (L, S)


@pytest.mark.parametrize(
    "kwargs",
    [dict(bias=False), dict(add_bias_kv=True), dict(add_zero_attn=True), dict(add_bias_kv=True, add_zero_attn=True)],
    ids=["no-bias", "bias-kv", "zero-attn", "both"],
)
def test_mha_bias_options_match_torch(kwargs):
    t_mod, m_mod = torch.nn.MultiheadAttention(E, HEADS, **kwargs), nn.MultiheadAttention(E, HEADS, **kwargs)
    compare(
        mha_call(MASKS["both-bool"], average_attn_weights=False),
        [randn(L, N, E), randn(S, N, E, seed=2), randn(S, N, E, seed=3)],
        t_mod,
        m_mod,
    )


def test_mha_is_causal_hint_with_its_mask_matches_torch():
    causal = generate_square_subsequent_mask(L).numpy().astype(np.float64)
    t_mod, m_mod = torch.nn.MultiheadAttention(E, HEADS), nn.MultiheadAttention(E, HEADS)
    for need_weights in (True, False):
        compare(
            mha_call({"attn_mask": causal}, self_attention=True, is_causal=True, need_weights=need_weights),
            [randn(L, N, E)],
            t_mod,
            m_mod,
        )


def test_mha_fully_padded_sequence_gives_zeros_like_torch_without_weights():
    """All keys of sequence 0 padded: torch's SDPA path (need_weights=False) returns zeros
    there, its explicit path NaN; minidl returns zeros (and zero weights) in both."""
    kpm = KPM.copy()
    kpm[0] = True
    t_mod, m_mod = torch.nn.MultiheadAttention(E, HEADS), nn.MultiheadAttention(E, HEADS)
    args = [randn(L, N, E), randn(S, N, E, seed=2), randn(S, N, E, seed=3)]
    compare(mha_call({"key_padding_mask": kpm}, need_weights=False), args, t_mod, m_mod)
    out, weights = m_mod(*(minidl.tensor(a) for a in args), key_padding_mask=minidl.tensor(kpm))
    np.testing.assert_array_equal(weights.detach().numpy()[0], 0.0)
    np.testing.assert_allclose(
        out.detach().numpy()[:, 0], np.broadcast_to(m_mod.out_proj.bias.detach().numpy(), (L, E))
    )


def test_mha_functional_with_separate_weights_and_static_keys_matches_torch():
    """``multi_head_attention_forward`` with torch's signature: separate projection weights,
    and precomputed (static) keys and values of shape (N * heads, S, head_dim)."""
    d = E // HEADS

    def call(lib, _, xs):
        q, k, v, wq, wk, wv, b, wo, bo, sk, sv = xs
        fn = lib.nn.functional.multi_head_attention_forward
        common = dict(use_separate_proj_weight=True, q_proj_weight=wq, k_proj_weight=wk, v_proj_weight=wv)
        plain = fn(q, k, v, E, HEADS, None, b, None, None, False, 0.0, wo, bo, **common)
        static = fn(q, k, v, E, HEADS, None, b, None, None, True, 0.0, wo, bo, static_k=sk, static_v=sv, **common)
        return plain, static

    shapes = [(L, N, E), (S, N, 5), (S, N, 6), (E, E), (E, 5), (E, 6), (3 * E,), (E, E), (E,)]
    shapes += [(N * HEADS, 7, d), (N * HEADS, 7, d)]
    compare(call, [randn(*s, seed=i) * 0.5 for i, s in enumerate(shapes)])


def test_mha_dropout_is_random_in_training_and_off_in_eval():
    t_mod, m_mod = torch.nn.MultiheadAttention(E, HEADS, dropout=0.5), nn.MultiheadAttention(E, HEADS, dropout=0.5)
    m_mod.load_state_dict({k: v.detach().numpy() for k, v in t_mod.state_dict().items()})
    x = minidl.randn(L, N, E)
    with minidl.no_grad():
        a, b = m_mod(x, x, x)[0].numpy(), m_mod(x, x, x)[0].numpy()
        assert not np.allclose(a, b)
    t_mod.eval()
    m_mod.eval()
    compare(mha_call(self_attention=True), [randn(L, N, E)], t_mod, m_mod, dtype="float32")


@pytest.mark.parametrize(
    "kwargs", [{}, dict(kdim=5, vdim=6), dict(add_bias_kv=True, bias=False)], ids=["packed", "kdim", "bias-kv"]
)
def test_mha_parameters_and_initialization_follow_torch(kwargs):
    t_mod, m_mod = torch.nn.MultiheadAttention(64, 4, **kwargs), nn.MultiheadAttention(64, 4, **kwargs)
    t_sd, m_sd = t_mod.state_dict(), m_mod.state_dict()
    assert list(m_sd) == list(t_sd)
    for k in t_sd:
        assert tuple(m_sd[k].shape) == tuple(t_sd[k].shape), k
    if "kdim" not in kwargs:
        w = m_mod.in_proj_weight.detach().numpy()
        bound = math.sqrt(6 / (64 + 3 * 64))  # Xavier over the whole (3E, E) matrix
        assert np.abs(w).max() <= bound and abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    if kwargs.get("bias", True):
        assert not np.any(m_mod.in_proj_bias.detach().numpy()) and not np.any(m_mod.out_proj.bias.detach().numpy())
    if kwargs.get("add_bias_kv"):
        assert m_mod.bias_k.detach().numpy().std() > 0


def test_mha_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"MultiheadAttention: embed_dim \(10\) must be divisible by num_heads \(3\)"):
        nn.MultiheadAttention(10, 3)
    m = nn.MultiheadAttention(E, HEADS)
    q, k = minidl.randn(L, N, E), minidl.randn(S, N, E)
    with pytest.raises(ValueError, match=r"expected query to have 8 features.*\(5, 3, 7\)"):
        m(minidl.randn(L, N, 7), k, k)
    with pytest.raises(ValueError, match=r"expected key_padding_mask of shape \(3, 4\).*got \(3, 5\)"):
        m(q, k, k, key_padding_mask=minidl.zeros(N, L, dtype=minidl.bool))
    with pytest.raises(ValueError, match=r"expected attn_mask of shape \(5, 4\).*\(6, 5, 4\).*got \(5, 5\)"):
        m(q, k, k, attn_mask=minidl.zeros(L, L, dtype=minidl.bool))
    with pytest.raises(ValueError, match=r"key's sequence and batch dims \(4, 3\) do not match value's \(5, 3\)"):
        m(q, k, minidl.randn(L, N, E))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        m(q, q, q, is_causal=True)
    with pytest.raises(ValueError, match=r"For batched \(3-D\) `query`, expected `key` and `value` to be 3-D"):
        m(q, minidl.randn(S, E), minidl.randn(S, E))


# ---- the Transformer encoder ------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer_matches_torch_in_training_and_eval(norm_first, activation, batch_first):
    kwargs = dict(
        dim_feedforward=16, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=batch_first
    )
    t_mod, m_mod = torch.nn.TransformerEncoderLayer(E, HEADS, **kwargs), nn.TransformerEncoderLayer(E, HEADS, **kwargs)
    kpm = np.zeros((N, L), bool)
    kpm[1, -2:] = True
    masks = {"src_mask": ~np.tril(np.ones((L, L), bool)), "src_key_padding_mask": kpm}

    def call(lib, mod, xs):
        return mod(xs[0], **{name: mask(lib, arr, xs[0]) for name, arr in masks.items()})

    x = randn(N, L, E) if batch_first else randn(L, N, E)
    compare(call, [x], t_mod, m_mod)
    t_mod.eval()
    m_mod.eval()
    compare(lambda lib, mod, xs: mod(xs[0]), [x], t_mod, m_mod)


def test_encoder_layer_options_match_torch():
    """bias=False, a layer-norm eps, a module as activation (registered as in torch), float
    masks, unbatched input, float32."""
    kwargs = dict(dim_feedforward=16, dropout=0.0, bias=False, layer_norm_eps=1e-3)
    t_mod = torch.nn.TransformerEncoderLayer(E, HEADS, activation=torch.nn.GELU(approximate="tanh"), **kwargs)
    m_mod = nn.TransformerEncoderLayer(E, HEADS, activation=nn.GELU(approximate="tanh"), **kwargs)
    assert list(m_mod.state_dict()) == list(t_mod.state_dict())
    causal = generate_square_subsequent_mask(L).numpy().astype(np.float64)

    def call(lib, mod, xs):
        return mod(xs[0], src_mask=mask(lib, causal, xs[0]))

    compare(call, [randn(L, N, E)], t_mod, m_mod)
    compare(call, [randn(L, E)], t_mod, m_mod)
    compare(call, [randn(L, N, E)], t_mod, m_mod, dtype="float32")


def test_encoder_stack_matches_torch_and_copies_are_independent():
    t_layer = torch.nn.TransformerEncoderLayer(E, HEADS, 16, dropout=0.0, norm_first=True)
    m_layer = nn.TransformerEncoderLayer(E, HEADS, 16, dropout=0.0, norm_first=True)
    t_mod = torch.nn.TransformerEncoder(t_layer, 2, norm=torch.nn.LayerNorm(E), enable_nested_tensor=False)
    m_mod = nn.TransformerEncoder(m_layer, 2, norm=nn.LayerNorm(E))
    assert list(m_mod.state_dict()) == list(t_mod.state_dict())
    kpm = np.zeros((N, L), bool)
    kpm[0, -1] = True

    def call(lib, mod, xs):
        causal = mask(lib, generate_square_subsequent_mask(L).numpy().astype(np.float64), xs[0])
        return mod(xs[0], mask=causal, src_key_padding_mask=mask(lib, np.where(kpm, -np.inf, 0.0), xs[0]))

    compare(call, [randn(L, N, E)], t_mod, m_mod)
    # Deep copies: distinct parameters (still marked as parameters), the same initial values.
    a, b = m_mod.layers[0].linear1.weight, m_mod.layers[1].linear1.weight
    assert a is not b and isinstance(b, nn.Parameter) and b.requires_grad
    assert m_mod.layers[1].self_attn.in_proj_weight is m_mod.layers[1].self_attn._parameters["in_proj_weight"]
    with minidl.no_grad():
        a.mul_(2.0)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    assert m_layer.linear1.weight is not a and m_layer.linear1.weight is not b


def test_encoder_repr_matches_torch_up_to_the_out_proj_class():
    t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, HEADS, 16), 2, enable_nested_tensor=False)
    m = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, HEADS, 16), 2)
    assert repr(m) == repr(t).replace("NonDynamicallyQuantizableLinear", "Linear")


def test_square_subsequent_mask_equals_torch():
    np.testing.assert_array_equal(
        generate_square_subsequent_mask(4).numpy(), torch.nn.Transformer.generate_square_subsequent_mask(4).numpy()
    )


def test_encoder_layer_rejects_unknown_activation():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu"):
        nn.TransformerEncoderLayer(E, HEADS, activation="swish")


# ---- GPU ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not minidl.cuda.is_available(), reason="needs CuPy and a CUDA GPU")
def test_encoder_layer_on_the_gpu_matches_the_cpu():
    """Masks (with a fully padded sequence) and the packed self-attention path, on CUDA."""
    cpu = nn.TransformerEncoderLayer(E, HEADS, 16, dropout=0.0, batch_first=True).double()
    gpu = copy.deepcopy(cpu).to("cuda")
    x = randn(N, L, E)
    kpm = np.zeros((N, L), bool)
    kpm[0] = True
    kpm[1, -2:] = True
    am = ~np.tril(np.ones((L, L), bool))
    xc = minidl.tensor(x, requires_grad=True)
    xg = minidl.tensor(x, device="cuda", requires_grad=True)
    oc = cpu(xc, src_mask=minidl.tensor(am), src_key_padding_mask=minidl.tensor(kpm))
    og = gpu(xg, src_mask=minidl.tensor(am, device="cuda"), src_key_padding_mask=minidl.tensor(kpm, device="cuda"))
    np.testing.assert_allclose(og.detach().cpu().numpy(), oc.detach().numpy(), rtol=1e-9, atol=1e-12)
    (oc * oc).sum().backward()
    (og * og).sum().backward()
    np.testing.assert_allclose(xg.grad.cpu().numpy(), xc.grad.numpy(), rtol=1e-8, atol=1e-10)
    for (name, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(pg.grad.cpu().numpy(), pc.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
