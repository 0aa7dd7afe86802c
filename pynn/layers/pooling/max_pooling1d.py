"""``MaxPooling1D``."""
from __future__ import annotations

from .base_pooling import BasePooling

__all__ = ["MaxPooling1D"]


class MaxPooling1D(BasePooling):
    """Max pooling of 1-D windows
    (Keras's ``MaxPooling1D``): ``pool_size`` windows moved by ``strides``
    (default ``pool_size``), ``padding`` 'valid' or 'same', over inputs
    ``(batch, steps, channels)`` (channels_first: channels on axis 1)."""

    rank = 1
    mode = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         **kwargs)
