"""``GlobalAveragePooling2D``."""
from __future__ import annotations

from .base_global_pooling import BaseGlobalPooling

__all__ = ["GlobalAveragePooling2D"]


class GlobalAveragePooling2D(BaseGlobalPooling):
    """The mean of each channel over all positions of inputs
    ``(batch, height, width, channels)`` (Keras's ``GlobalAveragePooling2D``)."""

    rank = 2
    mode = "avg"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
