"""The Transformer encoder: ``TransformerEncoderLayer`` and a stack of them, ``TransformerEncoder``.

One encoder layer (Vaswani et al., 2017) is two sub-blocks, each wrapped in a residual
connection and a layer norm:

* self-attention: ``sa(x) = dropout1(self_attn(x, x, x))``;
* feed-forward: ``ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))``, applied to
  every position independently (``d_model -> dim_feedforward -> d_model``).

Where the norm sits is the one design choice::

    post-norm (norm_first=False, the original):   x = norm1(x + sa(x));   x = norm2(x + ff(x))
    pre-norm  (norm_first=True):                  x = x + sa(norm1(x));   x = x + ff(norm2(x))

Post-norm normalizes the residual stream itself, so every layer's output is well scaled, but
the gradient reaching early layers passes through every norm and deep stacks need a learning
rate warm-up. Pre-norm leaves an identity path from the output to the input -- ``x + f(x)``
all the way down -- which trains deep stacks stably without warm-up; its output is not
normalized, so a final norm is usually added (``TransformerEncoder(..., norm=LayerNorm(d))``).

Submodule names and order are torch's (``self_attn, linear1, dropout, linear2, norm1, norm2,
dropout1, dropout2``), so torch's state dicts load unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..ops.creation import full
from ..tensor import Tensor
from . import functional as F
from .attention import MultiheadAttention
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerEncoder"]


def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
    """The causal mask for a sequence of ``sz``: ``(sz, sz)`` with ``-inf`` above the diagonal
    (position ``i`` may not attend to ``j > i``) and ``0`` elsewhere (torch's
    ``nn.Transformer.generate_square_subsequent_mask``)."""
    return full((sz, sz), float("-inf"), dtype=dtype, device=device).triu(1)


def _activation_fn(activation: str | Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if callable(activation):
        return activation
    raise RuntimeError(f"TransformerEncoderLayer: activation should be relu/gelu or a callable, not {activation!r}")


class TransformerEncoderLayer(Module):
    """``TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1,
    activation='relu', layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True)``.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)`` takes ``src``
    ``(S, N, d_model)`` (``(N, S, d_model)`` with ``batch_first``, or ``(S, d_model)``), an
    optional ``src_mask`` ``(S, S)`` or ``(N * nhead, S, S)`` and ``src_key_padding_mask``
    ``(N, S)``, with ``MultiheadAttention``'s mask conventions, and returns a tensor of
    ``src``'s shape. ``activation`` is ``'relu'``, ``'gelu'`` or any callable (a module is
    registered as a submodule, as in torch).
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **factory
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation_fn(activation)

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(
        self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None, is_causal: bool
    ) -> Tensor:
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerEncoder(Module):
    """``TransformerEncoder(encoder_layer, num_layers, norm=None)``: ``num_layers`` independent
    copies of ``encoder_layer`` (deep copies: each has its own weights) applied in turn, then
    ``norm`` if given.

    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)`` passes the masks to
    every layer. torch's inference fast path (nested tensors, taken under ``no_grad`` in eval
    mode) writes zeros at padded positions of the output; here every position is computed, so
    those positions hold ordinary values -- ignore them, as the padding mask says.
    ``enable_nested_tensor`` and ``mask_check`` are accepted for compatibility and unused.
    """

    def __init__(
        self,
        encoder_layer: TransformerEncoderLayer,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got {type(encoder_layer).__name__}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"TransformerEncoder: num_layers must be a non-negative int, got {num_layers!r}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(
        self,
        src: Tensor,
        mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool | None = None,
    ) -> Tensor:
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        if self.norm is not None:
            output = self.norm(output)
        return output
