"""``Masking``: mark the timesteps whose features all equal ``mask_value`` as padding."""
from __future__ import annotations

import numpy as np

from ..layer import Layer

__all__ = ["Masking"]


class Masking(Layer):
    """Masks the timesteps of ``(batch, steps, features...)`` data whose features all
    equal ``mask_value`` (Keras's ``Masking``): the output is the input with those
    steps zeroed, and its mask ``(batch, steps)`` is True where a step has any other
    value. Layers that take a mask (recurrent layers, ``GlobalAveragePooling1D``...)
    then skip those steps.

    Parameters
    ----------
    mask_value : float, default 0.0
    """

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        try:
            self.mask_value = float(mask_value)
        except (TypeError, ValueError):
            raise ValueError(f"Masking {self.name!r}: mask_value must be a number, got "
                             f"{mask_value!r}") from None

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"Masking {self.name!r} expects inputs of shape (batch, steps, "
                             f"features...), got {tuple(input_shape)}")
        self.built = True

    def _keep(self, x):
        """``(batch, steps)``: True where a step has a feature other than mask_value."""
        axes = tuple(range(2, x.ndim))
        return np.any(np.asarray(x) != self.mask_value, axis=axes)

    def compute_mask(self, inputs, previous_mask):
        return self._keep(inputs)

    def forward(self, ctx, x, training=False):
        keep = self._keep(x)
        shape = keep.shape + (1,) * (x.ndim - 2)
        y = ctx.buffer("y", x.shape)
        np.multiply(x, keep.reshape(shape), out=y)
        ctx.saved = keep.reshape(shape)
        ctx.output_mask = keep
        return y

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        dx = ctx.buffer("dx", dy.shape)
        np.multiply(dy, ctx.saved, out=dx)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(mask_value=self.mask_value)
        return cfg
