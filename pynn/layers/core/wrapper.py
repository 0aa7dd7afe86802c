"""``Wrapper``: the base of layers that run another layer (Keras 3's
``layers/core/wrapper.py``)."""
from __future__ import annotations

from .. import serialization
from ..layer import Layer

__all__ = ["Wrapper"]


class Wrapper(Layer):
    """A layer around ``layer``: its weights are the wrapper's, and it follows the
    wrapper's backend, dtype and ``trainable`` flag. Subclasses decide how it is run."""

    _from_config_takes_custom_objects = True

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Layer {layer!r} supplied to {type(self).__name__} isn't a "
                             f"supported layer type. Please ensure wrapped layer is a valid "
                             f"layer instance.")
        super().__init__(**kwargs)
        self.layer = layer
        self._sublayers = (layer,)

    def get_config(self):
        cfg = super().get_config()
        cfg["layer"] = serialization.serialize(self.layer)
        return cfg

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = serialization.deserialize(config.pop("layer"), custom_objects)
        return cls(layer, **config)
