"""``minidl.data``: datasets, samplers and the ``DataLoader`` (PyTorch's ``torch.utils.data``),
the MNIST and digits image datasets, and Keras-style text tokenization.

    from minidl.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(images, labels), batch_size=128, shuffle=True)
    for x, y in loader:
        ...

Three ideas, one file each: a *dataset* says what sample ``i`` is (``dataset.py``), a
*sampler* says in which order to visit the samples (``sampler.py``), and the *loader* fetches
them in that order and *collates* them into batches (``dataloader.py``). ``datasets/`` holds
ready-made datasets, ``text.py`` turns text into padded integer sequences.

This package sits beside ``nn`` and ``optim``: it uses tensors and ops, and nothing above them.
"""

from . import datasets, text
from .dataloader import DataLoader, default_collate, default_convert
from .dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "BatchSampler",
    "ChainDataset",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "datasets",
    "default_collate",
    "default_convert",
    "random_split",
    "text",
]
