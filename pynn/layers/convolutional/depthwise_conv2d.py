"""``DepthwiseConv2D``."""
from __future__ import annotations

from ... import initializers, regularizers
from .base_conv import BaseConv, check_positive_int

__all__ = ["DepthwiseConv2D"]


class DepthwiseConv2D(BaseConv):
    """Depthwise 2-D convolution: each input channel convolved with its own
    ``depth_multiplier`` filters (Keras's ``DepthwiseConv2D``).

    Weights: ``kernel`` ``(kh, kw, in_channels, depth_multiplier)`` and ``bias``
    ``(in_channels * depth_multiplier,)``; output channel ``c * depth_multiplier + m``
    is input channel ``c`` convolved with ``kernel[:, :, c, m]``. It runs as a grouped
    convolution (``groups = in_channels``) with the kernel viewed as ``(kh, kw, 1,
    in_channels * depth_multiplier)``, whose row-major order is exactly that channel
    order. Geometry arguments as :class:`Conv2D` (strides and dilation may be combined,
    as in Keras).
    """

    rank = 2
    _strided_dilation_ok = True

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(None, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=depthwise_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
        self.depth_multiplier = check_positive_int(depth_multiplier, "depth_multiplier",
                                                   self._where)

    @property
    def depthwise_initializer(self):
        return self.kernel_initializer

    @property
    def depthwise_regularizer(self):
        return self.kernel_regularizer

    def compute_output_shape(self, input_shape):
        c = self._in_channels(input_shape)
        return self._output_shape(input_shape, c * self.depth_multiplier,
                                  self._spatial_out(input_shape, self.kernel_size))

    def build(self, input_shape):
        c = self._in_channels(input_shape)
        self._spatial_out(input_shape, self.kernel_size)
        self.groups = c
        self._c_out = c * self.depth_multiplier
        self.kernel = self.add_weight("kernel", self.kernel_size + (c, self.depth_multiplier),
                                      self.kernel_initializer, self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self._c_out,), self.bias_initializer,
                                        self.bias_regularizer)
        self.built = True

    def _image_kernel(self, k):
        kh, kw, c, m = k.shape
        return k.reshape(kh, kw, 1, c * m)

    def get_config(self):
        cfg = self._geometry_config()
        cfg.update(depth_multiplier=self.depth_multiplier,
                   depthwise_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   depthwise_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg
