"""Metrics on confusion-matrix counts at thresholds: Precision, Recall, the
TruePositives family and AUC (Keras's ``confusion_metrics``), with the one function that
counts, :func:`confusion_counts` (Keras's ``update_confusion_matrix_variables``)."""
from __future__ import annotations

import numpy as np

from .metric import (KERAS_EPSILON, Metric, _divide_no_nan, _same_rank, _scalar_or_array,
                     _with_labels_one_hot)

#: Keras's ``NEG_INF``: the value ``top_k`` gives to the predictions it filters out.
NEG_INF = -1e10


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
                            atol=KERAS_EPSILON))


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

    sum_state = ("tp", "fp", "tn", "fn")

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
        self._thresholds = np.array([0.0 - KERAS_EPSILON] + inner + [1.0 + KERAS_EPSILON])
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

    sum_state = ("tp", "fp", "tn", "fn")

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
