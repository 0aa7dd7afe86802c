"""``BaseConv``: the 1-D and 2-D convolution layers' shared code (Keras's ``BaseConv``)."""
from __future__ import annotations

import numpy as np

from ... import activations, initializers, regularizers
from ...backends.activation_codes import UNFUSED
from ..layer import Layer
from .conv_utils import (channels_first_hint, check_rank, conv_output_length,
                         explicit_padding, from_images, image_output_hw, spatial_axes,
                         standardize_data_format, standardize_padding, standardize_tuple,
                         to_images)

__all__ = ["BaseConv", "check_positive_int", "activation_epilogue", "activation_grad"]


def check_positive_int(value, name, where):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{where}: invalid value for argument `{name}`. Expected a strictly "
                         f"positive integer. Received {name}={value!r}")
    return int(value)


def activation_epilogue(be, ctx, y, act, run):
    """Run ``run(out, activation)`` (a convolution writing ``out``) and the activation:
    fused into the op when its backward needs only the output, else the op runs
    ``'linear'`` into the workspace ``z`` and ``activation_forward`` follows.
    Returns ``z`` (the pre-activation, or ``None``)."""
    if act not in UNFUSED:
        run(y, act)
        return None
    z = ctx.buffer("z", y.shape)
    run(z, "linear")
    c = y.shape[-1]
    be.activation_forward(z.reshape(-1, c), act, out=y.reshape(-1, c))
    return z


def activation_grad(be, ctx, dy, y, z, act):
    """``dy * act'`` (``(n, h, w, c)``) in the workspace ``dz``; ``dy`` itself for
    ``'linear'``."""
    if act == "linear":
        return dy
    c = y.shape[-1]
    dz = ctx.buffer("dz", y.shape)
    be.activation_backward(dy.reshape(-1, c), y.reshape(-1, c), act,
                           x=None if z is None else z.reshape(-1, c), out=dz.reshape(-1, c))
    return dz


class BaseConv(Layer):
    """An N-D convolution (N = :attr:`rank`, 1 or 2): ``activation(conv(x, kernel) + bias)``.

    ``kernel`` has Keras's shape ``kernel_size + (in_channels // groups, filters)``; the
    backend's ``conv2d_forward`` runs the convolution with the bias and activation as
    its epilogue (an activation whose backward needs its input, ``gelu``, runs after).
    Backward: the backend's fused ``conv2d_backward`` (activation gradient, kernel,
    bias and input gradients in one sweep). 1-D data is a 2-D image of height 1;
    channels_first data is transposed to channels_last and back.
    """

    rank = None
    #: Keras refuses ``strides > 1`` with ``dilation_rate > 1`` for Conv and ConvTranspose
    #: layers (its depthwise and separable layers take both)
    _strided_dilation_ok = False

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        where = self._where
        n = self.rank
        # filters=None: decided at build (DepthwiseConv2D: in_channels * depth_multiplier)
        self.filters = None if filters is None else check_positive_int(filters, "filters",
                                                                         where)
        self.groups = check_positive_int(groups, "groups", where)
        if self.filters is not None and self.filters % self.groups:
            raise ValueError(f"{where}: the number of filters must be evenly divisible by the "
                             f"number of groups. Received: groups={self.groups}, "
                             f"filters={self.filters}")
        self.kernel_size = standardize_tuple(kernel_size, n, "kernel_size", where)
        self.strides = standardize_tuple(strides, n, "strides", where)
        self.dilation_rate = standardize_tuple(dilation_rate, n, "dilation_rate", where)
        self.padding = standardize_padding(padding, where, allow_causal=n == 1)
        self.data_format = standardize_data_format(data_format, where)
        if (not self._strided_dilation_ok and max(self.strides) > 1
                and max(self.dilation_rate) > 1):
            raise ValueError(f"{where}: `strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.activation = activations.get(activation)
        self._act = activations.canonical_name(activation)
        if self._act == "glu":
            # Keras halves the channels; pynn's convolutions keep ``filters`` outputs
            raise ValueError(f"{where}: activation='glu' (which halves the last axis) is not "
                             f"supported by pynn's convolution layers; use "
                             f"filters=2 * n and an Activation('glu') layer after")
        if self._act in ("softmax", "log_softmax", "sparsemax") \
                and self.data_format == "channels_first":
            # Keras's softmax takes the last axis of the output, a spatial one here
            raise ValueError(f"{where}: activation={self._act!r} with data_format="
                             f"'channels_first' (Keras normalises the last, spatial axis) is "
                             f"not supported; use channels_last or a Softmax layer")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._c_out = self.filters
        self.kernel = None
        self.bias = None

    @property
    def _where(self):
        return f"{type(self).__name__} {self.name!r}"

    # -- shapes ----------------------------------------------------------------------------
    def _in_channels(self, input_shape):
        check_rank(self._where, input_shape, self.rank)
        c = input_shape[1 if self.data_format == "channels_first" else -1]
        if c is None:
            raise ValueError(f"{self._where}: the channel dimension of the inputs must be "
                             f"known, got input shape {tuple(input_shape)}")
        return c

    def _spatial_out(self, input_shape, kernel_size):
        """The output's spatial sizes (Keras's rule); raises when the kernel does not fit."""
        spatial = [input_shape[a] for a in spatial_axes(self.rank, self.data_format)]

        def lengths(sp):
            return [conv_output_length(s, k, st, d, self.padding) for s, k, st, d in
                    zip(sp, kernel_size, self.strides, self.dilation_rate)]

        out = lengths(spatial)
        if any(o is not None and o <= 0 for o in out):
            hint = channels_first_hint(input_shape, self.rank, self.data_format,
                                       lambda sp: all(o > 0 for o in lengths(sp)))
            raise ValueError(
                f"{self._where}: the kernel {tuple(kernel_size)} (dilation "
                f"{self.dilation_rate}) is larger than the {self.padding!r}-padded input: "
                f"input shape {tuple(input_shape)} gives a zero or negative output size "
                f"{tuple(out)}.{hint}")
        return out

    def _output_shape(self, input_shape, channels, spatial):
        if self.data_format == "channels_first":
            return (input_shape[0], channels, *spatial)
        return (input_shape[0], *spatial, channels)

    def compute_output_shape(self, input_shape):
        self._in_channels(input_shape)
        return self._output_shape(input_shape, self.filters,
                                  self._spatial_out(input_shape, self.kernel_size))

    def build(self, input_shape):
        c = self._in_channels(input_shape)
        if c % self.groups:
            raise ValueError(f"{self._where}: the number of input channels must be evenly "
                             f"divisible by the number of groups. Received groups="
                             f"{self.groups}, but the input has {c} channels (full input "
                             f"shape is {tuple(input_shape)})")
        self._spatial_out(input_shape, self.kernel_size)
        self.kernel = self.add_weight("kernel", self.kernel_size + (c // self.groups,
                                                                    self.filters),
                                      self.kernel_initializer, self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        self.bias_regularizer)
        self.built = True

    # -- the op geometry -------------------------------------------------------------------
    def _image_kernel(self, k):
        """A kernel-shaped array as the op's 4-D ``(kh, kw, c_in/groups, c_out)`` (a view)."""
        return k if self.rank == 2 else k.reshape((1,) + tuple(k.shape))

    def _image_geometry(self, x4):
        """``(strides, padding, dilation)`` of the 2-D op for images ``x4``."""
        if self.rank == 2:
            ks, st, dl = self.kernel_size, self.strides, self.dilation_rate
        else:
            ks, st, dl = (1,) + self.kernel_size, (1,) + self.strides, (1,) + self.dilation_rate
        pad = explicit_padding(self.padding, x4.shape[1:3], ks, st, dl)
        return st, pad, dl

    # -- computation -----------------------------------------------------------------------
    def forward(self, ctx, x, training=False):
        be = self.backend
        x4 = to_images(self, ctx, x, self.rank, self.data_format, "x_nhwc")
        strides, pad, dil = self._image_geometry(x4)
        kernel = self._image_kernel(self.kernel.value)
        n, h, w, _ = x4.shape
        oh, ow = image_output_hw((h, w), kernel.shape[:2], strides, pad, dil)
        y = ctx.buffer("y", (n, oh, ow, self._c_out))
        bias = self.bias.value if self.bias is not None else None

        def run(out, act):
            be.conv2d_forward(x4, kernel, bias, strides=strides, padding=pad, dilation=dil,
                              groups=self.groups, activation=act, out=out)

        z = activation_epilogue(be, ctx, y, self._act, run)
        ctx.saved = (x4, z, y, strides, pad, dil)
        return from_images(self, ctx, y, self.rank, self.data_format, "y_out")

    def backward(self, ctx, dy, input_grad=True):
        be = self.backend
        x4, z, y, strides, pad, dil = ctx.saved
        dy4 = to_images(self, ctx, dy, self.rank, self.data_format, "dy_nhwc")
        act = self._act
        if z is not None:  # the activation's backward needs its input: not fusable
            dy4, act = activation_grad(be, ctx, dy4, y, z, act), "linear"
        dk = ctx.grad_out(self.kernel)
        db = None if self.bias is None else ctx.grad_out(self.bias)
        dx4, _, _ = be.conv2d_backward(
            dy4, x4, self._image_kernel(self.kernel.value), y=y, activation=act,
            strides=strides, padding=pad, dilation=dil, groups=self.groups,
            input_grad=input_grad, kernel_grad=dk is not None, bias_grad=db is not None,
            dx=ctx.buffer("dx", x4.shape) if input_grad else None,
            dkernel=None if dk is None else self._image_kernel(dk), dbias=db)
        if not input_grad:
            return None
        return from_images(self, ctx, dx4, self.rank, self.data_format, "dx_out")

    # -- config ----------------------------------------------------------------------------
    def _geometry_config(self):
        """The config entries every convolution shares (Keras's names)."""
        cfg = Layer.get_config(self)
        cfg.update(kernel_size=list(self.kernel_size), strides=list(self.strides),
                   padding=self.padding, data_format=self.data_format,
                   dilation_rate=list(self.dilation_rate), activation=self._act,
                   use_bias=self.use_bias)
        return cfg

    def get_config(self):
        cfg = self._geometry_config()
        cfg.update(filters=self.filters, groups=self.groups,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg
