"""``Cropping2D``."""
from __future__ import annotations

from .base_borders import BaseCropping

__all__ = ["Cropping2D"]


class Cropping2D(BaseCropping):
    """Remove rows and columns at the borders of images (Keras's ``Cropping2D``);
    ``cropping``: an int, ``(symmetric_height, symmetric_width)`` or ``((top, bottom),
    (left, right))``."""

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format=data_format, **kwargs)
