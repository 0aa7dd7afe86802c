"""``Dot`` and ``dot``: per-sample dot products of two inputs (Keras's ``batch_dot``)."""
from __future__ import annotations

import math

import numpy as np

from .base_merge import Merge

__all__ = ["Dot", "dot", "EPSILON"]

#: ``normalize=True`` divides by ``sqrt(max(sum(x**2), EPSILON**2))`` (Keras's
#: ``ops.normalize`` with ``backend.epsilon()``), so a zero vector stays finite.
EPSILON = 1e-7


def _is_int(a):
    return isinstance(a, (int, np.integer)) and not isinstance(a, bool)


class Dot(Merge):
    """Dot product of two inputs along one axis of each, sample by sample.

    Parameters
    ----------
    axes : int or (int, int)
        The axis of the first and of the second input (full shapes, batch axis
        included; negative counts from the end of each input) to sum over; one int
        is used for both. The batch axis (0) cannot be one of them. The two sizes
        must be equal.
    normalize : bool, default False
        L2-normalise each input along its axis first, so the output is the cosine
        similarity (see :data:`EPSILON`); the gradient goes through the normalisation.

    Inputs ``x (n, ...)``, ``y (n, ...)`` of rank >= 2. Output (Keras's
    ``batch_dot``): ``x``'s shape without ``axes[0]``, followed by ``y``'s shape
    without the batch axis and ``axes[1]``; ``(n, 1)`` when that leaves only the batch
    axis. Two ``(n, d)`` inputs give ``(n, 1)``; ``(n, a, d)`` and ``(n, b, d)`` with
    ``axes=2`` give ``(n, a, b)``.

    The computation is one batched matrix product: ``x`` with its axis moved last,
    ``(n, X, d)``, times ``y`` with its axis moved to position 1, ``(n, d, Y)``.
    Backward: ``dX = dY_out @ Y^T``, ``dY = X^T @ dY_out``, then through the
    normalisation ``dx = (g - x_hat * sum(g * x_hat)) / |x|``.
    """

    _min_inputs = 2
    _max_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2 or not all(_is_int(a) for a in axes):
                raise ValueError(f"Dot {self.name!r}: axes must be an integer or a list of "
                                 f"two integers, got {axes!r}")
            axes = [int(a) for a in axes]
        elif _is_int(axes):
            axes = int(axes)
        else:
            raise ValueError(f"Dot {self.name!r}: axes must be an integer or a list of two "
                             f"integers, got {axes!r}")
        self.axes = axes
        self.normalize = bool(normalize)

    def _axes_for(self, input_shape):
        """The two non-negative axes for inputs of ``input_shape``; checks their sizes."""
        pair = self.axes if isinstance(self.axes, list) else [self.axes, self.axes]
        axes = []
        for k, (a, s) in enumerate(zip(pair, input_shape)):
            rank = len(s)
            if rank < 2:
                raise self._fail(f"input {k} has rank {rank}; Dot needs inputs of rank >= 2 "
                                 f"(the batch axis and at least one more)", input_shape)
            axis = a + rank if a < 0 else a
            if not 0 <= axis < rank:
                raise self._fail(f"axes={self.axes} is out of range for input {k} of rank "
                                 f"{rank}", input_shape)
            if axis == 0:
                raise self._fail(f"axes={self.axes} includes the batch axis of input {k}, "
                                 f"which cannot be summed over", input_shape)
            axes.append(axis)
        d0, d1 = input_shape[0][axes[0]], input_shape[1][axes[1]]
        if d0 is not None and d1 is not None and d0 != d1:
            raise self._fail(f"incompatible sizes {d0} (axis {axes[0]} of input 0) and {d1} "
                             f"(axis {axes[1]} of input 1) for axes={self.axes}", input_shape)
        return axes

    def compute_mask(self, inputs, previous_mask):
        """No output mask (Keras's rule for ``Dot``)."""
        return None

    def compute_output_shape(self, input_shape):
        input_shape = self._check_shapes(input_shape)
        a0, a1 = self._axes_for(input_shape)
        batch = self._batch_size(input_shape)
        s0, s1 = input_shape
        out = (batch,) + s0[1:a0] + s0[a0 + 1:] + s1[1:a1] + s1[a1 + 1:]
        return out if len(out) > 1 else out + (1,)

    def forward(self, ctx, inputs, training=False):
        shapes = self._check_inputs(inputs)
        out_shape = self.compute_output_shape(shapes)
        a0, a1 = self._axes_for(shapes)
        x, y = inputs
        xm = np.moveaxis(x, a0, -1)  # (n, *x_free, d)
        ym = np.moveaxis(y, a1, 1)   # (n, d, *y_free)
        n, d = xm.shape[0], xm.shape[-1]
        nx = math.prod(xm.shape[1:-1])
        ny = math.prod(ym.shape[2:])
        if self.normalize:
            xh, x_inv, x_keep = _l2_normalize(ctx, "x", xm, -1)
            yh, y_inv, y_keep = _l2_normalize(ctx, "y", ym, 1)
        else:
            xh, x_inv, x_keep = _contiguous(ctx, "x", xm), None, None
            yh, y_inv, y_keep = _contiguous(ctx, "y", ym), None, None
        x3 = xh.reshape(n, nx, d)
        y3 = yh.reshape(n, d, ny)
        out3 = ctx.buffer("out", (n, nx, ny))
        np.matmul(x3, y3, out=out3)
        ctx.saved = (shapes, (a0, a1), out_shape, x3, y3, xh, yh,
                     (x_inv, x_keep), (y_inv, y_keep))
        return out3.reshape(out_shape)

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        shapes, (a0, a1), out_shape, x3, y3, xh, yh, xn, yn = ctx.saved
        self._check_dy(dy, out_shape)
        dy3 = dy.reshape(x3.shape[0], x3.shape[1], y3.shape[2])
        gx = np.matmul(dy3, y3.transpose(0, 2, 1), out=ctx.buffer("gx", x3.shape))
        gy = np.matmul(x3.transpose(0, 2, 1), dy3, out=ctx.buffer("gy", y3.shape))
        gx = gx.reshape(xh.shape)
        gy = gy.reshape(yh.shape)
        if self.normalize:
            _l2_normalize_backward(ctx, "x", gx, xh, *xn, -1)
            _l2_normalize_backward(ctx, "y", gy, yh, *yn, 1)
        dx = ctx.buffer(("dx", 0), shapes[0])
        dz = ctx.buffer(("dx", 1), shapes[1])
        np.copyto(np.moveaxis(dx, a0, -1), gx)
        np.copyto(np.moveaxis(dz, a1, 1), gy)
        return [dx, dz]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axes=list(self.axes) if isinstance(self.axes, list) else self.axes,
                   normalize=self.normalize)
        return cfg


def _contiguous(ctx, key, v):
    """``v`` if C-contiguous (so reshapes are views), else a copy in a workspace."""
    if v.flags.c_contiguous:
        return v
    buf = ctx.buffer((key, "moved"), v.shape)
    np.copyto(buf, v)
    return buf


def _l2_normalize(ctx, key, v, axis):
    """``v / sqrt(max(sum(v**2, axis), EPSILON**2))`` into a workspace.

    Returns ``(v_hat, inv_norm, unclamped)``: ``inv_norm`` (float64, ``axis`` kept
    with size 1) and where the squared norm reached ``EPSILON**2``.
    """
    kshape = list(v.shape)
    kshape[axis] = 1
    sq = ctx.buffer((key, "sq"), v.shape)
    np.multiply(v, v, out=sq)
    inv = ctx.buffer((key, "inv"), kshape, np.float64)
    np.add.reduce(sq, axis=axis, keepdims=True, dtype=np.float64, out=inv)
    keep = ctx.buffer((key, "unclamped"), kshape, np.bool_)
    np.greater_equal(inv, EPSILON * EPSILON, out=keep)
    np.maximum(inv, EPSILON * EPSILON, out=inv)
    np.sqrt(inv, out=inv)
    np.divide(1.0, inv, out=inv)
    vh = ctx.buffer((key, "hat"), v.shape)
    np.multiply(v, inv, out=vh)
    return vh, inv, keep


def _l2_normalize_backward(ctx, key, g, vh, inv, keep, axis):
    """Turn ``g`` = d loss / d ``v_hat`` into d loss / d ``v``, in place.

    ``dv = inv * (g - v_hat * sum(g * v_hat, axis))``; where the norm was clamped
    at :data:`EPSILON` the scale is a constant, so ``dv = inv * g`` there.
    """
    tmp = ctx.buffer((key, "sq"), g.shape)
    np.multiply(g, vh, out=tmp)
    gdot = ctx.buffer((key, "gdot"), inv.shape, np.float64)
    np.add.reduce(tmp, axis=axis, keepdims=True, dtype=np.float64, out=gdot)
    np.multiply(gdot, keep, out=gdot)
    np.multiply(vh, gdot, out=tmp)
    np.subtract(g, tmp, out=g)
    np.multiply(g, inv, out=g)


def dot(inputs, axes=-1, **kwargs):
    """Functional form of :class:`Dot`: ``Dot(axes, **kwargs)(inputs)`` (``normalize``
    goes in ``kwargs``)."""
    return Dot(axes=axes, **kwargs)(inputs)
