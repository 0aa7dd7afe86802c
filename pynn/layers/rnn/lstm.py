"""``LSTM``: Keras's long short-term memory layer (gates i, f, c, o)."""
from __future__ import annotations

import numpy as np

from ... import initializers
from .base_rnn import BaseRNN

__all__ = ["LSTM"]


class _UnitForgetBias(initializers.Initializer):
    """Keras's ``unit_forget_bias`` bias: ``[init(u), ones(u), init(2u)]``, drawn in that
    order."""

    def __init__(self, base, units):
        super().__init__()
        self.base, self.units = base, units
        self.random = base.random

    def __call__(self, shape, dtype=None, rng=None):
        u = self.units
        return np.concatenate([self.base((u,), dtype=dtype, rng=rng),
                               np.ones((u,), dtype=dtype),
                               self.base((2 * u,), dtype=dtype, rng=rng)])


class LSTM(BaseRNN):
    """Long short-term memory layer (Keras's ``LSTM``; see :class:`BaseRNN`).

    Weights: ``kernel (features, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)``, gates
    in Keras's order i, f, c, o. ``unit_forget_bias`` (default) starts the forget gate's
    bias at 1. With ``return_state`` the outputs are ``[output, h, c]``.
    """

    cell = "lstm"
    state_names = ("h", "c")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 unit_forget_bias=True, **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_initializer(self):
        if self.unit_forget_bias:
            return _UnitForgetBias(self.bias_initializer, self.units)
        return self.bias_initializer

    def _op_kwargs(self):
        return dict(super()._op_kwargs(), recurrent_activation=self._ract)

    def get_config(self):
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg
