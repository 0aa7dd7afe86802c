"""Adam (Keras 3's ``optimizers/adam.py``)."""
from __future__ import annotations

import numpy as np

from ..backends.validation import adam_step_size
from .base_optimizer import MomentsOptimizer, host_grad


class Adam(MomentsOptimizer):
    """Adam (Kingma & Ba), Keras's form:
    ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``; ``p -= alpha * m / (sqrt(v) + eps)``.

    ``amsgrad=True`` keeps the running maximum of ``v`` (NumPy path, host
    backends only). Other keywords: :class:`MomentsOptimizer`'s.
    """

    _CONFIG = MomentsOptimizer._CONFIG + ("amsgrad",)
    _nonnegative_slots = ("velocity", "velocity_hat")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.amsgrad = bool(amsgrad)
        self._slots = ("momentum", "velocity", "velocity_hat") if amsgrad else \
            ("momentum", "velocity")

    @property
    def _numpy_rule(self):
        return self.amsgrad

    def _update(self, backend, param, grad, state, lr, weight_decay):
        step = self._iterations + 1
        if not self.amsgrad:
            backend.adam_update(param, grad, state[0], state[1], step, learning_rate=lr,
                                beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                                weight_decay=weight_decay)
            return
        m, v, vhat = state
        g = host_grad(param, grad, lr, weight_decay)
        alpha = adam_step_size(lr, self.beta_1, self.beta_2, step)
        m += (g - m) * (1.0 - self.beta_1)
        v += (g * g - v) * (1.0 - self.beta_2)
        np.maximum(vhat, v, out=vhat)
        param -= (alpha * m / (np.sqrt(vhat) + self.epsilon)).astype(param.dtype)

    def _stack_rule(self):
        if self.amsgrad or not self._foldable(Adam):
            return None
        return dict(rule="adam", learning_rate=self.learning_rate,
                    weight_decay=float(self.weight_decay or 0.0), beta_1=self.beta_1,
                    beta_2=self.beta_2, epsilon=self.epsilon, step=self._iterations + 1)
