"""Nadam (Keras 3's ``optimizers/nadam.py``)."""
from __future__ import annotations

import numpy as np

from ..backends.validation import check_hyper
from .base_optimizer import UNIT_LOW_OPEN, MomentsOptimizer, host_grad


class Nadam(MomentsOptimizer):
    """Nadam (Dozat), Keras's form, in NumPy (host-memory backends). With ``t`` the step
    (from 1), ``u_t = beta_1 * (1 - 0.5 * 0.96**t)`` and ``prod_t = u_1 * ... * u_t``:
    ``m += (g - m)(1 - beta_1)``; ``v += (g**2 - v)(1 - beta_2)``;
    ``m_hat = u_{t+1} m / (1 - prod_t u_{t+1}) + (1 - u_t) g / (1 - prod_t)``;
    ``v_hat = v / (1 - beta_2**t)``; ``p -= lr * m_hat / (sqrt(v_hat) + eps)``.

    ``prod_t`` is state: :meth:`get_state` saves it as ``u_product``. Other keywords:
    :class:`MomentsOptimizer`'s.
    """

    _slots = ("momentum", "velocity")
    _nonnegative_slots = ("velocity",)
    _numpy_rule = True

    #: prod_t (restarted by a fresh build) and this step's factors (:meth:`_begin_step`).
    _u_product = 1.0
    _step_factors = None

    def build(self, params, backend=None, flat_param=None, names=None):
        super().build(params, backend, flat_param, names)
        if self._iterations == 0:  # new state (a continued build keeps the product)
            self._u_product = 1.0

    def _begin_step(self):
        t = self._iterations + 1
        u_t = self.beta_1 * (1.0 - 0.5 * 0.96 ** t)
        u_next = self.beta_1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        self._u_product *= u_t
        self._step_factors = (u_t, u_next, self._u_product, 1.0 - self.beta_2 ** t)

    def _update(self, backend, param, grad, state, lr, weight_decay):
        m, v = state
        g = host_grad(param, grad, lr, weight_decay)
        u_t, u_next, prod, v_correction = self._step_factors
        m += (g - m) * (1.0 - self.beta_1)
        v += (g * g - v) * (1.0 - self.beta_2)
        m_hat = u_next * m / (1.0 - prod * u_next) + (1.0 - u_t) * g / (1.0 - prod)
        param -= m_hat * lr / (np.sqrt(v / v_correction) + self.epsilon)

    def get_state(self):
        out = super().get_state()
        out["u_product"] = np.asarray(self._u_product, dtype=np.float64)
        return out

    def set_state(self, state):
        """As :meth:`Optimizer.set_state`, with ``u_product`` (the product of the
        momentum schedule so far, in (0, 1])."""
        if "u_product" not in state:
            raise ValueError("set_state: missing 'u_product'")
        u_product = check_hyper("set_state: u_product", state["u_product"], UNIT_LOW_OPEN)
        super().set_state(state)
        self._u_product = u_product
