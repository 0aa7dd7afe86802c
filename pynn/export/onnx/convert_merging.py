"""Converters of the merging layers."""
from __future__ import annotations

from ... import layers as L
from .graph import ExportError, converts


def _chain(g, op, inputs, hint):
    y = inputs[0]
    for x in inputs[1:]:
        y = g.op(op, [y, x], hint)
    return y


@converts(L.Add)
def add(g, layer, inputs, shapes):
    return [g.op("Sum", inputs, layer.name)]


@converts(L.Subtract)
def subtract(g, layer, inputs, shapes):
    return [g.op("Sub", inputs, layer.name)]


@converts(L.Multiply)
def multiply(g, layer, inputs, shapes):
    return [_chain(g, "Mul", inputs, layer.name)]


@converts(L.Average)
def average(g, layer, inputs, shapes):
    return [g.op("Mean", inputs, layer.name)]


@converts(L.Maximum)
def maximum(g, layer, inputs, shapes):
    return [g.op("Max", inputs, layer.name)]


@converts(L.Minimum)
def minimum(g, layer, inputs, shapes):
    return [g.op("Min", inputs, layer.name)]


@converts(L.Concatenate)
def concatenate(g, layer, inputs, shapes):
    return [g.op("Concat", inputs, layer.name, axis=int(layer.axis))]


@converts(L.Dot)
def dot(g, layer, inputs, shapes):
    """Batched dot products of two 2-D or 3-D inputs over one axis each."""
    a, b = inputs
    ra, rb = len(shapes[0]), len(shapes[1])
    axes = layer.axes if isinstance(layer.axes, (list, tuple)) else (layer.axes, layer.axes)
    ax, bx = (int(axes[0]) % ra, int(axes[1]) % rb)
    if layer.normalize:
        a = g.op("LpNormalization", [a], layer.name, axis=ax, p=2)
        b = g.op("LpNormalization", [b], layer.name, axis=bx, p=2)
    if ra == rb == 2:
        return [g.op("ReduceSum", [g.op("Mul", [a, b], layer.name), g.ints([1])],
                     layer.name, keepdims=1)]
    if ra == rb == 3:
        # (n, i, k) @ (n, k, j): move the summed axes into place
        a = a if ax == 2 else g.transpose(a, [0, 2, 1], layer.name)
        b = b if bx == 1 else g.transpose(b, [0, 2, 1], layer.name)
        return [g.op("MatMul", [a, b], layer.name)]
    raise ExportError(f"ONNX export: Dot layer {layer.name!r} on inputs of ranks {ra} and "
                      f"{rb} is not supported (2-D or 3-D pairs are)")
