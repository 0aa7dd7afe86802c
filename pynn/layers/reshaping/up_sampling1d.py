"""``UpSampling1D``."""
from __future__ import annotations

from .base_up_sampling import BaseUpSampling

__all__ = ["UpSampling1D"]


class UpSampling1D(BaseUpSampling):
    """Repeat each step of ``(batch, steps, channels)`` inputs ``size`` times (Keras's
    ``UpSampling1D``)."""

    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(size, **kwargs)
        self.size = self._size[0]

    def get_config(self):
        cfg = super().get_config()
        cfg["size"] = self.size
        return cfg
