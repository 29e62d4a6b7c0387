"""Digits: 1,797 handwritten digits of 8 x 8 pixels that work offline, and a loader that
prefers MNIST when its files are at hand.

The images are scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits"
test set, bundled inside the scikit-learn package -- so a demo or a test that uses them runs
on a fresh machine with no download. Each pixel is a count from 0 to 16 (the original 32 x 32
bitmaps were divided into 4 x 4 blocks and the set pixels counted), so images are divided by
16 to lie in ``[0, 1]``. Install with ``pip install "minidl[datasets]"`` (scikit-learn).

The set has no official train/test split, so ``Digits()`` is all 1,797 images (as
scikit-learn's ``load_digits``). ``Digits(train=True)`` and ``Digits(train=False)`` are a fixed
*stratified* split -- each class divided in the same proportion, ``test_fraction``
to the test side -- drawn with its own seed, so it does not depend on (or disturb) minidl's
global random generator, and the two halves never overlap.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...tensor import Tensor
from ..dataset import TensorDataset
from .images import ImageDataset
from .mnist import MNIST, find_mnist_file

__all__ = ["Digits", "ImageSplits", "load_mnist_or_digits", "stratified_split"]


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` that send ``round(test_fraction * count)`` samples of every
    class to the test side, chosen at random with ``seed``; each side in ascending order."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"stratified_split: test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[: int(round(test_fraction * len(members)))])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test)] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "Digits needs scikit-learn, which bundles the 8x8 digits data: install the datasets extra with "
            "pip install 'minidl[datasets]' (or pip install scikit-learn)"
        ) from None
    bunch = load_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)


class Digits(ImageDataset):
    """scikit-learn's 8 x 8 handwritten digits: 1,797 images, 10 classes, offline.

    By default (``train=None``) all 1,797 images; ``train=True`` / ``False`` selects a fixed
    stratified split (``test_fraction`` of each class to the test side, drawn with ``split_seed``).
    ``dataset[i]`` is ``(image, label)``: a float32 tensor ``1 x 8 x 8`` in ``[0, 1]`` (counts
    divided by 16) and an int in ``0..9``. ``data`` (uint8 0..16, ``N x 8 x 8``), ``targets``
    (int64) and ``as_tensors()`` are as for ``MNIST``.
    """

    classes = [str(d) for d in range(10)]

    def __init__(
        self,
        train: bool | None = None,
        transform: Callable[[Tensor], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        *,
        test_fraction: float = 0.2,
        split_seed: int = 0,
    ) -> None:
        images, labels = _load_sklearn_digits()
        if train is not None:
            train_idx, test_idx = stratified_split(labels, test_fraction, split_seed)
            keep = train_idx if train else test_idx
            images, labels = images[keep], labels[keep]
        self.train = train
        super().__init__(images, labels, 16, transform, target_transform)

    def __repr__(self) -> str:
        split = {True: "Train", False: "Test", None: "All"}[self.train]
        return f"Dataset Digits\n    Number of datapoints: {len(self)}\n    Split: {split}"


@dataclass
class ImageSplits:
    """A train/test pair of image classification tensors, with what they are."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    image_shape: tuple[int, ...]

    def train_dataset(self) -> TensorDataset:
        return TensorDataset(self.x_train, self.y_train)

    def test_dataset(self) -> TensorDataset:
        return TensorDataset(self.x_test, self.y_test)


_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def load_mnist_or_digits(
    root: str | os.PathLike | None = None,
    *,
    flatten: bool = False,
    download: bool = False,
    split_seed: int = 0,
) -> ImageSplits:
    """Real handwritten digits as tensors, whatever this machine has.

    In order of preference:

    1. MNIST, when ``root`` holds all four IDX files (or ``download=True`` fetches them):
       60,000 training and 10,000 test images of 28 x 28;
    2. MNIST's test set alone, when ``root`` holds only the two ``t10k`` files: its 10,000
       images split 8,000 / 2,000, stratified, with ``split_seed`` (``name`` says so: the
       numbers are not comparable with results on the official split);
    3. the offline 8 x 8 ``Digits`` (1,438 / 359).

    Images are float32 in ``[0, 1]``, ``N x 1 x H x W`` (``N x H*W`` with ``flatten=True``);
    labels are int64. ``ImageSplits.name`` records which data was used.
    """
    if root is not None:
        have = {name: find_mnist_file(root, name) is not None for name in _MNIST_FILES}
        if download or all(have.values()):
            train = MNIST(root, train=True, download=download)
            test = MNIST(root, train=False, download=download)
            return _splits("MNIST", train, test, flatten)
        if have["t10k-images-idx3-ubyte.gz"] and have["t10k-labels-idx1-ubyte.gz"]:
            test_set = MNIST(root, train=False)
            x, y = test_set.as_arrays(flatten)
            tr, te = stratified_split(test_set.targets, 0.2, split_seed)
            parts = (Tensor(x[tr]), Tensor(y[tr]), Tensor(x[te]), Tensor(y[te]))
            return ImageSplits(f"MNIST t10k split {len(tr)}/{len(te)}", *parts, 10, (1, 28, 28))
    try:
        train, test = Digits(train=True, split_seed=split_seed), Digits(train=False, split_seed=split_seed)
    except ImportError as err:
        where = f"no MNIST files in {root}, and " if root is not None else ""
        raise ImportError(f"load_mnist_or_digits: {where}{err}") from None
    return _splits("Digits 8x8", train, test, flatten)


def _splits(name: str, train: ImageDataset, test: ImageDataset, flatten: bool) -> ImageSplits:
    x_train, y_train = train.as_tensors(flatten)
    x_test, y_test = test.as_tensors(flatten)
    return ImageSplits(name, x_train, y_train, x_test, y_test, 10, (1, *train.data.shape[1:]))
