"""Ready-made datasets: ``MNIST`` (read from its IDX files, downloadable), ``Digits`` (8 x 8
digits bundled with scikit-learn, offline), ``load_mnist_or_digits`` (whichever is at hand),
and the IDX reader and writer they rest on."""

from .digits import Digits, ImageSplits, load_mnist_or_digits, stratified_split
from .idx import IDXError, parse_idx, read_idx, write_idx
from .images import ImageDataset
from .mnist import MNIST, download_mnist, find_mnist_file

__all__ = [
    "MNIST",
    "Digits",
    "IDXError",
    "ImageDataset",
    "ImageSplits",
    "download_mnist",
    "find_mnist_file",
    "load_mnist_or_digits",
    "parse_idx",
    "read_idx",
    "stratified_split",
    "write_idx",
]
