"""``Cropping1D``."""
from __future__ import annotations

from .base_borders import BaseCropping

__all__ = ["Cropping1D"]


class Cropping1D(BaseCropping):
    """Remove steps at the start and end of ``(batch, steps, channels)`` inputs (Keras's
    ``Cropping1D``, channels_last only); ``cropping``: an int or ``(start, end)``."""

    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, **kwargs)

    def get_config(self):
        cfg = super().get_config()
        del cfg["data_format"]  # Keras's Cropping1D has none
        return cfg
