"""``Conv2D``."""
from __future__ import annotations

from .base_conv import BaseConv

__all__ = ["Conv2D"]


class Conv2D(BaseConv):
    """2-D convolution over images ``(batch, height, width, channels)`` (Keras's ``Conv2D``).

    Parameters (Keras's names and defaults)
    ----------
    filters : int
        Output channels.
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : {'valid', 'same'}
        ``'same'`` pads ``max((ceil(size / stride) - 1) * stride + (k - 1) * dilation + 1
        - size, 0)`` zeros per axis, the odd one at the bottom/right.
    data_format : {'channels_last', 'channels_first'}, optional
    dilation_rate : int or (int, int), default 1
        ``strides > 1`` together with ``dilation_rate > 1`` is refused (as Keras does).
    groups : int, default 1
        Input channels and ``filters`` must divide by it.
    activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer
        As :class:`~pynn.layers.Dense`.

    Weights: ``kernel`` ``(kh, kw, in_channels // groups, filters)``, ``bias``
    ``(filters,)``.
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), groups=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, groups=groups,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
