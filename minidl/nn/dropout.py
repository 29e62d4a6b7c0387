"""``Dropout``: randomly zero activations while training (Srivastava et al., 2014).

In training mode each element is kept with probability ``1 - p`` and then scaled by
``1 / (1 - p)`` ("inverted" dropout), so that its expected value is unchanged:
``E[y] = (1 - p) * x / (1 - p) = x``. In evaluation mode the layer is the identity -- no
rescaling is needed at test time, which is why the scaling happens during training. The mask
is drawn from minidl's global generator (``minidl.manual_seed`` makes it repeatable).
"""

from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` in training (scaling the rest by ``1/(1-p)``);
    the identity in ``eval()`` mode. ``inplace=True`` overwrites the input."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
