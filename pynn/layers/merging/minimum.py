"""``Minimum`` and ``minimum``: the elementwise minimum of a list of inputs."""
from __future__ import annotations

import numpy as np

from .select_merge import SelectMerge

__all__ = ["Minimum", "minimum"]


class Minimum(SelectMerge):
    """Elementwise minimum of a list of inputs, Keras's broadcasting.

    Backward: each element's gradient goes to the input that holds the minimum; on
    a tie, to the first such input (see :mod:`~pynn.layers.merging.select_merge`).
    """

    _combine = staticmethod(np.minimum)
    _beats = staticmethod(np.less)


def minimum(inputs, **kwargs):
    """Functional form of :class:`Minimum`: ``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)
