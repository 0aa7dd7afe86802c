"""Lion (Keras 3's ``optimizers/lion.py``)."""
from __future__ import annotations

import numpy as np

from ..backends.validation import UNIT
from .base_optimizer import UNIT_LOW_OPEN, Optimizer, host_grad


class Lion(Optimizer):
    """Lion (Chen et al. 2023), Keras's form, in NumPy (host-memory backends):
    ``p -= lr * sign(beta_1 * m + (1 - beta_1) * g)``; then
    ``m = beta_2 * m + (1 - beta_2) * g``. ``beta_1`` lies in (0, 1]. Other keywords:
    :class:`Optimizer`'s."""

    _HYPER = {**Optimizer._HYPER, "beta_1": UNIT_LOW_OPEN, "beta_2": UNIT}
    _CONFIG = ("beta_1", "beta_2")
    _slots = ("momentum",)
    _numpy_rule = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def _update(self, backend, param, grad, state, lr, weight_decay):
        (m,) = state
        g = host_grad(param, grad, lr, weight_decay)
        param -= lr * np.sign(m * self.beta_1 + g * (1.0 - self.beta_1))
        m *= self.beta_2
        m += g * (1.0 - self.beta_2)
