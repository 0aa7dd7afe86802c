"""``InputLayer`` and ``Input``: where a model's graph starts."""
from __future__ import annotations

import numpy as np

from .layer import Layer, shape_tuple
from .node import Node

__all__ = ["InputLayer", "Input"]

#: dtypes an Input may declare: float data, or integer token ids
_INPUT_DTYPES = ("float32", "float64", "int32", "int64")


class InputLayer(Layer):
    """A model's input: one sample's ``shape`` (no batch axis), or ``batch_shape``.

    It computes nothing; creating it records a node without inputs whose output is
    the symbolic tensor :func:`Input` returns. ``dtype`` may be a float type or, for
    token ids, ``'int32'``/``'int64'``.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 **kwargs):
        if shape is None and batch_shape is None:
            shape = kwargs.pop("input_shape", None)
        int_dtype = None
        if dtype is not None:
            dt = np.dtype(dtype).name
            if dt not in _INPUT_DTYPES:
                raise ValueError(f"Input: dtype must be one of {list(_INPUT_DTYPES)}, "
                                 f"got {dtype!r}")
            if dt.startswith("int"):
                int_dtype, dtype = dt, None
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is not None and batch_shape is not None:
            raise ValueError("InputLayer: give `shape` or `batch_shape`, not both")
        if batch_shape is not None:
            batch_shape = shape_tuple(batch_shape, "InputLayer: batch_shape")
            if not batch_shape:
                raise ValueError("InputLayer: batch_shape needs the batch axis and at least "
                                 "one more dimension")
            shape, batch_size = batch_shape[1:], batch_shape[0]
        if shape is None:
            raise ValueError("InputLayer: `shape` is required, e.g. Input(shape=(784,))")
        shape = shape_tuple(shape, "InputLayer: shape")
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise ValueError(f"InputLayer: batch_size must be a positive integer or None, "
                             f"got {batch_size!r}")
        self.shape = shape
        self.batch_size = None if batch_size is None else int(batch_size)
        self._int_dtype = int_dtype
        self._input_shape_arg = shape
        self.input_shape = self.output_shape = (self.batch_size,) + shape
        self.built = True
        node = Node(self, [], None, [self.input_shape], self.tensor_dtype, False)
        self._inbound_nodes.append(node)

    @property
    def tensor_dtype(self):
        """The dtype of the data this input takes (an int type for token ids)."""
        return self._int_dtype or self.dtype

    @property
    def output(self):
        return self._inbound_nodes[0].outputs[0]

    def forward(self, ctx, x, training=False):
        return x

    def backward(self, ctx, dy, input_grad=True):
        return dy if input_grad else None

    def get_config(self):
        cfg = {"batch_shape": [self.batch_size, *self.shape], "name": self.name}
        if self._int_dtype is not None:
            cfg["dtype"] = self._int_dtype
        elif self._dtype_arg is not None:
            cfg["dtype"] = self._dtype_arg
        return cfg


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
    """``keras.Input``: the symbolic tensor a functional model starts from.

    ``x = Input(shape=(784,))`` has ``x.shape == (None, 784)``; call layers on it and
    pass the inputs and outputs to :class:`pynn.Model`. It may also come first in a
    ``Sequential`` list.
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                       name=name)
    return layer.output
