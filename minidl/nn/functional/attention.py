"""Attention as functions: ``scaled_dot_product_attention`` and ``multi_head_attention_forward``.

**Scaled dot-product attention.** Each query ``q_i`` (a row of ``Q``, shape ``(L, E)``) scores
every key ``k_j`` (a row of ``K``, ``(S, E)``) by their dot product, the scores of a row become
weights by a softmax, and the output row is the weighted mean of the values ``V`` ``(S, Ev)``::

    A = softmax(Q K^T / sqrt(E) + M)        out = A V

The ``1 / sqrt(E)`` keeps the scores' variance near 1 whatever the width (a sum of ``E``
products of unit-variance terms has variance ``E``); without it a wide model's softmax
saturates to one-hot rows whose gradient all but vanishes. ``M`` is an additive mask: ``0``
where query ``i`` may attend to key ``j`` and ``-inf`` where it may not, so that
``exp(-inf) = 0`` removes the key from the softmax. Boolean masks are turned into that form.
A query that may attend to *nothing* (a row of ``M`` that is all ``-inf``) would give ``0 / 0``;
it gets zero weights and a zero output instead, as torch's ``scaled_dot_product_attention``
does (torch's ``MultiheadAttention`` with ``need_weights=True`` returns NaN there).

**Multi-head attention** runs ``h`` attentions side by side on learned projections of width
``E / h`` (the head dimension) and mixes their concatenated outputs with one more projection::

    head_i = attention(Q W_q^(i), K W_k^(i), V W_v^(i))      out = concat(head_1..head_h) W_o^T

The ``h`` projections of ``Q`` are one ``(E, E)`` product split by reshaping ``(.., E)`` into
``(.., h, E / h)``; the heads then become a batch dimension, so all of them are computed by
one batched matrix product ``(N, h, L, d) @ (N, h, d, S)``.

Everything here is a composition of primitives (matmul, softmax, where, ...); the gradients
come from their rules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...backend.device import array_module
from ...errors import DTypeError
from ...ops.arith import where
from ...ops.creation import ones, zeros
from ...ops.linalg import matmul
from ...ops.op import ShapeError
from ...ops.shape import cat, pad
from ...ops.softmax import softmax
from ...tensor import Tensor
from .basic import dropout, linear

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]

_NEG_INF = float("-inf")


def _additive_mask(name: str, mask: Tensor, dtype: Any, true_means_masked: bool) -> Tensor:
    """A mask as an additive float tensor (``0`` keep, ``-inf`` drop) of ``dtype``.

    ``scaled_dot_product_attention`` reads a boolean ``True`` as *may attend*;
    ``MultiheadAttention`` reads it as *is masked*. Float masks are added as they are.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(mask).__name__}")
    if mask.dtype.name == "bool":
        zero = zeros((), dtype=dtype, device=mask.device)
        return where(mask, _NEG_INF, zero) if true_means_masked else where(mask, zero, _NEG_INF)
    if not mask.is_floating_point():
        raise DTypeError(f"{name}: only bool and floating types are supported, got {mask.dtype.name}")
    if mask.dtype is not dtype:
        raise DTypeError(
            f"{name}: a float mask must have the query's dtype {dtype.name}, got {mask.dtype.name}; "
            f"convert it with .to({dtype.name}) or pass a bool mask"
        )
    return mask


def _attend(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float, scale: float
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T * scale + mask) v`` over the last two dimensions; return the output and
    the attention weights (after dropout)."""
    scores = matmul(q * scale, k.mT)
    dead = None
    if mask is not None:
        scores = scores + mask
        # Rows where the mask drops every key: keep the softmax finite there (all zero
        # scores), then zero its weights, so the output and every gradient stay zero, not NaN.
        m = mask._data
        xp = array_module(m)
        rows = xp.all(m == _NEG_INF, axis=-1, keepdims=True)
        if bool(rows.any()):
            dead = Tensor(rows)
            scores = where(dead, 0.0, scores)
    weights = softmax(scores, -1)
    if dead is not None:
        weights = where(dead, 0.0, weights)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, True)
    return matmul(weights, v), weights


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(query @ key^T * scale + mask) @ value`` over the last two dimensions.

    ``query`` is ``(..., L, E)``, ``key`` ``(..., S, E)``, ``value`` ``(..., S, Ev)``; the result
    is ``(..., L, Ev)``. ``scale`` defaults to ``1 / sqrt(E)``. ``attn_mask`` broadcasts to
    ``(..., L, S)``: a bool mask is ``True`` where attention is *allowed*, a float mask is added
    to the scores. ``is_causal=True`` allows query ``i`` to see keys ``0..i`` only (and excludes
    ``attn_mask``). ``dropout_p`` drops attention weights -- always, as in torch: pass
    ``dropout_p=0.0`` when evaluating. ``enable_gqa=True`` lets ``key``/``value`` have fewer heads
    (dimension -3) than ``query``, each shared by a group of query heads.
    """
    name = "scaled_dot_product_attention"
    for arg, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected {arg} to be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ShapeError(
                f"{name}: {arg} must have at least 2 dimensions (..., seq, features), got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise DTypeError(f"{name}: {arg} must be floating point, got {t.dtype.name}")
    if not (query.dtype is key.dtype is value.dtype):
        raise DTypeError(
            f"{name}: expected query, key and value to have the same dtype, got {query.dtype.name}, "
            f"{key.dtype.name} and {value.dtype.name}"
        )
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(
            f"{name}: query (..., L, E) {tuple(query.shape)}, key (..., S, E) {tuple(key.shape)} and value "
            f"(..., S, Ev) {tuple(value.shape)} must agree on E and S"
        )
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{name}: dropout_p must be between 0 and 1, got {dropout_p}")
    if enable_gqa:
        key, value = _repeat_kv_heads(name, query, key, value)
    L, S = query.shape[-2], key.shape[-2]
    mask = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{name}: Explicit attn_mask should not be set when is_causal=True")
        allowed = ones(L, S, dtype="bool", device=query.device).tril()
        mask = _additive_mask(name, allowed, query.dtype, true_means_masked=False)
    elif attn_mask is not None:
        mask = _additive_mask(f"{name} (attn_mask)", attn_mask, query.dtype, true_means_masked=False)
        try:
            scores = np.broadcast_shapes(tuple(query.shape[:-2]), tuple(key.shape[:-2])) + (L, S)
            fits = np.broadcast_shapes(tuple(mask.shape), scores) == scores
        except ValueError:
            fits = False
        if not fits:
            raise ShapeError(
                f"{name}: attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to the shape of the "
                f"scores (..., L, S) for query {tuple(query.shape)} and key {tuple(key.shape)}"
            )
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    out, _ = _attend(query, key, value, mask, dropout_p, scale)
    return out


def _repeat_kv_heads(name: str, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """Grouped-query attention: repeat each key/value head for its group of query heads."""
    if query.ndim < 3:
        raise ShapeError(f"{name}: enable_gqa needs a head dimension (-3), got query of shape {tuple(query.shape)}")
    hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
    if hk != hv or hq % hk:
        raise ShapeError(
            f"{name}: with enable_gqa, key and value must have the same number of heads, dividing the query's "
            f"{hq}; got {hk} and {hv}"
        )
    group = hq // hk
    if group == 1:
        return key, value

    def repeat(t: Tensor) -> Tensor:
        lead, (h, s, e) = t.shape[:-3], t.shape[-3:]
        return t.unsqueeze(-3).expand(*lead, h, group, s, e).reshape(*lead, h * group, s, e)

    return repeat(key), repeat(value)


# ---- multi-head attention ------------------------------------------------------------------------


def _split_heads(x: Tensor, num_heads: int, batch_first: bool) -> Tensor:
    """``(T, N, E)`` (or ``(N, T, E)``) -> ``(N, heads, T, E / heads)``: a reshape and a view."""
    a, b, e = x.shape
    x = x.reshape(a, b, num_heads, e // num_heads)
    return x.permute(0, 2, 1, 3) if batch_first else x.permute(1, 2, 0, 3)


def _check_mha_inputs(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim: int,
    num_heads: int,
    kdim: int,
    vdim: int,
    key_padding_mask: Tensor | None,
    attn_mask: Tensor | None,
    batch_first: bool,
) -> bool:
    """Every shape check of multi-head attention, before any compute; return whether batched."""
    name = "MultiheadAttention"
    for arg, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected {arg} to be a Tensor, got {type(t).__name__}")
    if query.ndim not in (2, 3):
        raise ShapeError(
            f"{name}: query should be unbatched 2D or batched 3D tensor but received {query.ndim}-D query "
            f"tensor of shape {tuple(query.shape)}"
        )
    batched = query.ndim == 3
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise ShapeError(
            f"{name}: For {'batched (3-D)' if batched else 'unbatched (2-D)'} `query`, expected `key` and `value` "
            f"to be {query.ndim}-D but found {key.ndim}-D and {value.ndim}-D tensors respectively"
        )
    for arg, t, size in (("query", query, embed_dim), ("key", key, kdim), ("value", value, vdim)):
        if t.shape[-1] != size:
            raise ShapeError(
                f"{name}: expected {arg} to have {size} features in its last dimension, got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point() or t.dtype is not query.dtype:
            raise DTypeError(
                f"{name}: query, key and value must share one floating dtype, got {query.dtype.name}, "
                f"{key.dtype.name} and {value.dtype.name}"
            )
    seq, bat = (1, 0) if batch_first and batched else (0, 1)
    if key.shape[:-1] != value.shape[:-1]:
        raise ShapeError(
            f"{name}: key's sequence and batch dims {tuple(key.shape[:-1])} do not match value's "
            f"{tuple(value.shape[:-1])}"
        )
    L, S = query.shape[seq], key.shape[seq]
    if batched and key.shape[bat] != query.shape[bat]:
        raise ShapeError(
            f"{name}: query and key have different batch sizes: query {tuple(query.shape)}, key {tuple(key.shape)} "
            f"(batch_first={batch_first})"
        )
    n = query.shape[bat] if batched else 1
    if key_padding_mask is not None:
        expected = (n, S) if batched else (S,)
        if not isinstance(key_padding_mask, Tensor) or tuple(key_padding_mask.shape) != expected:
            got = tuple(key_padding_mask.shape) if isinstance(key_padding_mask, Tensor) else type(key_padding_mask)
            raise ShapeError(
                f"{name}: expected key_padding_mask of shape {expected} ({'batch, ' if batched else ''}source length), "
                f"got {got}"
            )
    if attn_mask is not None:
        nh = None if n is None else n * num_heads  # a static graph's unknown batch size stays unknown
        shapes = [(L, S), (nh, L, S) if batched else (num_heads, L, S)]
        if not isinstance(attn_mask, Tensor) or tuple(attn_mask.shape) not in shapes:
            got = tuple(attn_mask.shape) if isinstance(attn_mask, Tensor) else type(attn_mask)
            raise ShapeError(
                f"{name}: expected attn_mask of shape {shapes[0]} (target length, source length) or "
                f"{shapes[1]} ({'batch * num_heads' if batched else 'num_heads'}, L, S), got {got}"
            )
    return batched


def _multi_head_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    num_heads: int,
    in_proj_weight: Tensor | None,
    in_proj_bias: Tensor | None,
    bias_k: Tensor | None,
    bias_v: Tensor | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias: Tensor | None,
    training: bool = True,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    q_proj_weight: Tensor | None = None,
    k_proj_weight: Tensor | None = None,
    v_proj_weight: Tensor | None = None,
    static_k: Tensor | None = None,
    static_v: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
    batch_first: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Multi-head attention in either layout (see ``multi_head_attention_forward``)."""
    name = "MultiheadAttention"
    packed = in_proj_weight is not None
    embed_dim = out_proj_weight.shape[0]
    if embed_dim % num_heads:
        raise ValueError(f"{name}: embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    kdim = embed_dim if packed else k_proj_weight.shape[1]
    vdim = embed_dim if packed else v_proj_weight.shape[1]
    batched = _check_mha_inputs(
        query, key, value, embed_dim, num_heads, kdim, vdim, key_padding_mask, attn_mask, batch_first
    )
    if is_causal and attn_mask is None:
        raise RuntimeError(
            f"{name}: Need attn_mask if specifying the is_causal hint; build one with "
            "minidl.nn.transformer.generate_square_subsequent_mask(L)"
        )
    self_attention = query is key and key is value
    if not batched:  # run as a batch of one, in the sequence-first layout
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
        batch_first = False
    n = query.shape[0 if batch_first else 1]
    head_dim = embed_dim // num_heads

    # The in-projection. Self-attention (one tensor for all three) needs one product with the
    # packed (3E, E) weight, and a reshape that splits the result into q, k and v and the
    # heads at once; otherwise each input gets its own product (with a slice of the packed
    # weight, or its own weight when kdim/vdim differ).
    if packed and self_attention:
        # (T, N, 3E) -> (T, N, 3, h, d) -> (3, N, h, T, d): q, k and v are views of one tensor.
        qkv = linear(query, in_proj_weight, in_proj_bias)
        a, b = qkv.shape[:2]
        qkv = qkv.reshape(a, b, 3, num_heads, head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4) if batch_first else qkv.permute(2, 1, 3, 0, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
    else:
        e = embed_dim
        if packed:
            wq, wk, wv = in_proj_weight[:e], in_proj_weight[e : 2 * e], in_proj_weight[2 * e :]
        else:
            wq, wk, wv = q_proj_weight, k_proj_weight, v_proj_weight
        bq = bk = bv = None
        if in_proj_bias is not None:
            bq, bk, bv = in_proj_bias[:e], in_proj_bias[e : 2 * e], in_proj_bias[2 * e :]
        q = _split_heads(linear(query, wq, bq), num_heads, batch_first)  # (N, h, L, d)
        k = _split_heads(linear(key, wk, bk), num_heads, batch_first)  # (N, h, S, d)
        v = _split_heads(linear(value, wv, bv), num_heads, batch_first)
    L = q.shape[2]

    masks = []  # additive, each broadcasting to (N, h, L, S)
    if attn_mask is not None:
        m = _additive_mask(f"{name} (attn_mask)", attn_mask, q.dtype, true_means_masked=True)
        masks.append(m if m.ndim == 2 else m.reshape(n, num_heads, L, m.shape[-1]))
    if key_padding_mask is not None:
        m = _additive_mask(f"{name} (key_padding_mask)", key_padding_mask, q.dtype, true_means_masked=True)
        masks.append(m.reshape(n, 1, 1, m.shape[-1]))

    # Extra keys: a learned one (add_bias_kv), given ones (static_k/v), a zero one (add_zero_attn).
    if bias_k is not None or bias_v is not None:
        if bias_k is None or bias_v is None:
            raise ValueError(f"{name}: bias_k and bias_v must be given together")
        if static_k is not None or static_v is not None:
            raise ValueError(f"{name}: bias cannot be added to static key or value")
        k = cat([k, bias_k.reshape(1, num_heads, 1, head_dim).expand(n, num_heads, 1, head_dim)], 2)
        v = cat([v, bias_v.reshape(1, num_heads, 1, head_dim).expand(n, num_heads, 1, head_dim)], 2)
        masks = [pad(m, (0, 1)) for m in masks]
    for arg, static in (("static_k", static_k), ("static_v", static_v)):
        if static is None:
            continue
        if static.ndim != 3 or static.shape[0] != n * num_heads or static.shape[2] != head_dim:
            raise ShapeError(
                f"{name}: expected {arg} of shape ({n * num_heads}, S, {head_dim}) (batch * num_heads, S, head_dim), "
                f"got {tuple(static.shape)}"
            )
        if arg == "static_k":
            k = static.reshape(n, num_heads, static.shape[1], head_dim)
        else:
            v = static.reshape(n, num_heads, static.shape[1], head_dim)
    if add_zero_attn:
        z = zeros(n, num_heads, 1, head_dim, dtype=q.dtype, device=q.device)
        k, v = cat([k, z], 2), cat([v, z], 2)
        masks = [pad(m, (0, 1)) for m in masks]
    if k.shape[2] != v.shape[2] or any(m.shape[-1] != k.shape[2] for m in masks):
        raise ShapeError(
            f"{name}: keys ({k.shape[2]}), values ({v.shape[2]}) and masks ({[m.shape[-1] for m in masks]}) "
            "disagree on the source length"
        )

    mask = None
    for m in masks:
        mask = m if mask is None else mask + m
    out, weights = _attend(q, k, v, mask, dropout_p if training else 0.0, 1.0 / math.sqrt(head_dim))

    # Concatenate the heads back: (N, h, L, d) -> (L, N, h, d) or (N, L, h, d) -> (.., E).
    out = out.permute(0, 2, 1, 3) if batch_first else out.permute(2, 0, 1, 3)
    out = linear(out.reshape(out.shape[0], out.shape[1], embed_dim), out_proj_weight, out_proj_bias)
    if need_weights:
        if average_attn_weights:
            weights = weights.mean(1)
    else:
        weights = None
    if not batched:
        out = out.squeeze(1)
        weights = None if weights is None else weights.squeeze(0)
    return out, weights


def multi_head_attention_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: Tensor | None,
    in_proj_bias: Tensor | None,
    bias_k: Tensor | None,
    bias_v: Tensor | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias: Tensor | None,
    training: bool = True,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: Tensor | None = None,
    k_proj_weight: Tensor | None = None,
    v_proj_weight: Tensor | None = None,
    static_k: Tensor | None = None,
    static_v: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Multi-head attention with torch's functional signature (sequence-first layout).

    ``query`` is ``(L, N, E)`` (or ``(L, E)`` unbatched), ``key`` ``(S, N, kdim)``, ``value``
    ``(S, N, vdim)``. Returns ``(attn_output (L, N, E), attn_weights)``, the weights being
    ``(N, L, S)`` averaged over heads, ``(N, num_heads, L, S)`` with
    ``average_attn_weights=False``, or ``None`` when ``need_weights=False``. Masks: a bool
    ``key_padding_mask`` ``(N, S)`` or ``attn_mask`` ``(L, S)`` / ``(N * num_heads, L, S)`` is
    ``True`` where attention is *not* allowed; float masks are added to the scores.
    """
    if query.ndim >= 1 and query.shape[-1] != embed_dim_to_check:
        raise ShapeError(
            f"multi_head_attention_forward: was expecting embedding dimension of {embed_dim_to_check}, "
            f"but got query of shape {tuple(query.shape)}"
        )
    if use_separate_proj_weight:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise ValueError(
                "multi_head_attention_forward: use_separate_proj_weight=True needs q_proj_weight, k_proj_weight "
                "and v_proj_weight"
            )
        in_proj_weight = None
    elif in_proj_weight is None:
        raise ValueError("multi_head_attention_forward: use_separate_proj_weight is False but in_proj_weight is None")
    return _multi_head_attention(
        query,
        key,
        value,
        num_heads,
        in_proj_weight,
        in_proj_bias,
        bias_k,
        bias_v,
        add_zero_attn,
        dropout_p,
        out_proj_weight,
        out_proj_bias,
        training,
        key_padding_mask,
        need_weights,
        attn_mask,
        q_proj_weight,
        k_proj_weight,
        v_proj_weight,
        static_k,
        static_v,
        average_attn_weights,
        is_causal,
        batch_first=False,
    )
