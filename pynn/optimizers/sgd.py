"""Stochastic gradient descent (Keras 3's ``optimizers/sgd.py``)."""
from __future__ import annotations

from ..backends.validation import UNIT
from .base_optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ``v = momentum * v - lr * g``; ``p += v`` (Nesterov: ``p += momentum * v - lr * g``);
    without momentum ``p -= lr * g``. Other keywords: :class:`Optimizer`'s.
    """

    _HYPER = {**Optimizer._HYPER, "momentum": UNIT}
    _CONFIG = ("momentum", "nesterov")

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = momentum
        self.nesterov = bool(nesterov)
        self._slots = ("momentum",) if self.momentum else ()

    def _update(self, backend, param, grad, state, lr, weight_decay):
        backend.sgd_update(param, grad, state[0] if state else None, learning_rate=lr,
                           momentum=self.momentum, nesterov=self.nesterov,
                           weight_decay=weight_decay)

    def _stack_rule(self):
        if not self._foldable(SGD) or bool(self.momentum) != bool(self._slots):
            return None
        return dict(rule="sgd", learning_rate=self.learning_rate,
                    weight_decay=float(self.weight_decay or 0.0), momentum=self.momentum,
                    nesterov=self.nesterov)
