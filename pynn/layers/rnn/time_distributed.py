"""``TimeDistributed``: one layer applied to every time step (Keras 3's
``layers/rnn/time_distributed.py``)."""
from __future__ import annotations

import numpy as np

from ..core.wrapper import Wrapper
from ..masking_rules import takes_mask

__all__ = ["TimeDistributed"]


class TimeDistributed(Wrapper):
    """Applies ``layer`` to every slice ``x[:, t]`` of inputs ``(batch, time, ...)``,
    with the same weights at every step; outputs ``(batch, time, ...)``.

    The steps run as one call of ``layer`` on ``(batch * time, ...)``, which is what
    Keras's loop over steps computes for every layer that maps samples independently
    (Dense, Conv2D, pooling, Flatten, Activation, Dropout...). One difference: a
    ``BatchNormalization`` inside normalises over batch and time together in training,
    where Keras takes each step's batch statistics. A mask ``(batch, time)`` passes on
    to the output unchanged; a wrapped layer that takes a mask gets its rows.
    """

    _supports_masking = True
    _free_axes = (1,)  # any sequence length

    def _child_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 3:
            raise ValueError(f"`TimeDistributed` Layer should be passed an `input_shape` with "
                             f"at least 3 dimensions, received: {input_shape}")
        return (None,) + tuple(input_shape[2:])

    def build(self, input_shape):
        self.layer._build_for(self._child_shape(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        out = self.layer.compute_output_shape(self._child_shape(input_shape))
        if isinstance(out, list):
            raise ValueError(f"TimeDistributed layer {self.name!r}: the wrapped layer "
                             f"{self.layer.name!r} has several outputs; it must have one")
        return (input_shape[0], input_shape[1]) + tuple(out[1:])

    def forward(self, ctx, x, training=False, mask=None):
        n, t = x.shape[0], x.shape[1]
        kw = {"training": training}
        if mask is not None:
            m = np.asarray(mask)
            if m.ndim < 2 or m.shape[:2] != (n, t):
                raise ValueError(f"The `mask` passed to the `TimeDistributed` layer "
                                 f"{self.name!r} has a shape {m.shape} that is incompatible "
                                 f"with the input shape {tuple(x.shape)}. The first two "
                                 f"dimensions of the mask (batch size and timesteps) must "
                                 f"match the input's first two dimensions.")
            if takes_mask(self.layer) and m.ndim > 2:
                kw["mask"] = m.reshape((n * t,) + m.shape[2:])
        flat = np.ascontiguousarray(x).reshape((n * t,) + tuple(x.shape[2:]))
        y = self.layer.forward(ctx.child_for(self.layer, 0), flat, **kw)
        ctx.saved = tuple(x.shape)
        return y.reshape((n, t) + tuple(y.shape[1:]))

    def backward(self, ctx, dy, input_grad=True):
        shape = ctx.saved
        n, t = shape[0], shape[1]
        d = np.ascontiguousarray(dy).reshape((n * t,) + tuple(dy.shape[2:]))
        sub = ctx.child_for(self.layer, 0)
        sub.pass_id = ctx.pass_id
        dx = self.layer.backward(sub, d, input_grad=input_grad)
        sub.end_backward()
        return None if dx is None else dx.reshape(shape)
