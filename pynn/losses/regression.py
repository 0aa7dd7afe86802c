"""Regression losses (Keras 3's ``losses/losses.py``, regression part): mean squared /
absolute (percentage, logarithmic) errors, cosine similarity, Huber, log-cosh.

Each loss has a function form (per-sample values, the mean over the last axis, plain
NumPy) and a class; mean squared and mean absolute error train through a backend op,
the others on the host (:class:`~.loss.HostLoss`) from ``_<name>(yt, yp, grad=...)``
(values and the gradient together).
"""
from __future__ import annotations

import numpy as np

from ..backends.validation import NONNEGATIVE, check_hyper
from .loss import EPSILON, BuiltinLoss, HostLoss
from .targets import check_axis, pair


def mean_squared_error(y_true, y_pred):
    """Per-sample mean squared error: ``mean((y_true - y_pred)**2, axis=-1)``."""
    yt, yp = pair(y_true, y_pred)
    return np.mean(np.square(yp - yt), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean absolute error: ``mean(|y_true - y_pred|, axis=-1)``."""
    yt, yp = pair(y_true, y_pred)
    return np.mean(np.abs(yp - yt), axis=-1)


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


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss: ``0.5 e**2`` where ``|e| <= delta``, else
    ``delta * |e| - 0.5 * delta**2`` (``e = y_pred - y_true``), mean over the last axis."""
    return _huber(*pair(y_true, y_pred), delta=delta)[0]


def log_cosh(y_true, y_pred):
    """Per-sample ``mean(log(cosh(y_pred - y_true)))`` over the last axis (computed stably)."""
    return _log_cosh(*pair(y_true, y_pred))[0]


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample ``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))``."""
    return _mean_absolute_percentage_error(*pair(y_true, y_pred))[0]


def mean_squared_logarithmic_error(y_true, y_pred):
    """Per-sample ``mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2)``."""
    return _mean_squared_logarithmic_error(*pair(y_true, y_pred))[0]


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample ``-sum(l2_normalize(y_true) * l2_normalize(y_pred))`` over the last axis
    (``-1`` for parallel vectors; norms below 1e-7 count as 1e-7, as in Keras)."""
    check_axis(axis)
    return _cosine_similarity(*pair(y_true, y_pred))[0]


class _ElementwiseRegressionLoss(BuiltinLoss):
    """A regression loss computed by one backend op (mean over the last axis): the op
    and the per-sample function form share the name :attr:`_default_name`."""

    def call(self, y_true, y_pred):
        return _FUNCTION_FORMS[self._default_name](y_true, y_pred)

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        self._check_not_logits(logits)
        loss, grad = getattr(backend, self._default_name)(output, y_true, grad=grad,
                                                          sample_weight=sample_weight)
        return self._reduce(backend, loss, grad, sample_weight, output.shape[0])


_FUNCTION_FORMS = {f.__name__: f for f in (mean_squared_error, mean_absolute_error)}


class MeanSquaredError(_ElementwiseRegressionLoss):
    """``mean((y_true - y_pred)**2)`` over the last axis, reduced over samples."""

    _default_name = "mean_squared_error"


class MeanAbsoluteError(_ElementwiseRegressionLoss):
    """``mean(|y_true - y_pred|)`` over the last axis, reduced over samples."""

    _default_name = "mean_absolute_error"


class MeanAbsolutePercentageError(HostLoss):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` over the last axis."""

    _fn = _mean_absolute_percentage_error


class MeanSquaredLogarithmicError(HostLoss):
    """``mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2)``."""

    _fn = _mean_squared_logarithmic_error


class CosineSimilarity(HostLoss):
    """``-sum(l2_normalize(y_true) * l2_normalize(y_pred))`` over the last axis (-1 best)."""

    _fn = _cosine_similarity
    _CONFIG = ("axis",)

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_axis(axis)
        self.axis = axis


class Huber(HostLoss):
    """Quadratic for ``|y_pred - y_true| <= delta``, linear beyond (Keras ``Huber``)."""

    _fn = _huber
    _kwargs = ("delta",)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = check_hyper("delta", delta, NONNEGATIVE)


class LogCosh(HostLoss):
    """``mean(log(cosh(y_pred - y_true)))`` over the last axis."""

    _fn = _log_cosh
