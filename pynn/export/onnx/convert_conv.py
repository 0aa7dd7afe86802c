"""Converters of the convolution, pooling and spatial reshaping layers (ONNX's
operators are channels-first: a channels-last layer runs between two transposes)."""
from __future__ import annotations

import numpy as np

from ... import layers as L
from ...layers.convolutional.conv_utils import conv_transpose_geometry
from .activations import emit_activation
from .graph import ExportError, converts


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _enter(g, layer, x, rank):
    return g.to_channels_first(x, rank, layer.name) if _channels_last(layer) else x


def _leave(g, layer, y, rank):
    return g.to_channels_last(y, rank, layer.name) if _channels_last(layer) else y


def _onnx_kernel(kernel):
    """Keras ``(*k, c_in, c_out)`` -> ONNX ``(c_out, c_in, *k)``."""
    n = kernel.ndim - 2
    return np.transpose(kernel, (n + 1, n) + tuple(range(n)))


def _pads(layer, n):
    """``auto_pad`` or explicit ``pads`` attributes for ``layer.padding``."""
    if layer.padding == "same":
        return dict(auto_pad="SAME_UPPER")
    if layer.padding == "causal":
        k_eff = (layer.kernel_size[0] - 1) * layer.dilation_rate[0] + 1
        return dict(pads=[k_eff - 1, 0])
    return dict(pads=[0] * (2 * n))


def _conv(g, layer, x, kernel, bias, groups, rank, pads=None):
    n = rank - 2
    attrs = dict(strides=list(layer.strides), dilations=list(layer.dilation_rate),
                 kernel_shape=list(kernel.shape[2:]), group=int(groups))
    attrs.update(pads or _pads(layer, n))
    ins = [x, g.const(kernel, f"{layer.name}/kernel")]
    if bias is not None:
        ins.append(g.const(bias, f"{layer.name}/bias"))
    return g.op("Conv", ins, layer.name, **attrs)


@converts(L.Conv1D, L.Conv2D)
def conv(g, layer, inputs, shapes):
    rank = len(shapes[0])
    bias = layer.bias.numpy() if layer.bias is not None else None
    x = _enter(g, layer, inputs[0], rank)
    y = _conv(g, layer, x, _onnx_kernel(layer.kernel.numpy()), bias, layer.groups, rank)
    y = emit_activation(g, y, layer._act, layer, axis=1)
    return [_leave(g, layer, y, rank)]


@converts(L.DepthwiseConv2D)
def depthwise_conv(g, layer, inputs, shapes):
    k = layer.kernel.numpy()  # (kh, kw, c, m)
    kh, kw, c, m = k.shape
    w = np.transpose(k, (2, 3, 0, 1)).reshape(c * m, 1, kh, kw)
    bias = layer.bias.numpy() if layer.bias is not None else None
    x = _enter(g, layer, inputs[0], 4)
    y = _conv(g, layer, x, w, bias, c, 4)
    y = emit_activation(g, y, layer._act, layer, axis=1)
    return [_leave(g, layer, y, 4)]


@converts(L.SeparableConv2D)
def separable_conv(g, layer, inputs, shapes):
    k = layer.depthwise_kernel.numpy()
    kh, kw, c, m = k.shape
    dw = np.transpose(k, (2, 3, 0, 1)).reshape(c * m, 1, kh, kw)
    pw = _onnx_kernel(layer.pointwise_kernel.numpy())
    bias = layer.bias.numpy() if layer.bias is not None else None
    x = _enter(g, layer, inputs[0], 4)
    y = _conv(g, layer, x, dw, None, c, 4)
    y = g.op("Conv", [y, g.const(pw, f"{layer.name}/pointwise")] +
             ([g.const(bias, f"{layer.name}/bias")] if bias is not None else []),
             layer.name, kernel_shape=[1, 1], pads=[0, 0, 0, 0])
    y = emit_activation(g, y, layer._act, layer, axis=1)
    return [_leave(g, layer, y, 4)]


@converts(L.Conv2DTranspose)
def conv_transpose(g, layer, inputs, shapes):
    k = layer.kernel.numpy()  # (kh, kw, filters, c_in)
    w = np.transpose(k, (3, 2, 0, 1))  # ONNX (c_in, c_out, kh, kw)
    spatial = shapes[0][1:3] if _channels_last(layer) else shapes[0][2:4]
    pads_b, pads_e, out_pad = [], [], []
    ops = layer.output_padding or (None, None)
    for size, kk, s, d, op in zip(spatial, layer.kernel_size, layer.strides,
                                  layer.dilation_rate, ops):
        if size is None:
            raise ExportError(f"ONNX export: Conv2DTranspose layer {layer.name!r} needs known "
                              f"spatial input sizes, got {shapes[0]}")
        out, (before, after) = conv_transpose_geometry(size, kk, s, d, layer.padding, op)
        k_eff = (kk - 1) * d + 1
        extra = out - ((size - 1) * s + k_eff - before - after)
        if extra < 0:
            after += -extra
            extra = 0
        pads_b.append(before)
        pads_e.append(after)
        out_pad.append(extra)
    x = _enter(g, layer, inputs[0], 4)
    ins = [x, g.const(w, f"{layer.name}/kernel")]
    if layer.bias is not None:
        ins.append(g.const(layer.bias.numpy(), f"{layer.name}/bias"))
    y = g.op("ConvTranspose", ins, layer.name, strides=list(layer.strides),
             dilations=list(layer.dilation_rate), kernel_shape=list(k.shape[:2]),
             pads=pads_b + pads_e, output_padding=out_pad)
    y = emit_activation(g, y, layer._act, layer, axis=1)
    return [_leave(g, layer, y, 4)]


@converts(L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D)
def pooling(g, layer, inputs, shapes):
    rank = len(shapes[0])
    n = rank - 2
    attrs = dict(kernel_shape=list(layer.pool_size), strides=list(layer.strides))
    attrs.update(dict(auto_pad="SAME_UPPER") if layer.padding == "same" else
                 dict(pads=[0] * (2 * n)))
    op = "MaxPool" if layer.mode == "max" else "AveragePool"
    x = _enter(g, layer, inputs[0], rank)
    return [_leave(g, layer, g.op(op, [x], layer.name, **attrs), rank)]


@converts(L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalAveragePooling1D,
          L.GlobalAveragePooling2D)
def global_pooling(g, layer, inputs, shapes):
    rank = len(shapes[0])
    axes = list(range(1, rank - 1)) if _channels_last(layer) else list(range(2, rank))
    op = "ReduceMax" if layer.mode == "max" else "ReduceMean"
    return [g.op(op, [inputs[0], g.ints(axes, f"{layer.name}/axes")], layer.name,
                 keepdims=int(layer.keepdims))]


def _spatial_axes(layer, rank):
    return list(range(1, rank - 1)) if _channels_last(layer) else list(range(2, rank))


@converts(L.ZeroPadding1D, L.ZeroPadding2D)
def zero_padding(g, layer, inputs, shapes):
    rank = len(shapes[0])
    before, after = [0] * rank, [0] * rank
    for a, (b, e) in zip(_spatial_axes(layer, rank), layer._amounts):
        before[a], after[a] = b, e
    return [g.op("Pad", [inputs[0], g.ints(before + after, f"{layer.name}/pads")],
                 layer.name)]


@converts(L.Cropping1D, L.Cropping2D)
def cropping(g, layer, inputs, shapes):
    rank = len(shapes[0])
    axes = _spatial_axes(layer, rank)
    starts = [b for b, _ in layer._amounts]
    ends = [-e if e else np.iinfo(np.int64).max for _, e in layer._amounts]
    return [g.op("Slice", [inputs[0], g.ints(starts, "starts"), g.ints(ends, "ends"),
                           g.ints(axes, "axes")], layer.name)]


@converts(L.UpSampling1D, L.UpSampling2D)
def up_sampling(g, layer, inputs, shapes):
    rank = len(shapes[0])
    sizes = [layer.size] if rank == 3 else list(layer.size)
    scales = [1.0] * rank
    for a, s in zip(_spatial_axes(layer, rank), sizes):
        scales[a] = float(s)
    return [g.op("Resize", [inputs[0], "", g.const(np.asarray(scales, np.float32), "scales",
                                                   np.float32)],
                 layer.name, mode="nearest", nearest_mode="floor",
                 coordinate_transformation_mode="asymmetric")]
