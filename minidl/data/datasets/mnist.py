"""MNIST: 70,000 handwritten digits (28 x 28 grayscale), read from the original IDX files.

The data is four files, two per split (``train``: 60,000 images; ``t10k``: the 10,000 test
images)::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz

``MNIST(root)`` looks for them in ``root`` and in ``root/MNIST/raw`` (torchvision's layout),
gzipped or not. ``MNIST(root, download=True)`` fetches the missing ones into ``root`` from the
canonical mirrors, checks each against its published MD5 checksum (the same ones torchvision
uses), and writes it atomically -- to a temporary file, renamed into place only once the
checksum matches -- so an interrupted or corrupted download never leaves a file that looks
complete.

Samples follow ``images.py``: ``(1 x 28 x 28 float32 tensor in [0, 1], int label)``.
MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA 3.0).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...tensor import Tensor
from .idx import IDXError, read_idx
from .images import ImageDataset

__all__ = ["MNIST", "MIRRORS", "RESOURCES", "download_mnist", "find_mnist_file"]

#: Where the files are fetched from, tried in order.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: file name -> MD5 of the gzipped file as published (torchvision's table).
RESOURCES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

_SPLITS = {True: "train", False: "t10k"}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049


def _split_files(train: bool) -> tuple[str, str]:
    prefix = _SPLITS[train]
    return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"


def _search_folders(root: Path) -> list[Path]:
    return [root, root / "MNIST" / "raw"]


def find_mnist_file(root: str | os.PathLike, name: str) -> Path | None:
    """The path of MNIST file ``name`` (e.g. ``"t10k-images-idx3-ubyte.gz"``) under ``root``, or
    None. Looks in ``root`` then ``root/MNIST/raw``; in each, the uncompressed file (what
    torchvision extracts) is preferred to the ``.gz``."""
    stem = name.removesuffix(".gz")
    for folder in _search_folders(Path(root)):
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _fetch(url: str, dest: Path, md5: str, timeout: float) -> None:
    """Download ``url`` to ``dest``, atomically, if its MD5 is ``md5``; raise otherwise."""
    import urllib.request  # imported on first download: it pulls in http and ssl (~10 ms)

    request = urllib.request.Request(url, headers={"User-Agent": "minidl"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as f:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
            if digest.hexdigest() != md5:
                raise ValueError(f"MD5 checksum mismatch: expected {md5}, got {digest.hexdigest()}")
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):  # no network, refused, DNS failure, ...
        return f"{err.reason}"
    return f"{err}"


def download_mnist(
    root: str | os.PathLike,
    files: Sequence[str] | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> list[Path]:
    """Download MNIST files into ``root`` (all four by default), skipping those already there.

    Each file is tried on each mirror in turn until one serves it with the right checksum.
    Returns the paths of the requested files. Raises ``RuntimeError`` naming every mirror's
    failure (no network, HTTP error, checksum mismatch) if a file cannot be had.
    """
    import http.client

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    mirrors = list(MIRRORS if mirrors is None else mirrors)
    paths = []
    for name in RESOURCES if files is None else files:
        if name not in RESOURCES:
            raise ValueError(f"download_mnist: unknown file {name!r}; MNIST's files are {list(RESOURCES)}")
        found = find_mnist_file(root, name)
        if found is not None:
            paths.append(found)
            continue
        dest = root / name
        failures = []
        for mirror in mirrors:
            url = mirror + name
            try:
                _fetch(url, dest, RESOURCES[name], timeout)
                break
            except (OSError, http.client.HTTPException, ValueError) as err:
                failures.append(f"  {url}: {_describe(err)}")
        else:
            raise RuntimeError(
                f"MNIST: could not download {name}:\n"
                + "\n".join(failures)
                + f"\nCheck the network connection, or download the file by hand into {root}"
            )
        paths.append(dest)
    return paths


class MNIST(ImageDataset):
    """The MNIST training set (``train=True``, 60,000 images) or test set (10,000).

    ``dataset[i]`` is ``(image, label)``: a float32 tensor ``1 x 28 x 28`` in ``[0, 1]`` (the
    pixels divided by 255) and an int in ``0..9``, then ``transform`` / ``target_transform``.
    ``data`` (uint8, ``N x 28 x 28``) and ``targets`` (int64, ``N``) are the raw NumPy arrays;
    ``as_tensors()`` gives the whole split as tensors for a ``TensorDataset``::

        train = MNIST("data", train=True, download=True)
        loader = DataLoader(TensorDataset(*train.as_tensors()), batch_size=128, shuffle=True)
    """

    classes = [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ]

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        transform: Callable[[Tensor], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = False,
    ) -> None:
        self.root = Path(root).expanduser()
        self.train = bool(train)
        names = _split_files(self.train)
        if download:
            download_mnist(self.root, names)
        paths = []
        for name in names:
            path = find_mnist_file(self.root, name)
            if path is None:
                folders = " or ".join(str(f) for f in _search_folders(self.root))
                raise FileNotFoundError(
                    f"MNIST: {name} (or {name.removesuffix('.gz')}) not found in {folders}. "
                    f"Pass download=True to fetch it from {MIRRORS[0]}, or put the IDX files there by hand"
                )
            paths.append(path)
        images, labels = _read_images(paths[0]), _read_labels(paths[1])
        if images.shape[0] != labels.shape[0]:
            raise IDXError(
                f"MNIST: {paths[0]} holds {images.shape[0]} images but {paths[1]} holds {labels.shape[0]} labels; "
                "one of the files is from another split or damaged"
            )
        super().__init__(images, labels.astype(np.int64), 255, transform, target_transform)

    def __repr__(self) -> str:
        return (
            f"Dataset MNIST\n    Number of datapoints: {len(self)}\n    Root location: {self.root}\n"
            f"    Split: {'Train' if self.train else 'Test'}"
        )


def _read_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    # Magic number 2051 is exactly "uint8, 3 dimensions"; read_idx has checked the rest.
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IDXError(
            f"MNIST: {path} holds {images.dtype} {images.shape}, but MNIST image files hold uint8 N x 28 x 28 "
            f"(magic number {_IMAGE_MAGIC}); the file is not what its name says"
        )
    return images


def _read_labels(path: Path) -> np.ndarray:
    labels = read_idx(path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXError(
            f"MNIST: {path} holds {labels.dtype} {labels.shape}, but MNIST label files hold uint8 N "
            f"(magic number {_LABEL_MAGIC}); the file is not what its name says"
        )
    if labels.size and labels.max() > 9:
        raise IDXError(f"MNIST: {path} has a label {int(labels.max())}; MNIST labels are 0..9")
    return labels
