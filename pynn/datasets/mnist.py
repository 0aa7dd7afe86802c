"""MNIST handwritten digits, read from the original IDX files (Keras's ``load_data`` layout).

>>> from pynn.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()   # doctest: +SKIP
>>> x_train.shape, x_train.dtype, y_train.shape                  # doctest: +SKIP
((60000, 28, 28), dtype('uint8'), (60000,))

The MNIST database is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges
(CC BY-SA 3.0). The 10,000-image test set ships inside pynn (``pynn/data``) for offline use:
see :func:`load_embedded`.
"""
from __future__ import annotations

import os

import numpy as np

from . import _mnist_like
from ._files import DatasetSpec, DatasetNotFoundError, locate

__all__ = ["load_data", "load_embedded", "load_data_or_embedded", "find", "SPEC", "EMBEDDED_DIR"]

SPEC = DatasetSpec(
    name="mnist",
    title="MNIST",
    files={
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    mirrors=[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
)

#: Directory of the embedded test-set files.
EMBEDDED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def load_data(path=None, *, download=True):
    """Load MNIST: ``((x_train, y_train), (x_test, y_test))``.

    ``x_*`` are uint8 arrays ``(60000, 28, 28)`` / ``(10000, 28, 28)`` with pixels 0..255,
    ``y_*`` uint8 labels 0..9. The four original IDX ``.gz`` files (or their uncompressed
    versions) are read from ``path`` (a directory, or one holding ``mnist/``), else
    ``$PYNN_DATA_DIR/mnist/``, else ``~/.cache/pynn/mnist/``. When absent they are downloaded
    (SHA-256 checked) into ``path`` or the cache unless ``download=False``, in which case
    :class:`~pynn.datasets.DatasetNotFoundError` says where to put them.
    """
    return _mnist_like.load(SPEC, path=path, download=download)


def find(path=None):
    """The directory that :func:`load_data` would read, or None when the files are absent."""
    found = locate(SPEC, path)
    return None if found is None else os.path.dirname(next(iter(found.values())))


def load_embedded(train_size=8000, seed=0):
    """The MNIST test set shipped with pynn, split at random into train and test parts.

    Returns ``((x_train, y_train), (x_test, y_test))`` with ``train_size`` and
    ``10000 - train_size`` samples (uint8, like :func:`load_data`); the split is a
    permutation drawn from ``numpy.random.default_rng(seed)``, so it is reproducible.
    """
    x, y = _mnist_like.read_pair(os.path.join(EMBEDDED_DIR, "t10k-images-idx3-ubyte.gz"),
                                 os.path.join(EMBEDDED_DIR, "t10k-labels-idx1-ubyte.gz"))
    n = x.shape[0]
    if not 0 < int(train_size) < n:
        raise ValueError(f"load_embedded: train_size must be in [1, {n - 1}], got {train_size}")
    order = np.random.default_rng(seed).permutation(n)
    tr, te = order[:int(train_size)], order[int(train_size):]
    return (x[tr], y[tr]), (x[te], y[te])


def load_data_or_embedded(path=None, *, download=False, train_size=8000, seed=0):
    """Full MNIST when available, else the embedded test set split ``train_size`` / rest.

    Returns ``(data, source)`` where ``data`` is the Keras tuple and ``source`` a sentence
    saying which data was loaded (for printing). An explicit ``path`` that lacks the files
    raises instead of falling back.
    """
    try:
        data = load_data(path, download=download)
        return data, f"full MNIST from {find(path) or path or SPEC.name}"
    except DatasetNotFoundError:
        if path is not None:
            raise
    data = load_embedded(train_size=train_size, seed=seed)
    n_test = data[1][0].shape[0]
    return data, (f"full MNIST not found (set PYNN_DATA_DIR or pass a data directory); using "
                  f"the embedded MNIST test set split {train_size:,} train / {n_test:,} test "
                  f"(seed {seed})")
