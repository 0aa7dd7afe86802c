"""``Conv2DTranspose``."""
from __future__ import annotations

import numpy as np

from ... import initializers, regularizers
from ...backends.activation_codes import UNFUSED
from .base_conv import BaseConv, activation_grad
from .conv_utils import (conv_transpose_geometry, from_images, require_host, spatial_axes,
                         standardize_tuple, to_images)

__all__ = ["Conv2DTranspose"]


class Conv2DTranspose(BaseConv):
    """Transposed 2-D convolution (Keras's ``Conv2DTranspose``): the input gradient of a
    convolution, used to upsample.

    Weights: ``kernel`` ``(kh, kw, filters, in_channels)`` (Keras's layout: that of the
    convolution it transposes, from ``filters`` to ``in_channels`` channels) and
    ``bias`` ``(filters,)``. Output size per axis (Keras's
    ``compute_conv_transpose_output_shape``, ``k`` the dilated kernel size):
    ``'valid'``: ``(size - 1) * stride + k + output_padding`` (``output_padding=None``:
    ``max(k, stride) - k``); ``'same'``: ``size * stride`` (``output_padding=None``),
    else ``(size - 1) * stride + k % 2 + output_padding``.

    Forward: the backend's ``conv2d_backward_input`` with the kernel as it is, then the
    bias and activation. Backward: the input gradient is ``conv2d_forward`` of ``dz``
    and the kernel gradient ``conv2d_backward_kernel`` with the roles of input and
    output gradient swapped.
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1),
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
        if output_padding is None:
            self.output_padding = None
        else:
            self.output_padding = standardize_tuple(output_padding, 2, "output_padding",
                                                    self._where, allow_zero=True)
            for i, (op, s) in enumerate(zip(self.output_padding, self.strides)):
                if op >= s:
                    raise ValueError(f"{self._where}: `output_padding` must be strictly less "
                                     f"than `strides` for all dimensions. At dimension {i}, "
                                     f"`output_padding` is {op} but `strides` is {s}. "
                                     f"Received: output_padding={self.output_padding}, "
                                     f"strides={self.strides}")

    def _geometry(self, spatial):
        """Per axis ``(out_size, (before, after))`` for input sizes ``spatial``."""
        ops = self.output_padding or (None, None)
        return [None if size is None
                else conv_transpose_geometry(size, k, s, d, self.padding, op)
                for size, k, s, d, op in zip(spatial, self.kernel_size, self.strides,
                                             self.dilation_rate, ops)]

    def compute_output_shape(self, input_shape):
        self._in_channels(input_shape)
        spatial = [input_shape[a] for a in spatial_axes(2, self.data_format)]
        out = [None if g is None else g[0] for g in self._geometry(spatial)]
        return self._output_shape(input_shape, self.filters, out)

    def build(self, input_shape):
        c = self._in_channels(input_shape)
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight("kernel", self.kernel_size + (self.filters, c),
                                      self.kernel_initializer, self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        self.bias_regularizer)
        self.built = True

    def forward(self, ctx, x, training=False):
        be = self.backend
        x4 = to_images(self, ctx, x, 2, self.data_format, "x_nhwc")
        (oh, pad_h), (ow, pad_w) = self._geometry(x4.shape[1:3])
        pad = (pad_h, pad_w)
        n = x4.shape[0]
        act = self._act
        y = ctx.buffer("y", (n, oh, ow, self.filters))
        z = ctx.buffer("z", y.shape) if act in UNFUSED else y
        be.conv2d_backward_input(x4, self.kernel.value, z.shape, strides=self.strides,
                                 padding=pad, dilation=self.dilation_rate, out=z)
        if self.bias is not None:
            # the backend's transposed convolution has no bias epilogue: add it on the host
            require_host(self, "the bias of a transposed convolution")
            np.add(z, self.bias.value, out=z)
        if act != "linear":
            c = self.filters
            be.activation_forward(z.reshape(-1, c), act, out=y.reshape(-1, c))
        ctx.saved = (x4, z if z is not y else None, y, pad)
        return from_images(self, ctx, y, 2, self.data_format, "y_out")

    def backward(self, ctx, dy, input_grad=True):
        be = self.backend
        x4, z, y, pad = ctx.saved
        dy4 = to_images(self, ctx, dy, 2, self.data_format, "dy_nhwc")
        dz = activation_grad(be, ctx, dy4, y, z, self._act)
        geo = dict(strides=self.strides, padding=pad, dilation=self.dilation_rate)
        dk = ctx.grad_out(self.kernel)
        if dk is not None:
            # y = A^T x with A = conv(., kernel): dL/dkernel = conv kernel gradient of
            # input dz and output gradient x
            be.conv2d_backward_kernel(dz, x4, dk.shape, out=dk, **geo)
        db = None if self.bias is None else ctx.grad_out(self.bias)
        if db is not None:
            be.bias_grad(dz.reshape(-1, self.filters), out=db)
        if not input_grad:
            return None
        dx4 = be.conv2d_forward(dz, self.kernel.value, None, out=ctx.buffer("dx", x4.shape),
                                **geo)
        return from_images(self, ctx, dx4, 2, self.data_format, "dx_out")

    def get_config(self):
        cfg = self._geometry_config()
        cfg.update(filters=self.filters,
                   output_padding=None if self.output_padding is None
                   else list(self.output_padding),
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg
