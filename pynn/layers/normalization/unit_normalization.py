"""``UnitNormalization``: scale each sample to unit L2 norm, as Keras 3's."""
from __future__ import annotations

from ..layer import Layer
from .axis_rows import AxisRows, canonical_axes, standardize_axis

__all__ = ["UnitNormalization"]

#: Keras's lower bound on the norm (``ops.normalize(..., epsilon=1e-12)``)
EPSILON = 1e-12


class UnitNormalization(Layer):
    """``y = x / max(||x||_2, 1e-12)``, the norm taken over ``axis`` (an int or a list of
    ints; the last axis by default) for each position of the other axes. No weights.

    Axes that are not the trailing ones are transposed in a workspace (host-memory
    backends only).
    """

    _supports_masking = True  # masks pass through (Keras)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = standardize_axis(axis, f"UnitNormalization {self.name!r}")
        self._rows = None

    def compute_output_shape(self, input_shape):
        canonical_axes(self.axis, input_shape, f"UnitNormalization {self.name!r}")
        return tuple(input_shape)

    def build(self, input_shape):
        axes = canonical_axes(self.axis, input_shape, f"UnitNormalization {self.name!r}")
        self._rows = AxisRows(axes, len(input_shape))
        self.built = True

    def forward(self, ctx, x, training=False):
        be = self.backend
        shape = tuple(x.shape)
        x2 = self._rows.to_rows(ctx, "x_rows", x, be, f"UnitNormalization {self.name!r}")
        y2, inv_norm = be.l2_normalize_forward(x2, epsilon=EPSILON,
                                               out=ctx.buffer("y_rows", x2.shape))
        ctx.saved = (shape, y2, inv_norm)
        return self._rows.from_rows(ctx, "y", y2, shape)

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        be = self.backend
        shape, y2, inv_norm = ctx.saved
        dy2 = self._rows.to_rows(ctx, "dy_rows", dy, be, f"UnitNormalization {self.name!r}")
        dx2 = be.l2_normalize_backward(dy2, y2, inv_norm, epsilon=EPSILON,
                                       out=ctx.buffer("dx_rows", y2.shape))
        return self._rows.from_rows(ctx, "dx", dx2, shape)

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg
