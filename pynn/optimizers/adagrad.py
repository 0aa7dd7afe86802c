"""Adagrad (Keras 3's ``optimizers/adagrad.py``)."""
from __future__ import annotations

import numpy as np

from ..backends.validation import NONNEGATIVE, POSITIVE
from .base_optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad, Keras's form: ``acc += g**2``; ``p -= lr * g / sqrt(acc + eps)``, ``acc``
    starting at ``initial_accumulator_value``. Other keywords: :class:`Optimizer`'s."""

    _HYPER = {**Optimizer._HYPER, "initial_accumulator_value": NONNEGATIVE, "epsilon": POSITIVE}
    _CONFIG = ("initial_accumulator_value", "epsilon")
    _slots = ("accumulator",)
    _nonnegative_slots = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _new_state(self, backend, shape, dtype):
        return backend.asarray(np.full(shape, self.initial_accumulator_value, dtype=dtype),
                               dtype=dtype)

    def _update(self, backend, param, grad, state, lr, weight_decay):
        backend.adagrad_update(param, grad, state[0], learning_rate=lr, epsilon=self.epsilon,
                               weight_decay=weight_decay)
