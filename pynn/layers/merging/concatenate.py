"""``Concatenate`` and ``concatenate``: join a list of inputs along one axis."""
from __future__ import annotations

import numpy as np

from .base_merge import Merge

__all__ = ["Concatenate", "concatenate"]


class Concatenate(Merge):
    """Concatenate a list of inputs along ``axis``.

    Parameters
    ----------
    axis : int, default -1
        Axis of the full input shape (batch axis included, negative counts from the
        end) to join along. The batch axis itself cannot be joined: every other
        layer maps one sample to one sample.

    Inputs: at least one array, all of the same rank, with equal sizes on every axis
    but ``axis`` (``None`` matches any size when building). Output: the same shape
    with ``axis`` the sum of the inputs' sizes there. Backward: each input's slice
    of the output gradient.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"Concatenate {self.name!r}: axis must be an integer, "
                             f"got {axis!r}")
        self.axis = int(axis)

    def _axis_for(self, input_shape):
        """``self.axis`` as a non-negative axis of the inputs; checks the ranks."""
        ranks = {len(s) for s in input_shape}
        if len(ranks) > 1:
            raise self._fail("all inputs must have the same rank", input_shape)
        rank = ranks.pop()
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 0 <= axis < rank:
            raise self._fail(f"axis={self.axis} is out of range for inputs of rank {rank}",
                             input_shape)
        if axis == 0:
            raise self._fail(f"axis={self.axis} is the batch axis, which cannot be "
                             f"concatenated", input_shape)
        return axis

    def compute_mask(self, inputs, previous_mask):
        """Keras's rule: each input's mask widened to its full shape (all True for an
        unmasked input), joined along ``axis``, then any() over the last axis."""
        if previous_mask is None or all(m is None for m in previous_mask):
            return None
        full = []
        for x, m in zip(inputs, previous_mask):
            if m is None:
                full.append(np.ones(x.shape, dtype=bool))
            else:
                m = np.asarray(m, dtype=bool)
                if m.ndim < x.ndim:
                    m = np.broadcast_to(m[..., None], x.shape)
                full.append(m)
        return np.concatenate(full, axis=self.axis).any(axis=-1)

    def compute_output_shape(self, input_shape):
        input_shape = self._check_shapes(input_shape)
        axis = self._axis_for(input_shape)
        batch = self._batch_size(input_shape)
        out = [batch]
        for a in range(1, len(input_shape[0])):
            sizes = [s[a] for s in input_shape]
            if a == axis:
                out.append(None if None in sizes else sum(sizes))
                continue
            known = {d for d in sizes if d is not None}
            if len(known) > 1:
                raise self._fail(f"inputs must have matching shapes except for the "
                                 f"concatenation axis {self.axis}", input_shape)
            out.append(known.pop() if known else None)
        return tuple(out)

    def forward(self, ctx, inputs, training=False):
        shapes = self._check_inputs(inputs)
        out_shape = self.compute_output_shape(shapes)
        axis = self._axis_for(shapes)
        y = ctx.buffer("y", out_shape)
        if len(inputs) == 1:
            np.copyto(y, inputs[0])
        else:
            np.concatenate(inputs, axis=axis, out=y)
        ctx.saved = (shapes, axis, out_shape)
        return y

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        shapes, axis, out_shape = ctx.saved
        self._check_dy(dy, out_shape)
        grads = []
        start = 0
        head = (slice(None),) * axis
        for i, shape in enumerate(shapes):
            stop = start + shape[axis]
            dx = ctx.buffer(("dx", i), shape)
            np.copyto(dx, dy[head + (slice(start, stop),)])
            grads.append(dx)
            start = stop
        return grads

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


def concatenate(inputs, axis=-1, **kwargs):
    """Functional form of :class:`Concatenate`: ``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
