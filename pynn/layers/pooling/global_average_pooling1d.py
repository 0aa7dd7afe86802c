"""``GlobalAveragePooling1D``."""
from __future__ import annotations

from .base_global_pooling import BaseGlobalPooling

__all__ = ["GlobalAveragePooling1D"]


class GlobalAveragePooling1D(BaseGlobalPooling):
    """The mean of each channel over all positions of inputs
    ``(batch, steps, channels)`` (Keras's ``GlobalAveragePooling1D``)."""

    rank = 1
    mode = "avg"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
