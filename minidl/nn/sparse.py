"""``Embedding``: a learned lookup table from integer ids (words, items) to dense vectors.

``Embedding(num_embeddings, embedding_dim)`` holds ``weight`` of shape
``(num_embeddings, embedding_dim)``; its forward returns the rows picked by the integer input,
``out[..., :] = weight[input[...], :]``. It is the same as multiplying a one-hot encoding by
``weight``, without building the one-hot matrix: the gradient of a row is the sum of the
output gradients at every position where that row was picked (a scatter-add).

Options, as in torch:

* ``padding_idx``: that row is initialized to zeros and never receives a gradient, so it stays
  a fixed "pad" vector;
* ``max_norm``: before each lookup, every *looked-up* row whose ``norm_type``-norm exceeds
  ``max_norm`` is rescaled in place to norm ``max_norm`` (``w <- w * max_norm / (norm + 1e-7)``);
* ``scale_grad_by_freq``: each row's gradient is divided by how many times the row occurs in
  the batch, so frequent ids do not dominate the update.

Default initialization: ``weight ~ N(0, 1)`` (with the padding row zeroed).
"""

from __future__ import annotations

from typing import Any

from ..autograd.grad_mode import no_grad
from ..backend.device import array_module
from ..ops.arith import where
from ..ops.creation import empty
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

    Args:
        num_embeddings: the number of rows (the vocabulary size).
        embedding_dim: the size of each vector.
        padding_idx: a row (negative counts from the end) fixed at its value, zeros by default.
        max_norm: renormalize looked-up rows whose norm exceeds this.
        norm_type: the p of the p-norm for ``max_norm`` (default 2).
        scale_grad_by_freq: divide each row's gradient by its frequency in the batch.
        sparse: sparse gradients are not available in minidl; must be ``False``.
        device, dtype: where and in which floating type to create ``weight``.

    ``Embedding.from_pretrained(weights)`` wraps an existing table.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Tensor | None = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if sparse:
            raise NotImplementedError(
                "Embedding: sparse=True (sparse gradients) is not supported by minidl; use sparse=False, "
                "which gives the same dense gradient"
            )
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError(
                    f"Embedding: padding_idx must be within num_embeddings, got padding_idx={padding_idx} "
                    f"for num_embeddings={num_embeddings}"
                )
            if padding_idx < 0:
                padding_idx += num_embeddings
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype, device=device), not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise AssertionError(
                    f"Embedding: shape of weight {tuple(_weight.shape)} does not match num_embeddings and "
                    f"embedding_dim ({num_embeddings}, {embedding_dim})"
                )
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """Draw ``weight`` from N(0, 1), then zero the padding row."""
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, input: Tensor) -> Tensor:
        if self.max_norm is not None:
            self._renorm(input)
        out = F.embedding(input, self.weight, self.padding_idx)
        if self.scale_grad_by_freq and out.requires_grad:
            out.register_hook(_divide_by_frequency(input))
        return out

    def _renorm(self, input: Tensor) -> None:
        """Rescale, in place, the looked-up rows whose norm exceeds ``max_norm``."""
        if input.dtype.category != 1:  # F.embedding explains the dtype error
            return
        xp = array_module(input._data)
        rows = Tensor(xp.unique(input._data.reshape(-1) % self.num_embeddings))
        with no_grad():
            picked = self.weight[rows]
            norms = picked.norm(self.norm_type, dim=1, keepdim=True)
            scale = where(norms > self.max_norm, self.max_norm / (norms + 1e-7), 1.0)
            self.weight[rows] = picked * scale

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Tensor,
        freeze: bool = True,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
    ) -> Embedding:
        """An ``Embedding`` whose ``weight`` is ``embeddings`` (shared, not copied), of shape
        (num_embeddings, embedding_dim). ``freeze=True`` (the default) makes it constant
        (``weight.requires_grad = False``). The padding row is *not* zeroed: the table is used
        as given."""
        if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
            shape = tuple(embeddings.shape) if hasattr(embeddings, "shape") else type(embeddings).__name__
            raise AssertionError(
                f"Embedding.from_pretrained: embeddings must be a 2-D tensor (num_embeddings, embedding_dim), got {shape}"
            )
        rows, cols = embeddings.shape
        return cls(
            num_embeddings=rows,
            embedding_dim=cols,
            _weight=embeddings,
            _freeze=freeze,
            padding_idx=padding_idx,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            sparse=sparse,
        )

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        return s


def _divide_by_frequency(input: Tensor):
    """A gradient hook dividing the gradient at each position by the number of times that
    position's id occurs in ``input``: row ``k`` then receives ``sum of its gradients / count_k``."""
    idx = input._data
    xp = array_module(idx)
    _, inverse, counts = xp.unique(idx.reshape(-1), return_inverse=True, return_counts=True)
    scale = (1.0 / counts[inverse]).reshape(idx.shape + (1,))

    def hook(grad: Tensor) -> Tensor:
        return grad * Tensor(xp.asarray(scale, dtype=grad._data.dtype))

    return hook
