"""``SelectMerge``: the base of ``Maximum`` and ``Minimum`` (one input wins per element).

Forward folds the inputs left to right (``y = op(op(x0, x1), x2)...``, Keras's
order) and records, per output element, the index of the input that won.

Ties: the gradient of an element goes entirely to the FIRST input (lowest index)
that attains the extreme value. This is TensorFlow's rule for ``maximum`` /
``minimum`` (``x >= y`` selects ``x``) applied along Keras's left-to-right fold, and
it keeps the gradient a valid subgradient whose entries sum to ``dy``. PyTorch
instead splits a tie evenly between the tied inputs; away from ties all agree.
NaN propagates through the values as in ``numpy.maximum``.
"""
from __future__ import annotations

import numpy as np

from .base_merge import Merge

__all__ = ["SelectMerge"]


class SelectMerge(Merge):
    """Elementwise selection of one input per element (see the module docstring).

    Subclasses set ``_combine`` (``numpy.maximum``/``numpy.minimum``) and ``_beats``
    (``numpy.greater``/``numpy.less``: does a later input strictly beat the current
    winner?).
    """

    _combine = None
    _beats = None

    def _merge_forward(self, ctx, xs, y):
        """Returns the winner index per output element (``uint8``, ``int32`` past 256)."""
        n = len(xs)
        winner = ctx.buffer("winner", y.shape, np.uint8 if n <= 256 else np.int32)
        winner.fill(0)
        np.copyto(y, xs[0])
        if n > 1:
            beats = ctx.buffer("beats", y.shape, np.bool_)
            for i, x in enumerate(xs[1:], start=1):
                self._beats(x, y, out=beats)
                np.copyto(winner, i, where=beats)
                self._combine(y, x, out=y)
        return winner

    def _input_grad(self, ctx, dy, i, out):
        winner = ctx.saved[-1]
        picked = ctx.buffer("picked", dy.shape, np.bool_)
        np.equal(winner, i, out=picked)
        np.multiply(dy, picked, out=out)
        return out
