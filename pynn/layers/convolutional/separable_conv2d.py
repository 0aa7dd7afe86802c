"""``SeparableConv2D``."""
from __future__ import annotations

from ... import initializers, regularizers
from .base_conv import BaseConv, activation_epilogue, activation_grad, check_positive_int
from .conv_utils import from_images, image_output_hw, to_images

__all__ = ["SeparableConv2D"]

_POINTWISE = dict(strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)


class SeparableConv2D(BaseConv):
    """A depthwise convolution followed by a pointwise (1x1) one (Keras's
    ``SeparableConv2D``): ``activation(pointwise(depthwise(x)) + bias)``.

    Weights, in Keras's order: ``depthwise_kernel`` ``(kh, kw, in_channels,
    depth_multiplier)``, ``pointwise_kernel`` ``(1, 1, in_channels * depth_multiplier,
    filters)``, ``bias`` ``(filters,)``. The strides, padding and dilation apply to the
    depthwise step (a grouped convolution, as :class:`DepthwiseConv2D`); the pointwise
    step carries the bias and activation epilogue.
    """

    rank = 2
    _strided_dilation_ok = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), depth_multiplier=1, activation=None,
                 use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=depthwise_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
        self.depth_multiplier = check_positive_int(depth_multiplier, "depth_multiplier",
                                                   self._where)
        self.depthwise_initializer = self.kernel_initializer
        self.depthwise_regularizer = self.kernel_regularizer
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.depthwise_kernel = self.pointwise_kernel = None

    def build(self, input_shape):
        c = self._in_channels(input_shape)
        self._spatial_out(input_shape, self.kernel_size)
        self.groups = c
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", self.kernel_size + (c, m),
                                                self.depthwise_initializer,
                                                self.depthwise_regularizer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, c * m, self.filters),
                                                self.pointwise_initializer,
                                                self.pointwise_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        self.bias_regularizer)
        self.built = True

    @staticmethod
    def _depthwise_view(k):
        kh, kw, c, m = k.shape
        return k.reshape(kh, kw, 1, c * m)

    def forward(self, ctx, x, training=False):
        be = self.backend
        x4 = to_images(self, ctx, x, self.rank, self.data_format, "x_nhwc")
        strides, pad, dil = self._image_geometry(x4)
        dw = self._depthwise_view(self.depthwise_kernel.value)
        n, h, w, c = x4.shape
        oh, ow = image_output_hw((h, w), dw.shape[:2], strides, pad, dil)
        mid = ctx.buffer("mid", (n, oh, ow, dw.shape[3]))
        be.conv2d_forward(x4, dw, None, strides=strides, padding=pad, dilation=dil,
                          groups=c, out=mid)
        y = ctx.buffer("y", (n, oh, ow, self.filters))
        pw = self.pointwise_kernel.value
        bias = self.bias.value if self.bias is not None else None

        def run(out, act):
            be.conv2d_forward(mid, pw, bias, activation=act, out=out, **_POINTWISE)

        z = activation_epilogue(be, ctx, y, self._act, run)
        ctx.saved = (x4, mid, z, y, strides, pad, dil)
        return from_images(self, ctx, y, self.rank, self.data_format, "y_out")

    def backward(self, ctx, dy, input_grad=True):
        be = self.backend
        x4, mid, z, y, strides, pad, dil = ctx.saved
        dy4 = to_images(self, ctx, dy, self.rank, self.data_format, "dy_nhwc")
        dz = activation_grad(be, ctx, dy4, y, z, self._act)
        pw = self.pointwise_kernel.value
        dpw = ctx.grad_out(self.pointwise_kernel)
        if dpw is not None:
            be.conv2d_backward_kernel(mid, dz, pw.shape, out=dpw, **_POINTWISE)
        db = None if self.bias is None else ctx.grad_out(self.bias)
        if db is not None:
            be.bias_grad(dz.reshape(-1, self.filters), out=db)
        ddw = ctx.grad_out(self.depthwise_kernel)
        if ddw is None and not input_grad:
            return None
        dmid = be.conv2d_backward_input(dz, pw, mid.shape, out=ctx.buffer("dmid", mid.shape),
                                        **_POINTWISE)
        c = x4.shape[3]
        dw = self._depthwise_view(self.depthwise_kernel.value)
        if ddw is not None:
            be.conv2d_backward_kernel(x4, dmid, dw.shape, strides=strides, padding=pad,
                                      dilation=dil, groups=c, out=self._depthwise_view(ddw))
        if not input_grad:
            return None
        dx4 = be.conv2d_backward_input(dmid, dw, x4.shape, strides=strides, padding=pad,
                                       dilation=dil, groups=c, out=ctx.buffer("dx", x4.shape))
        return from_images(self, ctx, dx4, self.rank, self.data_format, "dx_out")

    def get_config(self):
        cfg = self._geometry_config()
        cfg.update(filters=self.filters, depth_multiplier=self.depth_multiplier,
                   depthwise_initializer=initializers.serialize(self.depthwise_initializer),
                   pointwise_initializer=initializers.serialize(self.pointwise_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   depthwise_regularizer=regularizers.serialize(self.depthwise_regularizer),
                   pointwise_regularizer=regularizers.serialize(self.pointwise_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg
