"""The metric base classes and the helpers every metric module shares.

Streaming metrics follow Keras 3: ``update_state(y_true, y_pred, sample_weight=None)``
accumulates (in float64), ``result()`` returns a Python float (a float64 array where Keras
returns a vector), ``reset_state()`` clears.
"""
from __future__ import annotations

import re

import numpy as np

#: Keras's ``backend.epsilon()``.
KERAS_EPSILON = 1e-7


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


def _divide_no_nan(num, den):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _scalar_or_array(values):
    """One threshold/class: a Python float; several: a float64 array (Keras returns a tensor)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.reshape(-1)[0]) if values.size == 1 and values.ndim <= 1 else values


class _LossMeanMetric(MeanMetricWrapper):
    """The weighted mean of a loss module's per-sample function (Keras's regression,
    hinge and probabilistic metrics); the config is ``name`` and ``dtype``, as Keras's."""

    _fn = None
    _default_name = None

    def __init__(self, name=None, dtype=None):
        super().__init__(type(self)._fn, name=name or self._default_name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
