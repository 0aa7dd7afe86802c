"""Adamax (Keras 3's ``optimizers/adamax.py``)."""
from __future__ import annotations

import numpy as np

from .base_optimizer import MomentsOptimizer, host_grad


class Adamax(MomentsOptimizer):
    """Adamax (Adam with the infinity norm), Keras's form, in NumPy (host-memory
    backends): ``m += (g - m)(1 - beta_1)``; ``u = max(beta_2 * u, |g|)``;
    ``p -= lr * m / ((1 - beta_1**t) * (u + eps))``. Other keywords:
    :class:`MomentsOptimizer`'s."""

    _slots = ("momentum", "norm")
    _nonnegative_slots = ("norm",)
    _numpy_rule = True

    def _update(self, backend, param, grad, state, lr, weight_decay):
        m, u = state
        g = host_grad(param, grad, lr, weight_decay)
        m += (g - m) * (1.0 - self.beta_1)
        np.maximum(u * self.beta_2, np.abs(g), out=u)
        correction = 1.0 - self.beta_1 ** (self._iterations + 1)
        param -= lr * m / (correction * (u + self.epsilon))
