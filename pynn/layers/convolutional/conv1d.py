"""``Conv1D``."""
from __future__ import annotations

from .base_conv import BaseConv

__all__ = ["Conv1D"]


class Conv1D(BaseConv):
    """1-D convolution over sequences ``(batch, steps, channels)`` (Keras's ``Conv1D``).

    The arguments of :class:`Conv2D` with one int per size, plus ``padding='causal'``
    (``(kernel_size - 1) * dilation_rate`` zeros before the sequence, none after, so
    output step ``t`` sees only inputs up to ``t``).

    Weights: ``kernel`` ``(kernel_size, in_channels // groups, filters)``, ``bias``
    ``(filters,)``. Runs as the 2-D ops on images of height 1.
    """

    rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, groups=groups,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
