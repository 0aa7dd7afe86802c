"""Loss functions with Keras 3 names, arguments and semantics.

Each loss is available three ways, as in Keras:

* a class (``MeanSquaredError()``) whose ``__call__(y_true, y_pred, sample_weight=None)``
  returns the reduced loss as a float;
* a function (``mean_squared_error(y_true, y_pred)``) returning per-sample values
  (the mean over the last axis), shape ``(n,)``;
* a string name for ``compile(loss=...)`` resolved by :func:`get`.

Training does not go through ``__call__``: the model calls
:meth:`Loss.prepare_targets` once per ``fit``/``evaluate`` and
:meth:`Loss.loss_and_grad` once per batch, which runs one fused backend op that
returns the mean loss and its gradient with respect to the model output (or to
the logits of the output activation, see :attr:`Loss.fused_activation`).

Layout (Keras 3's ``keras/src/losses/``): the base classes and reductions in
:mod:`.loss`, target checks in :mod:`.targets`, the losses by family in
:mod:`.regression`, :mod:`.probabilistic` and :mod:`.hinge`; this module re-exports
them and resolves identifiers (:func:`get`, :func:`serialize`, :func:`deserialize`).
"""
from __future__ import annotations

from .hinge import CategoricalHinge, Hinge, SquaredHinge, categorical_hinge, hinge, squared_hinge
from .loss import EPSILON, Loss, LossFunctionWrapper
from .probabilistic import (BinaryCrossentropy, BinaryFocalCrossentropy,
                            CategoricalCrossentropy, CategoricalFocalCrossentropy, KLDivergence,
                            Poisson, SparseCategoricalCrossentropy, binary_crossentropy,
                            binary_focal_crossentropy, categorical_crossentropy,
                            categorical_focal_crossentropy, kl_divergence, poisson,
                            sparse_categorical_crossentropy)
from .regression import (CosineSimilarity, Huber, LogCosh, MeanAbsoluteError,
                         MeanAbsolutePercentageError, MeanSquaredError,
                         MeanSquaredLogarithmicError, cosine_similarity, huber, log_cosh,
                         mean_absolute_error, mean_absolute_percentage_error,
                         mean_squared_error, mean_squared_logarithmic_error)

__all__ = [
    "Loss", "LossFunctionWrapper", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy",
    "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "CosineSimilarity", "Huber",
    "LogCosh", "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
    "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "cosine_similarity",
    "huber", "log_cosh", "hinge", "squared_hinge", "categorical_hinge", "kl_divergence",
    "poisson", "binary_focal_crossentropy", "categorical_focal_crossentropy",
    "mse", "mae", "mape", "msle", "kld", "get", "serialize", "deserialize", "EPSILON",
]

#: Keras aliases of the function forms.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
bce = BCE = binary_crossentropy
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence


# --------------------------------------------------------------------------
# lookup
# --------------------------------------------------------------------------
_CLASSES = {c.__name__: c for c in (
    MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
    CosineSimilarity, Huber, LogCosh, Hinge, SquaredHinge, CategoricalHinge, KLDivergence,
    Poisson, BinaryFocalCrossentropy, CategoricalFocalCrossentropy)}
#: The function forms by class (Keras's string names are these functions' names).
_FUNCTIONS = {
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
    binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
    cosine_similarity: CosineSimilarity, huber: Huber, log_cosh: LogCosh, hinge: Hinge,
    squared_hinge: SquaredHinge, categorical_hinge: CategoricalHinge,
    kl_divergence: KLDivergence, poisson: Poisson,
    binary_focal_crossentropy: BinaryFocalCrossentropy,
    categorical_focal_crossentropy: CategoricalFocalCrossentropy,
}
#: Lower-case names: the functions' names and Keras's aliases (``'kld'``, ``'mape'``, ...).
_NAMES = {**{fn.__name__: cls for fn, cls in _FUNCTIONS.items()},
          "mse": MeanSquaredError, "mae": MeanAbsoluteError, "bce": BinaryCrossentropy,
          "mape": MeanAbsolutePercentageError, "msle": MeanSquaredLogarithmicError,
          "kld": KLDivergence}


def _valid_names():
    return sorted(set(_NAMES) | set(_CLASSES))


def serialize(loss):
    """``{'class_name': ..., 'config': ...}`` for a Loss instance."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`."""
    name = config.get("class_name")
    cls = _CLASSES.get(name) or _NAMES.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown loss class {name!r}; expected one of {_valid_names()}")
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """Resolve ``identifier`` to a :class:`Loss` instance.

    Accepts a Loss instance, a Loss class, a string name (``'mse'``,
    ``'sparse_categorical_crossentropy'``, ``'BinaryCrossentropy'``, ...), one of
    this module's loss functions, or a ``{'class_name', 'config'}`` dict.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier) or _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown loss {identifier!r}; expected one of {_valid_names()}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier):  # fn(y_true, y_pred) written with pynn.ops: the tape's gradient
        return LossFunctionWrapper(identifier)
    raise ValueError(f"Could not interpret loss identifier {identifier!r}; expected one of "
                     f"{_valid_names()}, a Loss instance or a config dict")
