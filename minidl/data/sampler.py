"""Samplers: the order in which a ``DataLoader`` visits a dataset, as PyTorch defines them.

A sampler knows nothing about the data. It yields *keys* (for map-style datasets, integer
indices ``0 <= i < len(dataset)``) and the loader fetches ``dataset[i]`` for each. Keeping the
order separate from the data is what lets one dataset be read sequentially for evaluation,
shuffled for training, or reweighted for an imbalanced problem, without changing the dataset.

* ``SequentialSampler``     -- ``0, 1, ..., n - 1``;
* ``RandomSampler``         -- a fresh random permutation every epoch (or draws with replacement);
* ``SubsetRandomSampler``   -- a fresh permutation of a given list of indices every epoch;
* ``WeightedRandomSampler`` -- index ``i`` drawn with probability ``weights[i] / sum(weights)``;
* ``BatchSampler``          -- groups another sampler's indices into lists of ``batch_size``.

Randomness comes from a NumPy ``Generator``. ``generator=`` accepts one, or an int seed (which
makes a private generator, so the sampler's sequence of epochs is reproducible on its own);
when it is ``None`` the sampler draws from minidl's global generator at the start of each
epoch, so ``minidl.manual_seed`` makes a whole program reproducible. The streams differ from
torch's (torch uses its own generator), so tests compare the *properties* of shuffling with
torch -- every index once per epoch, a new order each epoch -- not the orders themselves.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

import numpy as np

from ..ops import creation

T_co = TypeVar("T_co", covariant=True)

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
    "as_generator",
]


def as_generator(generator: np.random.Generator | int | None, owner: str) -> np.random.Generator | None:
    """Turn a ``generator=`` argument into a NumPy ``Generator`` (``None`` stays ``None``,
    meaning "minidl's global generator, looked up when randomness is needed")."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        f"{owner}: generator must be a numpy.random.Generator, an int seed or None, got "
        f"{type(generator).__module__}.{type(generator).__name__}. (A torch.Generator cannot drive minidl: "
        "pass numpy.random.default_rng(seed) or the seed itself.)"
    )


def _rng(generator: np.random.Generator | None) -> np.random.Generator:
    # The global generator is looked up on every use, not stored: ``manual_seed`` replaces it.
    return creation.generator() if generator is None else generator


def _check_positive_int(value: Any, name: str, owner: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {name} should be a positive integer value, but got {name}={value!r}")


def _check_bool(value: Any, name: str, owner: str, error: type[Exception] = ValueError) -> None:
    if not isinstance(value, bool):
        raise error(f"{owner}: {name} should be a boolean value, but got {name}={value!r}")


class Sampler(Generic[T_co]):
    """Base class of all samplers: subclasses define ``__iter__`` (yielding indices, or lists of
    indices for a batch sampler) and, where they can, ``__len__``. ``Sampler[int]`` annotates
    the key type, as in torch."""

    def __init__(self, data_source: Sized | None = None) -> None:
        # torch accepts (and ignores) a data source here; subclasses keep what they need.
        pass

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__ (yield the indices to visit)")


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``, always in that order."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """Indices in random order: a new permutation of ``range(n)`` every epoch.

    With ``replacement=True`` each of the ``num_samples`` indices is drawn independently and
    uniformly (repeats allowed). Without replacement, ``num_samples`` larger than ``n`` chains
    whole permutations and a prefix of one more, as torch does.
    """

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: np.random.Generator | int | None = None,
    ) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = as_generator(generator, "RandomSampler")
        _check_bool(replacement, "replacement", "RandomSampler", TypeError)
        _check_positive_int(self.num_samples, "num_samples", "RandomSampler")

    @property
    def num_samples(self) -> int:
        # Read through on every use: the data source may grow or shrink between epochs.
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        rng = _rng(self.generator)
        count = self.num_samples
        if self.replacement:
            return iter(rng.integers(0, n, size=count).tolist())
        if count == n:  # the common case: one permutation, iterated at C speed
            return iter(rng.permutation(n).tolist())
        whole, rest = divmod(count, n)
        parts = [rng.permutation(n) for _ in range(whole)] + [rng.permutation(n)[:rest]]
        return iter(np.concatenate(parts).tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices``, in a new random order every epoch (without replacement)."""

    def __init__(self, indices: Sequence[int], generator: np.random.Generator | int | None = None) -> None:
        self.indices = indices
        self.generator = as_generator(generator, "SubsetRandomSampler")

    def __iter__(self) -> Iterator[int]:
        indices = self.indices
        return (indices[i] for i in _rng(self.generator).permutation(len(indices)).tolist())

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices from ``range(len(weights))``, index ``i`` with probability
    ``weights[i] / sum(weights)``; the weights need not sum to 1.

    The usual use is an imbalanced classification problem: give every sample the weight
    ``1 / count(its class)`` and each class is drawn equally often. Without replacement, an
    index drawn once is not drawn again (so at most as many samples as positive weights).
    """

    def __init__(
        self,
        weights: Sequence[float],
        num_samples: int,
        replacement: bool = True,
        generator: np.random.Generator | int | None = None,
    ) -> None:
        _check_positive_int(num_samples, "num_samples", "WeightedRandomSampler")
        _check_bool(replacement, "replacement", "WeightedRandomSampler")
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(
                f"WeightedRandomSampler: weights should be a 1d sequence but given weights have shape {w.shape}"
            )
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(
                "WeightedRandomSampler: weights must be finite, non-negative and not all zero "
                f"(got {w.size} weights summing to {w.sum() if w.size else 0})"
            )
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError(
                f"WeightedRandomSampler: cannot draw num_samples={num_samples} without replacement from "
                f"{np.count_nonzero(w)} indices of positive weight; lower num_samples or set replacement=True"
            )
        self.weights = w
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = as_generator(generator, "WeightedRandomSampler")

    def __iter__(self) -> Iterator[int]:
        p = self.weights / self.weights.sum()
        drawn = _rng(self.generator).choice(len(p), size=self.num_samples, replace=self.replacement, p=p)
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` (any iterable) into lists of ``batch_size``.

    The last list is shorter when the count does not divide evenly, unless ``drop_last``
    drops it. ``list(BatchSampler(range(10), 3, False))`` is
    ``[[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]``.
    """

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool) -> None:
        _check_positive_int(batch_size, "batch_size", "BatchSampler")
        _check_bool(drop_last, "drop_last", "BatchSampler")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        it = iter(self.sampler)
        size = self.batch_size
        if self.drop_last:
            # zip over the same iterator ``size`` times cuts it into full groups and stops
            # before a short one -- all in C, which matters on a loader's hot path.
            return map(list, zip(*([it] * size)))
        return iter(lambda: list(itertools.islice(it, size)), [])

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
