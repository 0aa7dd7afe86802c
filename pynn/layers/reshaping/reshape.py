"""``Reshape``."""
from __future__ import annotations

import math

import numpy as np

from ..layer import Layer

__all__ = ["Reshape"]


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (Keras's ``Reshape``; a view).

    ``target_shape`` excludes the batch axis; one entry may be ``-1``, inferred from
    the sample's size.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        try:
            shape = tuple(target_shape)
        except TypeError:
            shape = None
        if (shape is None or not shape or any(
                isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < -1 or d == 0
                for d in shape) or shape.count(-1) > 1):
            raise ValueError(f"Reshape {self.name!r}: `target_shape` must be a tuple of "
                             f"positive ints with at most one -1. Received: "
                             f"target_shape={target_shape!r}")
        self.target_shape = tuple(int(d) for d in shape)

    def _resolve(self, sample_shape):
        """``target_shape`` with the -1 filled in for samples of ``sample_shape``."""
        if any(s is None for s in sample_shape):
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(sample_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"Reshape {self.name!r}: samples of shape "
                                 f"{tuple(sample_shape)} ({size} values) cannot be reshaped to "
                                 f"{self.target_shape}: {size} is not a multiple of {known}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if size != known:
            raise ValueError(f"Reshape {self.name!r}: the total size must be unchanged; samples "
                             f"of shape {tuple(sample_shape)} ({size} values) cannot be "
                             f"reshaped to {self.target_shape} ({known} values)")
        return self.target_shape

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"Reshape {self.name!r} takes one input, got {input_shape}")
        return (input_shape[0],) + self._resolve(tuple(input_shape)[1:])

    def forward(self, ctx, x, training=False):
        ctx.saved = tuple(x.shape)
        return x.reshape((x.shape[0],) + self._resolve(tuple(x.shape)[1:]))

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        return dy.reshape(ctx.saved)

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg
