"""``SimpleRNN``: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""
from __future__ import annotations

from .base_rnn import BaseRNN

__all__ = ["SimpleRNN"]


class SimpleRNN(BaseRNN):
    """Fully connected recurrent layer (Keras's ``SimpleRNN``; see :class:`BaseRNN`).

    Weights: ``kernel (features, units)``, ``recurrent_kernel (units, units)``,
    ``bias (units,)``.
    """

    cell = "simple_rnn"

    def __init__(self, units, activation="tanh", use_bias=True, **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias, **kwargs)
