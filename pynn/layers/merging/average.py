"""``Average`` and ``average``: the elementwise mean of a list of inputs."""
from __future__ import annotations

import numpy as np

from .add import Add

__all__ = ["Average", "average"]


class Average(Add):
    """Elementwise mean of a list of ``N`` inputs: ``y = (x0 + x1 + ...) / N``.

    Shapes broadcast as :mod:`~pynn.layers.merging.base_merge` describes (a
    broadcast input counts once, as in Keras). Backward: ``dx_i = dy / N``, summed
    over ``x_i``'s broadcast axes.
    """

    def _merge_forward(self, ctx, xs, y):
        super()._merge_forward(ctx, xs, y)  # the sum
        if len(xs) > 1:
            np.divide(y, len(xs), out=y)

    def _input_grad(self, ctx, dy, i, out):
        n = len(ctx.saved[0])
        return dy if n == 1 else np.divide(dy, n, out=out)


def average(inputs, **kwargs):
    """Functional form of :class:`Average`: ``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)
