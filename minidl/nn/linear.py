"""``Linear`` (the affine layer ``y = x W^T + b``) and ``Identity`` (a placeholder layer).

``Linear(in_features, out_features)`` holds ``weight`` of shape ``(out_features, in_features)``
-- one row per output, torch's layout, so a torch checkpoint loads unchanged -- and ``bias`` of
shape ``(out_features,)``. Its forward is one call of the fused primitive ``F.linear``: one
recorded node, not a matmul, a transpose and an add.

Default initialization (torch's): ``weight ~ U(-1/sqrt(in), 1/sqrt(in))``, drawn by
``kaiming_uniform_(a=sqrt(5))`` -- the gain ``sqrt(2 / (1 + 5))`` times ``sqrt(3 / fan_in)`` is
exactly ``1 / sqrt(fan_in)`` -- and the bias from the same interval. With inputs of unit
variance, each output then has variance ``in * Var(w) = 1/3``: the signal neither explodes nor
vanishes with the width of the layer.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from ..ops.creation import empty
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Identity", "Linear"]


def _size(name: str, value: Any) -> int:
    """A layer width: any integer (NumPy's too), not negative."""
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"Linear: {name} must be an int, got {type(value).__name__}") from None
    if size < 0:
        raise ValueError(f"Linear: {name} must be non-negative, got {size}")
    return size


class Identity(Module):
    """Returns its input unchanged; any constructor arguments are accepted and ignored (so a
    layer can be swapped out without changing the call that built it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """``y = x W^T + b`` over the last dimension of ``x``: (..., in_features) -> (..., out_features).

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: if ``False``, the layer learns no additive bias (``self.bias`` is ``None``).
        device, dtype: where and in which floating type to create the parameters.
    """

    in_features: int
    out_features: int

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        in_features, out_features = _size("in_features", in_features), _size("out_features", out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw ``weight`` and ``bias`` from ``U(-1/sqrt(in_features), 1/sqrt(in_features))``."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
