"""RMSprop (Keras 3's ``optimizers/rmsprop.py``)."""
from __future__ import annotations

import numpy as np

from ..backends.validation import POSITIVE, UNIT, UNIT_OPEN
from .base_optimizer import Optimizer, host_grad


class RMSprop(Optimizer):
    """RMSprop, Keras's form: ``v = rho * v + (1 - rho) * g**2``;
    ``increment = lr * g / sqrt(v + eps)`` (``centered``: ``a = rho * a + (1 - rho) * g``,
    ``increment = lr * g / sqrt(v - a**2 + eps)``); ``p -= increment``, or with
    ``momentum > 0``: ``mom = momentum * mom + increment``; ``p -= mom``.

    The plain rule is the backend's ``rmsprop_update``; ``momentum > 0`` and
    ``centered=True`` update in NumPy (host-memory backends). Other keywords:
    :class:`Optimizer`'s.
    """

    _HYPER = {**Optimizer._HYPER, "rho": UNIT_OPEN, "momentum": UNIT, "epsilon": POSITIVE}
    _CONFIG = ("rho", "momentum", "epsilon", "centered")
    _nonnegative_slots = ("velocity",)

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = bool(centered)
        # Keras's variables, in its order: velocities, momentums, average gradients
        self._slots = ("velocity",) + (("momentum",) if self.momentum > 0 else ()) + \
            (("average_gradient",) if self.centered else ())

    @property
    def _numpy_rule(self):
        return len(self._slots) > 1

    def _update(self, backend, param, grad, state, lr, weight_decay):
        if not self._numpy_rule:
            backend.rmsprop_update(param, grad, state[0], learning_rate=lr, rho=self.rho,
                                   epsilon=self.epsilon, weight_decay=weight_decay)
            return
        slot = dict(zip(self._slots, state))
        g = host_grad(param, grad, lr, weight_decay)
        v, rho = slot["velocity"], self.rho
        v *= rho
        v += (1.0 - rho) * g * g
        if self.centered:
            a = slot["average_gradient"]
            a *= rho
            a += (1.0 - rho) * g
            increment = lr * g / np.sqrt(v - a * a + self.epsilon)
        else:
            increment = lr * g / np.sqrt(v + self.epsilon)
        if "momentum" in slot:
            mom = slot["momentum"]
            mom *= self.momentum
            mom += increment
            param -= mom
        else:
            param -= increment
