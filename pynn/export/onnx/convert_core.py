"""Converters of the core, activation, normalization, regularization and reshaping
layers."""
from __future__ import annotations

import numpy as np

from ... import layers as L
from .activations import emit_activation
from .graph import ExportError, converts

IDENTITY_LAYERS = (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.InputLayer)
for _name in ("GaussianNoise", "GaussianDropout", "SpatialDropout3D", "AlphaDropout"):
    if hasattr(L, _name):
        IDENTITY_LAYERS += (getattr(L, _name),)


@converts(*IDENTITY_LAYERS)
def identity(g, layer, inputs, shapes):
    """Inference-time identities (dropout and noise layers)."""
    return [g.op("Identity", inputs[:1], layer.name)]


def weight(layer, w):
    return np.asarray(w.numpy())


def affine(g, layer, x, kernel, bias):
    """``x @ kernel + bias`` over the last axis of any rank."""
    y = g.op("MatMul", [x, g.const(kernel, f"{layer.name}/kernel")], layer.name)
    if bias is not None:
        y = g.op("Add", [y, g.const(bias, f"{layer.name}/bias")], layer.name)
    return y


@converts(L.Dense)
def dense(g, layer, inputs, shapes):
    bias = weight(layer, layer.bias) if layer.bias is not None else None
    y = affine(g, layer, inputs[0], weight(layer, layer.kernel), bias)
    return [emit_activation(g, y, layer._act, layer)]


@converts(L.Activation)
def activation(g, layer, inputs, shapes):
    return [emit_activation(g, inputs[0], layer._act, layer)]


@converts(L.LeakyReLU)
def leaky_relu(g, layer, inputs, shapes):
    return [emit_activation(g, inputs[0], "leaky_relu", layer, alpha=layer.negative_slope)]


@converts(L.Softmax)
def softmax(g, layer, inputs, shapes):
    axis = layer.axis
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise ExportError(f"ONNX export: Softmax layer {layer.name!r} over several axes "
                              f"{axis} is not supported")
        axis = axis[0]
    return [g.op("Softmax", inputs, layer.name, axis=int(axis))]


@converts(L.BatchNormalization)
def batch_normalization(g, layer, inputs, shapes):
    """Folded for inference: ``x * scale + shift`` along the layer's axis."""
    mean = weight(layer, layer.moving_mean).astype(np.float64)
    var = weight(layer, layer.moving_variance).astype(np.float64)
    gamma = weight(layer, layer.gamma) if layer.gamma is not None else np.ones_like(mean)
    beta = weight(layer, layer.beta) if layer.beta is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.epsilon)
    shift = beta - mean * scale
    rank = len(shapes[0])
    axis = layer.axis % rank
    bshape = [1] * (rank - 1)
    bshape[axis - 1] = -1  # broadcast against (n, ...): the batch axis is not in it
    y = g.op("Mul", [inputs[0], g.const(scale.reshape(bshape), f"{layer.name}/scale")],
             layer.name)
    return [g.op("Add", [y, g.const(shift.reshape(bshape), f"{layer.name}/shift")],
                 layer.name)]


@converts(L.Flatten)
def flatten(g, layer, inputs, shapes):
    return [g.op("Flatten", inputs, layer.name, axis=1)]


@converts(L.Reshape)
def reshape(g, layer, inputs, shapes):
    target = [0] + [int(d) for d in layer.target_shape]
    return [g.op("Reshape", [inputs[0], g.ints(target, f"{layer.name}/shape")], layer.name)]


@converts(L.Embedding)
def embedding(g, layer, inputs, shapes):
    if layer.mask_zero:
        raise ExportError(f"ONNX export: Embedding layer {layer.name!r} has mask_zero=True; "
                          f"masks are not exported")
    ids = g.op("Cast", inputs, f"{layer.name}/ids", to=g.onnx.TensorProto.INT64)
    table = g.const(weight(layer, layer.embeddings), f"{layer.name}/embeddings")
    return [g.op("Gather", [table, ids], layer.name, axis=0)]


@converts(L.Masking)
def masking(g, layer, inputs, shapes):
    raise ExportError(f"ONNX export: Masking layer {layer.name!r}: masks are not exported")
