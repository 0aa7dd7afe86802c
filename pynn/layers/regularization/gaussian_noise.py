"""``GaussianNoise``: additive zero-centred Gaussian noise in training."""
from __future__ import annotations

from .base_gaussian_noise import BaseGaussianNoise, unit_argument

__all__ = ["GaussianNoise"]


class GaussianNoise(BaseGaussianNoise):
    """``y = x + stddev * z``, ``z ~ N(0, 1)`` drawn afresh each training call; the
    identity at inference (Keras 3's). ``stddev`` lies in [0, 1], as Keras requires.
    The gradient passes through unchanged."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.stddev = unit_argument("GaussianNoise", self.name, "stddev", stddev)

    def forward(self, ctx, x, training=False):
        if not training or self.stddev == 0.0:
            return x
        be = self.backend
        z = self._on_backend(ctx, self._standard_normal(ctx, tuple(x.shape)))
        y = be.copy_(x, ctx.buffer("y", x.shape))
        return be.axpy_(self.stddev, z, y)

    def backward(self, ctx, dy, input_grad=True):
        return dy if input_grad else None

    def get_config(self):
        cfg = super().get_config()
        cfg["stddev"] = self.stddev
        return cfg
