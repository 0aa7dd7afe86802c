"""Fashion-MNIST (Zalando, MIT licence), read from the original IDX files.

Same layout as :mod:`pynn.datasets.mnist`: ``((x_train, y_train), (x_test, y_test))`` uint8,
``(60000, 28, 28)`` / ``(10000, 28, 28)``, labels 0..9 (:data:`CLASS_NAMES`).
"""
from __future__ import annotations

import os

from . import _mnist_like
from ._files import DatasetSpec, locate

__all__ = ["load_data", "find", "SPEC", "CLASS_NAMES"]

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")

SPEC = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    files={
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    mirrors=[
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ],
)


def load_data(path=None, *, download=True):
    """Load Fashion-MNIST: ``((x_train, y_train), (x_test, y_test))`` uint8 arrays.

    Files are searched in ``path`` (or ``path/fashion-mnist/``), else
    ``$PYNN_DATA_DIR/fashion-mnist/``, else ``~/.cache/pynn/fashion-mnist/``, and downloaded
    (SHA-256 checked) into ``path`` or the cache when missing unless ``download=False``.
    """
    return _mnist_like.load(SPEC, path=path, download=download)


def find(path=None):
    """The directory that :func:`load_data` would read, or None when the files are absent."""
    found = locate(SPEC, path)
    return None if found is None else os.path.dirname(next(iter(found.values())))
