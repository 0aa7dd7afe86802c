"""``Maximum`` and ``maximum``: the elementwise maximum of a list of inputs."""
from __future__ import annotations

import numpy as np

from .select_merge import SelectMerge

__all__ = ["Maximum", "maximum"]


class Maximum(SelectMerge):
    """Elementwise maximum of a list of inputs, Keras's broadcasting.

    Backward: each element's gradient goes to the input that holds the maximum; on
    a tie, to the first such input (see :mod:`~pynn.layers.merging.select_merge`).
    """

    _combine = staticmethod(np.maximum)
    _beats = staticmethod(np.greater)


def maximum(inputs, **kwargs):
    """Functional form of :class:`Maximum`: ``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)
