"""minidl.data's datasets, samplers, collate functions and DataLoader, checked against
torch.utils.data: the same datasets go through both loaders and every batch must agree in
structure, values and dtypes. Shuffling is compared by its properties (each epoch a
permutation of all indices, a new one each epoch, reproducible from a seed), since the
random streams of the two libraries differ by design."""

from __future__ import annotations

import time
from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import minidl
import minidl.data as mdd
from minidl.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    random_split,
)

Point = namedtuple("Point", ["x", "y"])


# ---- comparing minidl and torch outputs ------------------------------------------------------------


def plain(obj):
    """A library-neutral description of a batch: tensors become (dtype name, shape, values);
    containers keep their type, so a tuple where torch gives a list is a difference."""
    if isinstance(obj, minidl.Tensor):
        return ("tensor", obj.dtype.name, tuple(obj.shape), obj.detach().numpy().tolist())
    if isinstance(obj, torch.Tensor):
        return ("tensor", str(obj.dtype).removeprefix("torch."), tuple(obj.shape), obj.detach().numpy().tolist())
    if isinstance(obj, dict):
        return ("dict", {k: plain(v) for k, v in obj.items()})
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (type(obj).__name__, tuple(plain(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [plain(v) for v in obj])
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.tolist())
    return obj


def both_loaders(make_dataset, **kwargs):
    """Batches from minidl's and torch's loaders over the same dataset (made per library)."""
    ours = [plain(b) for b in DataLoader(make_dataset(minidl), **kwargs)]
    theirs = [plain(b) for b in tud.DataLoader(make_dataset(torch), **kwargs)]
    return ours, theirs


def tensor_dataset(lib, n=10):
    x = np.arange(n * 6, dtype=np.float32).reshape(n, 2, 3)
    y = np.arange(n, dtype=np.int64) % 3
    mod = mdd if lib is minidl else tud
    return mod.TensorDataset(lib.tensor(x), lib.tensor(y))


class Mixed:
    """A map-style dataset whose samples mix every kind default_collate handles. It is a plain
    class (not a Dataset subclass), so torch and minidl loaders both accept it."""

    def __init__(self, lib, n=7):
        self.lib, self.n = lib, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        lib = self.lib
        return {
            "image": lib.tensor(np.full((2, 2), i, dtype=np.float32)),
            "label": i % 3,
            "weight": i / 4,
            "flag": i % 2 == 0,
            "name": f"s{i}",
            "arr": np.arange(3, dtype=np.float32) * i,
            "np_scalar": np.int32(i),
            "pair": (lib.tensor([i, -i]), [float(i), i]),
            "point": Point(i, lib.tensor(float(i))),
        }


# ---- loaders agree with torch (no shuffling) -------------------------------------------------------


@pytest.mark.parametrize(
    "batch_size, drop_last",
    [(b, d) for b in (1, 3, 4, 10, 13) for d in (False, True)] + [(None, False)],  # None + drop_last: an error
)
def test_tensor_dataset_batches_match_torch(batch_size, drop_last):
    ours, theirs = both_loaders(tensor_dataset, batch_size=batch_size, drop_last=drop_last)
    assert ours == theirs
    assert len(DataLoader(tensor_dataset(minidl), batch_size=batch_size, drop_last=drop_last)) == len(
        tud.DataLoader(tensor_dataset(torch), batch_size=batch_size, drop_last=drop_last)
    )


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_mixed_samples_collate_like_torch(batch_size):
    """Dicts, nested tuples and lists, namedtuples, strings, Python and NumPy numbers, arrays."""
    ours, theirs = both_loaders(Mixed, batch_size=batch_size)
    assert ours == theirs


def test_custom_sampler_batch_sampler_and_collate_fn_match_torch():
    order = [4, 0, 9, 2, 2, 7]
    assert (
        both_loaders(tensor_dataset, sampler=order, batch_size=4)[0]
        == both_loaders(tensor_dataset, sampler=order, batch_size=4)[1]
    )
    groups = [[3, 1], [0], [9, 8, 7]]
    ours, theirs = both_loaders(tensor_dataset, batch_sampler=groups)
    assert ours == theirs and len(ours) == 3
    ours, theirs = both_loaders(Mixed, batch_sampler=groups)
    assert ours == theirs

    def keep_list(batch):  # a collate_fn that returns the samples themselves
        return batch

    ours, theirs = both_loaders(tensor_dataset, batch_size=3, collate_fn=keep_list)
    assert ours == theirs
    # a sampler object of minidl's own, against torch's
    ours = [plain(b) for b in DataLoader(tensor_dataset(minidl), sampler=SequentialSampler(range(10)), batch_size=4)]
    theirs = [
        plain(b) for b in tud.DataLoader(tensor_dataset(torch), sampler=tud.SequentialSampler(range(10)), batch_size=4)
    ]
    assert ours == theirs


def test_subset_concat_and_unbatched_tensor_samples_match_torch():
    def subset(lib):
        mod = mdd if lib is minidl else tud
        base = tensor_dataset(lib, 12)
        return mod.ConcatDataset([mod.Subset(base, [11, 2, 5, 5]), mod.Subset(base, range(3))])

    for kwargs in ({"batch_size": 3}, {"batch_size": None}, {"batch_size": 2, "drop_last": True}):
        ours, theirs = both_loaders(subset, **kwargs)
        assert ours == theirs, kwargs
    ds = subset(minidl)
    assert len(ds) == 7 and plain(ds[-1]) == plain(subset(torch)[-1])
    with pytest.raises(ValueError, match="should not exceed dataset length"):
        ds[-8]
    with pytest.raises(IndexError):
        ds[7]


class Stream(IterableDataset):
    def __init__(self, n, lib=minidl):
        self.n, self.lib = n, lib

    def __iter__(self):
        return iter(self.lib.tensor([i, 2 * i]) for i in range(self.n))

    def __len__(self):
        return self.n


class TorchStream(tud.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(torch.tensor([i, 2 * i]) for i in range(self.n))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("kwargs", [{"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}])
def test_iterable_dataset_matches_torch(kwargs):
    ours = DataLoader(Stream(7), **kwargs)
    theirs = tud.DataLoader(TorchStream(7), **kwargs)
    assert [plain(b) for b in ours] == [plain(b) for b in theirs]
    assert len(ours) == len(theirs)
    chained = DataLoader(Stream(2) + Stream(3), batch_size=2)
    assert [plain(b) for b in chained] == [
        plain(b) for b in tud.DataLoader(TorchStream(2) + TorchStream(3), batch_size=2)
    ]
    assert len(Stream(2) + Stream(3)) == 5


# ---- the TensorDataset fast path --------------------------------------------------------------------


def test_fast_path_fetches_whole_batches_without_per_sample_indexing(monkeypatch):
    """With the default collate_fn, a TensorDataset (or a Subset of one) is never indexed sample
    by sample, and the batches equal the general path's (forced with an equivalent collate_fn)."""
    ds = tensor_dataset(minidl, 20)
    splits = random_split(ds, [0.75, 0.25], generator=3)
    expected = {
        name: [plain(b) for b in DataLoader(d, batch_size=4, collate_fn=lambda b: default_collate(b))]
        for name, d in (("full", ds), ("split", splits[0]))
    }

    def refuse(self, index):
        raise AssertionError("the fast path indexed a single sample")

    monkeypatch.setattr(TensorDataset, "__getitem__", refuse)
    assert [plain(b) for b in DataLoader(ds, batch_size=4)] == expected["full"]
    assert [plain(b) for b in DataLoader(splits[0], batch_size=4)] == expected["split"]
    # Keys a NumPy index cannot express fall back to the dataset's own indexing.
    monkeypatch.undo()
    assert plain(next(iter(DataLoader(ds, batch_sampler=[[1, 2]])))) == plain(default_collate([ds[1], ds[2]]))


def test_fast_path_respects_subclasses_and_custom_collate():
    class Doubled(TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return x * 2, y

    x = minidl.arange(6.0).reshape(6, 1)
    batch = next(iter(DataLoader(Doubled(x, minidl.arange(6)), batch_size=3)))
    np.testing.assert_array_equal(batch[0].numpy(), [[0.0], [2.0], [4.0]])


def test_fast_path_keeps_gradients_like_torch():
    """A batch taken from a tensor that requires grad records the indexing, as torch's stack
    does, so the gradient reaches the data (rows drawn twice get twice the gradient)."""
    data = np.arange(12, dtype=np.float32).reshape(6, 2)
    m = minidl.tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    order = [0, 3, 3, 5]
    for (mb,), (tb,) in zip(
        DataLoader(TensorDataset(m), sampler=order, batch_size=2),
        tud.DataLoader(tud.TensorDataset(t), sampler=order, batch_size=2),
    ):
        (mb * mb).sum().backward()
        (tb * tb).sum().backward()
    np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy())


def test_fast_path_is_much_faster_than_sample_by_sample():
    """The whole point of the fast path, measured: a 128-sample batch of 784 float32 features,
    shuffled, by one take per tensor versus per-sample indexing and a stack."""
    rng = np.random.default_rng(0)
    ds = TensorDataset(
        minidl.tensor(rng.random((4096, 784), dtype=np.float32)), minidl.tensor(rng.integers(0, 10, 4096))
    )

    def per_batch(loader):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            n = sum(1 for _ in loader)
            best = min(best, (time.perf_counter() - start) / n)
        return best

    fast = per_batch(DataLoader(ds, batch_size=128, shuffle=True))
    slow = per_batch(DataLoader(ds, batch_size=128, shuffle=True, collate_fn=lambda b: default_collate(b)))
    assert fast < 2e-3, f"{fast * 1e6:.0f} us per batch"
    assert fast * 5 < slow, f"fast {fast * 1e6:.0f} us vs general {slow * 1e6:.0f} us per batch"


# ---- shuffling -------------------------------------------------------------------------------------------


def epochs_of(loader, count):
    return [np.concatenate([b[0].numpy() for b in loader]) for _ in range(count)]


def test_shuffle_visits_every_index_once_per_epoch_in_a_new_order():
    ds = TensorDataset(minidl.arange(50))
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    epochs = epochs_of(loader, 3)
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), np.arange(50))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    assert not np.array_equal(epochs[0], np.arange(50))
    # drop_last keeps only full batches, still without repeats
    short = np.concatenate([b[0].numpy() for b in DataLoader(ds, batch_size=8, shuffle=True, drop_last=True)])
    assert len(short) == 48 and len(np.unique(short)) == 48


@pytest.mark.parametrize("make_generator", [lambda: 123, lambda: np.random.default_rng(123)])
def test_shuffle_is_reproducible_from_a_generator(make_generator):
    ds = TensorDataset(minidl.arange(30))
    a = epochs_of(DataLoader(ds, batch_size=4, shuffle=True, generator=make_generator()), 2)
    b = epochs_of(DataLoader(ds, batch_size=4, shuffle=True, generator=make_generator()), 2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])


def test_shuffle_default_follows_manual_seed():
    ds = TensorDataset(minidl.arange(30))
    loader = DataLoader(ds, batch_size=4, shuffle=True)
    minidl.manual_seed(7)
    a = epochs_of(loader, 2)
    minidl.manual_seed(7)
    b = epochs_of(loader, 2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_generator_argument_errors():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        DataLoader(TensorDataset(minidl.arange(3)), shuffle=True, generator=torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        RandomSampler(range(3), generator="seed")


# ---- samplers -----------------------------------------------------------------------------------------------


def test_sequential_and_batch_samplers_match_torch():
    assert list(SequentialSampler(range(5))) == list(tud.SequentialSampler(range(5)))
    for n, size, drop in [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (2, 5, True), (0, 2, False)]:
        ours = BatchSampler(range(n), size, drop)
        theirs = tud.BatchSampler(range(n), size, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs), (n, size, drop)


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"batch_size": True}, {"batch_size": 2.0}, {"drop_last": 1}])
def test_batch_sampler_rejects_what_torch_rejects(bad):
    args = {"batch_size": 2, "drop_last": False, **bad}
    with pytest.raises(ValueError):
        tud.BatchSampler(range(4), **args)
    with pytest.raises(ValueError, match="BatchSampler"):
        BatchSampler(range(4), **args)


def test_random_sampler_semantics():
    minidl.manual_seed(0)
    perm = list(RandomSampler(range(20)))
    assert sorted(perm) == list(range(20))
    # num_samples beyond n without replacement: whole permutations, then part of another (as torch)
    long = list(RandomSampler(range(5), num_samples=12, generator=1))
    assert len(long) == 12 == len(RandomSampler(range(5), num_samples=12))
    assert sorted(long[:5]) == sorted(long[5:10]) == list(range(5)) and len(set(long[10:])) == 2
    torch_long = list(tud.RandomSampler(range(5), num_samples=12))
    assert sorted(torch_long[:5]) == sorted(torch_long[5:10]) == list(range(5)) and len(set(torch_long[10:])) == 2
    drawn = list(RandomSampler(range(3), replacement=True, num_samples=300, generator=2))
    assert len(drawn) == 300 and set(drawn) == {0, 1, 2}
    assert len(set(list(RandomSampler(range(100), num_samples=10, generator=3)))) == 10


def test_random_sampler_rejects_what_torch_rejects():
    for kwargs, err in [
        ({"replacement": 1}, TypeError),
        ({"num_samples": 0}, ValueError),
        ({"num_samples": 2.5}, ValueError),
    ]:
        with pytest.raises(err):
            tud.RandomSampler(range(3), **kwargs)
        with pytest.raises(err, match="RandomSampler"):
            RandomSampler(range(3), **kwargs)
    with pytest.raises(ValueError):  # an empty dataset has nothing to shuffle
        tud.RandomSampler([])
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler([])


def test_subset_random_sampler_permutes_the_given_indices():
    idx = [10, 3, 7, 7, 42]
    out = list(SubsetRandomSampler(idx, generator=0))
    assert sorted(out) == sorted(idx) and len(SubsetRandomSampler(idx)) == 5
    assert list(SubsetRandomSampler(idx, generator=5)) == list(SubsetRandomSampler(idx, generator=5))


def test_weighted_random_sampler_draws_in_proportion_to_weights():
    weights = [1.0, 0.0, 3.0, 6.0]
    drawn = np.array(list(WeightedRandomSampler(weights, 20000, generator=0)))
    freq = np.bincount(drawn, minlength=4) / len(drawn)
    np.testing.assert_allclose(freq, np.array(weights) / 10, atol=0.015)
    distinct = list(WeightedRandomSampler(weights, 3, replacement=False, generator=1))
    assert sorted(distinct) == [0, 2, 3]
    for kwargs in ({"num_samples": 0}, {"num_samples": 2, "replacement": None}):
        args = {"weights": weights, **kwargs}
        with pytest.raises(ValueError):
            tud.WeightedRandomSampler(**args)
        with pytest.raises(ValueError, match="WeightedRandomSampler"):
            WeightedRandomSampler(**args)
    with pytest.raises(ValueError, match="1d"):
        WeightedRandomSampler([[1.0, 2.0]], 1)
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler(weights, 4, replacement=False)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedRandomSampler([1.0, -1.0], 1)


# ---- datasets -------------------------------------------------------------------------------------------------


def test_tensor_dataset_items_and_errors():
    x, y = minidl.randn(4, 3), minidl.arange(4)
    ds = TensorDataset(x, y)
    assert len(ds) == 4
    np.testing.assert_array_equal(ds[2][0].numpy(), x.numpy()[2])
    assert ds[1][1].item() == 1 and isinstance(ds[0], tuple)
    assert len(TensorDataset(np.zeros((5, 2), np.float32))) == 5  # NumPy arrays are wrapped
    with pytest.raises(AssertionError):
        tud.TensorDataset(torch.zeros(4, 3), torch.zeros(5))
    with pytest.raises(ValueError, match=r"size mismatch.*\[4, 5\]"):
        TensorDataset(minidl.zeros(4, 3), minidl.zeros(5))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(minidl.tensor(1.0))
    with pytest.raises(TypeError, match="argument 1"):
        TensorDataset(minidl.zeros(2), [1, 2])


def test_dataset_base_classes():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        mdd.Dataset()[0]
    with pytest.raises(NotImplementedError, match="__iter__"):
        iter(mdd.Sampler())

    class Typed(mdd.Dataset[int]):  # parameterised by the sample type, as torch allows
        def __getitem__(self, i):
            return i

        def __len__(self):
            return 2

    assert [b.tolist() for b in DataLoader(Typed(), batch_size=2)] == [[0, 1]]
    a, b = Subset(tensor_dataset(minidl, 4), [0, 1]), Subset(tensor_dataset(minidl, 4), [3])
    joined = a + b
    assert isinstance(joined, ConcatDataset) and len(joined) == 3 and joined.cumulative_sizes == [2, 3]
    assert joined[2][1].item() == 3 % 3
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="IterableDataset"):
        ConcatDataset([Stream(2)])
    sub = Subset(tensor_dataset(minidl, 6), [5, 1, 3])
    assert plain(sub[[0, 2]]) == plain(tensor_dataset(minidl, 6)[[5, 3]])
    assert [plain(s) for s in sub.__getitems__([2, 0])] == [plain(sub[2]), plain(sub[0])]


@pytest.mark.parametrize(
    "n, lengths",
    [(10, [3, 7]), (10, [0.3, 0.7]), (11, [0.5, 0.5]), (7, [0.2, 0.2, 0.6]), (30, [0.3, 0.3, 0.4]), (5, [1.0])],
)
def test_random_split_lengths_match_torch(n, lengths):
    ours = random_split(range(n), lengths, generator=0)
    theirs = tud.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    picked = [ds[i] for ds in ours for i in range(len(ds))]
    assert sorted(picked) == list(range(n))  # disjoint, and together the whole dataset


def test_random_split_reproducible_and_errors():
    a = [s.indices for s in random_split(range(20), [0.5, 0.5], generator=4)]
    b = [s.indices for s in random_split(range(20), [0.5, 0.5], generator=np.random.default_rng(4))]
    assert a == b
    with pytest.raises(ValueError):
        tud.random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match=r"sum of input lengths \(6\).*\(10\)"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        random_split(range(10), [1.5, -0.5])
    with pytest.warns(UserWarning, match="length of split at index 2 is 0"):
        random_split(range(2), [0.5, 0.5, 0.0])


# ---- collate and convert ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch",
    [
        [1, 2, 3],
        [1.5, 2.0],
        [True, False],
        [1, 2.5],
        ["a", "b"],
        [b"x", b"y"],
        [np.float32(1), np.float32(2)],
        [np.int64(3), np.int64(4)],
        [np.bool_(True), np.bool_(False)],
        [np.float64(0.5), np.float64(1.5)],
        [np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)],
        [np.arange(3), np.arange(3) + 5],
        [np.array(2.5), np.array(3.5)],
        [{"a": 1, "b": [1.0, 2]}, {"a": 2, "b": [3.0, 4]}],
        [(1, ("x", 2.0)), (3, ("y", 4.0))],
        [[1, 2], [3, 4]],
        [Point(1, 2.0), Point(3, 4.0)],
    ],
    ids=repr,
)
def test_default_collate_matches_torch(batch):
    assert plain(default_collate(batch)) == plain(tud.default_collate(batch))


def test_default_collate_tensors_match_torch():
    data = [np.arange(6, dtype=dt).reshape(2, 3) + i for i in range(3) for dt in (np.float32,)]
    assert plain(default_collate([minidl.tensor(d) for d in data])) == plain(
        tud.default_collate([torch.tensor(d) for d in data])
    )
    ints = [np.array([i, i + 1]) for i in range(4)]
    assert plain(default_collate([minidl.tensor(d) for d in ints])) == plain(
        tud.default_collate([torch.tensor(d) for d in ints])
    )
    scalars = [minidl.tensor(float(i), dtype=minidl.float64) for i in range(3)]
    assert plain(default_collate(scalars)) == plain(
        tud.default_collate([torch.tensor(float(i), dtype=torch.float64) for i in range(3)])
    )
    # mixed dtypes promote as torch.stack does
    mixed_m = [minidl.tensor([1.0]), minidl.tensor([2.0], dtype=minidl.float64)]
    mixed_t = [torch.tensor([1.0]), torch.tensor([2.0], dtype=torch.float64)]
    assert plain(default_collate(mixed_m)) == plain(tud.default_collate(mixed_t))


def test_default_collate_widens_dtypes_minidl_lacks():
    """torch keeps uint8 and float16; minidl has neither, so they widen losslessly."""
    pixels = [np.array([0, 255], np.uint8), np.array([7, 8], np.uint8)]
    out = default_collate(pixels)
    assert out.dtype is minidl.int64
    np.testing.assert_array_equal(out.numpy(), tud.default_collate(pixels).numpy())
    halves = [np.array([0.5], np.float16), np.array([1.25], np.float16)]
    out = default_collate(halves)
    assert out.dtype is minidl.float32
    np.testing.assert_array_equal(out.numpy(), tud.default_collate(halves).float().numpy())
    assert default_convert(np.array([1, 2], np.int16)).dtype is minidl.int64


def test_default_collate_errors_match_torch():
    cases = [
        ([np.zeros(2), np.zeros(3)], RuntimeError, "equal size"),
        ([[1, 2], [3]], RuntimeError, "equal size"),
        ([np.array(["a"]), np.array(["b"])], TypeError, "strings or objects"),
        ([object(), object()], TypeError, "collate_fn"),
    ]
    for batch, err, message in cases:
        with pytest.raises(err):
            tud.default_collate(batch)
        with pytest.raises(err, match=message):
            default_collate(batch)
    with pytest.raises(RuntimeError, match=r"\(2,\) at entry 0 and \(3,\) at entry 1"):
        default_collate([minidl.zeros(2), minidl.zeros(3)])


@pytest.mark.parametrize(
    "sample",
    [
        3,
        2.5,
        "s",
        np.arange(3),
        np.float32(2.0),
        np.array(["x"]),
        {"a": np.ones(2, np.float32), "b": 1},
        (np.arange(2), 1.0),
        [np.arange(2), "q"],
        Point(np.arange(2), 3),
    ],
    ids=repr,
)
def test_default_convert_matches_torch(sample):
    assert plain(default_convert(sample)) == plain(tud.default_convert(sample))


# ---- loader options and errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shuffle": True, "sampler": [0, 1]},
        {"batch_sampler": [[0]], "batch_size": 2},
        {"batch_sampler": [[0]], "shuffle": True},
        {"batch_sampler": [[0]], "sampler": [0]},
        {"batch_sampler": [[0]], "drop_last": True},
        {"batch_size": None, "drop_last": True},
        {"num_workers": -1},
        {"batch_size": 0},
    ],
    ids=repr,
)
def test_conflicting_options_raise_like_torch(kwargs):
    with pytest.raises(ValueError):
        tud.DataLoader(tensor_dataset(torch), **kwargs)
    with pytest.raises(ValueError, match="DataLoader|BatchSampler"):
        DataLoader(tensor_dataset(minidl), **kwargs)


@pytest.mark.parametrize("kwargs", [{"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}], ids=repr)
def test_iterable_dataset_rejects_orderings_like_torch(kwargs):
    with pytest.raises(ValueError):
        tud.DataLoader(TorchStream(3), **kwargs)
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Stream(3), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"num_workers": 2}, {"pin_memory": True}, {"timeout": 5}, {"persistent_workers": True}, {"prefetch_factor": 2}],
    ids=repr,
)
def test_worker_options_are_refused_clearly(kwargs):
    with pytest.raises(ValueError, match="not supported"):
        DataLoader(tensor_dataset(minidl), **kwargs)


def test_worker_options_at_defaults_are_accepted_and_attributes_are_frozen():
    loader = DataLoader(tensor_dataset(minidl), 2, False, None, None, 0, None, False, False, 0, None, None, None)
    assert len(loader) == 5 and loader.batch_size == 2
    for attr in ("batch_size", "sampler", "dataset", "drop_last"):
        with pytest.raises(ValueError):
            setattr(tud.DataLoader(tensor_dataset(torch)), attr, None)
        with pytest.raises(ValueError, match="should not be set after"):
            setattr(loader, attr, None)
    loader.collate_fn = default_collate  # other attributes may change, as in torch
    with pytest.raises(TypeError, match="collate_fn must be callable"):
        DataLoader(tensor_dataset(minidl), collate_fn=3)


def test_iterator_len_and_next():
    loader = DataLoader(tensor_dataset(minidl, 10), batch_size=4)
    it = iter(loader)
    assert len(it) == 3
    first = next(it)
    assert first[0].shape == (4, 2, 3)
    assert sum(1 for _ in it) == 2
    with pytest.raises(StopIteration):
        next(it)


def test_getitems_protocol_is_used_when_present():
    class Batched:
        def __init__(self):
            self.calls = []

        def __len__(self):
            return 6

        def __getitem__(self, i):
            raise AssertionError("__getitems__ should have been used")

        def __getitems__(self, keys):
            self.calls.append(list(keys))
            return [float(k) for k in keys]

    ds = Batched()
    batches = [b.tolist() for b in DataLoader(ds, batch_size=4)]
    assert batches == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]] and ds.calls == [[0, 1, 2, 3], [4, 5]]
