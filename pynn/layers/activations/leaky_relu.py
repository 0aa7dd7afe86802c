"""``LeakyReLU``."""
from __future__ import annotations

import numpy as np

from ..layer import Layer
from .activation import Activation

__all__ = ["LeakyReLU"]


class LeakyReLU(Activation):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (Keras default 0.3)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras 2 spelling
            negative_slope = kwargs.pop("alpha")
        super().__init__("leaky_relu", **kwargs)
        if negative_slope is None or not np.isfinite(negative_slope) or negative_slope < 0:
            raise ValueError(f"The negative_slope value of a Leaky ReLU layer cannot be None "
                             f"or negative, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self._alpha = self.negative_slope

    output_activation = None

    def get_config(self):
        cfg = Layer.get_config(self)
        cfg["negative_slope"] = self.negative_slope
        return cfg
