"""``Dense``: ``y = activation(x @ kernel + bias)``."""
from __future__ import annotations

import numpy as np

from ... import activations, initializers, regularizers
from ...backends.activation_codes import UNFUSED, activation_output_width
from ..layer import Layer, rows

__all__ = ["Dense"]


class Dense(Layer):
    """Fully connected layer: ``y = activation(x @ kernel + bias)``.

    ``kernel`` has shape ``(n_in, units)`` (Keras's layout); the activation runs as
    the epilogue of the backend's ``gemm``. Inputs of rank > 2 are applied on the
    last axis.

    Backward: ``dz = dy * activation'``, ``dW = x^T dz`` and ``dx = dz W^T`` via
    ``gemm``'s transpose flags, ``db = column sums of dz`` via ``bias_grad``.

    An activation that is not a GEMM epilogue (its backward needs its input, or it is
    row-wise without compiled kernels) runs after a ``'linear'`` GEMM. ``glu`` halves
    the last axis, as in Keras: ``Dense(8, activation="glu")`` has 4 outputs.
    """

    _supports_masking = True  # masks pass through (Keras)

    #: ``forward(..., logits=True)`` returns the pre-activation (for a fused loss)
    supports_logits = True

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Received an invalid value for `units` of layer {self.name!r}, "
                             f"expected a positive integer. Received: units={units!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self._act = activations.canonical_name(activation)
        self._out_units = activation_output_width(
            self._act, self.units, f"Dense layer {self.name!r} (units={self.units})")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = None
        self.bias = None

    @property
    def output_activation(self):
        return self._act

    def build(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense layer {self.name!r} needs inputs with a known last "
                             f"dimension, got input shape {input_shape}")
        n_in = input_shape[-1]
        self.kernel = self.add_weight("kernel", (n_in, self.units), self.kernel_initializer,
                                      self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        self.bias_regularizer)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self._out_units,)

    def forward(self, ctx, x, training=False, logits=False):
        be = self.backend
        xs = tuple(x.shape)
        x2 = rows(x, xs[-1])
        n = x2.shape[0]
        act = "linear" if logits else self._act
        width = self.units if logits else self._out_units
        y = ctx.buffer("y", (n, width))
        b = self.bias.value if self.bias is not None else None
        z = None
        if act in UNFUSED:
            z = ctx.buffer("z", (n, self.units))
            be.gemm(x2, self.kernel.value, out=z, bias=b)
            be.activation_forward(z, act, out=y)
        else:
            be.gemm(x2, self.kernel.value, out=y, bias=b, activation=act)
        ctx.saved = (xs, x2, z, y, act)
        return y if len(xs) == 2 else y.reshape(xs[:-1] + (width,))

    def backward(self, ctx, dy, input_grad=True):
        be = self.backend
        x_shape, x2, z, y, act = ctx.saved
        dy = rows(dy, y.shape[1])
        if act != "linear":
            dz = be.activation_backward(dy, y, act, x=z,
                                        out=ctx.buffer("dz", (y.shape[0], self.units)))
        else:
            dz = dy
        dk = ctx.grad_out(self.kernel)
        if dk is not None:
            be.gemm(x2, dz, out=dk, trans_a=True)
        db = None if self.bias is None else ctx.grad_out(self.bias)
        if db is not None:
            be.bias_grad(dz, out=db)
        if not input_grad:
            return None
        dx = be.gemm(dz, self.kernel.value, out=ctx.buffer("dx", x2.shape), trans_b=True)
        return dx if len(x_shape) == 2 else dx.reshape(x_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self._act, use_bias=self.use_bias,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg
