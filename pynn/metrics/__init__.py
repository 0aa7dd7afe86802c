"""Metrics: streaming Keras-style ``Metric`` objects and standalone report functions.

One module per family, as in Keras 3: :mod:`.metric` (the base classes),
:mod:`.accuracy_metrics`, :mod:`.confusion_metrics` (Precision, Recall, counts, AUC),
:mod:`.f_score_metrics`, :mod:`.regression_metrics`, :mod:`.hinge_metrics`,
:mod:`.probabilistic_metrics` and :mod:`.reports` (scikit-learn-style functions); this
module resolves names (:func:`get`, :func:`serialize`, :func:`deserialize`).

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

from .accuracy_metrics import (Accuracy, BinaryAccuracy, CategoricalAccuracy,
                               SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy,
                               TopKCategoricalAccuracy, _AutoAccuracy, accuracy,
                               binary_accuracy, categorical_accuracy,
                               sparse_categorical_accuracy, sparse_top_k_categorical_accuracy,
                               top_k_categorical_accuracy)
from .confusion_metrics import (AUC, NEG_INF, FalseNegatives, FalsePositives, Precision, Recall,
                                TrueNegatives, TruePositives, confusion_counts)
from .f_score_metrics import F1Score, FBetaScore
from .hinge_metrics import CategoricalHinge, Hinge, SquaredHinge
from .metric import Mean, MeanMetricWrapper, Metric, _snake
from .probabilistic_metrics import (BinaryCrossentropy, CategoricalCrossentropy, KLDivergence,
                                    Poisson, SparseCategoricalCrossentropy)
from .regression_metrics import (CosineSimilarity, LogCoshError, MeanAbsoluteError,
                                 MeanAbsolutePercentageError, MeanSquaredError,
                                 MeanSquaredLogarithmicError, R2Score, RootMeanSquaredError,
                                 cosine_similarity, mean_absolute_error,
                                 mean_absolute_percentage_error, mean_squared_error)
from .reports import classification_report, confusion_matrix, precision_recall_fscore

__all__ = [
    "Metric", "MeanMetricWrapper", "Mean", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "Precision", "Recall", "F1Score", "FBetaScore", "TruePositives",
    "FalsePositives", "TrueNegatives", "FalseNegatives", "confusion_counts", "AUC",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "RootMeanSquaredError",
    "MeanAbsolutePercentageError", "R2Score", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy", "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy", "mean_absolute_percentage_error", "cosine_similarity",
    "MeanSquaredLogarithmicError", "CosineSimilarity", "LogCoshError", "Hinge", "SquaredHinge",
    "CategoricalHinge", "KLDivergence", "Poisson", "MeanSquaredError", "MeanAbsoluteError",
    "mean_squared_error", "mean_absolute_error", "NEG_INF", "accuracy", "binary_accuracy",
    "categorical_accuracy", "sparse_categorical_accuracy", "get", "serialize", "deserialize",
    "confusion_matrix", "precision_recall_fscore", "classification_report",
]


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
