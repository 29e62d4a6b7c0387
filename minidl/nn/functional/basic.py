"""``dropout``, ``one_hot`` and ``embedding`` (compositions of primitives), and ``linear``,
which is the fused primitive of ``minidl/ops/linalg.py``."""

from __future__ import annotations

import numpy as np

from ... import dtypes
from ...backend.device import array_module
from ...errors import DTypeError
from ...ops import creation, linalg
from ...ops.arith import where
from ...ops.op import ShapeError, apply
from ...tensor import Tensor

linear = linalg.linear


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``, so that
    the expected value is unchanged; the identity when not ``training``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    mask = apply(creation.DropoutMask, input, p=p)
    if inplace:
        return input.mul_(mask)
    return input * mask


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """An int64 tensor with a trailing dimension of ``num_classes``: 1 at each label, else 0."""
    if tensor.dtype is not dtypes.int64 and tensor.dtype is not dtypes.int32:
        raise DTypeError(
            f"one_hot: expected an integer (int64) class-index tensor, got {tensor.dtype.name}; convert it with .long()"
        )
    labels = tensor._data
    if labels.size and labels.min() < 0:
        raise ValueError("one_hot: class values must be non-negative")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(f"one_hot: class value {int(labels.max())} is not smaller than num_classes={num_classes}")
    xp = array_module(labels)
    out = xp.zeros(labels.shape + (num_classes,), dtype=np.int64)
    xp.put_along_axis(out, labels[..., None].astype(np.int64), 1, axis=-1)
    return Tensor(out)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` picked by the integer ``input`` (a lookup table).

    The gradient scatters back into the picked rows, adding for repeated indices. The row at
    ``padding_idx`` is looked up as usual but receives no gradient, as in torch.
    """
    if input.dtype.category != 1:
        raise DTypeError(
            f"embedding: indices must be an integer tensor (int64), got {input.dtype.name}; convert with .long()"
        )
    if weight.ndim != 2:
        raise ShapeError(
            f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}"
        )
    n = weight.shape[0]
    idx = input._data
    if type(idx) is not np.ndarray and not type(idx).__module__.startswith("cupy"):
        pass  # a static graph's symbolic indices: no values to check while building
    elif idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(
            f"embedding: index out of range: indices must be in [0, {n}), got values from {int(idx.min())} to {int(idx.max())}"
        )
    out = weight[input]
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += n
        is_pad = (input == padding_idx).unsqueeze(-1)
        out = where(is_pad, out.detach(), out)
    return out
