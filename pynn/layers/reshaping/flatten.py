"""``Flatten``."""
from __future__ import annotations

import math

from ..layer import Layer

__all__ = ["Flatten"]


class Flatten(Layer):
    """Flatten each sample: ``(n, d1, d2, ...) -> (n, d1 * d2 * ...)`` (a view)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten {self.name!r}: only data_format='channels_last' is "
                             f"supported, got {data_format!r}")
        self.data_format = "channels_last"

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape)[1:]
        size = None if any(s is None for s in rest) else int(math.prod(rest))
        return (input_shape[0], size)

    def forward(self, ctx, x, training=False):
        ctx.saved = x.shape
        return x.reshape(x.shape[0], -1) if len(x.shape) != 2 else x

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        return dy.reshape(ctx.saved)

    def get_config(self):
        cfg = super().get_config()
        cfg["data_format"] = self.data_format
        return cfg
