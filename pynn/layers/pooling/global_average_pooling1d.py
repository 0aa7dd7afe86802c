"""``GlobalAveragePooling1D``."""
from __future__ import annotations

import numpy as np

from .base_global_pooling import BaseGlobalPooling

__all__ = ["GlobalAveragePooling1D"]


class _Masked:
    """What a masked call keeps for backward."""

    __slots__ = ("shape", "weights")

    def __init__(self, shape, weights):
        self.shape = shape
        self.weights = weights


class GlobalAveragePooling1D(BaseGlobalPooling):
    """The mean of each channel over all positions of inputs
    ``(batch, steps, channels)`` (Keras's ``GlobalAveragePooling1D``).

    With a mask ``(batch, steps)`` (from ``Embedding(mask_zero=True)``, ``Masking``, a
    recurrent layer...), the mean runs over the unmasked steps only, as in Keras (a
    sequence with every step masked gives NaN, 0 / 0, as Keras does); the output has
    no mask.
    """

    rank = 1
    mode = "avg"
    _supports_masking = True

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)

    def compute_mask(self, inputs, previous_mask):
        return None

    def _steps_axis(self):
        return 1 if self.data_format == "channels_last" else 2

    def forward(self, ctx, x, training=False, mask=None):
        if mask is None:
            return super().forward(ctx, x, training)
        axis = self._steps_axis()
        m = np.asarray(mask)
        if m.shape != (x.shape[0], x.shape[axis]):
            raise ValueError(f"{self._where}: the mask has shape {m.shape}, but the input "
                             f"{tuple(x.shape)} needs one of shape "
                             f"{(x.shape[0], x.shape[axis])} (batch, steps)")
        w = ctx.buffer("mask_weights", m.shape)
        np.copyto(w, m.astype(bool))
        with np.errstate(invalid="ignore", divide="ignore"):
            w /= w.sum(axis=1, keepdims=True)  # each step's share of its sequence's mean
        xs = x if axis == 1 else np.swapaxes(x, 1, 2)
        y = ctx.buffer("y_masked", (x.shape[0], x.shape[-1] if axis == 1 else x.shape[1]))
        np.einsum("ntc,nt->nc", xs, w, out=y)
        ctx.saved = _Masked(tuple(x.shape), w)
        out_shape = self.compute_output_shape((x.shape[0],) + tuple(x.shape[1:]))
        return y.reshape(out_shape)

    def backward(self, ctx, dy, input_grad=True):
        saved = ctx.saved
        if not isinstance(saved, _Masked):
            return super().backward(ctx, dy, input_grad)
        if not input_grad:
            return None
        n, c = dy.shape[0], int(np.prod(dy.shape[1:]))
        dx = ctx.buffer("dx_masked", saved.shape)
        d = dy.reshape(n, c)
        if self._steps_axis() == 1:
            np.multiply(saved.weights[:, :, None], d[:, None, :], out=dx)
        else:
            np.multiply(saved.weights[:, None, :], d[:, :, None], out=dx)
        return dx
