"""``Sequential``: a list of layers that builds a functional graph (Keras 3's design).

Once the input shape is known (an ``Input`` first, ``input_shape=`` on the first
layer, :meth:`Sequential.build`, or the first batch of data) the layers are called
one after the other on a symbolic input, and the model runs, trains and saves as
the :class:`~pynn.models.functional.Functional` model of that chain; ``add`` and
``pop`` rebuild it.
"""
from __future__ import annotations

import numpy as np

from .. import _config
from ..backends import get_backend
from ..layers import serialization
from ..layers.input_layer import InputLayer
from ..layers.keras_config import dtype_name
from ..layers.layer import Layer
from ..layers.node import KerasTensor
from .functional import Functional
from .model import Model

__all__ = ["Sequential"]


class Sequential(Functional):
    """A linear stack of layers (Keras's ``Sequential``).

    Parameters
    ----------
    layers : list of Layer, optional
        Added in order with :meth:`add`. ``Input(shape=...)`` (or an ``InputLayer``)
        may come first; models may be elements too.
    trainable : bool
    name : str, optional
        Default ``'sequential'``, ``'sequential_1'``...
    seed : int, optional
        Seed of the model's own Generator (default: derived from
        :func:`pynn.set_seed`'s global seed).
    """

    _summary_as_graph = False

    def __init__(self, layers=None, trainable=True, name=None, *, seed=None):
        self._init_model(name, trainable, seed)
        self._seq_layers = []
        self._input_layer = None
        self._build_input_shape = None
        self._clear_graph()
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_build()
        if not trainable:
            self.trainable = False

    def _clear_graph(self):
        for node in getattr(self, "_nodes", None) or []:
            if node in node.layer._inbound_nodes:
                node.layer._inbound_nodes.remove(node)
        self._nodes = []
        self._layers = []
        self._inputs = self._outputs = None
        self._in_structure = self._out_structure = None
        self._grad_plan = {}
        self.built = False

    # ------------------------------------------------------------------------------------
    # structure
    # ------------------------------------------------------------------------------------
    @property
    def layers(self):
        """The layers (the input layer excluded, as in Keras)."""
        return list(self._seq_layers)

    def add(self, layer, rebuild=True):
        """Append ``layer`` (an ``Input`` / ``InputLayer`` only as the very first item)."""
        if isinstance(layer, KerasTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Only instances of `pynn.layers.Layer` can be added to a "
                            f"Sequential model. Received: {layer!r} "
                            f"(of type {type(layer).__name__})")
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._seq_layers:
                raise ValueError(f"Sequential model {self.name!r}: an InputLayer can only be "
                                 "the first layer (and there can be only one)")
            self._input_layer = layer
        else:
            names = {l.name for l in self._seq_layers}
            if self._input_layer is not None:
                names.add(self._input_layer.name)
            if layer.name in names:
                raise ValueError(f"All layers added to a Sequential model should have unique "
                                 f"names. Name {layer.name!r} is already the name of a layer "
                                 f"in this model. Update the `name` argument to pass a "
                                 f"unique name.")
            self._seq_layers.append(layer)
        if rebuild:
            self._maybe_build()

    def pop(self, rebuild=True):
        """Remove and return the last layer (IndexError on an empty model, as Keras 3)."""
        if not self._seq_layers:
            raise IndexError(f"pop from an empty model: Sequential model {self.name!r} has "
                             f"no layers")
        layer = self._seq_layers.pop()
        if self.built:
            self._clear_graph()
            if rebuild:
                self._maybe_build()
        return layer

    def _require_layers(self):
        if not self._seq_layers:
            raise ValueError(f"Sequential model {self.name!r} has no layers")

    def _known_input_shape(self):
        """One sample's shape if known (InputLayer, or the first layer's input_shape)."""
        if self._input_layer is not None:
            return self._input_layer.shape
        if self._build_input_shape is not None:
            return tuple(self._build_input_shape)[1:]
        first = self._seq_layers[0] if self._seq_layers else None
        if first is not None and first._input_shape_arg is not None:
            return first._input_shape_arg
        if isinstance(first, Functional) and first.built and first._in_structure is None:
            return tuple(first.input_shape)[1:]  # a model as the first layer
        return None

    def _maybe_build(self):
        shape = self._known_input_shape()
        if shape is not None and self._seq_layers:
            self.build((None,) + tuple(shape))
        elif not self._seq_layers:
            self._clear_graph()

    def build(self, input_shape=None):
        """Create every layer's weights for inputs of ``input_shape`` (batch axis included)."""
        if input_shape is None:
            shape = self._known_input_shape()
            if shape is None:
                raise ValueError(f"Sequential model {self.name!r}: build() needs an input "
                                 "shape, e.g. model.build((None, 784))")
            input_shape = (None,) + tuple(shape)
        input_shape = tuple(None if s is None else int(s) for s in input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"Sequential model {self.name!r}: input_shape must include the "
                             f"batch axis, e.g. (None, 784); got {input_shape}")
        if not self._seq_layers:
            raise ValueError(f"Sequential model {self.name!r} has no layers to build")
        inp = self._input_layer
        if inp is not None and tuple(inp.shape) != input_shape[1:]:
            raise ValueError(f"Sequential model {self.name!r} has input shape "
                             f"{(None,) + tuple(inp.shape)}; cannot build it for {input_shape}")
        be = self._backend if self._backend is not None else get_backend()
        layers = self._seq_layers + ([inp] if inp is not None else [])
        dtype = np.dtype(self._dtype or self._model_dtype(layers) or _config.floatx()).name
        # the backend, dtype and the model's Generator before building: a Sequential's
        # initial weights are its Generator's first draws, so one seed gives one model
        # (its shuffles and dropout masks continue the same stream)
        for layer in self._seq_layers:
            layer._attach(be, None if isinstance(layer, Model) or layer.built else self._rng,
                          dtype)
        if inp is None:
            inp = InputLayer(shape=input_shape[1:], name=f"{self.name}_input",
                             dtype=dtype)
        self._clear_graph()
        x = inp.output
        for layer in self._seq_layers:
            try:
                x = layer(x)
            except ValueError as exc:
                raise ValueError(f"Sequential model {self.name!r}, layer {layer.name!r}: "
                                 f"{exc}") from exc
        self._backend, self._dtype = be, dtype
        self._build_input_shape = (None,) + input_shape[1:]
        self._graph_input = inp
        self._set_graph(inp.output, x)

    @property
    def input_shape(self):
        return self._build_input_shape

    @input_shape.setter
    def input_shape(self, value):
        pass

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"Sequential model {self.name!r} is not built yet")
        return self._outputs[0].shape

    @output_shape.setter
    def output_shape(self, value):
        pass

    def _unbuilt(self, what):
        if not self.built:
            raise ValueError(f"Sequential model {self.name!r} is not built yet: it has no "
                             f"{what} (give it an input shape, or call it on data)")

    @property
    def inputs(self):
        self._unbuilt("inputs")
        return super().inputs

    @property
    def outputs(self):
        self._unbuilt("outputs")
        return super().outputs

    @property
    def input_names(self):
        if not self.built:
            return [f"{self.name}_input"]
        return super().input_names

    @property
    def output_names(self):
        if not self.built:
            return [self._seq_layers[-1].name if self._seq_layers else self.name]
        return super().output_names

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at position ``index`` of :attr:`layers`."""
        if index is not None and name is None:
            if not -len(self._seq_layers) <= index < len(self._seq_layers):
                raise ValueError(f"get_layer: index {index} is out of range; the model has "
                                 f"{len(self._seq_layers)} layers")
            return self._seq_layers[index]
        if name is not None and index is None:
            for layer in self._seq_layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: "
                             f"{[l.name for l in self._seq_layers]}.")
        return super().get_layer(name, index)

    # ------------------------------------------------------------------------------------
    # config
    # ------------------------------------------------------------------------------------
    def get_config(self):
        layer_cfgs = []
        shape = self._known_input_shape()
        if shape is not None:
            inp = self._input_layer
            cfg = {"batch_shape": [None, *shape],
                   "name": inp.name if inp is not None else f"{self.name}_input"}
            if inp is not None and inp._int_dtype is not None:
                cfg["dtype"] = inp._int_dtype
            layer_cfgs.append({"module": "pynn.layers", "class_name": "InputLayer",
                               "config": cfg})
        layer_cfgs.extend(serialization.serialize(l) for l in self._seq_layers)
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype,
                "layers": layer_cfgs}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("Sequential.from_config: expected a dict with a 'layers' list")
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        dtype = dtype_name(config.get("dtype"), "Sequential.from_config")
        if dtype is not None:
            dt = np.dtype(dtype).name
            if dt not in ("float32", "float64"):
                raise ValueError(f"Sequential.from_config: unsupported dtype {dt!r}")
            model._dtype = dt
        for lc in config["layers"]:
            model.add(serialization.deserialize(lc, custom_objects), rebuild=False)
        model._maybe_build()
        if not config.get("trainable", True):
            model.trainable = False
        return model

    def __repr__(self):
        return (f"<Sequential name={self.name}, built={self.built}, "
                f"layers={len(self._seq_layers)}>")
