"""F-beta and F1 scores (Keras's ``f_score_metrics``)."""
from __future__ import annotations

import numpy as np

from .metric import KERAS_EPSILON, Metric, _sample_weights, _with_labels_one_hot


class FBetaScore(Metric):
    """F-beta score per class, or averaged (Keras ``FBetaScore``).

    ``y_true`` and ``y_pred`` are ``(n, num_classes)`` (integer labels ``(n,)`` are one-hot
    encoded). A prediction is positive when ``y_pred > threshold``; with ``threshold=None``
    (default) the row's maximum is (ties all count, values within 1e-9 of 0 never do).
    ``average=None`` (default) returns one score per class (an array); ``'micro'`` scores the
    summed counts, ``'macro'`` is the mean over classes, ``'weighted'`` weights classes by
    their (weighted) support. As Keras, precision, recall and F are each divided with
    ``1e-7`` added to the denominator.
    """

    _AVERAGES = (None, "micro", "macro", "weighted")

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        owner = type(self).__name__
        if average not in self._AVERAGES:
            raise ValueError(f"{owner}: average must be one of {self._AVERAGES}, got "
                             f"{average!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
            raise ValueError(f"{owner}: beta must be a number > 0, got {beta!r}")
        if threshold is not None and (isinstance(threshold, bool)
                                      or not isinstance(threshold, (int, float))
                                      or not 0.0 < threshold <= 1.0):
            raise ValueError(f"{owner}: threshold must be None or a float with "
                             f"0 < threshold <= 1, got {threshold!r}")
        self.average = average
        self.beta = float(beta)
        self.threshold = None if threshold is None else float(threshold)
        self.reset_state()

    sum_state = ("tp", "fp", "fn", "support")

    def reset_state(self):
        self.tp = self.fp = self.fn = self.support = None
        self._k = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        yp = np.asarray(y_pred, dtype=np.float64)
        yt = _with_labels_one_hot(np.asarray(y_true, dtype=np.float64), yp, self.name)
        if yp.ndim != 2 or yt.shape != yp.shape:
            raise ValueError(f"{self.name}: expects y_true and y_pred of shape (n, "
                             f"num_classes), got y_true {np.shape(y_true)} and y_pred "
                             f"{np.shape(y_pred)}")
        k = yp.shape[1]
        if self._k is not None and self._k != k:
            raise ValueError(f"{self.name}: number of classes changed from {self._k} to {k}")
        self._k = k
        if self.threshold is None:
            pred = (yp >= yp.max(axis=-1, keepdims=True)) & (np.abs(yp) > 1e-9)
        else:
            pred = yp > self.threshold
        pred = pred.astype(np.float64)
        w = _sample_weights(sample_weight, yp.shape[0], self.name)
        w = np.ones(yp.shape[0]) if w is None else w
        axis = None if self.average == "micro" else 0

        def wsum(v):
            return (v * w[:, None]).sum(axis=axis)

        counts = (wsum(pred * yt), wsum(pred * (1 - yt)), wsum((1 - pred) * yt), wsum(yt))
        if self.tp is None:
            self.tp, self.fp, self.fn, self.support = (np.zeros_like(c) for c in counts)
        self.tp = self.tp + counts[0]
        self.fp = self.fp + counts[1]
        self.fn = self.fn + counts[2]
        self.support = self.support + counts[3]

    def result(self):
        if self.tp is None:
            return 0.0
        eps = KERAS_EPSILON
        precision = self.tp / (self.tp + self.fp + eps)
        recall = self.tp / (self.tp + self.fn + eps)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + eps) * (1 + b2)
        if self.average == "weighted":
            return float(np.sum(f * self.support / (np.sum(self.support) + eps)))
        if self.average is not None:
            return float(np.mean(f))
        return np.asarray(f, dtype=np.float64)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "average": self.average,
                "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """:class:`FBetaScore` with ``beta=1`` (Keras ``F1Score``): one score per class by
    default (``average=None``)."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        cfg = super().get_config()
        del cfg["beta"]
        return cfg
