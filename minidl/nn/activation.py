"""Activation layers: one module per activation function of ``nn.functional``.

An activation module stores only its options (a slope, ``inplace``, a softmax ``dim``) and
calls the function, so ``nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))`` can
describe a whole network. The math lives with the functions (``minidl/ops/activation.py``,
``softmax.py``, ``unary.py``):

==============  ===================================================================
``ReLU``        ``max(x, 0)``
``LeakyReLU``   ``x`` if ``x >= 0`` else ``negative_slope * x``
``ELU``         ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``
``GELU``        ``x * Phi(x)`` (``Phi`` the standard normal CDF), or its tanh approximation
``SiLU``        ``x * sigmoid(x)``
``Softplus``    ``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold``
``Sigmoid``     ``1 / (1 + exp(-x))``
``Tanh``        ``tanh(x)``
``Softmax``     ``exp(x_i) / sum_j exp(x_j)`` along ``dim``
``LogSoftmax``  ``x_i - log sum_j exp(x_j)`` along ``dim``
==============  ===================================================================

``inplace=True`` overwrites the input instead of allocating the output (allowed where the
backward rule does not need the overwritten input).
"""

from __future__ import annotations

import warnings

from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Softplus", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


def _inplace_repr(inplace: bool, first: bool) -> str:
    if not inplace:
        return ""
    return "inplace=True" if first else ", inplace=True"


class ReLU(Module):
    """``max(x, 0)``, elementwise."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, True)


class LeakyReLU(Module):
    """``x`` for ``x >= 0``, ``negative_slope * x`` below: a ReLU that lets a little gradient
    through for negative inputs."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + _inplace_repr(self.inplace, False)


class ELU(Module):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below (smooth, saturating at ``-alpha``)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + _inplace_repr(self.inplace, False)


class GELU(Module):
    """``x * Phi(x)``; ``approximate='tanh'`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` instead of the exact CDF."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """``x * sigmoid(x)`` (the swish activation)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.silu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, True)


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta``, a smooth ReLU; the identity where
    ``beta * x > threshold`` (where the two agree to float precision)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``, elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    """``tanh(x)``, elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


def _implicit_dim(name: str, ndim: int) -> int:
    """torch's legacy choice when no ``dim`` is given: 0 for 0-, 1- and 3-D inputs, else 1."""
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as an argument.",
        UserWarning,
        stacklevel=4,
    )
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """``exp(x_i) / sum_j exp(x_j)`` along ``dim``: each slice along ``dim`` becomes a
    probability distribution. (Give ``dim``; without it the legacy implicit choice applies,
    with a warning, as in torch.)"""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = self.dim if self.dim is not None else _implicit_dim("softmax", input.ndim)
        return F.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``log(softmax(x))`` along ``dim``, computed stably as ``x - logsumexp(x)``; pair it
    with ``NLLLoss`` (or use ``CrossEntropyLoss`` on the logits)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = self.dim if self.dim is not None else _implicit_dim("log_softmax", input.ndim)
        return F.log_softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
