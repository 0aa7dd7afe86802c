"""``Activation``: applies an activation function."""
from __future__ import annotations

from ... import activations
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

    def forward(self, ctx, x, training=False, logits=False):
        if logits or self._act == "linear":
            ctx.saved = None
            return x
        be = self.backend
        xs = tuple(x.shape)
        x2 = rows(x, xs[-1])
        y = be.activation_forward(x2, self._act, out=ctx.buffer("y", x2.shape),
                                  alpha=self._alpha)
        ctx.saved = (xs, x2, y)
        return y if len(xs) == 2 else y.reshape(xs)

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        if ctx.saved is None:
            return dy
        x_shape, x2, y = ctx.saved
        dx = self.backend.activation_backward(rows(dy, y.shape[1]), y, self._act, x=x2,
                                              out=ctx.buffer("dx", y.shape), alpha=self._alpha)
        return dx if len(x_shape) == 2 else dx.reshape(x_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self._act
        return cfg
