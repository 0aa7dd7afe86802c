"""``Subtract`` and ``subtract``: ``inputs[0] - inputs[1]``."""
from __future__ import annotations

import numpy as np

from .base_merge import Merge

__all__ = ["Subtract", "subtract"]


class Subtract(Merge):
    """Elementwise difference of exactly two inputs: ``y = x0 - x1``.

    Shapes broadcast as :mod:`~pynn.layers.merging.base_merge` describes. Backward:
    ``dx0 = dy``, ``dx1 = -dy`` (each summed over its broadcast axes).
    """

    _min_inputs = 2
    _max_inputs = 2

    def _merge_forward(self, ctx, xs, y):
        np.subtract(xs[0], xs[1], out=y)

    def _input_grad(self, ctx, dy, i, out):
        return dy if i == 0 else np.negative(dy, out=out)


def subtract(inputs, **kwargs):
    """Functional form of :class:`Subtract`: ``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)
