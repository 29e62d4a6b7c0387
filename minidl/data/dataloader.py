"""``DataLoader``: batches from a dataset, in a sampler's order, as PyTorch defines it.

A loader is three parts that each do one thing::

    sampler  --indices-->  batch sampler  --[i0, i1, ...]-->  fetch  --samples-->  collate --> batch
    (order)                (grouping)                         (dataset[i])         (stacking)

* the **sampler** yields indices (``SequentialSampler``, or ``RandomSampler`` when
  ``shuffle=True``); a **batch sampler** groups them (``BatchSampler(sampler, batch_size,
  drop_last)``), or a custom one can be given whole as ``batch_sampler=``;
* **fetching** reads ``dataset[i]`` for each index of a batch;
* **collating** turns the list of samples into one batch: ``default_collate`` stacks tensors,
  arrays and numbers along a new first dimension, and recurses into tuples, lists and dicts,
  so ``[(x0, y0), (x1, y1)]`` becomes ``[stack([x0, x1]), stack([y0, y1])]``.

``batch_size=None`` turns batching off: the loader yields single samples, converted by
``default_convert`` (NumPy arrays become tensors, nothing is stacked).

**The TensorDataset fast path.** Fetching and collating sample by sample costs a Python call
per sample and a stack per batch -- hundreds of microseconds for a batch of 128, on every
step of every training loop. When the dataset is a ``TensorDataset`` (or a ``Subset`` of one,
as ``random_split`` makes) and the collate function is the default, the result is known in
advance: ``[t[batch_indices] for t in tensors]``. The loader computes exactly that, with one
NumPy ``take`` per tensor, which costs a few microseconds. The output is identical to the
slow path (same values, dtypes and list structure); ``tests/test_data.py`` checks both.

Loading runs in the calling process: ``num_workers`` must be 0 (in-memory data gains nothing
from worker processes, and the fast path above is the cure for a slow loop). torch's
worker-related options are accepted at their default values so that torch code runs as is.
"""

from __future__ import annotations

import collections.abc
import copy
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import dtypes
from ..ops import shape as shape_ops
from ..tensor import Tensor
from .dataset import Dataset, IterableDataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, as_generator

__all__ = ["DataLoader", "default_collate", "default_convert"]

# NumPy dtype codes of strings, bytes and Python objects: arrays of these are not numbers.
_NOT_NUMERIC = re.compile(r"[SaUO]")


# ---- converting NumPy data --------------------------------------------------------------------


def _as_supported(array: np.ndarray) -> np.ndarray:
    """``array`` in a dtype minidl has, widening losslessly where it must.

    minidl's dtypes are float32/64, int32/64 and bool. Data often arrives narrower -- uint8
    pixels, int16 audio, float16 features -- and torch would keep those dtypes. Here small
    integers become int64 (torch's default integer type) and float16 becomes float32; no
    value changes. Anything else (uint64, complex, ...) gets the Tensor constructor's error.
    """
    dt = array.dtype
    if dt in dtypes._FROM_NUMPY:
        return array
    if not dt.isnative:
        return _as_supported(array.astype(dt.newbyteorder("=")))
    if dt.kind in "iu" and dt.itemsize <= 4:
        return array.astype(np.int64)
    if dt.kind == "f" and dt.itemsize < 4:
        return array.astype(np.float32)
    return array


def _check_numeric(array: np.ndarray, fn: str) -> None:
    if _NOT_NUMERIC.search(array.dtype.str) is not None:
        raise TypeError(
            f"{fn}: batch must contain tensors, numpy arrays, numbers, dicts or lists; found a NumPy array of "
            f"dtype {array.dtype} (strings or objects), which cannot become a tensor. Return numbers, or collate "
            "such fields yourself with collate_fn="
        )


# ---- default_collate -------------------------------------------------------------------------


def _stack_tensors(batch: Sequence[Tensor]) -> Tensor:
    """Stack equal-shaped tensors along a new first dimension.

    On the CPU, with no gradient to record and one dtype, one ``np.stack`` does it; otherwise
    ``minidl.stack`` (which records autograd, handles devices and promotes dtypes as torch).
    """
    first = batch[0]
    shape = first.shape
    for i, t in enumerate(batch):
        if not isinstance(t, Tensor):
            raise TypeError(
                f"default_collate: entry 0 of the batch is a Tensor but entry {i} is a {type(t).__name__}; "
                "every sample must have the same structure"
            )
        if t.shape != shape:
            raise RuntimeError(
                f"default_collate: stack expects each tensor to be equal size, but got {tuple(shape)} at entry 0 "
                f"and {tuple(t.shape)} at entry {i}. Samples of different sizes need a custom collate_fn (pad them, "
                "e.g. with minidl.data.text.pad_sequences) or batch_size=1"
            )
    arrays = [t._data for t in batch]
    dtype = first._data.dtype
    if all(type(a) is np.ndarray and a.dtype == dtype for a in arrays) and not any(t._rg for t in batch):
        return Tensor._wrap(np.stack(arrays))
    return shape_ops.stack(batch, 0)


def _collate_arrays(batch: Sequence[np.ndarray]) -> Tensor:
    first = batch[0]
    _check_numeric(first, "default_collate")
    for i, a in enumerate(batch):
        if not isinstance(a, np.ndarray) or a.shape != first.shape:
            got = a.shape if isinstance(a, np.ndarray) else type(a).__name__
            raise RuntimeError(
                f"default_collate: stack expects each array to be equal size, but got {first.shape} at entry 0 "
                f"and {got} at entry {i}. Samples of different sizes need a custom collate_fn"
            )
    return Tensor(_as_supported(np.stack(batch)))


def default_collate(batch: Sequence[Any]) -> Any:
    """Merge a list of samples into one batch, as ``torch.utils.data.default_collate``.

    By the type of the first sample:

    * ``Tensor``            -> the tensors stacked along a new dimension 0;
    * NumPy array           -> stacked into one tensor (narrow dtypes widened, see above);
    * NumPy scalar          -> a 1-D tensor of its dtype;
    * ``float``             -> a float64 tensor (torch's choice for Python floats);
    * ``int`` / ``bool``    -> an int64 / bool tensor;
    * ``str`` / ``bytes``   -> the batch unchanged (a list, or a tuple inside a structure);
    * mapping               -> the same mapping, each key collated: ``{"x": stack(...), ...}``;
    * namedtuple            -> the same namedtuple, field by field;
    * tuple or other sequence -> element by element; a tuple becomes a *list* (as torch).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        return _collate_arrays(batch)
    if isinstance(elem, (np.bool_, np.number, np.object_)):
        return Tensor(_as_supported(np.array(batch)))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, int):
        # Torch infers as torch.tensor(batch): ints give int64, bools give bool, a float
        # among the ints makes the default float dtype.
        arr = np.array(batch)
        if arr.dtype.kind == "f":
            return Tensor(arr.astype(dtypes.get_default_dtype().np))
        return Tensor(arr if arr.dtype.kind == "b" else arr.astype(np.int64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        return _rebuild_mapping(elem, collated)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        for i, sample in enumerate(batch):
            if len(sample) != size:
                raise RuntimeError(
                    f"default_collate: each element in list of batch should be of equal size (entry 0 has {size} "
                    f"fields, entry {i} has {len(sample)})"
                )
        # Each column is a tuple from zip; strings come back as that tuple, as in torch.
        columns = [default_collate(samples) for samples in zip(*batch)]
        return _rebuild_sequence(elem, columns)
    raise TypeError(
        f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {type(elem)}. "
        "Pass collate_fn= to batch other types"
    )


def _rebuild_mapping(elem: collections.abc.Mapping, values: dict) -> Any:
    """A mapping of ``elem``'s type holding ``values`` (a plain dict if the type can't be rebuilt)."""
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def _rebuild_sequence(elem: collections.abc.Sequence, values: list) -> Any:
    """A sequence like ``elem`` holding ``values``; tuples become lists, for torch compatibility."""
    if isinstance(elem, tuple):
        return values
    try:
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, v in enumerate(values):
                clone[i] = v
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def default_convert(data: Any) -> Any:
    """Convert one unbatched sample (``batch_size=None``): NumPy arrays and scalars become
    tensors, containers are converted element by element (tuples become lists, as torch), and
    everything else -- Python numbers and strings included -- is returned unchanged."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        if _NOT_NUMERIC.search(data.dtype.str) is not None:
            return data
        return Tensor(_as_supported(data))
    if isinstance(data, (np.bool_, np.number)):
        return Tensor(_as_supported(np.asarray(data)))
    if isinstance(data, collections.abc.Mapping):
        return _rebuild_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data


# ---- the loader ---------------------------------------------------------------------------------


class _InfiniteConstantSampler(Sampler):
    """``None`` forever: the 'indices' of an iterable dataset, which the batch sampler groups
    to say how many samples each batch pulls from the stream."""

    def __iter__(self) -> Iterator[None]:
        return itertools.repeat(None)


# Options that only matter with worker processes or pinned memory, and their default values.
_WORKER_OPTIONS = {
    "pin_memory": False,
    "timeout": 0,
    "multiprocessing_context": None,
    "prefetch_factor": None,
    "persistent_workers": False,
    "pin_memory_device": "",
}


class DataLoader:
    """Iterate over a dataset in batches.

    ``DataLoader(dataset, batch_size=64, shuffle=True)`` yields ``len(loader)`` batches per
    pass (an *epoch*), each built by ``collate_fn`` from ``batch_size`` samples; with
    ``shuffle=True`` every epoch visits all samples in a new random order drawn from
    ``generator`` (a NumPy ``Generator`` or int seed; by default minidl's global generator, so
    ``minidl.manual_seed`` fixes the order). ``sampler`` replaces the order, ``batch_sampler``
    replaces order and grouping, and ``drop_last`` drops a final short batch. The arguments,
    their order and the errors for conflicting ones are torch's.
    """

    _initialized = False

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler | Iterable | None = None,
        batch_sampler: Sampler | Iterable[list] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: np.random.Generator | int | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
    ) -> None:
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(
                f"DataLoader: num_workers option should be non-negative; use num_workers=0 (got {num_workers!r})"
            )
        if num_workers > 0:
            raise ValueError(
                f"DataLoader: num_workers={num_workers} is not supported; minidl loads batches in the calling "
                "process, so use num_workers=0. For data in memory, a TensorDataset is the fast route: the loader "
                "then fetches each batch with one indexing operation per tensor"
            )
        given = {
            "pin_memory": pin_memory,
            "timeout": timeout,
            "multiprocessing_context": multiprocessing_context,
            "prefetch_factor": prefetch_factor,
            "persistent_workers": persistent_workers,
            "pin_memory_device": pin_memory_device,
        }
        for name, value in given.items():
            if value != _WORKER_OPTIONS[name]:
                raise ValueError(
                    f"DataLoader: {name}={value!r} is not supported; it configures worker processes or pinned "
                    f"memory, and minidl loads in the calling process. Leave it at its default "
                    f"({_WORKER_OPTIONS[name]!r})"
                )
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable or None, got {type(collate_fn).__name__}")
        generator = as_generator(generator, "DataLoader")

        if isinstance(dataset, IterableDataset):
            self._iterable = True
            if shuffle not in (False, None):
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified shuffle option, but got shuffle={shuffle} "
                    "(a stream has no index to shuffle; shuffle inside the dataset's __iter__)"
                )
            if sampler is not None:
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified sampler option, but got sampler={sampler}"
                )
            if batch_sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified batch_sampler option, but got "
                    f"batch_sampler={batch_sampler}"
                )
        else:
            self._iterable = False
            shuffle = bool(shuffle)

        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
                    "drop_last (the batch sampler already decides the order and the grouping)"
                )
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError(
                "DataLoader: batch_size=None option disables auto-batching and is mutually exclusive with drop_last"
            )

        if sampler is None:
            if self._iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)  # type: ignore[arg-type]
            else:
                sampler = SequentialSampler(dataset)  # type: ignore[arg-type]
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.num_workers = num_workers
        self.worker_init_fn = worker_init_fn  # never called: there are no workers (as torch with 0)
        self.in_order = in_order
        for name, value in given.items():
            setattr(self, name, value)
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._initialized = True

    def __setattr__(self, attr: str, value: Any) -> None:
        if self._initialized and attr in (
            "batch_size",
            "batch_sampler",
            "sampler",
            "drop_last",
            "dataset",
            "persistent_workers",
        ):
            raise ValueError(
                f"DataLoader: {attr} attribute should not be set after DataLoader is initialized; make a new DataLoader"
            )
        super().__setattr__(attr, value)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self) -> Iterable:
        """What yields the keys of each fetch: the batch sampler when batching, else the sampler."""
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self) -> _LoaderIterator:
        return _LoaderIterator(self)

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # type: ignore[arg-type]
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)  # type: ignore[arg-type]


def _tensor_source(dataset: Any) -> tuple[TensorDataset, list[np.ndarray]] | None:
    """If ``dataset`` is a TensorDataset, possibly inside Subsets, return it and the Subsets'
    index arrays (outermost first); otherwise None. Subclasses that change ``__getitem__``
    define their own samples and take the general path."""
    maps = []
    while type(dataset) is Subset:
        idx = np.asarray(dataset.indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            return None
        maps.append(idx)
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset) and type(dataset).__getitem__ is TensorDataset.__getitem__:
        return dataset, maps
    return None


class _LoaderIterator:
    """One pass over a ``DataLoader``: pulls keys from the index sampler and fetches a batch
    for each. The fetch strategy is chosen once, here, not per batch."""

    def __init__(self, loader: DataLoader) -> None:
        self._loader = loader
        self._keys = iter(loader._index_sampler)
        self._dataset = loader.dataset
        self._collate = loader.collate_fn
        getitems = getattr(loader.dataset, "__getitems__", None)
        self._getitems = getitems if callable(getitems) else None
        if loader._iterable:
            self._stream = iter(loader.dataset)
            self._ended = False
            self._fetch = self._fetch_stream_batch if loader._auto_collation else self._fetch_stream_sample
        elif not loader._auto_collation:
            self._fetch = self._fetch_map_sample
        elif loader.collate_fn is default_collate and (source := _tensor_source(loader.dataset)) is not None:
            dataset, self._maps = source
            # One plan per tensor: its CPU array when a plain NumPy ``take`` is the whole job,
            # else None (GPU tensors, or tensors that need their indexing recorded for autograd).
            self._tensors = dataset.tensors
            self._plans = [t._data if type(t._data) is np.ndarray and not t._rg else None for t in dataset.tensors]
            self._fetch = self._fetch_tensor_batch
        else:
            self._fetch = self._fetch_map_batch

    def __iter__(self) -> _LoaderIterator:
        return self

    def __next__(self) -> Any:
        return self._fetch(next(self._keys))

    def __len__(self) -> int:
        return len(self._loader)

    # ---- the four ways to fetch -------------------------------------------------------------

    def _fetch_tensor_batch(self, keys: Any) -> list[Tensor]:
        idx = np.asarray(keys)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            return self._fetch_map_batch(keys)  # unusual keys: let the dataset interpret them
        for m in self._maps:
            idx = m[idx]
        return [
            Tensor._wrap(a.take(idx, axis=0)) if a is not None else t[idx] for a, t in zip(self._plans, self._tensors)
        ]

    def _fetch_map_batch(self, keys: Any) -> Any:
        getitems = self._getitems
        data = getitems(keys) if getitems is not None else [self._dataset[i] for i in keys]
        return self._collate(data)

    def _fetch_map_sample(self, key: Any) -> Any:
        return self._collate(self._dataset[key])

    def _fetch_stream_batch(self, keys: list) -> Any:
        if self._ended:
            raise StopIteration
        data = list(itertools.islice(self._stream, len(keys)))
        if len(data) < len(keys):
            self._ended = True
            if not data or self._loader.drop_last:
                raise StopIteration
        return self._collate(data)

    def _fetch_stream_sample(self, key: None) -> Any:
        return self._collate(next(self._stream))
