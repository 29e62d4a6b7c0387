"""Datasets: what the samples are, as PyTorch defines them.

A *map-style* dataset is anything with ``__getitem__(i)`` and ``__len__``: sample ``i`` is
``dataset[i]``, whatever Python object that is -- a ``(image, label)`` tuple, a dict, a string.
An *iterable-style* dataset (``IterableDataset``) is a stream with ``__iter__`` instead, for
data that cannot be indexed (a file read line by line, a generator).

The classes here build datasets from other datasets without copying any data:

* ``TensorDataset(x, y)``      -- sample ``i`` is ``(x[i], y[i])``: in-memory arrays;
* ``Subset(ds, indices)``      -- sample ``i`` is ``ds[indices[i]]``;
* ``ConcatDataset([a, b])``    -- ``a``'s samples, then ``b``'s (also ``a + b``);
* ``ChainDataset([s, t])``     -- one stream after another (also ``s + t``);
* ``random_split(ds, [0.8, 0.2])`` -- disjoint random ``Subset`` s, e.g. train / validation.

The ``DataLoader`` (``dataloader.py``) turns a dataset into batches; samplers (``sampler.py``)
choose the order.
"""

from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from ..tensor import Tensor
from .sampler import _rng, as_generator

T_co = TypeVar("T_co", covariant=True)

__all__ = [
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "ConcatDataset",
    "ChainDataset",
    "Subset",
    "random_split",
]


class Dataset(Generic[T_co]):
    """Base class of map-style datasets: subclass it and define ``__getitem__`` and ``__len__``.

    ``a + b`` concatenates two datasets (a ``ConcatDataset``). As in torch, the class can be
    parameterised by its sample type for type checkers: ``class Pairs(Dataset[tuple[Tensor, int]])``.
    """

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__ (return sample number index)")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class of stream-style datasets: subclass it and define ``__iter__``.

    A ``DataLoader`` reads it front to back (there is no index, so no sampler and no
    shuffling); ``a + b`` chains two streams (a ``ChainDataset``).
    """

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__ (yield the samples)")

    def __add__(self, other: Dataset) -> ChainDataset:  # type: ignore[override]
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Sample ``i`` is ``tuple(t[i] for t in tensors)``: tensors that share a first dimension.

    ``TensorDataset(images, labels)`` is the usual way to train on data held in memory, and the
    fast one: a ``DataLoader`` over it fetches a whole batch with one indexing operation per
    tensor instead of building the batch sample by sample (see ``dataloader.py``).
    NumPy arrays are accepted and wrapped as tensors without copying.
    """

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor, e.g. TensorDataset(images, labels)")
        wrapped = []
        for i, t in enumerate(tensors):
            if isinstance(t, np.ndarray):
                t = Tensor(t)
            elif not isinstance(t, Tensor):
                raise TypeError(
                    f"TensorDataset: argument {i} is a {type(t).__name__}; expected a minidl Tensor or NumPy array "
                    "(convert it with minidl.tensor(...))"
                )
            if t.ndim == 0:
                raise ValueError(
                    f"TensorDataset: argument {i} is a 0-d tensor; every tensor needs a first dimension that "
                    "indexes the samples"
                )
            wrapped.append(t)
        sizes = [t.shape[0] for t in wrapped]
        if len(set(sizes)) > 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in wrapped)
            raise ValueError(
                f"TensorDataset: size mismatch between tensors: first dimensions {sizes} (shapes {shapes}); "
                "every tensor must hold the same number of samples along dimension 0"
            )
        self.tensors = tuple(wrapped)

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class ConcatDataset(Dataset):
    """The samples of several map-style datasets, one after another.

    ``cumulative_sizes[k]`` is the total length of the first ``k + 1`` datasets; sample ``i``
    lives in the first dataset whose cumulative size exceeds ``i`` (found by bisection).
    """

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError(
                    "ConcatDataset does not support IterableDataset (it has no index); chain streams with ChainDataset"
                )
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> Any:
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise ValueError(
                    f"ConcatDataset: absolute value of index should not exceed dataset length (index {idx}, length {n})"
                )
            idx = n + idx
        k = bisect.bisect_right(self.cumulative_sizes, idx)
        if k == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {idx} is out of range for a dataset of length {n}")
        return self.datasets[k][idx - (self.cumulative_sizes[k - 1] if k else 0)]


class ChainDataset(IterableDataset):
    """Several iterable datasets read one after another, without materialising any of them."""

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = datasets

    def __iter__(self) -> Iterator[Any]:
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset only supports IterableDataset, got {type(d).__name__}")
            yield from d

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset only supports IterableDataset, got {type(d).__name__}")
            total += len(d)  # type: ignore[arg-type]
        return total


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``: sample ``i`` is ``dataset[indices[i]]``.

    Nothing is copied. A loader over a ``Subset`` of a ``TensorDataset`` keeps the one-index
    batch fetch: it composes the index lists instead of fetching sample by sample.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """A batch of samples at once (the loader calls this when the dataset provides it)."""
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(
    dataset: Dataset,
    lengths: Sequence[int | float],
    generator: np.random.Generator | int | None = None,
) -> list[Subset]:
    """Split ``dataset`` at random into disjoint ``Subset`` s of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to 1: each
    fraction gets ``floor(fraction * len(dataset))`` samples and the remainder is handed out
    one at a time, round robin, from the first split (torch's rule). ``generator`` (a NumPy
    ``Generator`` or an int seed) makes the split reproducible; by default it is minidl's
    global generator.

        train, val = random_split(dataset, [0.9, 0.1], generator=0)
    """
    rng = as_generator(generator, "random_split")
    n = len(dataset)  # type: ignore[arg-type]
    lengths = list(lengths)
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1 (got {frac})")
            counts.append(math.floor(n * frac))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(
                    f"random_split: length of split at index {i} is 0; this might result in an empty dataset",
                    stacklevel=2,
                )
        lengths = counts
    for i, c in enumerate(lengths):
        if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or c < 0:
            raise ValueError(
                f"random_split: lengths must be non-negative integers or fractions summing to 1, got {c!r} at index {i}"
            )
    if sum(lengths) != n:
        raise ValueError(
            f"random_split: sum of input lengths ({sum(lengths)}) does not equal the length of the input dataset ({n})"
        )
    order = _rng(rng).permutation(n).tolist()
    splits, start = [], 0
    for c in lengths:
        splits.append(Subset(dataset, order[start : start + c]))
        start += c
    return splits
