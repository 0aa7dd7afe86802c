"""Data utilities: ``train_test_split`` (scikit-learn's) and ``to_categorical`` (Keras's)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ._synthetic import check_random_state

__all__ = ["train_test_split", "to_categorical"]


def _num_samples(a):
    if hasattr(a, "shape") and len(a.shape) > 0:
        return int(a.shape[0])
    if hasattr(a, "__len__"):
        return len(a)
    raise TypeError(f"train_test_split: expected array-like inputs, got {type(a).__name__}")


def _take(a, idx):
    if isinstance(a, np.ndarray) or hasattr(a, "shape"):
        return a[idx]
    return [a[i] for i in idx]


def _split_sizes(n, test_size, train_size):
    """scikit-learn's ``_validate_shuffle_split`` (default test fraction 0.25)."""
    if test_size is None and train_size is None:
        test_size = 0.25

    def kind(v):
        if v is None:
            return None
        if isinstance(v, numbers.Integral):
            return "i"
        if isinstance(v, numbers.Real):
            return "f"
        raise ValueError(f"train_test_split: sizes must be int or float, got {v!r}")

    tk, rk = kind(test_size), kind(train_size)
    for name, v, k in (("test_size", test_size, tk), ("train_size", train_size, rk)):
        if (k == "i" and not 0 < v < n) or (k == "f" and not 0 < v < 1):
            raise ValueError(f"train_test_split: {name}={v} should be either positive and "
                             f"smaller than the number of samples {n} or a float in (0, 1)")
    if tk == "f" and rk == "f" and train_size + test_size > 1:
        raise ValueError(f"train_test_split: test_size + train_size = "
                         f"{test_size + train_size} > 1")
    n_test = math.ceil(test_size * n) if tk == "f" else test_size
    n_train = math.floor(train_size * n) if rk == "f" else train_size
    if train_size is None:
        n_train = n - n_test
    elif test_size is None:
        n_test = n - n_train
    if n_train + n_test > n:
        raise ValueError(f"train_test_split: train ({n_train}) + test ({n_test}) samples "
                         f"exceed the {n} available")
    if n_train == 0:
        raise ValueError(f"train_test_split: with n_samples={n}, test_size={test_size} and "
                         f"train_size={train_size} the train set would be empty")
    return int(n_train), int(n_test)


def _approximate_mode(class_counts, n_draws, rng):
    """scikit-learn's draw of per-class counts for a stratified split."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need -= add_now
            if need == 0:
                break
    return floored.astype(int)


def train_test_split(*arrays, test_size=None, train_size=None, random_state=None, shuffle=True,
                     stratify=None):
    """Split arrays into random train and test subsets (``sklearn.model_selection``'s).

    ``test_size`` defaults to 0.25 (a float is a fraction, rounded up; an int a count).
    With the same integer ``random_state`` the split equals scikit-learn's, stratified or
    not. Returns ``[a_train, a_test, b_train, b_test, ...]``.
    """
    if not arrays:
        raise ValueError("train_test_split: at least one array required")
    lengths = [_num_samples(a) for a in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"train_test_split: inputs have inconsistent numbers of samples: "
                         f"{lengths}")
    n = lengths[0]
    n_train, n_test = _split_sizes(n, test_size, train_size)
    if not shuffle:
        if stratify is not None:
            raise ValueError("train_test_split: stratify needs shuffle=True")
        train, test = np.arange(n_train), np.arange(n_train, n_train + n_test)
    elif stratify is None:
        perm = check_random_state(random_state).permutation(n)
        test, train = perm[:n_test], perm[n_test:n_test + n_train]
    else:
        y = np.asarray(stratify)
        if y.ndim == 2:  # one-hot / multi-column: stratify on the rows as strings
            y = np.array([" ".join(row.astype(str)) for row in y])
        classes, y_idx = np.unique(y, return_inverse=True)
        counts = np.bincount(y_idx)
        if counts.min() < 2:
            raise ValueError("train_test_split: the least populated class in stratify has "
                             "only 1 member; each class needs at least 2")
        if n_train < len(classes) or n_test < len(classes):
            raise ValueError(f"train_test_split: train ({n_train}) and test ({n_test}) sizes "
                             f"must each be at least the number of classes ({len(classes)})")
        class_indices = np.split(np.argsort(y_idx, kind="mergesort"), np.cumsum(counts)[:-1])
        rng = check_random_state(random_state)
        n_i = _approximate_mode(counts, n_train, rng)
        t_i = _approximate_mode(counts - n_i, n_test, rng)
        train, test = [], []
        for i in range(len(classes)):
            perm = class_indices[i].take(rng.permutation(counts[i]), mode="clip")
            train.extend(perm[:n_i[i]])
            test.extend(perm[n_i[i]:n_i[i] + t_i[i]])
        train, test = rng.permutation(train), rng.permutation(test)
    out = []
    for a in arrays:
        out += [_take(a, train), _take(a, test)]
    return out


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer labels: shape ``y.shape + (num_classes,)`` (a trailing axis of
    size 1 is dropped first, as Keras does). ``num_classes`` defaults to ``max(y) + 1``."""
    y = np.asarray(y)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("to_categorical: y must hold integer class labels")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"to_categorical: y must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    y = y.reshape(-1)
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {y.min()}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: label {y.max()} out of range for "
                         f"num_classes={num_classes}")
    out = np.zeros((y.size, int(num_classes)), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out.reshape(shape + (int(num_classes),))
