"""Hinge metrics: the means of the hinge losses."""
from __future__ import annotations

from .. import losses as _losses
from .metric import _LossMeanMetric


class Hinge(_LossMeanMetric):
    """Mean hinge loss (0/1 labels become -1/1)."""
    _fn = staticmethod(_losses.hinge)
    _default_name = "hinge"


class SquaredHinge(_LossMeanMetric):
    """Mean squared hinge loss (0/1 labels become -1/1)."""
    _fn = staticmethod(_losses.squared_hinge)
    _default_name = "squared_hinge"


class CategoricalHinge(_LossMeanMetric):
    """Mean categorical hinge loss (one-hot targets)."""
    _fn = staticmethod(_losses.categorical_hinge)
    _default_name = "categorical_hinge"
