"""Standalone functions on predictions: :func:`confusion_matrix`,
:func:`precision_recall_fscore` and :func:`classification_report`. They take class labels
(or one-hot / probability rows, which are arg-maxed) and give the same numbers and layout
as scikit-learn's."""
from __future__ import annotations

import numpy as np


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
