"""The ONNX graph under construction: unique names, initializers, nodes, and the
registry of layer converters."""
from __future__ import annotations

import numpy as np

__all__ = ["OnnxGraph", "converts", "converter_for", "ExportError"]

_CONVERTERS = {}


class ExportError(ValueError):
    """A model (or a layer in it) that cannot be exported; names the layer."""


def converts(*classes):
    """Register the decorated function as the converter of ``classes``:
    ``fn(g, layer, inputs, shapes) -> outputs`` (ONNX tensor names; ``shapes`` are the
    symbolic input shapes, batch axis ``None``)."""
    def register(fn):
        for cls in classes:
            _CONVERTERS[cls] = fn
        return fn
    return register


def converter_for(layer):
    """The converter of ``layer``'s class (or of its nearest registered base class)."""
    for cls in type(layer).__mro__:
        fn = _CONVERTERS.get(cls)
        if fn is not None:
            return fn
    raise ExportError(f"ONNX export: layer {layer.name!r} of type {type(layer).__name__} has "
                      f"no ONNX converter (register one with "
                      f"pynn.export.onnx.converts({type(layer).__name__}))")


class OnnxGraph:
    """Nodes and initializers of one ONNX graph; float constants in ``dtype``."""

    def __init__(self, onnx, dtype="float32"):
        self.onnx = onnx
        self.helper = onnx.helper
        self.dtype = np.dtype(dtype)
        self.nodes = []
        self.initializers = []
        self._used = set()

    def fresh(self, hint):
        """A tensor name based on ``hint`` that is not taken yet."""
        base = "".join(c if c.isalnum() or c in "_./" else "_" for c in str(hint)) or "t"
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def const(self, value, hint="const", dtype=None):
        """An initializer holding ``value`` (float arrays in the graph's dtype)."""
        a = np.asarray(value)
        if dtype is not None:
            a = a.astype(dtype)
        elif a.dtype.kind == "f":
            a = a.astype(self.dtype)
        elif a.dtype.kind in "iub":
            a = a.astype(np.int64)
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(
            np.ascontiguousarray(a), name))
        return name

    def ints(self, values, hint="shape"):
        """An int64 1-D initializer (shapes, axes, pads)."""
        return self.const(np.asarray(values, dtype=np.int64), hint, np.int64)

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        """Add one node; returns its output name (a list when ``outputs`` > 1).
        An empty string in ``inputs`` is an omitted optional input."""
        hint = hint or op_type.lower()
        outs = [self.fresh(f"{hint}" if outputs == 1 else f"{hint}_{i}")
                for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs,
                                                name=self.fresh(f"{hint}/{op_type}"),
                                                **attrs))
        return outs[0] if outputs == 1 else outs

    # -- small helpers used by several converters -------------------------------------
    def transpose(self, x, perm, hint="transpose"):
        return self.op("Transpose", [x], hint, perm=list(perm))

    def to_channels_first(self, x, rank, hint):
        """``(n, *spatial, c)`` -> ``(n, c, *spatial)``."""
        return self.transpose(x, [0, rank - 1] + list(range(1, rank - 1)), hint)

    def to_channels_last(self, x, rank, hint):
        """``(n, c, *spatial)`` -> ``(n, *spatial, c)``."""
        return self.transpose(x, [0] + list(range(2, rank)) + [1], hint)
