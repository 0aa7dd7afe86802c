"""``BaseGlobalPooling``: max or average over every spatial position (Keras's
``BaseGlobalPooling``)."""
from __future__ import annotations

import numpy as np

from ..convolutional.conv_utils import check_rank, standardize_data_format
from ..layer import Layer
from .base_pooling import image_view

__all__ = ["BaseGlobalPooling"]


class BaseGlobalPooling(Layer):
    """The max (``mode='max'``) or mean (``'avg'``) of each channel over all
    :attr:`rank`-D positions: ``(batch, channels)``, or with ``keepdims`` the input's
    rank with spatial sizes 1. Runs the backend's pooling ops with one window covering
    the whole input."""

    rank = None
    mode = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format, self._where)
        self.keepdims = bool(keepdims)

    @property
    def _where(self):
        return f"{type(self).__name__} {self.name!r}"

    def compute_output_shape(self, input_shape):
        check_rank(self._where, input_shape, self.rank)
        n = input_shape[0]
        if self.data_format == "channels_last":
            c = input_shape[-1]
            return (n,) + (1,) * self.rank + (c,) if self.keepdims else (n, c)
        c = input_shape[1]
        return (n, c) + (1,) * self.rank if self.keepdims else (n, c)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def forward(self, ctx, x, training=False):
        x4 = image_view(x, self.rank, self.data_format)
        n, h, w, c = x4.shape
        y = ctx.buffer("y", (n, 1, 1, c))
        index = ctx.buffer("index", y.shape, np.int64) if self.mode == "max" else None
        _, index = self.backend.pool2d_forward(x4, (h, w), (h, w), mode=self.mode, out=y,
                                               index=index)
        ctx.saved = (tuple(x.shape), x4.shape, index)
        out_shape = self.compute_output_shape((x.shape[0],) + tuple(x.shape[1:]))
        return y.reshape(out_shape)

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        x_shape, x4_shape, index = ctx.saved
        n, h, w, c = x4_shape
        dx = self.backend.pool2d_backward(dy.reshape(n, 1, 1, c), x4_shape, (h, w), (h, w),
                                          mode=self.mode, index=index,
                                          out=ctx.buffer("dx", x4_shape))
        return dx.reshape(x_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(data_format=self.data_format, keepdims=self.keepdims)
        return cfg
