"""``GRU``: Keras's gated recurrent unit layer (gates z, r, h)."""
from __future__ import annotations

from .base_rnn import BaseRNN

__all__ = ["GRU"]


class GRU(BaseRNN):
    """Gated recurrent unit layer (Keras's ``GRU``; see :class:`BaseRNN`).

    Weights: ``kernel (features, 3u)``, ``recurrent_kernel (u, 3u)``, gates in Keras's
    order z, r, h; ``reset_after=True`` (Keras 3's default, PyTorch's convention) applies
    the reset gate after the recurrent product and has ``bias (2, 3u)`` (input bias,
    recurrent bias); ``reset_after=False`` has ``bias (3u,)``.
    """

    cell = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, reset_after=True, **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, dropout=dropout,
                         recurrent_dropout=recurrent_dropout,
                         return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll, **kwargs)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _op_kwargs(self):
        return dict(super()._op_kwargs(), recurrent_activation=self._ract,
                    reset_after=self.reset_after)

    def get_config(self):
        cfg = super().get_config()
        cfg["reset_after"] = self.reset_after
        return cfg
