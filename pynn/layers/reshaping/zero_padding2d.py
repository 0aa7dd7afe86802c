"""``ZeroPadding2D``."""
from __future__ import annotations

from .base_borders import BaseZeroPadding

__all__ = ["ZeroPadding2D"]


class ZeroPadding2D(BaseZeroPadding):
    """Zero rows and columns around images (Keras's ``ZeroPadding2D``); ``padding``: an
    int, ``(symmetric_height, symmetric_width)`` or ``((top, bottom), (left, right))``."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format=data_format, **kwargs)
