"""Probabilistic metrics: KL divergence, Poisson and the cross-entropies as metrics."""
from __future__ import annotations

import numpy as np

from .. import losses as _losses
from .metric import MeanMetricWrapper, _LossMeanMetric, _with_labels_one_hot


class KLDivergence(_LossMeanMetric):
    """Mean Kullback-Leibler divergence ``sum(t * log(t / p))`` (both clipped to [1e-7, 1])."""
    _fn = staticmethod(_losses.kl_divergence)
    _default_name = "kl_divergence"


class Poisson(_LossMeanMetric):
    """Mean Poisson loss ``y_pred - y_true * log(y_pred + 1e-7)``."""
    _fn = staticmethod(_losses.poisson)
    _default_name = "poisson"


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary cross-entropy (the loss's per-sample values) as a metric."""

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0):
        _losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)
        super().__init__(_losses.binary_crossentropy, name=name, dtype=dtype,
                         from_logits=bool(from_logits), label_smoothing=label_smoothing)
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical cross-entropy (one-hot targets) as a metric. Integer labels
    ``(n,)`` against a ``(n, k)`` output are one-hot encoded."""

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0, axis=-1):
        _losses.CategoricalCrossentropy(from_logits=from_logits,
                                        label_smoothing=label_smoothing, axis=axis)
        super().__init__(self._cce, name=name, dtype=dtype, from_logits=bool(from_logits),
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis

    def _cce(self, y_true, y_pred, **kwargs):
        yp = np.asarray(y_pred, dtype=np.float64)
        yt = _with_labels_one_hot(np.asarray(y_true, dtype=np.float64), yp, self.name)
        return _losses.categorical_crossentropy(yt, yp, **kwargs)


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean sparse categorical cross-entropy (integer labels) as a metric."""

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 ignore_class=None, axis=-1):
        _losses.SparseCategoricalCrossentropy(from_logits=from_logits,
                                              ignore_class=ignore_class)
        super().__init__(_losses.sparse_categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=bool(from_logits), axis=axis)
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class
        self.axis = axis

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class, "axis": self.axis}
