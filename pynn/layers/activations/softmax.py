"""``Softmax``."""
from __future__ import annotations

from ..layer import Layer
from .activation import Activation

__all__ = ["Softmax"]


class Softmax(Activation):
    """Softmax over the last axis."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__("softmax", **kwargs)
        if axis != -1:
            raise ValueError(f"Softmax layer {self.name!r}: only axis=-1 is supported, "
                             f"got axis={axis!r}")
        self.axis = axis

    def get_config(self):
        cfg = Layer.get_config(self)
        cfg["axis"] = self.axis
        return cfg
