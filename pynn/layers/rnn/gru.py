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
                 reset_after=True, **kwargs):
        super().__init__(units, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias, **kwargs)
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
