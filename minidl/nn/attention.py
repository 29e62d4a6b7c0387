"""``MultiheadAttention``: the attention layer of the Transformer, with torch's API and state.

The layer owns the projections of multi-head attention (the math is in
``nn/functional/attention.py``):

* ``in_proj_weight`` ``(3E, E)`` and ``in_proj_bias`` ``(3E,)``: the query, key and value
  projections stacked in that order -- or, when keys or values have other widths (``kdim``,
  ``vdim``), three separate ``q_proj_weight`` ``(E, E)``, ``k_proj_weight`` ``(E, kdim)`` and
  ``v_proj_weight`` ``(E, vdim)`` (the bias stays packed);
* ``out_proj``: a ``Linear(E, E)`` that mixes the concatenated heads;
* with ``add_bias_kv``, ``bias_k`` and ``bias_v`` ``(1, 1, E)``: one learned key and value
  appended to every sequence.

Initialization is torch's: Xavier-uniform projection weights (over the whole ``(3E, E)``
matrix when packed), zero biases, Xavier-normal ``bias_k``/``bias_v``, and ``out_proj.weight``
as any ``Linear``.
"""

from __future__ import annotations

from typing import Any

from ..ops.creation import empty
from ..tensor import Tensor
from . import init
from .functional.attention import _multi_head_attention
from .linear import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Module):
    """``MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
    add_zero_attn=False, kdim=None, vdim=None, batch_first=False)``.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` takes ``query`` ``(L, N, E)``, ``key``
    ``(S, N, kdim)`` and ``value`` ``(S, N, vdim)`` -- ``(N, L, E)`` etc. with ``batch_first``,
    or without the batch dimension -- and returns ``(attn_output, attn_weights)``: the output in
    the query's layout, and the attention weights ``(N, L, S)`` averaged over heads (``(N,
    num_heads, L, S)`` with ``average_attn_weights=False``; ``None`` if not ``need_weights``).

    Masks: ``key_padding_mask`` ``(N, S)`` hides padded keys, ``attn_mask`` ``(L, S)`` or
    ``(N * num_heads, L, S)`` hides pairs; a bool mask is ``True`` where attention is *not*
    allowed, a float mask is added to the scores. ``is_causal`` is a hint that ``attn_mask`` is
    the causal mask (it must then be given); the mask is what is applied. ``dropout`` drops
    attention weights in training.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim must be a positive int, got {embed_dim!r}")
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: num_heads must be a positive int, got {num_heads!r}")
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads}); "
                f"each head gets embed_dim // num_heads features"
            )
        if isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be between 0 and 1, got {dropout!r}")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn

        def param(*shape: int) -> Tensor:
            return Parameter(empty(*shape, dtype=dtype, device=device))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = param(3 * embed_dim, embed_dim)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = param(embed_dim, embed_dim)
            self.k_proj_weight = param(embed_dim, self.kdim)
            self.v_proj_weight = param(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = param(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = param(1, 1, embed_dim)
            self.bias_v = param(1, 1, embed_dim)
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        return _multi_head_attention(
            query,
            key,
            value,
            self.num_heads,
            self.in_proj_weight,
            self.in_proj_bias,
            self.bias_k,
            self.bias_v,
            self.add_zero_attn,
            self.dropout,
            self.out_proj.weight,
            self.out_proj.bias,
            training=self.training,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
            batch_first=self.batch_first,
        )
