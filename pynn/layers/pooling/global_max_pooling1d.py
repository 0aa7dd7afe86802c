"""``GlobalMaxPooling1D``."""
from __future__ import annotations

from .base_global_pooling import BaseGlobalPooling

__all__ = ["GlobalMaxPooling1D"]


class GlobalMaxPooling1D(BaseGlobalPooling):
    """The maximum of each channel over all positions of inputs
    ``(batch, steps, channels)`` (Keras's ``GlobalMaxPooling1D``)."""

    rank = 1
    mode = "max"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
