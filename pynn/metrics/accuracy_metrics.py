"""Accuracy metrics: exact, binary, categorical, sparse categorical and top-k."""
from __future__ import annotations

import numpy as np

from .metric import MeanMetricWrapper, _rowmean, _same_rank


def accuracy(y_true, y_pred):
    """Exact-match accuracy per sample: ``mean(y_true == y_pred)`` over the last axis."""
    y_true, y_pred = _same_rank(np.asarray(y_true), np.asarray(y_pred))
    return _rowmean(y_true == y_pred)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Per-sample accuracy of ``y_pred > threshold`` against 0/1 targets."""
    y_true, y_pred = _same_rank(np.asarray(y_true), np.asarray(y_pred))
    return _rowmean(y_true == (y_pred > threshold).astype(y_true.dtype))


def categorical_accuracy(y_true, y_pred):
    """``argmax(y_true) == argmax(y_pred)`` per sample (one-hot targets)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError("categorical_accuracy: y_true must be one-hot with the same shape as "
                         f"y_pred, got y_true {y_true.shape} and y_pred {y_pred.shape}")
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """``y_true == argmax(y_pred)`` per sample (integer targets)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError("sparse_categorical_accuracy: y_true must hold integer labels of shape "
                         f"{y_pred.shape[:-1]} for y_pred {y_pred.shape}, got {y_true.shape}")
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float64)


class Accuracy(MeanMetricWrapper):
    """How often ``y_pred`` equals ``y_true`` exactly (Keras ``Accuracy``)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches the 0/1 targets."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=float(threshold))
        self.threshold = float(threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often ``argmax(y_pred)`` matches ``argmax(y_true)`` (one-hot targets)."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often ``argmax(y_pred)`` matches the integer labels."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class _AutoAccuracy(MeanMetricWrapper):
    """``'accuracy'`` whose kind is chosen from the shapes on the first update (Keras 3 rule).

    Output width 1 -> binary accuracy (threshold 0.5); integer targets with one rank fewer
    than the output (or a trailing 1) -> sparse categorical; otherwise categorical.
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(self._resolve, name=name, dtype=dtype)
        self.kind = None

    def _resolve(self, y_true, y_pred):
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if self.kind is None:
            if y_pred.ndim <= 1 or y_pred.shape[-1] == 1:
                self.kind = "binary"
            elif y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
                self.kind = "sparse_categorical"
            else:
                self.kind = "categorical"
        fn = {"binary": binary_accuracy, "sparse_categorical": sparse_categorical_accuracy,
              "categorical": categorical_accuracy}[self.kind]
        return fn(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def _in_top_k(labels, y_pred, k):
    """Keras's ``in_top_k``: the label's score is at least the k-th largest (ties count);
    ``k`` at or beyond the number of classes makes every label a match."""
    yp = np.asarray(y_pred, dtype=np.float64)
    classes = yp.shape[-1]
    yp = yp.reshape(-1, classes)
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != yp.shape[0]:
        raise ValueError(f"top-k accuracy: {labels.shape[0]} labels for {yp.shape[0]} rows of "
                         f"predictions")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"top-k accuracy: labels must be in [0, {classes}), got "
                         f"[{labels.min()}, {labels.max()}]")
    kk = min(int(k), classes)
    kth = -np.partition(-yp, kk - 1, axis=-1)[:, kk - 1]
    return (yp[np.arange(yp.shape[0]), labels.astype(np.intp)] >= kth).astype(np.float64)


def _check_k(k, owner):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{owner}: k must be a positive integer, got {k!r}")
    return int(k)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Per sample: is ``argmax(y_true)`` among the ``k`` largest predictions (one-hot)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError("top_k_categorical_accuracy: y_true must be one-hot with the shape of "
                         f"y_pred, got y_true {y_true.shape} and y_pred {y_pred.shape}")
    matches = _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)
    return matches.reshape(y_true.shape[:-1])


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """Per sample: is the integer label among the ``k`` largest predictions. With
    ``from_sorted_ids``, ``y_pred`` holds class ids sorted by score (best first)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError("sparse_top_k_categorical_accuracy: y_true must hold integer labels "
                         f"of shape {y_pred.shape[:-1]} for y_pred {y_pred.shape}, got "
                         f"{y_true.shape}")
    if from_sorted_ids:
        return np.any(y_true[..., None] == y_pred[..., :k], axis=-1).astype(np.float64)
    return _in_top_k(y_true, y_pred, k).reshape(y_true.shape)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target is among the ``k`` largest predictions (Keras)."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        k = _check_k(k, "TopKCategoricalAccuracy")
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the ``k`` largest predictions (Keras)."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        k = _check_k(k, "SparseTopKCategoricalAccuracy")
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k,
                         from_sorted_ids=bool(from_sorted_ids))
        self.k = k
        self.from_sorted_ids = bool(from_sorted_ids)

    def get_config(self):
        cfg = {"name": self.name, "dtype": self.dtype, "k": self.k}
        if self.from_sorted_ids:
            cfg["from_sorted_ids"] = True
        return cfg
