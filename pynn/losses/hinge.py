"""Hinge losses (Keras 3's ``losses/losses.py``, hinge part): hinge, squared hinge and
categorical hinge, computed on the host (:class:`~.loss.HostLoss`); each has a function
form (per-sample values, plain NumPy) and a class."""
from __future__ import annotations

import numpy as np

from .loss import HostLoss
from .targets import pair


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


def hinge(y_true, y_pred):
    """Per-sample ``mean(max(1 - y_true * y_pred, 0))``; labels that are all 0/1 become -1/1."""
    return _hinge(*pair(y_true, y_pred))[0]


def squared_hinge(y_true, y_pred):
    """Per-sample ``mean(max(1 - y_true * y_pred, 0)**2)``; 0/1 labels become -1/1."""
    return _squared_hinge(*pair(y_true, y_pred))[0]


def categorical_hinge(y_true, y_pred):
    """Per-sample ``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)``."""
    return _categorical_hinge(*pair(y_true, y_pred))[0]


class Hinge(HostLoss):
    """``mean(max(1 - y_true * y_pred, 0))``; targets -1/1 (0/1 are converted)."""

    _fn = _hinge


class SquaredHinge(HostLoss):
    """``mean(max(1 - y_true * y_pred, 0)**2)``; targets -1/1 (0/1 are converted)."""

    _fn = _squared_hinge


class CategoricalHinge(HostLoss):
    """``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)``, one-hot targets."""

    _fn = _categorical_hinge
    _sparse_hint = True
