"""Adadelta (Keras 3's ``optimizers/adadelta.py``)."""
from __future__ import annotations

import numpy as np

from ..backends.validation import POSITIVE, UNIT
from .base_optimizer import Optimizer, host_grad


class Adadelta(Optimizer):
    """Adadelta, Keras's form, in NumPy (host-memory backends):
    ``ag = rho * ag + (1 - rho) * g**2``;
    ``delta = -sqrt(ad + eps) * g / sqrt(ag + eps)``;
    ``ad = rho * ad + (1 - rho) * delta**2``; ``p += lr * delta``. Other keywords:
    :class:`Optimizer`'s."""

    _HYPER = {**Optimizer._HYPER, "rho": UNIT, "epsilon": POSITIVE}
    _CONFIG = ("rho", "epsilon")
    _slots = ("accumulated_grad", "accumulated_delta_var")
    _nonnegative_slots = ("accumulated_grad", "accumulated_delta_var")
    _numpy_rule = True

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def _update(self, backend, param, grad, state, lr, weight_decay):
        ag, ad = state
        g = host_grad(param, grad, lr, weight_decay)
        rho, eps = self.rho, self.epsilon
        ag *= rho
        ag += (1.0 - rho) * g * g
        delta = -np.sqrt(ad + eps) * g / np.sqrt(ag + eps)
        ad *= rho
        ad += (1.0 - rho) * delta * delta
        param += lr * delta
