"""Probabilistic losses (Keras 3's ``losses/losses.py``, probabilistic part): binary,
categorical and sparse categorical cross-entropy (backend ops, fused with the output
activation's logits), KL divergence, Poisson and the focal cross-entropies (on the host,
:class:`~.loss.HostLoss`).

Each loss has a function form (per-sample values, plain NumPy) and a class.
"""
from __future__ import annotations

import numpy as np

from ..backends.validation import NONNEGATIVE, UNIT, check_hyper
from .loss import EPSILON, HostLoss, Loss
from .targets import check_axis, labels, pair


def _log_sigmoid_terms(z):
    """``(log sigmoid(z), log(1 - sigmoid(z)))`` computed stably."""
    soft = np.log1p(np.exp(-np.abs(z)))
    return -(np.maximum(-z, 0) + soft), -(np.maximum(z, 0) + soft)


def _smooth_binary(yt, label_smoothing):
    """Binary label smoothing: ``y * (1 - ls) + 0.5 * ls``."""
    return yt * (1.0 - label_smoothing) + 0.5 * label_smoothing


def _smooth_categorical(yt, label_smoothing, k):
    """Categorical label smoothing over ``k`` classes: ``y * (1 - ls) + ls / k``."""
    return yt * (1.0 - label_smoothing) + label_smoothing / k


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy, the mean over the last axis.

    Probabilities are clipped to ``[1e-7, 1 - 1e-7]``; label smoothing maps
    targets to ``y * (1 - ls) + 0.5 * ls``.
    """
    check_axis(axis)
    yt, yp = pair(y_true, y_pred)
    if label_smoothing:
        yt = _smooth_binary(yt, label_smoothing)
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
    check_axis(axis)
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    if yt.shape != yp.shape:
        raise ValueError(f"categorical_crossentropy: y_true shape {yt.shape} does not match "
                         f"y_pred shape {yp.shape}; integer labels need "
                         "sparse_categorical_crossentropy")
    if label_smoothing:
        yt = _smooth_categorical(yt, label_smoothing, yp.shape[-1])
    return -np.sum(yt * _log_probs(yp, from_logits), axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """Per-sample cross-entropy with integer class labels ``y_true`` of shape (n,)."""
    check_axis(axis)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yp.ndim != 2:
        raise ValueError(f"sparse_categorical_crossentropy: y_pred must be 2-D (n, classes), "
                         f"got shape {yp.shape}")
    y = labels("sparse_categorical_crossentropy", y_true, yp.shape)
    return -_log_probs(yp, from_logits)[np.arange(yp.shape[0]), y]


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
        yt = _smooth_binary(yt, label_smoothing)
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
        yt = _smooth_categorical(yt, label_smoothing, yt.shape[-1])
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


def kl_divergence(y_true, y_pred):
    """Per-sample ``sum(t * log(t / p))`` with both clipped to ``[1e-7, 1]``."""
    return _kl_divergence(*pair(y_true, y_pred))[0]


def poisson(y_true, y_pred):
    """Per-sample ``mean(y_pred - y_true * log(y_pred + 1e-7))``."""
    return _poisson(*pair(y_true, y_pred))[0]


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary focal cross-entropy (Lin et al. 2017), Keras's formula:
    ``(1 - p_t)**gamma * bce`` (times ``alpha``/``1 - alpha`` with class balancing), the
    mean over the last axis."""
    check_axis(axis)
    return _binary_focal_crossentropy(*pair(y_true, y_pred), apply_class_balancing, alpha,
                                      gamma, from_logits, label_smoothing)[0]


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """Per-sample categorical focal cross-entropy, Keras's formula:
    ``sum(alpha * (1 - p)**gamma * -y_true * log(p))`` with ``p`` renormalised and clipped."""
    check_axis(axis)
    yt, yp = pair(y_true, y_pred)
    return _categorical_focal_crossentropy(yt, yp, alpha, gamma, from_logits,
                                           label_smoothing)[0]


# --------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------
def _affine(backend, y, a, b):
    """``a * y + b`` for (small) smoothed targets, kept in the backend's memory."""
    if backend.host_memory:
        return np.asarray(y) * a + b
    t = np.asarray(backend.to_numpy(y)) * a + b
    return backend.asarray(t, dtype=t.dtype)


def _set_logit_args(loss, from_logits, label_smoothing, axis):
    """The arguments every cross-entropy class takes: ``from_logits``,
    ``label_smoothing`` in [0, 1] and ``axis`` (-1 only)."""
    check_axis(axis)
    loss.from_logits = bool(from_logits)
    loss.label_smoothing = check_hyper("label_smoothing", label_smoothing, UNIT)
    loss.axis = axis


class _Crossentropy(Loss):
    """Binary or categorical cross-entropy: ``from_logits``, ``label_smoothing`` in
    [0, 1] and ``axis`` (-1 only); the per-sample values are :attr:`_function`'s."""

    _CONFIG = ("from_logits", "label_smoothing", "axis")
    _function = None

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _set_logit_args(self, from_logits, label_smoothing, axis)

    def call(self, y_true, y_pred):
        return type(self)._function(y_true, y_pred, self.from_logits, self.label_smoothing)


class BinaryCrossentropy(_Crossentropy):
    """Binary cross-entropy for 0/1 targets (one or several independent outputs).

    Parameters
    ----------
    from_logits : bool
        ``y_pred`` holds logits rather than probabilities.
    label_smoothing : float
        Targets become ``y * (1 - ls) + 0.5 * ls``.
    """

    fused_activation = "sigmoid"
    _default_name = "binary_crossentropy"
    _function = binary_crossentropy

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


class CategoricalCrossentropy(_Crossentropy):
    """Cross-entropy between one-hot (or soft) targets (n, k) and predictions (n, k).

    Parameters
    ----------
    from_logits : bool
        ``y_pred`` holds logits rather than probabilities.
    label_smoothing : float
        Targets become ``y * (1 - ls) + ls / k``.
    """

    fused_activation = "softmax"
    _default_name = "categorical_crossentropy"
    _function = categorical_crossentropy
    _sparse_hint = True

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


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy between integer class labels (n,) and predictions (n, k).

    Parameters
    ----------
    from_logits : bool
        ``y_pred`` holds logits rather than probabilities.
    """

    fused_activation = "softmax"
    _CONFIG = ("from_logits", "ignore_class")

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
        return labels(type(self).__name__, y, output_shape)

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        if logits or self.from_logits:
            loss, grad = backend.softmax_cross_entropy(
                output, y_true, grad=grad, sample_weight=sample_weight)
        else:
            loss, grad = backend.categorical_cross_entropy(
                output, y_true, grad=grad, sample_weight=sample_weight, epsilon=EPSILON)
        return self._reduce(backend, loss, grad, sample_weight, output.shape[0])


class KLDivergence(HostLoss):
    """``sum(t * log(t / p))`` with targets and predictions clipped to ``[1e-7, 1]``."""

    _fn = _kl_divergence


class Poisson(HostLoss):
    """``mean(y_pred - y_true * log(y_pred + 1e-7))`` over the last axis."""

    _fn = _poisson


class BinaryFocalCrossentropy(HostLoss):
    """Binary focal cross-entropy (Keras ``BinaryFocalCrossentropy``).

    ``(1 - p_t)**gamma * bce`` per value, mean over the last axis; with
    ``apply_class_balancing`` times ``alpha`` for positive, ``1 - alpha`` for negative
    targets. ``from_logits``: the sigmoid is applied first; ``label_smoothing`` as
    :class:`BinaryCrossentropy`.
    """

    _fn = _binary_focal_crossentropy
    _kwargs = ("apply_class_balancing", "alpha", "gamma", "from_logits", "label_smoothing")
    _CONFIG = _kwargs + ("axis",)

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_focal_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _set_logit_args(self, from_logits, label_smoothing, axis)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = check_hyper("alpha", alpha, UNIT)
        self.gamma = check_hyper("gamma", gamma, NONNEGATIVE)


class CategoricalFocalCrossentropy(HostLoss):
    """Categorical focal cross-entropy (Keras ``CategoricalFocalCrossentropy``).

    ``sum(alpha * (1 - p)**gamma * -y_true * log(p))`` with ``p`` the prediction
    renormalised to sum to one and clipped to ``[1e-7, 1 - 1e-7]`` (softmax first with
    ``from_logits``); one-hot (or soft) targets; ``label_smoothing`` as
    :class:`CategoricalCrossentropy`.
    """

    _fn = _categorical_focal_crossentropy
    _kwargs = ("alpha", "gamma", "from_logits", "label_smoothing")
    _CONFIG = _kwargs + ("axis",)
    _sparse_hint = True

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _set_logit_args(self, from_logits, label_smoothing, axis)
        self.alpha = check_hyper("alpha", alpha, NONNEGATIVE)
        self.gamma = check_hyper("gamma", gamma, NONNEGATIVE)
