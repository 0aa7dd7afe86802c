"""``GlobalMaxPooling2D``."""
from __future__ import annotations

from .base_global_pooling import BaseGlobalPooling

__all__ = ["GlobalMaxPooling2D"]


class GlobalMaxPooling2D(BaseGlobalPooling):
    """The maximum of each channel over all positions of inputs
    ``(batch, height, width, channels)`` (Keras's ``GlobalMaxPooling2D``)."""

    rank = 2
    mode = "max"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
