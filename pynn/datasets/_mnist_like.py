"""Shared loader for the MNIST-format datasets (four IDX files)."""
from __future__ import annotations

import numpy as np

from ._files import fetch
from ._idx import IDXFormatError, read_idx

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def read_pair(images_path, labels_path, n_classes=10, rows=28, cols=28):
    """Images ``(n, rows, cols)`` uint8 and labels ``(n,)`` uint8 from two IDX files."""
    x = read_idx(images_path)
    y = read_idx(labels_path)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (rows, cols):
        raise IDXFormatError(f"{images_path}: expected uint8 images (n, {rows}, {cols}) "
                             f"(magic 2051), got {x.dtype} {x.shape}")
    if y.dtype != np.uint8 or y.ndim != 1:
        raise IDXFormatError(f"{labels_path}: expected uint8 labels (n,) (magic 2049), got "
                             f"{y.dtype} {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise IDXFormatError(f"{images_path} holds {x.shape[0]} images but {labels_path} "
                             f"holds {y.shape[0]} labels")
    if y.size and int(y.max()) >= n_classes:
        raise IDXFormatError(f"{labels_path}: label {int(y.max())} out of range "
                             f"[0, {n_classes})")
    return x, y


def load(spec, path=None, download=True):
    """Keras layout ``((x_train, y_train), (x_test, y_test))`` for an MNIST-format spec."""
    paths = fetch(spec, path=path, download=download)
    train = read_pair(paths[TRAIN_IMAGES], paths[TRAIN_LABELS])
    test = read_pair(paths[TEST_IMAGES], paths[TEST_LABELS])
    return train, test
