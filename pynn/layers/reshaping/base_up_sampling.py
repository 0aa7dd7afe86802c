"""``BaseUpSampling``: nearest-neighbour upsampling of 1-D or 2-D data."""
from __future__ import annotations

import numpy as np

from ..convolutional.conv_utils import (check_rank, require_host, spatial_axes,
                                        standardize_data_format, standardize_tuple)
from ..layer import Layer

__all__ = ["BaseUpSampling"]


class BaseUpSampling(Layer):
    """Repeat each spatial position ``size[i]`` times along spatial axis ``i`` (Keras's
    ``ops.repeat``). Backward sums each block of repeats. Both are one NumPy pass over a
    view that splits every spatial axis into ``(size, factor)`` (host backends)."""

    rank = None

    def __init__(self, size, data_format=None, **kwargs):
        super().__init__(**kwargs)
        #: one positive int per spatial axis (errors name the layer)
        self._size = standardize_tuple(size, self.rank, "size", self._where)
        self.data_format = standardize_data_format(data_format, self._where)

    @property
    def _where(self):
        return f"{type(self).__name__} {self.name!r}"

    def compute_output_shape(self, input_shape):
        check_rank(self._where, input_shape, self.rank)
        shape = list(input_shape)
        for a, f in zip(spatial_axes(self.rank, self.data_format), self._size):
            if shape[a] is not None:
                shape[a] *= f
        return tuple(shape)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def _split(self, x_shape):
        """``(split shape, index of x in it, factor axes)``."""
        factors = dict(zip(spatial_axes(self.rank, self.data_format), self._size))
        split, index, axes = [], [], []
        for a, s in enumerate(x_shape):
            split.append(s)
            index.append(slice(None))
            if a in factors:
                axes.append(len(split))
                split.append(factors[a])
                index.append(None)
        return tuple(split), tuple(index), tuple(axes)

    def forward(self, ctx, x, training=False):
        require_host(self, "upsampling")
        split, index, _ = self._split(x.shape)
        y = ctx.buffer("y", self.compute_output_shape(x.shape))
        y.reshape(split)[...] = np.asarray(x)[index]
        ctx.saved = tuple(x.shape)
        return y

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        x_shape = ctx.saved
        split, _, axes = self._split(x_shape)
        dx = ctx.buffer("dx", x_shape)
        np.sum(np.asarray(dy).reshape(split), axis=axes, out=dx)
        return dx
