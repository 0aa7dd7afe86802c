"""``Multiply`` and ``multiply``: the elementwise product of a list of inputs."""
from __future__ import annotations

import numpy as np

from .base_merge import Merge

__all__ = ["Multiply", "multiply"]


class Multiply(Merge):
    """Elementwise product of a list of inputs (``y = x0 * x1 * ...``).

    Shapes broadcast as :mod:`~pynn.layers.merging.base_merge` describes. Backward:
    ``dx_i = dy * prod_{j != i} x_j`` (the product of the OTHER inputs, never a
    division by ``x_i``, so zeros are exact), summed over ``x_i``'s broadcast axes.
    """

    def _merge_forward(self, ctx, xs, y):
        if len(xs) == 1:
            np.copyto(y, xs[0])
            return
        np.multiply(xs[0], xs[1], out=y)
        for x in xs[2:]:
            np.multiply(y, x, out=y)

    def _input_grad(self, ctx, dy, i, out):
        xs = ctx.saved[0]
        others = [x for j, x in enumerate(xs) if j != i]
        if not others:
            return dy
        np.multiply(dy, others[0], out=out)
        for x in others[1:]:
            np.multiply(out, x, out=out)
        return out


def multiply(inputs, **kwargs):
    """Functional form of :class:`Multiply`: ``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)
