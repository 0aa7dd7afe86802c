"""Metrics: streaming Keras-style ``Metric`` objects and standalone report functions.

Streaming metrics follow Keras 3: ``update_state(y_true, y_pred, sample_weight=None)``
accumulates (in float64), ``result()`` returns a Python float, ``reset_state()`` clears.
During ``fit``/``evaluate`` the model passes ``y_true`` as prepared by the loss
(integer labels ``(n,)`` for sparse losses, ``(n, k)`` floats otherwise) and ``y_pred``
as the model's *probability* output ``(n, k)``; both are NumPy arrays. Metrics run on
predictions once per batch, so they use plain NumPy rather than backend ops.

The standalone functions (:func:`confusion_matrix`, :func:`precision_recall_fscore`,
:func:`classification_report`) take class labels (or one-hot / probability rows,
which are arg-maxed) and give the same numbers and layout as scikit-learn's.

>>> from pynn.metrics import get
>>> m = get("accuracy", loss="sparse_categorical_crossentropy")
>>> type(m).__name__, m.name
('SparseCategoricalAccuracy', 'accuracy')
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from . import losses as _losses

__all__ = [
    "Metric", "MeanMetricWrapper", "Mean", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "Precision", "Recall", "F1Score", "FBetaScore", "TruePositives",
    "FalsePositives", "TrueNegatives", "FalseNegatives", "confusion_counts", "AUC",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "RootMeanSquaredError",
    "MeanAbsolutePercentageError", "R2Score", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy", "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy", "mean_absolute_percentage_error", "cosine_similarity",
    "MeanSquaredLogarithmicError", "CosineSimilarity", "LogCoshError", "Hinge", "SquaredHinge",
    "CategoricalHinge", "KLDivergence", "Poisson", "MeanSquaredError",
    "MeanAbsoluteError", "accuracy", "binary_accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "get", "serialize", "deserialize", "confusion_matrix",
    "precision_recall_fscore", "classification_report",
]


def _snake(name):
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _sample_weights(sample_weight, n, name):
    """Per-sample float64 weights of shape ``(n,)``; ``None`` gives ones."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        return np.full(n, float(w))
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"{name}: sample_weight must have shape ({n},) to match the batch, "
                         f"got {w.shape}")
    return w


def _same_rank(y_true, y_pred):
    """Keras's squeeze_or_expand_to_same_rank for a (n,) vs (n, 1) mismatch."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true.reshape(y_pred.shape)
    elif y_pred.ndim == y_true.ndim - 1 and y_true.shape[-1] == 1:
        y_pred = y_pred.reshape(y_true.shape)
    return y_true, y_pred


# ---------------------------------------------------------------------------------------------
# Per-sample metric functions (Keras names); each returns float64 values of shape (n,)
# ---------------------------------------------------------------------------------------------
def _rowmean(values):
    values = np.asarray(values, dtype=np.float64)
    return values.mean(axis=-1) if values.ndim > 1 else values


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


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _same_rank(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    return _rowmean((y_true - y_pred) ** 2)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _same_rank(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    return _rowmean(np.abs(y_true - y_pred))


# ---------------------------------------------------------------------------------------------
# Metric objects
# ---------------------------------------------------------------------------------------------
class Metric:
    """Base class: accumulate over batches, ``result()`` is a Python float.

    Subclasses implement ``update_state``, ``result`` and ``reset_state``.
    Calling a metric updates its state and returns the current result (Keras).
    """

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.dtype = dtype

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class Mean(Metric):
    """Weighted mean of the values passed to ``update_state(values, sample_weight=None)``."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += float(values.size)
            return
        w = np.asarray(sample_weight, dtype=np.float64)
        try:
            w = np.broadcast_to(w.reshape(w.shape + (1,) * (values.ndim - w.ndim)), values.shape)
        except ValueError:
            raise ValueError(f"{self.name}: sample_weight of shape {np.shape(sample_weight)} "
                             f"does not broadcast to values of shape {values.shape}") from None
        self.total += float((values * w).sum())
        self.count += float(w.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """Weighted mean over samples of ``fn(y_true, y_pred, **kwargs)`` (per-sample values)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "metric"), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = np.asarray(self._fn(y_true, y_pred, **self._fn_kwargs), dtype=np.float64)
        if values.ndim == 0:
            values = values.reshape(1)
        n = values.shape[0]
        w = _sample_weights(sample_weight, n, self.name)
        if values.ndim > 1:
            values = values.reshape(n, -1).mean(axis=1)
        if w is None:
            self.total += float(values.sum())
            self.count += float(n)
        else:
            self.total += float(values @ w)
            self.count += float(w.sum())

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, **self._fn_kwargs}


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


class MeanSquaredError(MeanMetricWrapper):
    """Mean of ``(y_true - y_pred) ** 2``."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of ``|y_true - y_pred|``."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)

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


# ---------------------------------------------------------------------------------------------
# Confusion-matrix counts (Keras's metrics_utils.update_confusion_matrix_variables)
# ---------------------------------------------------------------------------------------------
#: Keras's ``NEG_INF``: the value ``top_k`` gives to the predictions it filters out.
NEG_INF = -1e10
_KERAS_EPSILON = 1e-7


def _parse_thresholds(thresholds, default, owner):
    """``thresholds`` (a float or a list of floats in [0, 1]) as a list; ``default`` for None."""
    if thresholds is None:
        return [float(default)]
    ts = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"{owner}: thresholds must be a float or a non-empty list of floats, "
                         f"got {thresholds!r}")
    if not np.all((ts >= 0.0) & (ts <= 1.0)):
        raise ValueError(f"{owner}: thresholds must be in [0, 1], got {thresholds!r}")
    return ts.tolist()


def _evenly_distributed(thresholds):
    """Keras's ``is_evenly_distributed_thresholds``: ``i / (T - 1)`` for ``T >= 3``."""
    t = len(thresholds)
    if t < 3:
        return False
    return bool(np.allclose(thresholds, np.arange(t, dtype=np.float32) / (t - 1),
                            atol=_KERAS_EPSILON))


def _with_labels_one_hot(y_true, y_pred, owner):
    """Integer labels ``(n,)``/``(n, 1)`` against a ``(n, k > 1)`` output become one-hot rows.

    pynn passes sparse-loss targets this way during ``fit``; Keras would need one-hot targets.
    Anything else is returned unchanged.
    """
    if y_pred.ndim == 2 and y_pred.shape[1] > 1 and y_true.shape[:1] == y_pred.shape[:1] \
            and (y_true.ndim == 1 or (y_true.ndim == 2 and y_true.shape[1] == 1)):
        k = y_pred.shape[1]
        lab = y_true.reshape(-1)
        if lab.size and (np.any(lab != np.floor(lab)) or lab.min() < 0 or lab.max() >= k):
            raise ValueError(f"{owner}: y_true of shape {y_true.shape} against y_pred of shape "
                             f"{y_pred.shape} must hold integer labels in [0, {k})")
        return np.eye(k)[lab.astype(np.intp)]
    return y_true


def confusion_counts(y_true, y_pred, thresholds, sample_weight=None, top_k=None, class_id=None,
                     multi_label=False, label_weights=None, evenly=None, owner="metric"):
    """Weighted ``(tp, fp, tn, fn)`` counts, one per threshold, as Keras counts them.

    A value is a predicted positive when ``y_pred > threshold`` and a true positive label when
    ``y_true != 0``. ``top_k`` keeps only the k largest predictions of each row (the others
    become :data:`NEG_INF`), then ``class_id`` keeps one column. Without ``multi_label`` every
    value of the batch counts once (the arrays have shape ``(T,)``); with it the counts are
    per label, ``(T, k)``. When the thresholds are ``i / (T - 1)`` (``evenly``), predictions
    are clipped to [0, 1] first, as Keras's bucketed path does.
    """
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    yt = _with_labels_one_hot(yt, yp, owner)
    yp, yt = _same_rank(yp, yt)
    if yp.shape != yt.shape:
        raise ValueError(f"{owner}: y_true shape {np.shape(y_true)} does not match y_pred shape "
                         f"{np.shape(y_pred)}")
    if yp.ndim == 0:
        yp, yt = yp.reshape(1), yt.reshape(1)
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == yp.ndim - 1 or (w.ndim == 1 and yp.ndim == 2):
            w = w.reshape(w.shape + (1,) * (yp.ndim - w.ndim))
        try:
            w = np.broadcast_to(w, yp.shape)
        except ValueError:
            raise ValueError(f"{owner}: sample_weight of shape {np.shape(sample_weight)} does "
                             f"not broadcast to y_pred of shape {yp.shape}") from None
    if top_k is not None:
        if yp.ndim < 1 or not 1 <= top_k <= yp.shape[-1]:
            raise ValueError(f"{owner}: top_k={top_k} must be in [1, {yp.shape[-1]}] for "
                             f"y_pred of shape {yp.shape}")
        order = np.argsort(-yp, axis=-1, kind="stable")[..., :top_k]
        mask = np.zeros(yp.shape, dtype=bool)
        np.put_along_axis(mask, order, True, axis=-1)
        yp = np.where(mask, yp, NEG_INF)
    if class_id is not None:
        if yp.ndim < 2:
            raise ValueError(f"{owner}: class_id needs y_pred of shape (n, num_classes), got "
                             f"{yp.shape}")
        if not 0 <= class_id < yp.shape[-1]:
            raise ValueError(f"{owner}: class_id={class_id} is out of range for y_pred of shape "
                             f"{yp.shape}")
        yp, yt = yp[..., class_id:class_id + 1], yt[..., class_id:class_id + 1]
        if w is not None:
            w = w[..., class_id:class_id + 1]
    if label_weights is not None and not multi_label:
        lw = np.broadcast_to(np.asarray(label_weights, dtype=np.float64), yp.shape)
        w = lw if w is None else w * lw
    if multi_label:
        if yp.ndim != 2:
            raise ValueError(f"{owner}: multi_label needs y_pred of shape (n, num_labels), got "
                             f"{yp.shape}")
    else:
        yp, yt = yp.reshape(-1, 1), yt.reshape(-1, 1)
        w = None if w is None else w.reshape(-1, 1)
    pos = yt != 0
    ones = np.ones(yp.shape) if w is None else w
    t_w, f_w = np.where(pos, ones, 0.0), np.where(pos, 0.0, ones)
    thr = np.asarray(thresholds, dtype=np.float64)
    if evenly is None:
        evenly = _evenly_distributed(thr)
    if evenly:
        # one bucket per threshold interval: bucket b holds (t_b, t_{b+1}]; O(n) memory
        T = thr.size
        b = np.ceil(np.clip(yp, 0.0, 1.0) * (T - 1)) - 1
        if thr[0] < 0.0 or thr[-1] > 1.0:
            b = np.maximum(b, 0)
        b = b.astype(np.intp)
        keep = b >= 0
        cols = np.broadcast_to(np.arange(yp.shape[1]), yp.shape)
        tp_b, fp_b = np.zeros((T, yp.shape[1])), np.zeros((T, yp.shape[1]))
        np.add.at(tp_b, (b[keep], cols[keep]), t_w[keep])
        np.add.at(fp_b, (b[keep], cols[keep]), f_w[keep])
        tp = np.cumsum(tp_b[::-1], axis=0)[::-1]
        fp = np.cumsum(fp_b[::-1], axis=0)[::-1]
    else:
        above = yp[None] > thr[:, None, None]
        tp = np.where(above, t_w[None], 0.0).sum(axis=1)
        fp = np.where(above, f_w[None], 0.0).sum(axis=1)
    tn = f_w.sum(axis=0)[None] - fp
    fn = t_w.sum(axis=0)[None] - tp
    if not multi_label:
        tp, fp, tn, fn = tp[:, 0], fp[:, 0], tn[:, 0], fn[:, 0]
    return tp, fp, tn, fn


def _divide_no_nan(num, den):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _scalar_or_array(values):
    """One threshold/class: a Python float; several: a float64 array (Keras returns a tensor)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.reshape(-1)[0]) if values.size == 1 and values.ndim <= 1 else values


class _ThresholdCounts(Metric):
    """Counts per threshold for :class:`Precision`, :class:`Recall` and the
    ``TruePositives`` family. ``thresholds`` default 0.5 (``NEG_INF`` with ``top_k``)."""

    _counts = ()  # which of 'tp', 'fp', 'tn', 'fn' the metric keeps

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        owner = type(self).__name__
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                                  or top_k < 1):
            raise ValueError(f"{owner}: top_k must be a positive integer, got {top_k!r}")
        if class_id is not None and (isinstance(class_id, bool)
                                     or not isinstance(class_id, (int, np.integer))
                                     or class_id < 0):
            raise ValueError(f"{owner}: class_id must be a non-negative integer, got "
                             f"{class_id!r}")
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = None if class_id is None else int(class_id)
        self.thresholds = _parse_thresholds(thresholds, 0.5 if top_k is None else NEG_INF,
                                            owner)
        self._evenly = _evenly_distributed(self.thresholds)
        self.reset_state()

    def reset_state(self):
        for key in ("tp", "fp", "tn", "fn"):
            setattr(self, key, np.zeros(len(self.thresholds)))

    def update_state(self, y_true, y_pred, sample_weight=None):
        tp, fp, tn, fn = confusion_counts(
            y_true, y_pred, self.thresholds, sample_weight=sample_weight, top_k=self.top_k,
            class_id=self.class_id, evenly=self._evenly, owner=self.name)
        self.tp += tp
        self.fp += fp
        self.tn += tn
        self.fn += fn

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


class Precision(_ThresholdCounts):
    """``tp / (tp + fp)`` with every output value thresholded (Keras ``Precision``).

    Each value of ``y_pred`` is a positive prediction when ``> threshold`` (default 0.5),
    each value of ``y_true`` a positive label when non-zero; all values of the batch count
    (for a softmax output that is every class column). ``top_k`` keeps only each row's k
    largest predictions as candidates (default threshold then ``-1e10``), ``class_id`` only
    one column. A list of ``thresholds`` gives one precision per threshold (an array).
    0 where nothing was predicted positive. Integer labels ``(n,)`` against a ``(n, k)``
    output are one-hot encoded (pynn passes sparse-loss targets this way).
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision",
                 dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return _scalar_or_array(_divide_no_nan(self.tp, self.tp + self.fp))


class Recall(_ThresholdCounts):
    """``tp / (tp + fn)`` with every output value thresholded (Keras ``Recall``); the
    arguments are :class:`Precision`'s. 0 where there was no positive label."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return _scalar_or_array(_divide_no_nan(self.tp, self.tp + self.fn))


class _ConditionCount(_ThresholdCounts):
    _key = None

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, None, None, name, dtype)

    def result(self):
        return _scalar_or_array(getattr(self, self._key))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds}


class TruePositives(_ConditionCount):
    """Weighted count of values with ``y_pred > threshold`` and ``y_true != 0``."""
    _key = "tp"


class FalsePositives(_ConditionCount):
    """Weighted count of values with ``y_pred > threshold`` and ``y_true == 0``."""
    _key = "fp"


class TrueNegatives(_ConditionCount):
    """Weighted count of values with ``y_pred <= threshold`` and ``y_true == 0``."""
    _key = "tn"


class FalseNegatives(_ConditionCount):
    """Weighted count of values with ``y_pred <= threshold`` and ``y_true != 0``."""
    _key = "fn"


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
        eps = _KERAS_EPSILON
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


# ---------------------------------------------------------------------------------------------
# AUC (Keras's confusion_metrics.AUC)
# ---------------------------------------------------------------------------------------------
class AUC(Metric):
    """Area under the ROC or precision-recall curve, from counts at fixed thresholds.

    Parameters (Keras's)
    --------------------
    num_thresholds : int > 1
        ``i / (num_thresholds - 1)`` thresholds, the ends moved out by 1e-7.
    curve : 'ROC', 'PR' or 'PRGAIN'
    summation_method : 'interpolation' (trapezoids; Davis & Goadrich interpolation for PR),
        'minoring' or 'majoring' (left/right Riemann sums).
    thresholds : list of floats in [0, 1], optional
        Used instead of ``num_thresholds`` (0 - 1e-7 and 1 + 1e-7 are added).
    multi_label : bool
        One curve per column of a ``(n, num_labels)`` output, averaged (by ``label_weights``
        when given); otherwise every value of the batch counts in one curve.
    num_labels : int, optional
        With ``multi_label``, fixes the number of labels (otherwise the first batch's).
    label_weights : list of floats, optional
        Per-label weights: of the counts without ``multi_label``, of the average with it.
    from_logits : bool
        Apply the sigmoid to ``y_pred`` first.
    """

    _CURVES = {"pr": "PR", "roc": "ROC", "prgain": "PRGAIN"}
    _SUMMATIONS = ("interpolation", "minoring", "majoring")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name=name, dtype=dtype)
        if str(curve).lower() not in self._CURVES or str(curve) not in (
                str(curve).lower(), str(curve).upper()):
            raise ValueError(f"AUC: curve must be 'ROC', 'PR' or 'PRGAIN', got {curve!r}")
        if str(summation_method).lower() not in self._SUMMATIONS or \
                str(summation_method) not in (str(summation_method).lower(),
                                              str(summation_method).capitalize()):
            raise ValueError(f"AUC: summation_method must be one of {self._SUMMATIONS}, got "
                             f"{summation_method!r}")
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_parse_thresholds(thresholds, 0.5, "AUC"))
            self.num_thresholds = len(inner) + 2
            self._evenly = _evenly_distributed([0.0] + inner + [1.0])
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) \
                    or num_thresholds <= 1:
                raise ValueError(f"AUC: num_thresholds must be an integer > 1, got "
                                 f"{num_thresholds!r}")
            self.num_thresholds = num_thresholds
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._evenly = True
        self._thresholds = np.array([0.0 - _KERAS_EPSILON] + inner + [1.0 + _KERAS_EPSILON])
        self.curve = self._CURVES[str(curve).lower()]
        self.summation_method = str(summation_method).lower()
        self.multi_label = bool(multi_label)
        if num_labels is not None and not self.multi_label:
            raise ValueError("AUC: num_labels is needed only when multi_label is True")
        if num_labels is not None and (isinstance(num_labels, bool)
                                       or not isinstance(num_labels, int) or num_labels < 1):
            raise ValueError(f"AUC: num_labels must be a positive integer, got {num_labels!r}")
        self.num_labels = num_labels
        if label_weights is not None:
            label_weights = np.asarray(label_weights, dtype=np.float64)
            if label_weights.ndim != 1 or np.any(label_weights < 0):
                raise ValueError(f"AUC: label_weights must be a list of non-negative floats, "
                                 f"got {label_weights!r}")
        self.label_weights = label_weights
        self.from_logits = bool(from_logits)
        self.reset_state()

    @property
    def thresholds(self):
        return self._thresholds.tolist()

    def reset_state(self):
        if self.multi_label and self.num_labels is None:
            self.tp = self.fp = self.tn = self.fn = None
            return
        shape = (self.num_thresholds,) + ((self.num_labels,) if self.multi_label else ())
        self.tp, self.fp, self.tn, self.fn = (np.zeros(shape) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        yp = np.asarray(y_pred, dtype=np.float64)
        if self.from_logits:
            yp = 1.0 / (1.0 + np.exp(-yp))
        if self.multi_label:
            yt = _with_labels_one_hot(np.asarray(y_true, dtype=np.float64), yp, self.name)
            if yp.ndim != 2:
                raise ValueError(f"{self.name}: y_pred must have rank 2 when multi_label=True, "
                                 f"got shape {yp.shape}")
            if self.tp is None:
                self.tp, self.fp, self.tn, self.fn = (
                    np.zeros((self.num_thresholds, yp.shape[1])) for _ in range(4))
            if self.tp.shape[1] != yp.shape[1]:
                raise ValueError(f"{self.name}: {yp.shape[1]} labels in y_pred, expected "
                                 f"{self.tp.shape[1]}")
        else:
            yt = y_true
        counts = confusion_counts(
            yt, yp, self._thresholds, sample_weight=sample_weight,
            multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights,
            evenly=self._evenly, owner=self.name)
        self.tp = self.tp + counts[0]
        self.fp = self.fp + counts[1]
        self.tn = self.tn + counts[2]
        self.fn = self.fn + counts[3]

    def _average(self, by_label):
        if self.label_weights is None:
            return float(np.mean(by_label))
        return float(_divide_no_nan(np.sum(by_label * self.label_weights),
                                    np.sum(self.label_weights)))

    def _total(self, terms):
        if self.multi_label:
            return self._average(terms.sum(axis=0))
        return float(terms.sum())

    def _interpolate_pr_auc(self):
        """Davis & Goadrich (2006) interpolation of the PR curve, as Keras computes it."""
        tp, fp, fn = self.tp, self.fp, self.fn
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        prec_slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        safe_p_ratio = np.where((p[:-1] > 0) & (p[1:] > 0),
                                _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore"):
            log_ratio = np.log(safe_p_ratio)
        terms = _divide_no_nan(prec_slope * (dtp + intercept * log_ratio),
                               np.maximum(tp[1:] + fn[1:], 0))
        return self._total(terms)

    def result(self):
        if self.tp is None:
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.where(tp == 0, 0.0, 1.0 - scale * _divide_no_nan(fn, tp))
            precision_gain = np.where(tp == 0, 1.0, 1.0 - scale * _divide_no_nan(fp, tp))
            x, y = np.maximum(recall_gain, 0.0), precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._total((x[:-1] - x[1:]) * heights)

    def get_config(self):
        cfg = {"name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds,
               "curve": self.curve, "summation_method": self.summation_method,
               "multi_label": self.multi_label, "num_labels": self.num_labels,
               "label_weights": (None if self.label_weights is None
                                 else self.label_weights.tolist()),
               "from_logits": self.from_logits}
        if self._init_from_thresholds:
            cfg["thresholds"] = self.thresholds[1:-1]
        return cfg


# ---------------------------------------------------------------------------------------------
# Top-k accuracy, regression and probabilistic metrics
# ---------------------------------------------------------------------------------------------
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


class RootMeanSquaredError(MeanMetricWrapper):
    """``sqrt`` of the (weighted) mean of ``(y_true - y_pred) ** 2`` over all batches."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)

    def result(self):
        return float(np.sqrt(super().result()))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample ``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` (the loss's)."""
    return _losses.mean_absolute_percentage_error(y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample cosine of the angle between ``y_true`` and ``y_pred`` (1 when parallel;
    the loss of the same name is its negative)."""
    return -_losses.cosine_similarity(y_true, y_pred, axis=axis)


class _LossMeanMetric(MeanMetricWrapper):
    """The weighted mean of a loss module's per-sample function (Keras's regression,
    hinge and probabilistic metrics); the config is ``name`` and ``dtype``, as Keras's."""

    _fn = None
    _default_name = None

    def __init__(self, name=None, dtype=None):
        super().__init__(type(self)._fn, name=name or self._default_name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class MeanAbsolutePercentageError(_LossMeanMetric):
    """Mean of ``100 * |y_true - y_pred| / max(|y_true|, 1e-7)``."""
    _fn = staticmethod(mean_absolute_percentage_error)
    _default_name = "mean_absolute_percentage_error"


class MeanSquaredLogarithmicError(_LossMeanMetric):
    """Mean of ``(log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2``."""
    _fn = staticmethod(_losses.mean_squared_logarithmic_error)
    _default_name = "mean_squared_logarithmic_error"


class CosineSimilarity(_LossMeanMetric):
    """Mean cosine similarity of ``y_true`` and ``y_pred`` rows (1 is best)."""
    _fn = staticmethod(cosine_similarity)
    _default_name = "cosine_similarity"

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        _losses._check_axis(axis)
        super().__init__(name=name, dtype=dtype)
        self.axis = axis


class LogCoshError(_LossMeanMetric):
    """Mean of ``log(cosh(y_pred - y_true))`` (Keras's default name ``'logcosh'``)."""
    _fn = staticmethod(_losses.log_cosh)
    _default_name = "logcosh"


class Hinge(_LossMeanMetric):
    """Mean hinge loss (0/1 labels become -1/1)."""
    _fn = staticmethod(_losses.hinge)
    _default_name = "hinge"


class SquaredHinge(_LossMeanMetric):
    """Mean squared hinge loss (0/1 labels become -1/1)."""
    _fn = staticmethod(_losses.squared_hinge)
    _default_name = "squared_hinge"


class CategoricalHinge(_LossMeanMetric):
    """Mean categorical hinge loss (one-hot targets)."""
    _fn = staticmethod(_losses.categorical_hinge)
    _default_name = "categorical_hinge"


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


class R2Score(Metric):
    """Coefficient of determination per output column, streamed (Keras ``R2Score``).

    ``1 - SS_res / SS_tot`` per column (0 where ``SS_tot`` is 0 and the ratio infinite);
    ``class_aggregation``: ``'uniform_average'`` (default, the mean over columns),
    ``'variance_weighted_average'`` (weighted by ``SS_tot``) or ``None`` (an array).
    ``num_regressors > 0`` gives the adjusted R2 with ``n`` the number of target values
    seen (falling back to plain R2, with a warning, when ``num_regressors >= n - 1``).
    """

    _AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in self._AGGREGATIONS:
            raise ValueError(f"R2Score: class_aggregation must be one of {self._AGGREGATIONS}, "
                             f"got {class_aggregation!r}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, int) \
                or num_regressors < 0:
            raise ValueError(f"R2Score: num_regressors must be an integer >= 0, got "
                             f"{num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.reset_state()

    def reset_state(self):
        self.sum = self.squared_sum = self.total_mse = self.count = None
        self.num_samples = 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _same_rank(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
        if yp.ndim != 2 or yt.shape != yp.shape:
            raise ValueError(f"{self.name}: expects y_true and y_pred of shape (n, output_dim), "
                             f"got y_true {np.shape(y_true)} and y_pred {np.shape(y_pred)}")
        if self.sum is not None and self.sum.shape[0] != yp.shape[1]:
            raise ValueError(f"{self.name}: output_dim changed from {self.sum.shape[0]} to "
                             f"{yp.shape[1]}")
        w = _sample_weights(sample_weight, yp.shape[0], self.name)
        w = np.ones(yp.shape) if w is None else np.broadcast_to(w[:, None], yp.shape)
        if self.sum is None:
            self.sum, self.squared_sum, self.total_mse, self.count = (
                np.zeros(yp.shape[1]) for _ in range(4))
        self.sum = self.sum + (yt * w).sum(axis=0)
        self.squared_sum = self.squared_sum + (yt * yt * w).sum(axis=0)
        self.total_mse = self.total_mse + ((yt - yp) ** 2 * w).sum(axis=0)
        self.count = self.count + w.sum(axis=0)
        self.num_samples += yt.size

    def result(self):
        if self.sum is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum / self.count
            total = self.squared_sum - self.sum * mean
            raw = 1.0 - self.total_mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = float(np.mean(raw))
        elif self.class_aggregation == "variance_weighted_average":
            score = float(np.sum(total * raw) / np.sum(total))
        else:
            score = raw
        if self.num_regressors:
            n, p = self.num_samples, self.num_regressors
            if p >= n - 1:
                warnings.warn(f"{self.name}: adjusted R2 needs num_regressors < n - 1 "
                              f"(num_regressors={p}, n={n}); giving the standard R2",
                              stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return score

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype,
                "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


# ---------------------------------------------------------------------------------------------
# Identifier resolution
# ---------------------------------------------------------------------------------------------
_CLASSES = {c.__name__: c for c in (
    Mean, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, Precision,
    Recall, F1Score, FBetaScore, TruePositives, FalsePositives, TrueNegatives, FalseNegatives,
    AUC, TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError,
    RootMeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, R2Score,
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    MeanSquaredLogarithmicError, CosineSimilarity, LogCoshError, Hinge, SquaredHinge,
    CategoricalHinge, KLDivergence, Poisson)}

#: Names as Keras resolves them: each class's snake_case name plus Keras's aliases (and 'f1').
_NAMES = {**{_snake(name): cls for name, cls in _CLASSES.items()},
          "mse": MeanSquaredError, "mae": MeanAbsoluteError, "f1": F1Score,
          "mape": MeanAbsolutePercentageError, "msle": MeanSquaredLogarithmicError,
          "bce": BinaryCrossentropy}


def _loss_kind(loss):
    """'sparse', 'categorical', 'binary' or None, from a loss name, instance, class or config."""
    if loss is None:
        return None
    if isinstance(loss, str):
        names = [loss]
    elif isinstance(loss, dict):
        names = [str(loss.get("class_name", ""))]
    elif isinstance(loss, type):
        names = [loss.__name__]
    else:
        names = [str(getattr(loss, "name", "")), str(getattr(loss, "__name__", "")),
                 type(loss).__name__]
    for name in names:
        name = _snake(name).replace("cross_entropy", "crossentropy")
        if "sparse_categorical" in name:
            return "sparse"
        if "categorical_crossentropy" in name or "categorical_focal" in name or name == "cce":
            return "categorical"
        if "binary_crossentropy" in name or "binary_focal" in name or name == "bce":
            return "binary"
    return None


def get(identifier, loss=None):
    """Resolve a metric identifier to a :class:`Metric` instance.

    ``identifier``: a Metric instance (returned as is), a Metric class, a config dict
    ``{'class_name': ..., 'config': {...}}``, a function ``fn(y_true, y_pred) -> (n,)`` (wrapped
    in :class:`MeanMetricWrapper`), or a name. ``'accuracy'``/``'acc'`` resolve from ``loss``
    as Keras does: sparse categorical cross-entropy -> :class:`SparseCategoricalAccuracy`,
    categorical cross-entropy -> :class:`CategoricalAccuracy`, binary cross-entropy ->
    :class:`BinaryAccuracy` (threshold 0.5); for any other loss the kind is chosen from the
    output width on the first update. A metric given by name keeps that name (the history
    key), e.g. ``get('acc').name == 'acc'``. ``None`` gives ``None``.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        key = identifier.strip()
        low = key.lower()
        if low in ("accuracy", "acc"):
            kind = _loss_kind(loss)
            cls = {"sparse": SparseCategoricalAccuracy, "categorical": CategoricalAccuracy,
                   "binary": BinaryAccuracy}.get(kind, _AutoAccuracy)
            return cls(name=key)
        if low in _NAMES:
            return _NAMES[low](name=key)
        if key in _CLASSES:
            return _CLASSES[key]()
        valid = sorted(set(_NAMES) | {"accuracy", "acc"} | set(_CLASSES))
        raise ValueError(f"Unknown metric {identifier!r}; valid names: {', '.join(valid)}")
    if callable(identifier):
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", None))
    raise ValueError(f"Could not interpret metric identifier {identifier!r} "
                     f"(type {type(identifier).__name__})")


def serialize(metric):
    """``{'class_name': ..., 'config': ...}`` for a built-in metric."""
    if isinstance(metric, _AutoAccuracy):
        return {"class_name": "accuracy", "config": {"name": metric.name}}
    name = type(metric).__name__
    if name not in _CLASSES:
        raise ValueError(f"Cannot serialize custom metric {metric!r}")
    return {"class_name": name, "config": metric.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`."""
    cls_name = config.get("class_name")
    cfg = dict(config.get("config", {}))
    if cls_name == "accuracy":
        return _AutoAccuracy(**cfg)
    if cls_name not in _CLASSES:
        raise ValueError(f"Unknown metric class {cls_name!r}; expected one of {sorted(_CLASSES)}")
    return _CLASSES[cls_name].from_config(cfg)


# ---------------------------------------------------------------------------------------------
# Standalone functions on predictions
# ---------------------------------------------------------------------------------------------
def _to_labels(y, name):
    """Class labels ``(n,)`` from labels, ``(n, 1)`` columns or one-hot/probability rows."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be labels (n,), a column (n, 1) or rows (n, k); "
                         f"got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"{name} holds non-integer values: pass class labels, e.g. "
                             "np.argmax(probs, axis=1) or (probs > 0.5).astype(int)")
        y = y.astype(np.int64)
    elif y.dtype.kind in "biu":
        y = y.astype(np.int64)
    return y


def _labels_pair(y_true, y_pred):
    t, p = _to_labels(y_true, "y_true"), _to_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same number of samples, got "
                         f"{t.shape[0]} and {p.shape[0]}")
    if (t.dtype.kind in "iu") != (p.dtype.kind in "iu"):
        raise ValueError(f"y_true ({t.dtype}) and y_pred ({p.dtype}) mix label types")
    return t, p


def _label_index(y, labels):
    """Position of each value of ``y`` in ``labels`` (-1 when absent)."""
    k = len(labels)
    if k == 0:
        return np.full(len(y), -1, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    pos = np.clip(np.searchsorted(sorted_labels, y), 0, k - 1)
    return np.where(sorted_labels[pos] == y, order[pos], -1).astype(np.int64)


def _counts(t, p, labels):
    """tp, pred, true counts per label (int64 arrays in ``labels`` order)."""
    k = len(labels)
    ti, pi = _label_index(t, labels), _label_index(p, labels)
    true_sum = np.bincount(ti[ti >= 0], minlength=k)
    pred_sum = np.bincount(pi[pi >= 0], minlength=k)
    hit = (ti == pi) & (ti >= 0)
    tp_sum = np.bincount(ti[hit], minlength=k)
    return tp_sum, pred_sum, true_sum


def confusion_matrix(y_true, y_pred, num_classes=None, labels=None):
    """Counts ``C[i, j]`` of samples of true class i predicted as class j.

    ``y_true``/``y_pred``: labels ``(n,)``, or one-hot/probability rows ``(n, k)`` (arg-maxed).
    Integer labels give a ``(num_classes, num_classes)`` int64 matrix with
    ``num_classes = max(label) + 1`` by default (as ``tf.math.confusion_matrix``); pass
    ``labels`` (scikit-learn's argument) to choose and order the classes explicitly.
    """
    t, p = _labels_pair(y_true, y_pred)
    if labels is None:
        if t.dtype.kind in "iu":
            lo = min(t.min(initial=0), p.min(initial=0))
            if lo < 0:
                raise ValueError("confusion_matrix: negative labels need an explicit `labels`")
            hi = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
            if num_classes is None:
                num_classes = hi
            elif hi > num_classes:
                raise ValueError(f"confusion_matrix: labels go up to {hi - 1} but "
                                 f"num_classes={num_classes}")
            labels = np.arange(num_classes)
        else:
            labels = np.unique(np.concatenate([t, p]))
    labels = np.asarray(labels)
    k = len(labels)
    ti, pi = _label_index(t, labels), _label_index(p, labels)
    keep = (ti >= 0) & (pi >= 0)
    return np.bincount(ti[keep] * k + pi[keep], minlength=k * k).reshape(k, k).astype(np.int64)


def _resolve_labels(t, p, labels):
    present = np.unique(np.concatenate([t, p]))
    if labels is None:
        return present, True
    labels = np.asarray(labels)
    return labels, set(labels.tolist()) >= set(present.tolist())


def precision_recall_fscore(y_true, y_pred, average=None, labels=None, beta=1.0, pos_label=1,
                            zero_division=0.0):
    """Precision, recall, F-beta and support per class, like scikit-learn's
    ``precision_recall_fscore_support``.

    Parameters
    ----------
    y_true, y_pred : array (n,) of labels, or (n, k) one-hot / probability rows (arg-maxed)
    average : None, 'binary', 'micro', 'macro' or 'weighted'
        ``None`` returns arrays over ``labels`` (default: the sorted labels present in
        ``y_true`` or ``y_pred``); otherwise floats and ``support=None``.
    zero_division : 0.0 or 1.0
        Value used where a ratio has a zero denominator (scikit-learn's default gives 0.0).

    Returns
    -------
    precision, recall, fscore : float64 arrays (k,) or floats
    support : int64 array (k,) of true counts per class, or None when averaged
    """
    if average not in (None, "binary", "micro", "macro", "weighted"):
        raise ValueError("average must be None, 'binary', 'micro', 'macro' or 'weighted', "
                         f"got {average!r}")
    if zero_division not in (0, 1):
        raise ValueError(f"zero_division must be 0.0 or 1.0, got {zero_division!r}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    t, p = _labels_pair(y_true, y_pred)
    if average == "binary":
        present = np.unique(np.concatenate([t, p]))
        if len(present) > 2:
            raise ValueError(f"average='binary' needs at most 2 classes, got {len(present)} "
                             f"({present.tolist()}); choose 'micro', 'macro' or 'weighted'")
        if pos_label not in present.tolist() and len(present) == 2:
            raise ValueError(f"pos_label={pos_label!r} is not a valid label: "
                             f"{present.tolist()}")
        labels = np.asarray([pos_label])
    else:
        labels, _ = _resolve_labels(t, p, labels)
    tp, pred, true = _counts(t, p, labels)
    if average == "micro":
        tp, pred, true = tp.sum(keepdims=True), pred.sum(keepdims=True), true.sum(keepdims=True)

    def ratio(num, den):
        num, den = num.astype(np.float64), den.astype(np.float64)
        out = np.full(num.shape, float(zero_division))
        np.divide(num, den, out=out, where=den != 0)
        return out

    precision, recall = ratio(tp, pred), ratio(tp, true)
    if np.isposinf(beta):
        fscore = recall
    elif beta == 0:
        fscore = precision
    else:
        b2 = beta * beta
        fscore = ratio((1 + b2) * tp, b2 * true + pred)
    if average is None:
        return precision, recall, fscore, true.astype(np.int64)
    weights = true.astype(np.float64) if average == "weighted" else None
    if weights is not None and weights.sum() == 0:
        weights = None

    def avg(a):
        return float(np.average(a, weights=weights)) if a.size else 0.0

    return avg(precision), avg(recall), avg(fscore), None


def classification_report(y_true, y_pred, labels=None, target_names=None, digits=2):
    """Text report of per-class precision, recall, F1 and support, laid out like
    scikit-learn's ``classification_report`` (with its ``accuracy``, ``macro avg`` and
    ``weighted avg`` rows; ``micro avg`` instead of ``accuracy`` when ``labels`` leaves out a
    class present in the data). Zero divisions count as 0.0.
    """
    t, p = _labels_pair(y_true, y_pred)
    labels, micro_is_accuracy = _resolve_labels(t, p, labels)
    if target_names is None:
        target_names = [f"{lab}" for lab in labels.tolist()]
    else:
        target_names = [f"{name}" for name in target_names]
        if len(target_names) != len(labels):
            raise ValueError(f"classification_report: {len(target_names)} target_names for "
                             f"{len(labels)} labels ({labels.tolist()})")
    prec, rec, f1, support = precision_recall_fscore(t, p, labels=labels)
    headers = ["precision", "recall", "f1-score", "support"]
    width = max(max((len(n) for n in target_names), default=0), len("weighted avg"), digits)
    head_fmt = "{:>{width}s} " + " {:>9}" * len(headers)
    report = head_fmt.format("", *headers, width=width) + "\n\n"
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    for row in zip(target_names, prec, rec, f1, support.tolist()):
        report += row_fmt.format(*row, width=width, digits=digits)
    report += "\n"
    total = int(support.sum())
    for average in ("micro", "macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore(t, p, average=average, labels=labels)
        if average == "micro" and micro_is_accuracy:
            acc_fmt = "{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
            report += acc_fmt.format("accuracy", "", "", af, total, width=width, digits=digits)
        else:
            report += row_fmt.format(f"{average} avg", ap, ar, af, total, width=width,
                                     digits=digits)
    return report
