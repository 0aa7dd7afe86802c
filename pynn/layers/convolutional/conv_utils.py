"""Keras's argument and shape rules for convolution, pooling and spatial layers.

One place for each rule the convolution, pooling and reshaping layers share:

* argument standardisation (``kernel_size=3`` -> ``(3, 3)``, ``padding``,
  ``data_format``), with errors naming the layer;
* Keras's ``'same'`` padding made explicit: total ``max((ceil(size / stride) - 1) *
  stride + (k - 1) * dilation + 1 - size, 0)``, the odd extra pixel at the END
  (bottom/right), as TensorFlow, JAX and Keras's torch backend pad;
* output lengths (:func:`conv_output_length`, Keras's ``compute_conv_output_shape``),
  the transposed-convolution rules (:func:`conv_transpose_geometry`, Keras's
  ``compute_conv_transpose_output_shape`` and its JAX padding conversion);
* the image view the backend ops take: ``(n, h, w, c)`` channels-last, 1-D data as
  ``h = 1`` (:func:`to_images`, :func:`from_images`; channels_first data is
  transposed into a workspace and back).
"""
from __future__ import annotations

import math

import numpy as np

from ...backends.conv import conv_output_size

__all__ = ["standardize_tuple", "standardize_padding", "standardize_data_format",
           "explicit_padding", "conv_output_length", "image_output_hw",
           "conv_transpose_geometry", "to_images", "from_images", "require_host", "check_rank",
           "spatial_axes", "channels_first_hint"]

DATA_FORMATS = ("channels_last", "channels_first")


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def standardize_tuple(value, n, name, where, allow_zero=False):
    """``value`` (an int or ``n`` ints) as a tuple of ``n`` ints, each >= 1 (>= 0 with
    ``allow_zero``); ``where`` names the layer in the error."""
    try:
        out = (value,) * n if _is_int(value) else tuple(value)
    except TypeError:
        out = None
    if out is None or len(out) != n or not all(_is_int(v) for v in out):
        raise ValueError(f"{where}: the `{name}` argument must be an int or a tuple of {n} "
                         f"ints. Received: {name}={value!r}")
    low = 0 if allow_zero else 1
    if any(v < low for v in out):
        what = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{where}: the `{name}` argument must hold {what} values. "
                         f"Received: {name}={value!r}")
    return tuple(int(v) for v in out)


def standardize_padding(value, where, allow_causal=False):
    """``'valid'``, ``'same'`` (or ``'causal'`` where allowed), case-insensitive."""
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    padding = value.lower() if isinstance(value, str) else value
    if padding not in allowed:
        raise ValueError(f"{where}: the `padding` argument must be one of {allowed}. "
                         f"Received: padding={value!r}")
    return padding


def standardize_data_format(value, where):
    """``None`` -> ``'channels_last'`` (Keras's default image_data_format)."""
    fmt = "channels_last" if value is None else value
    fmt = fmt.lower() if isinstance(fmt, str) else fmt
    if fmt not in DATA_FORMATS:
        raise ValueError(f"{where}: the `data_format` argument must be one of "
                         f"{DATA_FORMATS}. Received: data_format={value!r}")
    return fmt


def same_padding(size, k, stride, dilation):
    """Keras's ``'same'`` padding of one axis: ``(before, after)``, the odd pixel after."""
    k_eff = (k - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def explicit_padding(padding, spatial, kernel, strides, dilation):
    """Per spatial axis ``(before, after)`` zeros for ``'valid'``, ``'same'`` or
    ``'causal'`` (all on the left: ``(k - 1) * dilation``)."""
    out = []
    for size, k, s, d in zip(spatial, kernel, strides, dilation):
        if padding == "valid":
            out.append((0, 0))
        elif padding == "same":
            out.append(same_padding(size, k, s, d))
        else:
            out.append(((k - 1) * d, 0))
    return tuple(out)


def conv_output_length(size, k, stride, dilation, padding):
    """Keras's output length of one axis (``None`` for an unknown size); 0 or less:
    the window does not fit."""
    if size is None:
        return None
    pad = explicit_padding(padding, (size,), (k,), (stride,), (dilation,))[0]
    return conv_output_size(size, k, stride, dilation, pad)


def image_output_hw(hw, kernel_hw, strides, padding, dilation):
    """``(oh, ow)`` of the 2-D op on images of spatial size ``hw`` (explicit padding)."""
    return tuple(conv_output_size(s, k, st, d, p) for s, k, st, d, p in
                 zip(hw, kernel_hw, strides, dilation, padding))


def conv_transpose_geometry(size, k, stride, dilation, padding, output_padding):
    """Keras's transposed convolution along one axis: ``(out_size, (before, after))``.

    ``out_size`` is Keras's ``compute_conv_transpose_output_shape``; ``(before,
    after)`` is the padding of the forward convolution (``out_size`` -> ``size``)
    whose input gradient the transposed convolution is. It comes from Keras's JAX
    padding (``left``, ``right`` around the stride-dilated input): ``before = k_eff -
    1 - left``, ``after = max(k_eff - 1 - right, 0)`` (a larger ``right`` only adds
    output positions no input reaches: zeros, then the bias).
    """
    k_eff = (k - 1) * dilation + 1
    if padding == "valid":
        op = max(k_eff, stride) - k_eff if output_padding is None else output_padding
        left, right = k_eff - 1, k_eff - 1 + op
    else:
        if output_padding is None:
            pad_len = stride + k_eff - 2
        else:
            pad_len = k_eff + k_eff % 2 - 2 + output_padding
        left = min(pad_len // 2 + pad_len % 2, k_eff - 1)
        right = pad_len - left
    out = (size - 1) * stride + left + right - k_eff + 2
    return out, (k_eff - 1 - left, max(k_eff - 1 - right, 0))


# ---------------------------------------------------------------------------------------------
# shapes and layouts
# ---------------------------------------------------------------------------------------------
def spatial_axes(rank, data_format):
    """Indices of the spatial axes in a batch of ``rank``-D data."""
    first = 2 if data_format == "channels_first" else 1
    return tuple(range(first, first + rank))


def check_rank(where, input_shape, rank):
    """The batch shape must be ``rank + 2``-D, ``(batch, *spatial, channels)``, with
    positive sizes."""
    if isinstance(input_shape, list):
        raise ValueError(f"{where} takes one input, got a list of {len(input_shape)} shapes "
                         f"{input_shape}")
    if len(input_shape) != rank + 2:
        names = "(batch, steps, channels)" if rank == 1 else "(batch, height, width, channels)"
        raise ValueError(f"{where} expects {rank + 2}-D inputs {names} (channels_first: "
                         f"channels on axis 1), got input shape {tuple(input_shape)}")
    if any(d is not None and d <= 0 for d in tuple(input_shape)[1:]):
        raise ValueError(f"{where}: every input dimension must be positive, got input shape "
                         f"{tuple(input_shape)}")


def channels_first_hint(input_shape, rank, data_format, fits):
    """A hint appended to a shape error when ``input_shape`` reads as channels_first data
    given to a channels_last layer: its axis 1 is small (<= 4, image channels) and
    reading it as ``(batch, channels, *spatial)`` makes ``fits(spatial)`` true."""
    if data_format != "channels_last" or len(input_shape) != rank + 2:
        return ""
    c_first, spatial = input_shape[1], tuple(input_shape[2:])
    if c_first is None or c_first > 4 or any(s is None for s in spatial):
        return ""
    if not fits(spatial):
        return ""
    return (f" The input looks like channels_first data (channels on axis 1, {c_first}); "
            f"this layer has data_format='channels_last': transpose the data to "
            f"(batch, *spatial, channels) or pass data_format='channels_first'.")


def require_host(layer, what):
    """Raise when ``layer``'s backend does not keep arrays in host memory (the NumPy
    steps ``what`` needs)."""
    be = layer.backend
    if not be.host_memory:
        raise NotImplementedError(f"{type(layer).__name__} {layer.name!r}: {what} runs on "
                                  f"host-memory backends only (not {be.name!r})")


_TO_LAST = {1: (0, 2, 1), 2: (0, 2, 3, 1)}
_TO_FIRST = {1: (0, 2, 1), 2: (0, 3, 1, 2)}


def to_images(layer, ctx, x, rank, data_format, key):
    """``x`` (a batch of ``rank``-D data in ``data_format``) as ``(n, h, w, c)`` images:
    a view for channels_last data, a copy into the workspace ``key`` for channels_first."""
    if data_format == "channels_first":
        require_host(layer, "data_format='channels_first'")
        perm = _TO_LAST[rank]
        t = ctx.buffer(key, tuple(x.shape[i] for i in perm))
        np.copyto(t, np.asarray(x).transpose(perm))
        x = t
    if rank == 1:
        x = x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
    return x


def from_images(layer, ctx, y, rank, data_format, key):
    """Inverse of :func:`to_images` for ``(n, h, w, c)`` results."""
    if rank == 1:
        y = y.reshape(y.shape[0], y.shape[2], y.shape[3])
    if data_format == "channels_first":
        require_host(layer, "data_format='channels_first'")
        perm = _TO_FIRST[rank]
        t = ctx.buffer(key, tuple(y.shape[i] for i in perm))
        np.copyto(t, y.transpose(perm))
        y = t
    return y
