"""``ZeroPadding1D``."""
from __future__ import annotations

from .base_borders import BaseZeroPadding

__all__ = ["ZeroPadding1D"]


class ZeroPadding1D(BaseZeroPadding):
    """Zeros before and after the steps of ``(batch, steps, channels)`` inputs (Keras's
    ``ZeroPadding1D``); ``padding``: an int or ``(before, after)``."""

    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format=data_format, **kwargs)
