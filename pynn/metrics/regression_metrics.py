"""Regression metrics: MSE, RMSE, MAE, MAPE, MSLE, cosine similarity, log-cosh, R2."""
from __future__ import annotations

import warnings

import numpy as np

from .. import losses as _losses
from ..losses.targets import check_axis
from .metric import Metric, MeanMetricWrapper, _LossMeanMetric, _rowmean, _same_rank, \
    _sample_weights


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _same_rank(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    return _rowmean((y_true - y_pred) ** 2)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _same_rank(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    return _rowmean(np.abs(y_true - y_pred))


class MeanSquaredError(MeanMetricWrapper):
    """Mean of ``(y_true - y_pred) ** 2``."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of ``|y_true - y_pred|``."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class RootMeanSquaredError(MeanMetricWrapper):
    """``sqrt`` of the (weighted) mean of ``(y_true - y_pred) ** 2`` over all batches."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)

    def result(self):
        return float(np.sqrt(super().result()))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample ``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` (the loss's)."""
    return _losses.mean_absolute_percentage_error(y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample cosine of the angle between ``y_true`` and ``y_pred`` (1 when parallel;
    the loss of the same name is its negative)."""
    return -_losses.cosine_similarity(y_true, y_pred, axis=axis)


class MeanAbsolutePercentageError(_LossMeanMetric):
    """Mean of ``100 * |y_true - y_pred| / max(|y_true|, 1e-7)``."""
    _fn = staticmethod(mean_absolute_percentage_error)
    _default_name = "mean_absolute_percentage_error"


class MeanSquaredLogarithmicError(_LossMeanMetric):
    """Mean of ``(log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2``."""
    _fn = staticmethod(_losses.mean_squared_logarithmic_error)
    _default_name = "mean_squared_logarithmic_error"


class CosineSimilarity(_LossMeanMetric):
    """Mean cosine similarity of ``y_true`` and ``y_pred`` rows (1 is best)."""
    _fn = staticmethod(cosine_similarity)
    _default_name = "cosine_similarity"

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        check_axis(axis)
        super().__init__(name=name, dtype=dtype)
        self.axis = axis


class LogCoshError(_LossMeanMetric):
    """Mean of ``log(cosh(y_pred - y_true))`` (Keras's default name ``'logcosh'``)."""
    _fn = staticmethod(_losses.log_cosh)
    _default_name = "logcosh"


class R2Score(Metric):
    """Coefficient of determination per output column, streamed (Keras ``R2Score``).

    ``1 - SS_res / SS_tot`` per column (0 where ``SS_tot`` is 0 and the ratio infinite);
    ``class_aggregation``: ``'uniform_average'`` (default, the mean over columns),
    ``'variance_weighted_average'`` (weighted by ``SS_tot``) or ``None`` (an array).
    ``num_regressors > 0`` gives the adjusted R2 with ``n`` the number of target values
    seen (falling back to plain R2, with a warning, when ``num_regressors >= n - 1``).
    """

    _AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in self._AGGREGATIONS:
            raise ValueError(f"R2Score: class_aggregation must be one of {self._AGGREGATIONS}, "
                             f"got {class_aggregation!r}")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, int) \
                or num_regressors < 0:
            raise ValueError(f"R2Score: num_regressors must be an integer >= 0, got "
                             f"{num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.reset_state()

    sum_state = ("sum", "squared_sum", "total_mse", "count", "num_samples")

    def reset_state(self):
        self.sum = self.squared_sum = self.total_mse = self.count = None
        self.num_samples = 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _same_rank(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
        if yp.ndim != 2 or yt.shape != yp.shape:
            raise ValueError(f"{self.name}: expects y_true and y_pred of shape (n, output_dim), "
                             f"got y_true {np.shape(y_true)} and y_pred {np.shape(y_pred)}")
        if self.sum is not None and self.sum.shape[0] != yp.shape[1]:
            raise ValueError(f"{self.name}: output_dim changed from {self.sum.shape[0]} to "
                             f"{yp.shape[1]}")
        w = _sample_weights(sample_weight, yp.shape[0], self.name)
        w = np.ones(yp.shape) if w is None else np.broadcast_to(w[:, None], yp.shape)
        if self.sum is None:
            self.sum, self.squared_sum, self.total_mse, self.count = (
                np.zeros(yp.shape[1]) for _ in range(4))
        self.sum = self.sum + (yt * w).sum(axis=0)
        self.squared_sum = self.squared_sum + (yt * yt * w).sum(axis=0)
        self.total_mse = self.total_mse + ((yt - yp) ** 2 * w).sum(axis=0)
        self.count = self.count + w.sum(axis=0)
        self.num_samples += yt.size

    def result(self):
        if self.sum is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum / self.count
            total = self.squared_sum - self.sum * mean
            raw = 1.0 - self.total_mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = float(np.mean(raw))
        elif self.class_aggregation == "variance_weighted_average":
            score = float(np.sum(total * raw) / np.sum(total))
        else:
            score = raw
        if self.num_regressors:
            n, p = self.num_samples, self.num_regressors
            if p >= n - 1:
                warnings.warn(f"{self.name}: adjusted R2 needs num_regressors < n - 1 "
                              f"(num_regressors={p}, n={n}); giving the standard R2",
                              stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return score

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype,
                "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
