"""Subclassed models: ``class MyModel(pynn.Model)`` with layers as attributes and a
``call()`` that wires them (Keras 3's subclassing API).

``pynn.Model.__new__`` gives such a class :class:`SubclassedModel` as a base, so the
user's ``super().__init__()`` lands here. On the first data (or ``build``) the model
becomes a one-node graph: its :class:`_ModelCall` layer runs ``call`` on a tape
(:mod:`pynn.layers.custom_call`), where the tracked layers run their own compiled
forward and backward passes; everything the graph engine offers (fit, evaluate,
predict, summary, save_weights/load_weights, callbacks) follows. ``layers`` are the
tracked layers, in the order they were assigned, and so are the weights (Keras's
order).
"""
from __future__ import annotations

import inspect


from ..layers import added_losses
from ..layers.input_layer import InputLayer
from ..layers.layer import Layer
from .functional import Functional
from .model import Model

__all__ = ["SubclassedModel"]


class _NotTraceable(Exception):
    pass


class _SymbolicTraining:
    """``training`` while tracing: passing it on to layers is fine (the engine gives
    them the real flag at run time); branching on it in Python is not."""

    def __bool__(self):
        raise TypeError("call() branches on `training`: the model runs on the tape")

    __repr__ = lambda self: "<symbolic training flag>"  # noqa: E731


_SYMBOLIC_TRAINING = _SymbolicTraining()


class _ModelCall(Layer):
    """The graph node that runs the owning model's ``call``."""

    def __init__(self, owner):
        super().__init__(name=f"{owner.name}_output")
        object.__setattr__(self, "owner", owner)
        self._weights = owner._weights  # weights the model itself creates
        self._sublayers = owner._sublayers

    def build(self, input_shape):
        self.built = True

    def call(self, inputs, training=None):
        added_losses.enter_call(self.owner)  # the model's own add_loss list starts anew
        call = self.owner.call
        if "training" in inspect.signature(call).parameters:
            return call(inputs, training=training)
        return call(inputs)


class SubclassedModel(Functional):
    """The base ``pynn.Model`` subclasses get (see the module docstring)."""

    _summary_as_graph = False

    def __init__(self, *args, name=None, trainable=True, seed=None, **kwargs):
        if args or kwargs.get("inputs") is not None or kwargs.get("outputs") is not None:
            raise TypeError(f"{type(self).__name__}: a subclassed model's "
                            f"super().__init__() takes no inputs/outputs (it is defined by "
                            f"call()); got {args or kwargs}")
        kwargs.pop("inputs", None)
        kwargs.pop("outputs", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments "
                            f"{sorted(kwargs)}")
        self._init_model(name, trainable, seed)
        self._nodes, self._layers, self._inputs, self._outputs = [], [], [], []
        self._in_structure = self._out_structure = None
        self._grad_plan = {}

    def call(self, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    @property
    def input_names(self):
        return super().input_names if self.built else [f"{self.name}_input"]

    @property
    def output_names(self):
        return super().output_names if self.built else [f"{self.name}_output"]

    @property
    def layers(self):
        """The tracked layers (attributes), in assignment order (Keras's ``layers``)."""
        return list(self._sublayers)

    def _require_layers(self):
        if not self._sublayers and not self._weights:
            raise ValueError(f"Model {self.name!r} has no layers: assign them as attributes "
                             f"in __init__ after super().__init__()")

    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape`` (batch axis included) and make
        the model's graph: ``call`` traced on a symbolic input when it can be (layers
        and ``pynn.ops`` become graph nodes, so the planner's fused paths apply), else
        one node running ``call`` on the tape (Python control flow on values or on
        ``training``)."""
        if self.built:
            return
        shape = tuple(input_shape)
        inp = InputLayer(shape=shape[1:], name=f"{self.name}_input")
        out = self._trace(inp.output)
        if out is None:
            out = _ModelCall(self)(inp.output)
        self._set_graph(inp.output, out)

    def _trace(self, x):
        """``call(x)`` on the symbolic ``x``; ``None`` (and no trace left behind) where
        ``call`` needs values."""
        from ..layers.node import KerasTensor
        marks = {id(layer): len(layer._inbound_nodes) for layer in self._all_layers()}
        kwargs = {}
        if "training" in inspect.signature(self.call).parameters:
            kwargs["training"] = _SYMBOLIC_TRAINING
        try:
            out = self.call(x, **kwargs)
            flat = out if isinstance(out, (list, tuple)) else [out]
            if not flat or not all(isinstance(t, KerasTensor) for t in flat):
                raise _NotTraceable
            return out
        except (TypeError, ValueError, NotImplementedError, AttributeError, _NotTraceable):
            for layer in self._all_layers():
                del layer._inbound_nodes[marks.get(id(layer), 0):]
            return None

    def get_build_config(self):
        shape = self.input_shape if self.built else None
        return None if shape is None else {"input_shape": list(shape)}

    def build_from_config(self, config):
        if config and config.get("input_shape") is not None:
            self.build(tuple(config["input_shape"]))

    def get_config(self):
        if type(self).get_config is SubclassedModel.get_config:
            raise NotImplementedError(
                f"Model {self.name!r} ({type(self).__name__}) is a subclassed model: "
                f"implement get_config() (and from_config() if __init__ needs more) to save "
                f"it whole, or use save_weights()/load_weights()")
        return super().get_config()


def subclass_base(cls):
    """The class to instantiate for ``cls``, a user subclass of ``pynn.Model`` defining
    ``call``: ``cls`` with :class:`SubclassedModel` mixed in (cached)."""
    made = cls.__dict__.get("_pynn_subclassed")
    if made is not None and made.__bases__[0] is cls:
        return made
    made = type(cls.__name__, (cls, SubclassedModel),
                {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    type.__setattr__(cls, "_pynn_subclassed", made)
    return made


Model._subclass_base = staticmethod(subclass_base)
__all__ += ["subclass_base"]
