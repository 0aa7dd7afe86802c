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
from .backends.validation import NONNEGATIVE, UNIT, check_hyper, label_range

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy",
    "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "CosineSimilarity", "Huber",
    "LogCosh", "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
    "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "cosine_similarity",
    "huber", "log_cosh", "hinge", "squared_hinge", "categorical_hinge", "kl_divergence",
    "poisson", "binary_focal_crossentropy", "categorical_focal_crossentropy",
    "mse", "mae", "mape", "msle", "kld", "get", "serialize", "deserialize",
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


# --------------------------------------------------------------------------
# losses computed on the host: per-sample values and their gradient together
# --------------------------------------------------------------------------
# Each ``_<name>(yt, yp, ..., grad=False)`` takes float64 arrays of the same shape (n, k)
# and returns ``(values (n,), d values / d yp (n, k) or None)``, the derivative of each
# sample's loss with respect to its own predictions, following Keras's formula (clips
# included: the gradient is 0 where Keras's clip is active). The public function forms
# return the values; the classes train through :class:`_HostLoss`.
def _huber(yt, yp, delta=1.0, grad=False):
    e = yp - yt
    a = np.abs(e)
    small = a <= delta
    values = np.where(small, 0.5 * e * e, delta * a - 0.5 * delta * delta).mean(axis=-1)
    return values, (np.where(small, e, delta * np.sign(e)) / e.shape[-1] if grad else None)


def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _log_cosh(yt, yp, grad=False):
    e = yp - yt
    values = (e + _softplus(-2.0 * e) - np.log(2.0)).mean(axis=-1)
    return values, (np.tanh(e) / e.shape[-1] if grad else None)


def _mean_absolute_percentage_error(yt, yp, grad=False):
    scale = np.maximum(np.abs(yt), EPSILON)
    values = 100.0 * np.abs((yt - yp) / scale).mean(axis=-1)
    return values, (100.0 * np.sign(yp - yt) / scale / yp.shape[-1] if grad else None)


def _mean_squared_logarithmic_error(yt, yp, grad=False):
    d = np.log(np.maximum(yp, EPSILON) + 1.0) - np.log(np.maximum(yt, EPSILON) + 1.0)
    values = (d * d).mean(axis=-1)
    if not grad:
        return values, None
    return values, np.where(yp > EPSILON, 2.0 * d / (yp + 1.0), 0.0) / yp.shape[-1]


def _l2_normalize(x):
    """Keras's ``ops.normalize``: ``x * min(1 / ||x||, 1 / 1e-7)`` and that factor."""
    with np.errstate(divide="ignore"):
        inv = np.minimum(1.0 / np.sqrt((x * x).sum(axis=-1, keepdims=True)), 1.0 / EPSILON)
    return x * inv, inv


def _cosine_similarity(yt, yp, grad=False):
    u, _ = _l2_normalize(yt)
    v, inv = _l2_normalize(yp)
    values = -(u * v).sum(axis=-1)
    if not grad:
        return values, None
    # where the norm is above 1e-7: d(-u.v)/dyp = -(u - (u.v) v) / ||yp||; else -u * 1e7
    clipped = inv >= 1.0 / EPSILON
    g = np.where(clipped, -u * inv, -(u + values[..., None] * v) * inv)
    return values, g


def _hinge_labels(yt):
    """Keras's ``convert_binary_labels_to_hinge``: 0/1 labels (all of them) become -1/1."""
    return 2.0 * yt - 1.0 if np.all((yt == 0) | (yt == 1)) else yt


def _hinge(yt, yp, grad=False):
    yt = _hinge_labels(yt)
    m = 1.0 - yt * yp
    values = np.maximum(m, 0.0).mean(axis=-1)
    return values, (np.where(m > 0, -yt, 0.0) / yp.shape[-1] if grad else None)


def _squared_hinge(yt, yp, grad=False):
    yt = _hinge_labels(yt)
    m = np.maximum(1.0 - yt * yp, 0.0)
    values = (m * m).mean(axis=-1)
    return values, (-2.0 * m * yt / yp.shape[-1] if grad else None)


def _categorical_hinge(yt, yp, grad=False):
    pos = (yt * yp).sum(axis=-1)
    others = (1.0 - yt) * yp
    j = np.argmax(others, axis=-1)
    neg = np.take_along_axis(others, j[..., None], axis=-1)[..., 0]
    m = neg - pos + 1.0
    values = np.maximum(m, 0.0)
    if not grad:
        return values, None
    g = -yt.copy()
    np.put_along_axis(g, j[..., None], np.take_along_axis(g, j[..., None], axis=-1)
                      + np.take_along_axis(1.0 - yt, j[..., None], axis=-1), axis=-1)
    return values, np.where((m > 0)[..., None], g, 0.0)


def _kl_divergence(yt, yp, grad=False):
    t = np.clip(yt, EPSILON, 1.0)
    p = np.clip(yp, EPSILON, 1.0)
    values = (t * np.log(t / p)).sum(axis=-1)
    if not grad:
        return values, None
    return values, np.where((yp >= EPSILON) & (yp <= 1.0), -t / p, 0.0)


def _poisson(yt, yp, grad=False):
    values = (yp - yt * np.log(yp + EPSILON)).mean(axis=-1)
    return values, ((1.0 - yt / (yp + EPSILON)) / yp.shape[-1] if grad else None)


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _power_grad(base, gamma):
    """``d base**gamma / d base`` (0 for gamma == 0, as the constant 1 has no slope)."""
    if gamma == 0:
        return np.zeros_like(base)
    with np.errstate(divide="ignore", invalid="ignore"):
        return gamma * np.power(base, gamma - 1.0)


def _binary_focal_crossentropy(yt, yp, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                               from_logits=False, label_smoothing=0.0, grad=False):
    if label_smoothing:
        yt = yt * (1.0 - label_smoothing) + 0.5 * label_smoothing
    p = _sigmoid(yp) if from_logits else yp
    pc = np.clip(p, EPSILON, 1.0 - EPSILON)
    bce = -(yt * np.log(pc) + (1.0 - yt) * np.log(1.0 - pc))
    p_t = yt * p + (1.0 - yt) * (1.0 - p)
    focal = np.power(1.0 - p_t, gamma)
    weight = yt * alpha + (1.0 - yt) * (1.0 - alpha) if apply_class_balancing else 1.0
    values = (weight * focal * bce).mean(axis=-1)
    if not grad:
        return values, None
    inside = (p >= EPSILON) & (p <= 1.0 - EPSILON)
    d_bce = np.where(inside, (pc - yt) / (pc * (1.0 - pc)), 0.0)
    d_focal = -_power_grad(1.0 - p_t, gamma) * (2.0 * yt - 1.0)
    g = weight * (d_focal * bce + focal * d_bce)
    if from_logits:
        g = g * p * (1.0 - p)
    return values, g / yp.shape[-1]


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _categorical_focal_crossentropy(yt, yp, alpha=0.25, gamma=2.0, from_logits=False,
                                    label_smoothing=0.0, grad=False):
    if label_smoothing:
        yt = yt * (1.0 - label_smoothing) + label_smoothing / yt.shape[-1]
    y = _softmax(yp) if from_logits else yp
    s = y.sum(axis=-1, keepdims=True)
    o = y / s
    oc = np.clip(o, EPSILON, 1.0 - EPSILON)
    log_oc = np.log(oc)
    focal = np.power(1.0 - oc, gamma)
    values = (alpha * focal * -yt * log_oc).sum(axis=-1)
    if not grad:
        return values, None
    inside = (o >= EPSILON) & (o <= 1.0 - EPSILON)
    g_o = np.where(inside, alpha * yt * (_power_grad(1.0 - oc, gamma) * log_oc - focal / oc),
                   0.0)
    g = (g_o - (g_o * o).sum(axis=-1, keepdims=True)) / s  # through o = y / sum(y)
    if from_logits:
        g = y * (g - (g * y).sum(axis=-1, keepdims=True))  # through the softmax
    return values, g


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss: ``0.5 e**2`` where ``|e| <= delta``, else
    ``delta * |e| - 0.5 * delta**2`` (``e = y_pred - y_true``), mean over the last axis."""
    return _huber(*_pair(y_true, y_pred), delta=delta)[0]


def log_cosh(y_true, y_pred):
    """Per-sample ``mean(log(cosh(y_pred - y_true)))`` over the last axis (computed stably)."""
    return _log_cosh(*_pair(y_true, y_pred))[0]


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample ``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))``."""
    return _mean_absolute_percentage_error(*_pair(y_true, y_pred))[0]


def mean_squared_logarithmic_error(y_true, y_pred):
    """Per-sample ``mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2)``."""
    return _mean_squared_logarithmic_error(*_pair(y_true, y_pred))[0]


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample ``-sum(l2_normalize(y_true) * l2_normalize(y_pred))`` over the last axis
    (``-1`` for parallel vectors; norms below 1e-7 count as 1e-7, as in Keras)."""
    _check_axis(axis)
    return _cosine_similarity(*_pair(y_true, y_pred))[0]


def hinge(y_true, y_pred):
    """Per-sample ``mean(max(1 - y_true * y_pred, 0))``; labels that are all 0/1 become -1/1."""
    return _hinge(*_pair(y_true, y_pred))[0]


def squared_hinge(y_true, y_pred):
    """Per-sample ``mean(max(1 - y_true * y_pred, 0)**2)``; 0/1 labels become -1/1."""
    return _squared_hinge(*_pair(y_true, y_pred))[0]


def categorical_hinge(y_true, y_pred):
    """Per-sample ``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)``."""
    return _categorical_hinge(*_pair(y_true, y_pred))[0]


def kl_divergence(y_true, y_pred):
    """Per-sample ``sum(t * log(t / p))`` with both clipped to ``[1e-7, 1]``."""
    return _kl_divergence(*_pair(y_true, y_pred))[0]


def poisson(y_true, y_pred):
    """Per-sample ``mean(y_pred - y_true * log(y_pred + 1e-7))``."""
    return _poisson(*_pair(y_true, y_pred))[0]


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary focal cross-entropy (Lin et al. 2017), Keras's formula:
    ``(1 - p_t)**gamma * bce`` (times ``alpha``/``1 - alpha`` with class balancing), the
    mean over the last axis."""
    _check_axis(axis)
    return _binary_focal_crossentropy(*_pair(y_true, y_pred), apply_class_balancing, alpha,
                                      gamma, from_logits, label_smoothing)[0]


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """Per-sample categorical focal cross-entropy, Keras's formula:
    ``sum(alpha * (1 - p)**gamma * -y_true * log(p))`` with ``p`` renormalised and clipped."""
    _check_axis(axis)
    yt, yp = _pair(y_true, y_pred)
    return _categorical_focal_crossentropy(yt, yp, alpha, gamma, from_logits,
                                           label_smoothing)[0]


#: Keras aliases of the function forms.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
bce = BCE = binary_crossentropy
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence


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


class _HostLoss(Loss):
    """A loss computed in float64 NumPy on the host from ``_<fn>(yt, yp, **kw, grad=True)``.

    These losses have no backend op: one batch costs a copy of the output to the host (free
    on the CPU backends), one NumPy pass for the values and the gradient, and a copy of the
    gradient back into the backend's buffer. ``_kwargs`` names the constructor arguments
    passed to the function (they are also the config).
    """

    _fn = None
    _kwargs = ()

    def _compute(self, yt, yp, grad=False):
        return globals()[self._fn](yt, yp, **{k: getattr(self, k) for k in self._kwargs},
                                   grad=grad)

    def call(self, y_true, y_pred):
        return self._compute(*_pair(y_true, y_pred))[0]

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        _not_logits(self, logits)
        yp = np.asarray(backend.to_numpy(output), dtype=np.float64)
        yt = np.asarray(backend.to_numpy(y_true), dtype=np.float64)
        if yt.shape != yp.shape:
            raise ValueError(f"{self.name}: targets of shape {yt.shape} do not match the "
                             f"model output shape {yp.shape}")
        n = yp.shape[0]
        values, g = self._compute(yt, yp, grad=True)
        if sample_weight is not None:
            w = np.asarray(backend.to_numpy(sample_weight), dtype=np.float64).reshape(n)
            values, g = values * w, g * w[:, None]
        loss = float(values.sum() / n) if n else 0.0
        g = backend.asarray(g / n if n else g, dtype=output.dtype)
        if grad is None:
            grad = g
        else:
            backend.copy_(g, grad)
        return self._reduce(backend, loss, grad, sample_weight, n)

    def get_config(self):
        cfg = super().get_config()
        cfg.update({k: getattr(self, k) for k in self._kwargs})
        return cfg


def _check_nonneg(name, value):
    return check_hyper(name, value, NONNEGATIVE)


class MeanAbsolutePercentageError(_HostLoss):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` over the last axis."""

    _fn = "_mean_absolute_percentage_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MeanSquaredLogarithmicError(_HostLoss):
    """``mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2)``."""

    _fn = "_mean_squared_logarithmic_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class CosineSimilarity(_HostLoss):
    """``-sum(l2_normalize(y_true) * l2_normalize(y_pred))`` over the last axis (-1 best)."""

    _fn = "_cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_axis(axis)
        self.axis = axis

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Huber(_HostLoss):
    """Quadratic for ``|y_pred - y_true| <= delta``, linear beyond (Keras ``Huber``)."""

    _fn = "_huber"
    _kwargs = ("delta",)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = _check_nonneg("delta", delta)


class LogCosh(_HostLoss):
    """``mean(log(cosh(y_pred - y_true)))`` over the last axis."""

    _fn = "_log_cosh"

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class Hinge(_HostLoss):
    """``mean(max(1 - y_true * y_pred, 0))``; targets -1/1 (0/1 are converted)."""

    _fn = "_hinge"

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class SquaredHinge(_HostLoss):
    """``mean(max(1 - y_true * y_pred, 0)**2)``; targets -1/1 (0/1 are converted)."""

    _fn = "_squared_hinge"

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class CategoricalHinge(_HostLoss):
    """``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)``, one-hot targets."""

    _fn = "_categorical_hinge"

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def prepare_targets(self, y, output_shape):
        return _dense(type(self).__name__, y, output_shape, sparse_hint=True)


class KLDivergence(_HostLoss):
    """``sum(t * log(t / p))`` with targets and predictions clipped to ``[1e-7, 1]``."""

    _fn = "_kl_divergence"

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class Poisson(_HostLoss):
    """``mean(y_pred - y_true * log(y_pred + 1e-7))`` over the last axis."""

    _fn = "_poisson"

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class BinaryFocalCrossentropy(_HostLoss):
    """Binary focal cross-entropy (Keras ``BinaryFocalCrossentropy``).

    ``(1 - p_t)**gamma * bce`` per value, mean over the last axis; with
    ``apply_class_balancing`` times ``alpha`` for positive, ``1 - alpha`` for negative
    targets. ``from_logits``: the sigmoid is applied first; ``label_smoothing`` as
    :class:`BinaryCrossentropy`.
    """

    _fn = "_binary_focal_crossentropy"
    _kwargs = ("apply_class_balancing", "alpha", "gamma", "from_logits", "label_smoothing")

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_focal_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_axis(axis)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = check_hyper("alpha", alpha, UNIT)
        self.gamma = _check_nonneg("gamma", gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.axis = axis

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class CategoricalFocalCrossentropy(_HostLoss):
    """Categorical focal cross-entropy (Keras ``CategoricalFocalCrossentropy``).

    ``sum(alpha * (1 - p)**gamma * -y_true * log(p))`` with ``p`` the prediction
    renormalised to sum to one and clipped to ``[1e-7, 1 - 1e-7]`` (softmax first with
    ``from_logits``); one-hot (or soft) targets; ``label_smoothing`` as
    :class:`CategoricalCrossentropy`.
    """

    _fn = "_categorical_focal_crossentropy"
    _kwargs = ("alpha", "gamma", "from_logits", "label_smoothing")

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_axis(axis)
        self.alpha = _check_nonneg("alpha", alpha)
        self.gamma = _check_nonneg("gamma", gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.axis = axis

    def prepare_targets(self, y, output_shape):
        return _dense(type(self).__name__, y, output_shape, sparse_hint=True)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


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
    if callable(identifier):
        raise TypeError(
            f"loss: cannot train with the plain function {identifier!r}: pynn has no autograd. "
            "Subclass pynn.losses.Loss and implement call() and loss_and_grad(), or use one of "
            f"{_valid_names()}")
    raise ValueError(f"Could not interpret loss identifier {identifier!r}; expected one of "
                     f"{_valid_names()}, a Loss instance or a config dict")
