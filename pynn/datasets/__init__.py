"""Datasets: MNIST and Fashion-MNIST from their IDX files, synthetic problems, utilities.

>>> from pynn.datasets import mnist, make_moons, train_test_split, to_categorical
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()        # doctest: +SKIP

Real datasets are looked up in ``path``, ``$PYNN_DATA_DIR/<name>/`` and
``~/.cache/pynn/<name>/`` and downloaded (SHA-256 checked) only when absent.
"""
from . import fashion_mnist, mnist
from ._files import ChecksumError, DatasetError, DatasetNotFoundError
from ._idx import IDXFormatError, parse_idx, read_idx
from ._synthetic import make_circles, make_classification, make_moons, quadrants, xor
from ._utils import to_categorical, train_test_split

__all__ = ["mnist", "fashion_mnist", "make_classification", "make_moons", "make_circles", "xor",
           "quadrants", "train_test_split", "to_categorical", "read_idx", "parse_idx",
           "IDXFormatError", "DatasetError", "DatasetNotFoundError", "ChecksumError"]
