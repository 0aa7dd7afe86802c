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


class MetricVariable:
    """A metric's state variable (Keras's metric variables): a NumPy array with
    ``assign``, ``assign_add``, ``assign_sub``, ``numpy()`` and NumPy arithmetic."""

    __array_priority__ = 1000

    def __init__(self, value, name):
        self.value = np.array(value)
        self.name = name

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)

    def assign(self, value):
        v = np.asarray(getattr(value, "value", value), dtype=self.value.dtype)
        if v.shape != self.value.shape:
            try:
                v = np.broadcast_to(v, self.value.shape)
            except ValueError:
                raise ValueError(f"metric variable {self.name!r}: cannot assign a value of "
                                 f"shape {v.shape} to shape {self.value.shape}") from None
        self.value[...] = v
        return self

    def assign_add(self, value):
        return self.assign(self.value + np.asarray(getattr(value, "value", value)))

    def assign_sub(self, value):
        return self.assign(self.value - np.asarray(getattr(value, "value", value)))

    def numpy(self):
        return np.array(self.value, copy=True)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.value, dtype=dtype)

    def __float__(self):
        return float(self.value)

    def __repr__(self):
        return f"<MetricVariable {self.name!r} shape={self.shape} value={self.value}>"


def _metric_variable_operator(name, reflected=False):
    fn = getattr(np, name)

    def method(self, other):
        other = np.asarray(getattr(other, "value", other))
        return fn(other, self.value) if reflected else fn(self.value, other)
    return method


for _op, _fn in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                 ("truediv", "divide"), ("pow", "power")):
    setattr(MetricVariable, f"__{_op}__", _metric_variable_operator(_fn))
    setattr(MetricVariable, f"__r{_op}__", _metric_variable_operator(_fn, reflected=True))


class Metric:
    """Base class: accumulate over batches, ``result()`` is a Python float.

    Subclasses implement ``update_state``, ``result`` and ``reset_state``; as in Keras, a
    subclass may keep its state in variables from :meth:`add_variable` (then the default
    ``reset_state`` zeroes them). A metric that keeps its state in plain attributes names
    those that are sums over samples in ``sum_state``, so that a data-parallel run
    (:mod:`pynn.distribution`) can add them up across ranks. Calling a metric updates its state and returns the
    current result (Keras).
    """

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.dtype = dtype

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        """A state variable of ``shape`` (Keras's ``Metric.add_variable``); the
        initializer is ``"zeros"``, ``"ones"``, a number or an array."""
        variables = self.__dict__.setdefault("_variables", [])
        dt = np.dtype(dtype or self.dtype or "float32")
        if isinstance(initializer, str):
            if initializer not in ("zeros", "ones"):
                from .. import initializers
                value = initializers.get(initializer)(tuple(shape), dtype=dt)
            else:
                value = (np.zeros if initializer == "zeros" else np.ones)(shape, dt)
        elif callable(initializer):
            value = initializer(tuple(shape), dtype=dt)
        else:
            value = np.broadcast_to(np.asarray(initializer, dt), shape)
        var = MetricVariable(np.array(value, dtype=dt),
                             name or f"variable_{len(variables)}" if variables else
                             name or "variable")
        var.aggregation = aggregation  # 'sum': data-parallel runs sum it across ranks
        variables.append(var)
        return var

    add_weight = add_variable

    @property
    def variables(self):
        return list(self.__dict__.get("_variables", []))

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state()")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result()")

    def reset_state(self):
        """Zero every variable from :meth:`add_variable` (Keras's default)."""
        variables = self.__dict__.get("_variables")
        if not variables:
            raise NotImplementedError(f"{type(self).__name__} must implement reset_state() "
                                      f"(it has no variables from add_variable to reset)")
        for v in variables:
            v.assign(np.zeros(v.shape, v.dtype))

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

    #: the state attributes that are sums over samples (summed across data-parallel ranks)
    sum_state = ("total", "count")

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
