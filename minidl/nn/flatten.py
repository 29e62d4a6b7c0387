"""``Flatten`` and ``Unflatten``: reshaping layers for use inside ``Sequential``.

``Flatten()`` turns an (N, C, H, W) feature map into (N, C*H*W) rows for a ``Linear`` head
(by default it keeps dimension 0, the batch); ``Unflatten(dim, sizes)`` splits one dimension
into several, the inverse. Both are reshapes: no data moves when the input is contiguous,
and the gradient is the reshape back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import ShapeError
from ..tensor import Tensor
from .module import Module

__all__ = ["Flatten", "Unflatten"]


class Flatten(Module):
    """Merge dimensions ``start_dim`` .. ``end_dim`` (inclusive) into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size`` (a tuple or list of ints whose product
    is that dimension's size; one entry may be -1, inferred)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise TypeError(f"Unflatten: dim must be an int, got {type(dim).__name__}")
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(
                f"Unflatten: unflattened_size must be a tuple or list of ints, got {type(unflattened_size).__name__}"
            )
        for i, size in enumerate(unflattened_size):
            if not isinstance(size, int) or isinstance(size, bool):
                raise TypeError(
                    f"Unflatten: unflattened_size must be tuple of ints, but found element of type "
                    f"{type(size).__name__} at pos {i}"
                )
        if sum(1 for s in unflattened_size if s == -1) > 1:
            raise ValueError(f"Unflatten: only one entry of unflattened_size can be -1, got {unflattened_size}")
        self.dim = dim
        self.unflattened_size = unflattened_size

    def forward(self, input: Tensor) -> Tensor:
        shape = input.shape
        if not -len(shape) <= self.dim < len(shape):
            raise IndexError(
                f"Unflatten: dim {self.dim} is out of range for an input of shape {tuple(shape)} ({len(shape)} dims)"
            )
        d = self.dim % len(shape)
        sizes = list(self.unflattened_size)
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes and known and shape[d] % known == 0:
            sizes[sizes.index(-1)] = shape[d] // known
        if math.prod(sizes) != shape[d] or any(s < 0 for s in sizes):
            raise ShapeError(
                f"Unflatten: provided sizes {list(self.unflattened_size)} don't multiply up to the size of dim "
                f"{self.dim} ({shape[d]}) in the input of shape {tuple(shape)}"
            )
        return input.reshape(tuple(shape[:d]) + tuple(sizes) + tuple(shape[d + 1 :]))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
