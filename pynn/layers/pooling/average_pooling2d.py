"""``AveragePooling2D``."""
from __future__ import annotations

from .base_pooling import BasePooling

__all__ = ["AveragePooling2D"]


class AveragePooling2D(BasePooling):
    """Average pooling of 2-D windows
    (Keras's ``AveragePooling2D``): ``pool_size`` windows moved by ``strides``
    (default ``pool_size``), ``padding`` 'valid' or 'same', over inputs
    ``(batch, height, width, channels)`` (channels_first: channels on axis 1)."""

    rank = 2
    mode = "avg"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         **kwargs)
