"""``Activation``: applies an activation function."""
from __future__ import annotations

from ... import activations
from ...backends.activation_codes import activation_output_width
from ..layer import Layer, rows

__all__ = ["Activation"]


class Activation(Layer):
    """Applies an activation function (any name :func:`pynn.activations.get` accepts)."""

    _supports_masking = True  # masks pass through (Keras)

    #: ``forward(..., logits=True)`` returns the input (for a fused loss)
    supports_logits = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self._act = activations.canonical_name(activation)
        self._alpha = None

    @property
    def output_activation(self):
        return self._act

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if self._act == "glu" and shape:  # glu halves the last axis
            width = activation_output_width("glu", shape[-1], f"Activation layer {self.name!r}")
            return shape[:-1] + (width,)
        return shape

    def forward(self, ctx, x, training=False, logits=False):
        if logits or self._act == "linear":
            ctx.saved = None
            return x
        be = self.backend
        xs = tuple(x.shape)
        x2 = rows(x, xs[-1])
        width = activation_output_width(self._act, x2.shape[1], f"Activation layer {self.name!r}")
        y = be.activation_forward(x2, self._act, out=ctx.buffer("y", (x2.shape[0], width)),
                                  alpha=self._alpha)
        ctx.saved = (xs, x2, y)
        return y if len(xs) == 2 else y.reshape(xs[:-1] + (y.shape[1],))

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        if ctx.saved is None:
            return dy
        x_shape, x2, y = ctx.saved
        dx = self.backend.activation_backward(rows(dy, y.shape[1]), y, self._act, x=x2,
                                              out=ctx.buffer("dx", x2.shape), alpha=self._alpha)
        return dx if len(x_shape) == 2 else dx.reshape(x_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self._act
        return cfg
