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
"""
from __future__ import annotations

import numpy as np

from ._config import floatx
from .backends.validation import UNIT, check_hyper, label_range

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy",
    "mse", "mae", "get", "serialize", "deserialize",
]

#: Keras's ``backend.epsilon()``: probabilities are clipped to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7

_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# --------------------------------------------------------------------------
# function forms: per-sample losses in plain NumPy (also the standalone path)
# --------------------------------------------------------------------------
def _pair(y_true, y_pred):
    """``y_true`` and ``y_pred`` as float64 arrays of the same rank (Keras's
    ``squeeze_or_expand_to_same_rank``)."""
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    if yt.ndim == yp.ndim - 1 and yp.shape[-1] == 1:
        yt = yt[..., None]
    elif yp.ndim == yt.ndim - 1 and yt.shape[-1] == 1:
        yp = yp[..., None]
    if yp.ndim == 0:
        yp, yt = yp.reshape(1), yt.reshape(1)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true shape {np.shape(y_true)} does not match y_pred shape "
                         f"{np.shape(y_pred)}")
    return yt, yp


def _check_axis(axis):
    if axis != -1:
        raise ValueError(f"axis: only axis=-1 is supported, got {axis}")


def mean_squared_error(y_true, y_pred):
    """Per-sample mean squared error: ``mean((y_true - y_pred)**2, axis=-1)``."""
    yt, yp = _pair(y_true, y_pred)
    return np.mean(np.square(yp - yt), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean absolute error: ``mean(|y_true - y_pred|, axis=-1)``."""
    yt, yp = _pair(y_true, y_pred)
    return np.mean(np.abs(yp - yt), axis=-1)


def _log_sigmoid_terms(z):
    """``(log sigmoid(z), log(1 - sigmoid(z)))`` computed stably."""
    soft = np.log1p(np.exp(-np.abs(z)))
    return -(np.maximum(-z, 0) + soft), -(np.maximum(z, 0) + soft)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy, the mean over the last axis.

    Probabilities are clipped to ``[1e-7, 1 - 1e-7]``; label smoothing maps
    targets to ``y * (1 - ls) + 0.5 * ls``.
    """
    _check_axis(axis)
    yt, yp = _pair(y_true, y_pred)
    if label_smoothing:
        yt = yt * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        log_p, log_1mp = _log_sigmoid_terms(yp)
    else:
        p = np.clip(yp, EPSILON, 1.0 - EPSILON)
        log_p, log_1mp = np.log(p), np.log(1.0 - p)
    return np.mean(-(yt * log_p + (1.0 - yt) * log_1mp), axis=-1)


def _log_probs(y_pred, from_logits):
    yp = np.asarray(y_pred, dtype=np.float64)
    if from_logits:
        z = yp - yp.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    p = yp / yp.sum(axis=-1, keepdims=True)
    return np.log(np.clip(p, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample categorical cross-entropy with one-hot (or soft) targets.

    Probabilities are renormalised to sum to one and clipped to
    ``[1e-7, 1 - 1e-7]``; label smoothing maps targets to
    ``y * (1 - ls) + ls / num_classes``.
    """
    _check_axis(axis)
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    if yt.shape != yp.shape:
        raise ValueError(f"categorical_crossentropy: y_true shape {yt.shape} does not match "
                         f"y_pred shape {yp.shape}; integer labels need "
                         "sparse_categorical_crossentropy")
    if label_smoothing:
        yt = yt * (1.0 - label_smoothing) + label_smoothing / yp.shape[-1]
    return -np.sum(yt * _log_probs(yp, from_logits), axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """Per-sample cross-entropy with integer class labels ``y_true`` of shape (n,)."""
    _check_axis(axis)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yp.ndim != 2:
        raise ValueError(f"sparse_categorical_crossentropy: y_pred must be 2-D (n, classes), "
                         f"got shape {yp.shape}")
    labels = _labels("sparse_categorical_crossentropy", y_true, yp.shape)
    return -_log_probs(yp, from_logits)[np.arange(yp.shape[0]), labels]


#: Keras aliases of the function forms.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
bce = BCE = binary_crossentropy


# --------------------------------------------------------------------------
# target validation shared by the classes
# --------------------------------------------------------------------------
def _labels(loss_name, y, output_shape):
    """Integer labels (n,) checked against the output width; clear errors otherwise."""
    k = int(output_shape[-1])
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        hint = ""
        if a.ndim == 2 and a.shape[1] == k and k > 1:
            hint = (" - these look like one-hot targets: use 'categorical_crossentropy' "
                    "or pass y.argmax(axis=1)")
        raise ValueError(f"{loss_name} expects integer class labels of shape (n,), got targets "
                         f"of shape {np.shape(y)} for a model output of shape "
                         f"{tuple(output_shape)}{hint}")
    if a.dtype.kind == "f":
        if a.size and not np.all(np.isfinite(a) & (np.floor(a) == a)):
            raise ValueError(f"{loss_name} expects integer class labels, got non-integer "
                             f"floats (targets of shape {a.shape}); for probability targets "
                             "use 'categorical_crossentropy'")
    elif a.dtype.kind not in "biu":
        raise TypeError(f"{loss_name} expects integer class labels, got dtype {a.dtype}")
    lo_hi = label_range(a, k)  # on the values as given: 2**40 is not wrapped
    if lo_hi is not None:
        raise ValueError(f"{loss_name}: class labels must be in [0, {k}) for a model output of "
                         f"shape {tuple(output_shape)}, got labels in [{lo_hi[0]}, {lo_hi[1]}]")
    return np.ascontiguousarray(a, dtype=np.intp)


def _dense(loss_name, y, output_shape, sparse_hint=False):
    """Float targets (n, k) matching the output width; (n,) accepted when k == 1."""
    k = int(output_shape[-1])
    a = np.asarray(y)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{loss_name} expects numeric targets, got dtype {a.dtype}")
    if a.ndim == 1 and k == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != k:
        hint = ""
        if sparse_hint and a.ndim == 1:
            hint = (" - these look like integer class labels: use "
                    "'sparse_categorical_crossentropy' or one-hot encode them")
        elif a.ndim == 1:
            hint = " - targets of shape (n,) are accepted only for a single output unit"
        raise ValueError(f"{loss_name}: targets of shape {np.shape(y)} do not match the model "
                         f"output shape {tuple(output_shape)}; expected (n, {k}){hint}")
    dt = a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(floatx())
    return np.ascontiguousarray(a, dtype=dt)


# --------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------
class Loss:
    """Base class of losses.

    Subclasses implement :meth:`call` (per-sample values, NumPy) and
    :meth:`loss_and_grad` (the training path through backend ops).

    Parameters
    ----------
    name : str, optional
    reduction : str
        ``'sum_over_batch_size'`` (default: ``sum(w_i * l_i) / n``), ``'sum'``,
        ``'mean'`` (the same as the default), ``'mean_with_sample_weight'``
        (``sum(w_i * l_i) / sum(w_i)``) or ``'none'``/``None`` (per-sample
        values; standalone use only).
    dtype : ignored, accepted for Keras compatibility.
    """

    #: Output activation whose logits this loss can consume directly.
    fused_activation = None

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction: expected one of {list(_REDUCTIONS)}, got {reduction!r}")
        self.name = name if name is not None else _snake(type(self).__name__)
        self.reduction = reduction
        self.dtype = dtype

    # -- standalone use ---------------------------------------------------
    def call(self, y_true, y_pred):
        """Per-sample loss values, shape ``(n,)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = np.asarray(self.call(y_true, y_pred), dtype=np.float64)
        n = values.shape[0] if values.ndim else 1
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.ndim == 2 and w.shape[1] == 1:
                w = w[:, 0]
            if w.ndim and w.shape != values.shape:
                raise ValueError(f"{self.name}: sample_weight of shape {np.shape(sample_weight)} "
                                 f"does not match {n} samples")
            values = values * w
        else:
            w = None
        if self.reduction in ("none", None):
            return values
        total = float(values.sum())
        if self.reduction == "sum":
            return total
        if self.reduction == "mean_with_sample_weight" and w is not None:
            denom = float(np.broadcast_to(w, values.shape).sum())
            return total / denom if denom else 0.0
        return total / values.size if values.size else 0.0

    # -- training path ------------------------------------------------------
    def prepare_targets(self, y, output_shape):
        """Validate and convert targets once per ``fit``/``evaluate`` call.

        Parameters
        ----------
        y : array-like
        output_shape : tuple
            The model output shape; only its last entry (the width) is used.

        Returns
        -------
        numpy.ndarray: float (n, k) for dense losses, integer (n,) for sparse ones.
        """
        return _dense(type(self).__name__, y, output_shape)

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        """One batch: ``(mean loss as a float, d loss / d output)``.

        Parameters
        ----------
        backend : Backend
        y_true : numpy.ndarray
            Targets as returned by :meth:`prepare_targets`.
        output : array (n, k)
            Model output, or logits of :attr:`fused_activation` when ``logits``.
        sample_weight : array (n,), optional
        grad : array (n, k), optional
            Reusable gradient buffer (same dtype as ``output``).
        logits : bool
            ``output`` holds pre-activation logits.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement loss_and_grad")

    def _reduce(self, backend, loss, grad, sample_weight, n):
        """Turn the backend's ``sum_over_batch_size`` result into ``self.reduction``."""
        r = self.reduction
        if r in ("sum_over_batch_size", "mean"):
            return loss, grad
        if r == "sum":
            factor = float(n)
        elif r == "mean_with_sample_weight":
            if sample_weight is None:
                return loss, grad
            s = float(np.sum(sample_weight))
            factor = n / s if s else 0.0
        else:
            raise ValueError(f"{self.name}: reduction={r!r} cannot be used for training; use "
                             "'sum_over_batch_size' or 'sum'")
        if factor != 1.0:
            backend.scale_(grad, factor)
        return loss * factor, grad

    # -- config ------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if k not in ("name", "reduction", "dtype"))
        return f"{type(self).__name__}({args})"


def _snake(name):
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i:
            out.append("_")
        out.append(c.lower())
    return "".join(out)


def _affine(backend, y, a, b):
    """``a * y + b`` for (small) smoothed targets, kept in the backend's memory."""
    if backend.host_memory:
        return np.asarray(y) * a + b
    t = np.asarray(backend.to_numpy(y)) * a + b
    return backend.asarray(t, dtype=t.dtype)


def _not_logits(loss, logits):
    if logits:
        raise ValueError(f"{loss.name} has no fused activation; the model must pass its output, "
                         "not logits")


class _ElementwiseRegressionLoss(Loss):
    """A regression loss computed by one backend op ``_op`` (mean over the last axis)."""

    _op = None  # backend op name; the module function of the same name is the per-sample form

    def call(self, y_true, y_pred):
        return globals()[self._op](y_true, y_pred)

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        _not_logits(self, logits)
        loss, grad = getattr(backend, self._op)(output, y_true, grad=grad,
                                                sample_weight=sample_weight)
        return self._reduce(backend, loss, grad, sample_weight, output.shape[0])


class MeanSquaredError(_ElementwiseRegressionLoss):
    """``mean((y_true - y_pred)**2)`` over the last axis, reduced over samples."""

    _op = "mean_squared_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MeanAbsoluteError(_ElementwiseRegressionLoss):
    """``mean(|y_true - y_pred|)`` over the last axis, reduced over samples."""

    _op = "mean_absolute_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


def _check_smoothing(label_smoothing):
    return check_hyper("label_smoothing", label_smoothing, UNIT)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy for 0/1 targets (one or several independent outputs).

    Parameters
    ----------
    from_logits : bool
        ``y_pred`` holds logits rather than probabilities.
    label_smoothing : float
        Targets become ``y * (1 - ls) + 0.5 * ls``.
    """

    fused_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_axis(axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.axis = axis

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        t = y_true
        if self.label_smoothing:
            ls = self.label_smoothing
            t = _affine(backend, y_true, 1.0 - ls, 0.5 * ls)
        if logits or self.from_logits:
            loss, grad = backend.sigmoid_binary_cross_entropy(
                output, t, grad=grad, sample_weight=sample_weight)
        else:
            loss, grad = backend.binary_cross_entropy(
                output, t, grad=grad, sample_weight=sample_weight, epsilon=EPSILON)
        return self._reduce(backend, loss, grad, sample_weight, output.shape[0])

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                   axis=self.axis)
        return cfg


class CategoricalCrossentropy(Loss):
    """Cross-entropy between one-hot (or soft) targets (n, k) and predictions (n, k).

    Parameters
    ----------
    from_logits : bool
        ``y_pred`` holds logits rather than probabilities.
    label_smoothing : float
        Targets become ``y * (1 - ls) + ls / k``.
    """

    fused_activation = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_axis(axis)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.axis = axis

    def call(self, y_true, y_pred):
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)

    def prepare_targets(self, y, output_shape):
        return _dense(type(self).__name__, y, output_shape, sparse_hint=True)

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        ls = self.label_smoothing
        if logits or self.from_logits:
            loss, grad = backend.softmax_cross_entropy(
                output, y_true, grad=grad, sample_weight=sample_weight, label_smoothing=ls)
        else:
            t = y_true
            if ls:
                t = _affine(backend, y_true, 1.0 - ls, ls / output.shape[1])
            loss, grad = backend.categorical_cross_entropy(
                output, t, grad=grad, sample_weight=sample_weight, epsilon=EPSILON)
        return self._reduce(backend, loss, grad, sample_weight, output.shape[0])

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                   axis=self.axis)
        return cfg


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy between integer class labels (n,) and predictions (n, k).

    Parameters
    ----------
    from_logits : bool
        ``y_pred`` holds logits rather than probabilities.
    """

    fused_activation = "softmax"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if ignore_class is not None:
            raise NotImplementedError("SparseCategoricalCrossentropy: ignore_class is not "
                                      f"supported (got ignore_class={ignore_class!r})")
        self.from_logits = bool(from_logits)
        self.ignore_class = None

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits)

    def prepare_targets(self, y, output_shape):
        return _labels(type(self).__name__, y, output_shape)

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        if logits or self.from_logits:
            loss, grad = backend.softmax_cross_entropy(
                output, y_true, grad=grad, sample_weight=sample_weight)
        else:
            loss, grad = backend.categorical_cross_entropy(
                output, y_true, grad=grad, sample_weight=sample_weight, epsilon=EPSILON)
        return self._reduce(backend, loss, grad, sample_weight, output.shape[0])

    def get_config(self):
        cfg = super().get_config()
        cfg.update(from_logits=self.from_logits, ignore_class=self.ignore_class)
        return cfg


# --------------------------------------------------------------------------
# lookup
# --------------------------------------------------------------------------
_CLASSES = {c.__name__: c for c in (MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy,
                                    CategoricalCrossentropy, SparseCategoricalCrossentropy)}
_NAMES = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_FUNCTIONS = {
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
    binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
}


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
    if callable(identifier):
        raise TypeError(
            f"loss: cannot train with the plain function {identifier!r}: pynn has no autograd. "
            "Subclass pynn.losses.Loss and implement call() and loss_and_grad(), or use one of "
            f"{_valid_names()}")
    raise ValueError(f"Could not interpret loss identifier {identifier!r}; expected one of "
                     f"{_valid_names()}, a Loss instance or a config dict")
