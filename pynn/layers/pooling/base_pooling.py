"""``BasePooling``: max and average pooling over 1-D or 2-D windows (Keras's
``BasePooling``)."""
from __future__ import annotations

import numpy as np

from ..convolutional.conv_utils import (channels_first_hint, check_rank, conv_output_length,
                                        explicit_padding, image_output_hw, spatial_axes,
                                        standardize_data_format, standardize_padding,
                                        standardize_tuple)
from ..layer import Layer

__all__ = ["BasePooling", "image_view"]


def image_view(x, rank, data_format):
    """``x`` as the ``(n, h, w, c)`` images the pooling ops take, a view: 1-D data has
    ``h = 1``; channels_first data ``(n, c, *spatial)`` is ``n * c`` one-channel images
    (pooling treats every channel alike, so no transpose is needed)."""
    s = x.shape
    if data_format == "channels_first":
        spatial = s[2:] if rank == 2 else (1,) + tuple(s[2:])
        return x.reshape((s[0] * s[1],) + tuple(spatial) + (1,))
    if rank == 1:
        return x.reshape(s[0], 1, s[1], s[2])
    return x


def unview(y4, like_shape, rank, data_format):
    """The pooled images ``y4`` back in the layout of inputs shaped ``like_shape``."""
    n = like_shape[0]
    if data_format == "channels_first":
        spatial = y4.shape[1:3] if rank == 2 else y4.shape[2:3]
        return y4.reshape((n, like_shape[1]) + tuple(spatial))
    if rank == 1:
        return y4.reshape(n, y4.shape[2], y4.shape[3])
    return y4


class BasePooling(Layer):
    """Max (``mode='max'``) or average (``'avg'``) pooling of :attr:`rank`-D windows.

    ``strides=None`` means ``pool_size``. ``'same'`` padding is Keras's (the odd pad at
    the end); padding never wins a max and is not counted in an average (Keras's
    ``'same'`` average pooling counts only real elements). Runs the backend's
    ``pool2d_forward``/``pool2d_backward`` (the max positions are kept per call for
    the backward pass).
    """

    rank = None
    mode = None

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = self._where
        n = self.rank
        self.pool_size = standardize_tuple(pool_size, n, "pool_size", where)
        self.strides = standardize_tuple(self.pool_size if strides is None else strides, n,
                                         "strides", where)
        self.padding = standardize_padding(padding, where)
        self.data_format = standardize_data_format(data_format, where)

    @property
    def _where(self):
        return f"{type(self).__name__} {self.name!r}"

    def _op_geometry(self, x4):
        if self.rank == 2:
            pool, strides = self.pool_size, self.strides
        else:
            pool, strides = (1,) + self.pool_size, (1,) + self.strides
        pad = explicit_padding(self.padding, x4.shape[1:3], pool, strides, (1, 1))
        return pool, strides, pad

    def compute_output_shape(self, input_shape):
        check_rank(self._where, input_shape, self.rank)

        def lengths(sp):
            return [conv_output_length(s, p, st, 1, self.padding)
                    for s, p, st in zip(sp, self.pool_size, self.strides)]

        axes = spatial_axes(self.rank, self.data_format)
        out = lengths([input_shape[a] for a in axes])
        if any(o is not None and o <= 0 for o in out):
            hint = channels_first_hint(input_shape, self.rank, self.data_format,
                                       lambda sp: all(o > 0 for o in lengths(sp)))
            raise ValueError(f"{self._where}: the pool {self.pool_size} (strides "
                             f"{self.strides}, padding {self.padding!r}) does not fit inputs "
                             f"of shape {tuple(input_shape)}: the output size would be "
                             f"{tuple(out)}.{hint}")
        shape = list(input_shape)
        for a, o in zip(axes, out):
            shape[a] = o
        return tuple(shape)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def forward(self, ctx, x, training=False):
        be = self.backend
        x4 = image_view(x, self.rank, self.data_format)
        pool, strides, pad = self._op_geometry(x4)
        n, h, w, c = x4.shape
        oh, ow = image_output_hw((h, w), pool, strides, pad, (1, 1))
        y = ctx.buffer("y", (n, oh, ow, c))
        index = ctx.buffer("index", y.shape, np.int64) if self.mode == "max" else None
        _, index = be.pool2d_forward(x4, pool, strides, pad, self.mode, out=y, index=index)
        ctx.saved = (tuple(x.shape), x4.shape, index, pool, strides, pad)
        return unview(y, x.shape, self.rank, self.data_format)

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        x_shape, x4_shape, index, pool, strides, pad = ctx.saved
        dy4 = image_view(dy, self.rank, self.data_format)
        dx = self.backend.pool2d_backward(dy4, x4_shape, pool, strides, pad, self.mode,
                                          index=index, out=ctx.buffer("dx", x4_shape))
        return dx.reshape(x_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=list(self.pool_size), padding=self.padding,
                   strides=list(self.strides), data_format=self.data_format)
        return cfg
