"""``UpSampling2D``."""
from __future__ import annotations

from .base_up_sampling import BaseUpSampling

__all__ = ["UpSampling2D"]


class UpSampling2D(BaseUpSampling):
    """Repeat the rows and columns of images ``size = (rows, cols)`` times (Keras's
    ``UpSampling2D``; ``interpolation='nearest'``, the only one supported)."""

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format=data_format, **kwargs)
        interp = interpolation.lower() if isinstance(interpolation, str) else interpolation
        if interp != "nearest":
            raise ValueError(f"{self._where}: only interpolation='nearest' is supported, got "
                             f"{interpolation!r}")
        self.size = self._size
        self.interpolation = interp

    def get_config(self):
        cfg = super().get_config()
        cfg.update(size=list(self.size), data_format=self.data_format,
                   interpolation=self.interpolation)
        return cfg
