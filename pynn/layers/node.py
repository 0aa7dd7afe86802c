"""Symbolic tensors and graph nodes: what calling a layer on ``pynn.Input(...)`` records.

A :class:`KerasTensor` stands for the arrays that will flow through a model: it has
a ``shape`` (batch axis ``None``) and a ``dtype``, and knows the :class:`Node` that
produced it. Calling a layer on symbolic tensors builds the layer for their shapes
and records ONE node for that call (Keras's ``ops/node.py``): the layer, its input
tensors (and whether they were passed as one tensor or as a list), and its output
tensors. A layer called twice has two nodes; :class:`~pynn.models.Model` walks the
nodes from its outputs back to its inputs to get its graph.
"""
from __future__ import annotations

import numpy as np

__all__ = ["KerasTensor", "Node", "is_symbolic", "flatten_structure", "pack_structure",
           "shape_str"]


def shape_str(shape):
    """``(None, 784)`` as Keras prints it (``(None,)`` for rank 1)."""
    if isinstance(shape, list):
        return "[" + ", ".join(shape_str(s) for s in shape) + "]"
    inner = ", ".join("None" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch axis ``None``), ``dtype``, the node that made it."""

    __slots__ = ("shape", "dtype", "name", "node", "index", "__weakref__")

    def __init__(self, shape, dtype, name=None, node=None, index=0):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype).name
        self.name = name
        self.node = node
        self.index = index

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return (f"<KerasTensor shape={shape_str(self.shape)}, dtype={self.dtype}, "
                f"name={self.name}>")

    def __array__(self, *args, **kwargs):
        raise TypeError("A symbolic KerasTensor has no values: it stands for the arrays a "
                        "model will receive. Build a Model(inputs, outputs) and call predict() "
                        "or the model on arrays.")

    def __bool__(self):
        raise TypeError("A symbolic KerasTensor cannot be used as a Python bool")


def is_symbolic(value):
    return isinstance(value, KerasTensor)


def flatten_structure(value):
    """``(flat list, structure)`` of a tensor, a list/tuple of tensors, or a dict of them.

    ``structure`` is ``None`` for one tensor, ``"list"`` for a list or tuple, and the
    tuple of keys for a dict (kept in the given order).
    """
    if isinstance(value, dict):
        keys = tuple(value)
        return [value[k] for k in keys], keys
    if isinstance(value, (list, tuple)):
        return list(value), "list"
    return [value], None


def pack_structure(flat, structure):
    """Inverse of :func:`flatten_structure`."""
    if structure is None:
        return flat[0]
    if structure == "list":
        return list(flat)
    return dict(zip(structure, flat))


class Node:
    """One call of ``layer`` on symbolic tensors.

    ``inputs`` is the flat list of input tensors, ``structure`` how they were passed
    (see :func:`flatten_structure`), ``outputs`` the list of output tensors and
    ``multi_output`` whether the layer returned a list.
    """

    __slots__ = ("layer", "inputs", "structure", "outputs", "multi_output", "__weakref__")

    def __init__(self, layer, inputs, structure, output_shapes, output_dtype, multi_output):
        self.layer = layer
        self.inputs = list(inputs)
        self.structure = structure
        self.multi_output = multi_output
        names = ([layer.name] if not multi_output
                 else [f"{layer.name}_{i}" for i in range(len(output_shapes))])
        self.outputs = [KerasTensor(s, output_dtype, name=n, node=self, index=i)
                        for i, (s, n) in enumerate(zip(output_shapes, names))]

    @property
    def is_input(self):
        return not self.inputs

    @property
    def parents(self):
        return [t.node for t in self.inputs]

    def pack_inputs(self, arrays):
        return pack_structure(arrays, self.structure)

    def pack_outputs(self):
        return list(self.outputs) if self.multi_output else self.outputs[0]

    def __repr__(self):
        return f"<Node {self.layer.name} inputs={len(self.inputs)} outputs={len(self.outputs)}>"
