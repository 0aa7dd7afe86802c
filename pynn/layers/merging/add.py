"""``Add`` and ``add``: the elementwise sum of a list of inputs."""
from __future__ import annotations

import numpy as np

from .base_merge import Merge

__all__ = ["Add", "add"]


class Add(Merge):
    """Elementwise sum of a list of inputs (``y = x0 + x1 + ...``), Keras's broadcasting.

    Inputs: a list of at least one array with the batch axis first; shapes broadcast
    as :mod:`~pynn.layers.merging.base_merge` describes. Output: the broadcast shape,
    in the layer's dtype. Backward: every input receives the output gradient (summed
    over the axes it was broadcast along).
    """

    def _merge_forward(self, ctx, xs, y):
        if len(xs) == 1:
            np.copyto(y, xs[0])
            return
        np.add(xs[0], xs[1], out=y)
        for x in xs[2:]:
            np.add(y, x, out=y)

    def _input_grad(self, ctx, dy, i, out):
        return dy


def add(inputs, **kwargs):
    """Functional form of :class:`Add`: ``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)
