"""``Lambda``: a function of the inputs as a layer (Keras 3's ``Lambda``)."""
from __future__ import annotations

import inspect

from ..layer import Layer

__all__ = ["Lambda"]


class Lambda(Layer):
    """Wraps ``function(inputs, **arguments)`` (written with ``pynn.ops``) as a layer;
    its gradient is derived automatically.

    ``output_shape`` (a shape without the batch axis, or a function of the input
    shape) is optional: by default it is traced by running the function. ``mask`` (a
    function ``(inputs, mask) -> mask`` or a fixed mask) sets the output mask.

    Saving stores the function's name only: loading needs it in ``custom_objects``
    (pynn never runs code from a file; Keras refuses to load lambdas outside
    ``safe_mode=False`` for the same reason).
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        if not callable(function):
            raise ValueError(f"Lambda: `function` must be callable, got {function!r}")
        super().__init__(**kwargs)
        self.function = function
        self.arguments = dict(arguments or {})
        self._output_shape = output_shape
        self._mask = mask
        params = inspect.signature(function).parameters
        self._takes_mask = "mask" in params
        self._takes_training = "training" in params

    def call(self, inputs, mask=None, training=None):
        kw = dict(self.arguments)
        if self._takes_mask:
            kw["mask"] = mask
        if self._takes_training:
            kw["training"] = training
        return self.function(inputs, **kw)

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        batch = (input_shape[0] if isinstance(input_shape, list) else input_shape)[0]
        return (batch,) + tuple(self._output_shape)

    def compute_mask(self, inputs, previous_mask):
        if callable(self._mask):
            return self._mask(inputs, previous_mask)
        return self._mask if self._mask is not None else previous_mask

    def get_config(self):
        cfg = super().get_config()
        name = getattr(self.function, "__name__", None)
        if not name or name == "<lambda>":
            raise ValueError(f"Lambda layer {self.name!r}: a lambda expression cannot be "
                             f"saved (pynn stores the function's name and looks it up in "
                             f"custom_objects when loading); use a named function")
        cfg.update(function=name, arguments=self.arguments)
        if self._output_shape is not None and not callable(self._output_shape):
            cfg["output_shape"] = list(self._output_shape)
        return cfg

    _from_config_takes_custom_objects = True

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        name = config.pop("function", None)
        fn = (custom_objects or {}).get(name) if isinstance(name, str) else None
        if fn is None:
            raise ValueError(f"Lambda layer {config.get('name')!r}: its function {name!r} is "
                             f"not in custom_objects; pass custom_objects={{{name!r}: ...}} "
                             f"(pynn never runs code stored in a file)")
        return cls(fn, **config)
