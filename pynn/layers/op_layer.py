"""``OpLayer``: a ``pynn.ops`` function applied to symbolic tensors, as a graph node.

Calling ``pynn.ops.mean(x, axis=1)`` or ``x * 2`` on a model's symbolic tensors (the
functional API, or the trace of a subclassed model's ``call``) records one node whose
layer applies that op to the node's inputs, differentiated by the tape; the op's other
arguments are kept as given. Configs name the op (a function of :mod:`pynn.ops`) and its
JSON arguments, so a model using ops saves and loads without running stored code.
"""
from __future__ import annotations

import json

from ..autodiff import numpy_ops
from ..autodiff.tape import install_operators
from .layer import Layer
from .node import KerasTensor

__all__ = ["OpLayer"]

_SLOT = "__tensor__"


def _template(value, tensors):
    """``value`` with every symbolic tensor replaced by a slot (collected in order)."""
    if isinstance(value, KerasTensor):
        tensors.append(value)
        return {_SLOT: len(tensors) - 1}
    if isinstance(value, (list, tuple)):
        return [_template(v, tensors) for v in value] if isinstance(value, list) else \
            tuple(_template(v, tensors) for v in value)
    return value


def _fill(value, arrays):
    if isinstance(value, dict) and set(value) == {_SLOT}:
        return arrays[value[_SLOT]]
    if isinstance(value, list):
        return [_fill(v, arrays) for v in value]
    if isinstance(value, tuple):
        return tuple(_fill(v, arrays) for v in value)
    return value


class OpLayer(Layer):
    """Applies the ``pynn.ops`` function ``op`` with ``args``/``kwargs`` whose tensor
    slots are the layer's inputs."""

    def __init__(self, op, args=(), kwargs=None, **layer_kwargs):
        if op not in numpy_ops.__all__:
            raise ValueError(f"OpLayer: {op!r} is not a pynn.ops function")
        layer_kwargs.setdefault("name", None)
        super().__init__(**layer_kwargs)
        self.op = op
        self.args = list(args)
        self.kwargs = dict(kwargs or {})

    def build(self, input_shape):
        self.built = True

    def call(self, inputs):
        arrays = inputs if isinstance(inputs, list) else [inputs]
        fn = getattr(numpy_ops, self.op)
        fn = getattr(fn, "__wrapped__", fn)
        return fn(*_fill(self.args, arrays), **_fill(self.kwargs, arrays))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(op=self.op, args=self.args, kwargs=self.kwargs)
        try:
            json.dumps([self.args, self.kwargs])
        except TypeError:
            raise ValueError(f"OpLayer {self.name!r}: the arguments of ops.{self.op} are not "
                             f"JSON-serialisable; the model cannot be saved whole") from None
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(config.pop("op"), config.pop("args", ()), config.pop("kwargs", None),
                   **config)


def symbolic_op(name, op, args, kwargs):
    """The hook :mod:`pynn.autodiff.numpy_ops` calls for ops on symbolic tensors."""
    tensors = []
    a = _template(list(args), tensors)
    k = {key: _template(v, tensors) for key, v in kwargs.items()}
    layer = OpLayer(name, a, k, name=None)
    return layer(tensors[0] if len(tensors) == 1 else tensors)


numpy_ops.SYMBOLIC_HOOK[0] = symbolic_op


install_operators(KerasTensor)
KerasTensor.__getitem__ = lambda self, key: numpy_ops.take_index(self, key)
KerasTensor.T = property(lambda self: numpy_ops.transpose(self))
KerasTensor._pynn_symbolic = True
