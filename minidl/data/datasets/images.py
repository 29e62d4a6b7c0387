"""A labelled set of small grayscale images held in memory: the common base of MNIST and Digits.

The images are stored as they come, as integers (``data``: uint8, ``N x H x W``), and the
labels as ``targets`` (int64, ``N``). Both are NumPy arrays: minidl has no uint8 dtype, and a
float32 copy of the whole set would take four times the memory. Conversion happens on the way
out:

* ``dataset[i]`` is ``(image, label)``: ``image`` a float32 tensor of shape ``1 x H x W``
  (one channel, as a convolution expects) scaled to ``[0, 1]`` by dividing by the largest
  possible pixel value, and ``label`` a Python int -- what torchvision gives after its
  ``ToTensor`` transform. ``transform`` and ``target_transform``, if given, are applied to them.
* ``as_tensors()`` converts the whole set at once, for training on it through a
  ``TensorDataset`` (the ``DataLoader``'s fast path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...tensor import Tensor
from ..dataset import Dataset

__all__ = ["ImageDataset"]


class ImageDataset(Dataset):
    """``(image, label)`` samples from uint8 images ``data`` (N x H x W) and int ``targets`` (N).

    ``max_value`` is the brightest possible pixel (255 for MNIST, 16 for the 8x8 digits);
    images are divided by it, so every pixel lies in ``[0, 1]``.
    """

    #: the class names, index = label
    classes: list[str] = []

    def __init__(
        self,
        data: np.ndarray,
        targets: np.ndarray,
        max_value: int,
        transform: Callable[[Tensor], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        if data.ndim != 3 or targets.shape != (data.shape[0],):
            raise ValueError(
                f"{type(self).__name__}: expected images N x H x W and N labels, got {data.shape} and {targets.shape}"
            )
        self.data = data
        self.targets = targets
        self.max_value = max_value
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        # Divide (not multiply by 1/max): the same rounding as torchvision's ToTensor, x.float() / 255.
        image = Tensor((self.data[index] / np.float32(self.max_value))[None])
        target = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def as_arrays(self, flatten: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """All images as one float32 array in ``[0, 1]`` (``N x 1 x H x W``, or ``N x H*W`` with
        ``flatten=True``) and all labels as int64: a fresh copy, without the transforms."""
        images = self.data / np.float32(self.max_value)
        shape = (len(self), -1) if flatten else (len(self), 1, *self.data.shape[1:])
        return images.reshape(shape), self.targets.astype(np.int64)

    def as_tensors(self, flatten: bool = False) -> tuple[Tensor, Tensor]:
        """``as_arrays`` as minidl tensors, ready for ``TensorDataset(*dataset.as_tensors())``."""
        images, labels = self.as_arrays(flatten)
        return Tensor(images), Tensor(labels)
