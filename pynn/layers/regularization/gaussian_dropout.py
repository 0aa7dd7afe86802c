"""``GaussianDropout``: multiplicative 1-centred Gaussian noise in training."""
from __future__ import annotations

import math

import numpy as np

from .base_gaussian_noise import BaseGaussianNoise, unit_argument

__all__ = ["GaussianDropout"]


class GaussianDropout(BaseGaussianNoise):
    """``y = x * m``, ``m ~ N(1, rate / (1 - rate))`` drawn afresh each training call;
    the identity at inference (Keras 3's). The gradient is ``dy * m``.

    ``rate`` lies in [0, 1): Keras also accepts 1 and then fails when training (its
    noise's standard deviation ``sqrt(rate / (1 - rate))`` divides by zero).
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = unit_argument("GaussianDropout", self.name, "rate", rate, high_open=True)

    def forward(self, ctx, x, training=False):
        if not training or self.rate == 0.0:
            ctx.saved = None
            return x
        m = self._standard_normal(ctx, tuple(x.shape))
        np.multiply(m, math.sqrt(self.rate / (1.0 - self.rate)), out=m)
        np.add(m, 1.0, out=m)
        m = self._on_backend(ctx, m)
        ctx.saved = m
        # the backend's elementwise product (dropout's backward: out = dy * mask)
        return self.backend.dropout_backward(x, m, out=ctx.buffer("y", x.shape))

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        m = ctx.saved
        if m is None:
            return dy
        return self.backend.dropout_backward(dy, m, out=ctx.buffer("dx", dy.shape))

    def get_config(self):
        cfg = super().get_config()
        cfg["rate"] = self.rate
        return cfg
