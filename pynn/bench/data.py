"""The data the benchmarks run on: seeded random arrays and the training set."""
from __future__ import annotations

import gzip
import os

import numpy as np

from .constants import ARCH


def normal(rng, shape, dtype, scale=1.0):
    """Standard normal draws from ``rng`` times ``scale``, cast to ``dtype``."""
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(data_dir, n_samples):
    """The first ``n_samples`` images of the MNIST training set in ``data_dir`` (a folder
    holding ``train-images-idx3-ubyte.gz`` and ``train-labels-idx1-ubyte.gz``):
    ``(x, y)``, ``x`` float32 ``(n, 784)`` scaled to [0, 1], ``y`` int64 labels."""
    x = _load_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    y = _load_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    n = min(n_samples, len(x))
    x = x[:n].reshape(n, -1).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x), y[:n].astype(np.int64)


def training_data(n_samples, data_dir=None, seed=0):
    """``(x, y)``: MNIST-shaped random float32 data, or the real MNIST training set
    (:func:`load_mnist`) when ``data_dir`` is given."""
    if data_dir:
        return load_mnist(data_dir, n_samples)
    rng = np.random.default_rng(seed)
    x = rng.random((n_samples, ARCH[0]), dtype=np.float32)
    y = rng.integers(0, ARCH[-1], n_samples)
    return x, y
