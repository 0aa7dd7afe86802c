"""Convolution, pooling and reshaping layers (issue 16), on every CPU backend.

Forward passes are compared with independent computations: a direct NumPy convolution
(one dot product per output pixel), windowed NumPy pooling and NumPy's pad/repeat/slicing
(PyTorch comparisons of the forward passes and gradients: test_conv_torch.py). Output
shapes follow Keras's own formulas (``compute_conv_output_shape``,
``compute_pooling_output_shape``, ``compute_conv_transpose_output_shape``), written here
from Keras's source. Gradients are checked against float64 central differences. Bad
input and its errors: test_conv_errors.py.
"""
import json
import math

import numpy as np
import pytest

from pynn.layers import (AveragePooling1D, AveragePooling2D, BatchNormalization, Conv1D,
                         Conv2D, Conv2DTranspose, Cropping1D, Cropping2D, DepthwiseConv2D,
                         GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D,
                         GlobalMaxPooling2D, MaxPooling1D, MaxPooling2D, Reshape,
                         SeparableConv2D, SpatialDropout1D, SpatialDropout2D, UpSampling1D,
                         UpSampling2D, ZeroPadding1D, ZeroPadding2D, deserialize, serialize)
from test_layers import build, bwd, check_layer_gradients, fwd

RNG = np.random.default_rng(16)


def randn(*shape):
    return RNG.standard_normal(shape)


# -------------------------------------------------------------------------------------------
# independent references
# -------------------------------------------------------------------------------------------
def keras_same_pads(size, k, stride, dilation):
    """TensorFlow's/Keras's 'same': the odd pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def keras_conv_length(size, k, stride, dilation, padding):
    """Keras's ``compute_conv_output_shape`` for one axis."""
    if padding == "valid":
        return math.floor((size - dilation * (k - 1) - 1) / stride) + 1
    return math.floor((size - 1) / stride) + 1


def keras_transpose_length(size, k, stride, dilation, padding, output_padding):
    """Keras's ``_get_output_shape_given_tf_padding``."""
    k = (k - 1) * dilation + 1
    if padding == "valid":
        op = max(k, stride) - k if output_padding is None else output_padding
        return (size - 1) * stride + k + op
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + k % 2 + output_padding


def naive_conv2d(x, k, strides=(1, 1), pads=((0, 0), (0, 0)), dil=(1, 1), groups=1):
    """Direct convolution, NHWC, one contraction per output pixel."""
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    n, hh, ww, _ = xp.shape
    kh, kw, cig, co = k.shape
    cog = co // groups
    oh = (hh - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (ww - dil[1] * (kw - 1) - 1) // strides[1] + 1
    y = np.zeros((n, oh, ow, co))
    for i in range(oh):
        for j in range(ow):
            r, c = i * strides[0], j * strides[1]
            patch = xp[:, r:r + dil[0] * (kh - 1) + 1:dil[0], c:c + dil[1] * (kw - 1) + 1:dil[1]]
            for g in range(groups):
                y[:, i, j, g * cog:(g + 1) * cog] = np.einsum(
                    "nabc,abcd->nd", patch[..., g * cig:(g + 1) * cig],
                    k[..., g * cog:(g + 1) * cog])
    return y


def same_or_valid_pads(padding, spatial, kernel, strides, dil):
    if padding == "valid":
        return tuple((0, 0) for _ in spatial)
    return tuple(keras_same_pads(s, k, st, d) for s, k, st, d in
                 zip(spatial, kernel, strides, dil))


def naive_pool2d(x, pool, strides, pads, mode):
    """Windows clipped to the real input: padding never wins a max nor counts in a mean."""
    n, h, w, c = x.shape
    oh = (h + sum(pads[0]) - pool[0]) // strides[0] + 1
    ow = (w + sum(pads[1]) - pool[1]) // strides[1] + 1
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * strides[0] - pads[0][0], j * strides[1] - pads[1][0]
            win = x[:, max(r0, 0):min(r0 + pool[0], h), max(c0, 0):min(c0 + pool[1], w), :]
            y[:, i, j] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
    return y


def keras_jax_transpose_pads(kernel, strides, padding, output_padding, dil):
    """Keras's ``_convert_conv_transpose_padding_args_from_keras_to_jax``: per axis the
    ``(left, right)`` zeros around the stride-dilated input."""
    pads = []
    for k, s, d, op in zip(kernel, strides, dil, output_padding or (None,) * len(kernel)):
        k = (k - 1) * d + 1
        if padding == "valid":
            op = max(k, s) - k if op is None else op
            pads.append((k - 1, k - 1 + op))
        else:
            pad_len = s + k - 2 if op is None else k + k % 2 - 2 + op
            left = min(pad_len // 2 + pad_len % 2, k - 1)
            pads.append((left, pad_len - left))
    return tuple(pads)


def jax_conv_transpose(x, kernel, strides, padding, output_padding, dil):
    """Keras's JAX path of ``conv_transpose``: dilate the input by the strides, pad it
    with Keras's (left, right) (``_convert_conv_transpose_padding_args_from_keras_to_jax``)
    and correlate with the spatially flipped, in/out-swapped kernel."""
    n, h, w, ci = x.shape
    pads = keras_jax_transpose_pads(kernel.shape[:2], strides, padding, output_padding, dil)
    xd = np.zeros((n, (h - 1) * strides[0] + 1, (w - 1) * strides[1] + 1, ci))
    xd[:, ::strides[0], ::strides[1]] = x
    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
    return naive_conv2d(xd, flipped, pads=tuple(pads), dil=dil)


# -------------------------------------------------------------------------------------------
# Conv2D / Conv1D forward
# -------------------------------------------------------------------------------------------
CONV2D_CASES = [
    # (input hw, kernel, strides, padding, dilation, groups)
    ((7, 6), (3, 3), (1, 1), "valid", (1, 1), 1),
    ((7, 6), (3, 2), (2, 3), "same", (1, 1), 1),     # strides that do not divide
    ((8, 8), (4, 4), (1, 1), "same", (1, 1), 1),     # even kernel: odd pixel at the end
    ((9, 7), (3, 3), (1, 1), "same", (2, 3), 1),     # dilation
    ((5, 5), (1, 1), (2, 2), "valid", (1, 1), 2),    # 1x1, groups
    ((4, 5), (4, 5), (1, 1), "valid", (1, 1), 1),    # kernel == input
    ((6, 6), (2, 3), (3, 2), "same", (1, 1), 2),
]


@pytest.mark.parametrize("case", CONV2D_CASES, ids=str)
def test_conv2d_forward_matches_direct_convolution(backend, case):
    (h, w), ks, st, padding, dil, groups = case
    x = randn(2, h, w, 4)
    layer = build(Conv2D(6, ks, strides=st, padding=padding, dilation_rate=dil, groups=groups,
                         activation="tanh", bias_initializer="random_normal",
                         dtype="float64"), x)
    k, b = layer.kernel.numpy(), layer.bias.numpy()
    assert k.shape == ks + (4 // groups, 6)
    pads = same_or_valid_pads(padding, (h, w), ks, st, dil)
    want = np.tanh(naive_conv2d(x, k, st, pads, dil, groups) + b)
    got = layer(x)
    assert got.shape[1:] == want.shape[1:] == layer.output_shape[1:]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv2d_channels_first_equals_channels_last(backend):
    x = randn(2, 7, 6, 3)
    last = build(Conv2D(4, 3, strides=2, padding="same", activation="relu",
                        bias_initializer="random_normal", dtype="float64"), x)
    first = build(Conv2D(4, 3, strides=2, padding="same", activation="relu",
                         data_format="channels_first", dtype="float64"),
                  x.transpose(0, 3, 1, 2))
    first.set_weights(last.get_weights())
    assert first.output_shape == (None, 4, 4, 3)
    np.testing.assert_allclose(first(x.transpose(0, 3, 1, 2)),
                               last(x).transpose(0, 3, 1, 2), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("padding,strides,dil", [("valid", 1, 1), ("same", 2, 1),
                                                  ("causal", 1, 2), ("same", 1, 3),
                                                  ("valid", 3, 1)])
def test_conv1d_forward_matches_direct(backend, padding, strides, dil):
    x = randn(2, 9, 3)
    layer = build(Conv1D(4, 3, strides=strides, padding=padding, dilation_rate=dil,
                         bias_initializer="random_normal", dtype="float64"), x)
    k, b = layer.kernel.numpy(), layer.bias.numpy()
    assert k.shape == (3, 3, 4)
    if padding == "causal":
        pad = (2 * dil, 0)
    else:
        pad = same_or_valid_pads(padding, (9,), (3,), (strides,), (dil,))[0]
    want = naive_conv2d(x[:, None], k[None], (1, strides), ((0, 0), pad), (1, dil))[:, 0] + b
    got = layer(x)
    assert got.shape == (2, keras_conv_length(9, 3, strides, dil, padding), 4)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["same", "causal"])
def test_conv1d_channels_first(backend, padding):
    x = randn(2, 8, 3)
    last = build(Conv1D(5, 2, padding=padding, dtype="float64",
                        bias_initializer="random_normal"), x)
    first = build(Conv1D(5, 2, padding=padding, data_format="channels_first", dtype="float64"),
                  x.transpose(0, 2, 1))
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(first(x.transpose(0, 2, 1)), last(x).transpose(0, 2, 1),
                               rtol=1e-13, atol=1e-13)


# -------------------------------------------------------------------------------------------
# depthwise, separable, transposed
# -------------------------------------------------------------------------------------------
def naive_depthwise(x, k, strides, pads, dil):
    """Output channel c * m + j: input channel c with kernel[:, :, c, j] (Keras's order)."""
    c, m = k.shape[2:]
    out = [naive_conv2d(x[..., ci:ci + 1], k[:, :, ci:ci + 1, j:j + 1], strides, pads, dil)
           for ci in range(c) for j in range(m)]
    return np.concatenate(out, axis=-1)


@pytest.mark.parametrize("padding,strides,dil,dm", [("valid", (1, 1), (1, 1), 1),
                                                     ("same", (2, 1), (1, 1), 3),
                                                     ("same", (1, 1), (2, 2), 2)])
def test_depthwise_conv2d_channel_order_is_keras(backend, padding, strides, dil, dm):
    x = randn(2, 7, 6, 3)
    layer = build(DepthwiseConv2D((3, 2), strides=strides, padding=padding,
                                  depth_multiplier=dm, dilation_rate=dil,
                                  bias_initializer="random_normal", dtype="float64"), x)
    k, b = layer.kernel.numpy(), layer.bias.numpy()
    assert [w.name for w in layer.weights] == ["kernel", "bias"]
    assert k.shape == (3, 2, 3, dm) and b.shape == (3 * dm,)
    pads = same_or_valid_pads(padding, (7, 6), (3, 2), strides, dil)
    np.testing.assert_allclose(layer(x), naive_depthwise(x, k, strides, pads, dil) + b,
                               rtol=1e-12, atol=1e-12)


def test_separable_conv2d_is_depthwise_then_pointwise(backend):
    x = randn(2, 7, 7, 3)
    layer = build(SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2,
                                  activation="elu", bias_initializer="random_normal",
                                  dtype="float64"), x)
    assert [w.name for w in layer.weights] == ["depthwise_kernel", "pointwise_kernel", "bias"]
    dk, pk, b = layer.get_weights()
    assert dk.shape == (3, 3, 3, 2) and pk.shape == (1, 1, 6, 5) and b.shape == (5,)
    pads = same_or_valid_pads("same", (7, 7), (3, 3), (2, 2), (1, 1))
    mid = naive_depthwise(x, dk, (2, 2), pads, (1, 1))
    z = mid @ pk[0, 0] + b
    np.testing.assert_allclose(layer(x), np.where(z > 0, z, np.expm1(z)), rtol=1e-12,
                               atol=1e-12)


TRANSPOSE_CASES = [
    # (input hw, kernel, strides, padding, output_padding, dilation)
    ((4, 5), (3, 3), (2, 2), "same", None, (1, 1)),
    ((4, 5), (3, 3), (2, 2), "valid", None, (1, 1)),
    ((3, 4), (2, 2), (3, 3), "valid", None, (1, 1)),   # stride larger than the kernel
    ((3, 4), (4, 3), (1, 1), "same", None, (1, 1)),    # even kernel
    ((4, 3), (3, 2), (2, 3), "same", (1, 2), (1, 1)),
    ((4, 3), (3, 3), (2, 2), "valid", (1, 0), (1, 1)),
    ((5, 4), (3, 2), (1, 1), "same", None, (2, 2)),    # dilation
    ((3, 3), (2, 2), (2, 2), "same", None, (1, 1)),
    ((3, 4), (1, 2), (2, 2), "same", None, (1, 1)),    # 1xk
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv2d_transpose_is_keras(backend, case):
    (h, w), ks, st, padding, op, dil = case
    x = randn(2, h, w, 3)
    layer = build(Conv2DTranspose(4, ks, strides=st, padding=padding, output_padding=op,
                                  dilation_rate=dil, bias_initializer="random_normal",
                                  dtype="float64"), x)
    k, b = layer.get_weights()
    assert k.shape == ks + (4, 3)
    want_hw = tuple(keras_transpose_length(s, kk, stt, d, padding, None if op is None else o)
                    for s, kk, stt, d, o in zip((h, w), ks, st, dil, op or (0, 0)))
    assert layer.output_shape == (None,) + want_hw + (4,)
    got = layer(x)
    want = jax_conv_transpose(x, k, st, padding, op, dil) + b
    assert want.shape[1:3] == want_hw
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# -------------------------------------------------------------------------------------------
# output shapes: Keras's rules over a grid
# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 5, 7, 8])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("stride,dil", [(1, 1), (2, 1), (3, 1), (1, 2)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_and_pool_output_shapes_follow_keras(size, k, stride, dil, padding):
    want = keras_conv_length(size, k, stride, dil, padding)
    conv = Conv2D(2, (k, 1), strides=(stride, 1), dilation_rate=(dil, 1), padding=padding)
    if want <= 0:
        with pytest.raises(ValueError, match="kernel"):
            conv.compute_output_shape((None, size, 3, 1))
    else:
        assert conv.compute_output_shape((None, size, 3, 1)) == (None, want, 3, 2)
    if dil == 1:
        want_pool = (keras_conv_length(size, k, stride, 1, padding))
        pool = MaxPooling2D((k, 1), strides=(stride, 1), padding=padding)
        if want_pool <= 0:
            with pytest.raises(ValueError, match="pool"):
                pool.compute_output_shape((None, size, 3, 2))
        else:
            assert pool.compute_output_shape((None, size, 3, 2)) == (None, want_pool, 3, 2)
    t = Conv2DTranspose(2, (k, 1), strides=(stride, 1), dilation_rate=(dil, 1),
                        padding=padding)
    assert t.compute_output_shape((None, size, 3, 1)) == (
        None, keras_transpose_length(size, k, stride, dil, padding, None), 3, 2)


def test_forward_shapes_equal_declared_shapes(backend):
    x = randn(2, 7, 5, 4)
    for layer in [Conv2D(3, (2, 3), strides=(2, 3), padding="same"),
                  DepthwiseConv2D(2, depth_multiplier=2, padding="same"),
                  SeparableConv2D(3, 3, strides=2), Conv2DTranspose(3, 3, strides=2),
                  MaxPooling2D(3, strides=2, padding="same"), AveragePooling2D((2, 3)),
                  GlobalMaxPooling2D(keepdims=True), GlobalAveragePooling2D(),
                  ZeroPadding2D(((1, 2), (0, 3))), Cropping2D(((1, 2), (0, 3))),
                  UpSampling2D((2, 3)), Reshape((-1, 4)), SpatialDropout2D(0.5)]:
        y = layer(x)
        assert y.shape[1:] == layer.output_shape[1:], type(layer).__name__


# -------------------------------------------------------------------------------------------
# pooling
# -------------------------------------------------------------------------------------------
POOL_CASES = [((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((2, 3), (3, 1), "same"),
              ((3, 2), (1, 2), "valid"), ((4, 4), (3, 3), "same")]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pooling2d_forward(backend, mode, case):
    pool, strides, padding = case
    x = randn(2, 7, 8, 3)
    cls = MaxPooling2D if mode == "max" else AveragePooling2D
    layer = cls(pool, strides=strides, padding=padding, dtype="float64")
    st = strides or pool
    pads = same_or_valid_pads(padding, (7, 8), pool, st, (1, 1))
    want = naive_pool2d(x, pool, st, pads, mode)
    got = layer(x)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    first = cls(pool, strides=strides, padding=padding, data_format="channels_first",
                dtype="float64")
    np.testing.assert_allclose(first(x.transpose(0, 3, 1, 2)), want.transpose(0, 3, 1, 2),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("cls,mode", [(MaxPooling1D, "max"), (AveragePooling1D, "avg")])
def test_pooling1d_forward(backend, cls, mode):
    x = randn(2, 9, 3)
    layer = cls(3, strides=2, padding="same", dtype="float64")
    pads = ((0, 0), keras_same_pads(9, 3, 2, 1))
    want = naive_pool2d(x[:, None], (1, 3), (1, 2), pads, mode)[:, 0]
    np.testing.assert_allclose(layer(x), want, rtol=1e-13, atol=1e-13)
    first = cls(3, strides=2, padding="same", data_format="channels_first", dtype="float64")
    np.testing.assert_allclose(first(x.transpose(0, 2, 1)), want.transpose(0, 2, 1),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(backend, keepdims):
    x = randn(3, 4, 5, 2)
    for cls, f in [(GlobalMaxPooling2D, np.max), (GlobalAveragePooling2D, np.mean)]:
        np.testing.assert_allclose(cls(keepdims=keepdims, dtype="float64")(x),
                                   f(x, axis=(1, 2), keepdims=keepdims), rtol=1e-13)
        np.testing.assert_allclose(
            cls(data_format="channels_first", keepdims=keepdims, dtype="float64")(x),
            f(x, axis=(2, 3), keepdims=keepdims), rtol=1e-13)
    s = randn(3, 6, 2)
    for cls, f in [(GlobalMaxPooling1D, np.max), (GlobalAveragePooling1D, np.mean)]:
        np.testing.assert_allclose(cls(keepdims=keepdims, dtype="float64")(s),
                                   f(s, axis=1, keepdims=keepdims), rtol=1e-13)
        np.testing.assert_allclose(
            cls(data_format="channels_first", keepdims=keepdims, dtype="float64")(s),
            f(s, axis=2, keepdims=keepdims), rtol=1e-13)


# -------------------------------------------------------------------------------------------
# reshaping and spatial dropout
# -------------------------------------------------------------------------------------------
def test_reshaping_layers_forward(backend):
    x = randn(2, 5, 4, 3)
    np.testing.assert_array_equal(ZeroPadding2D(((1, 2), (0, 3)), dtype="float64")(x),
                                  np.pad(x, ((0, 0), (1, 2), (0, 3), (0, 0))))
    np.testing.assert_array_equal(ZeroPadding2D(2, data_format="channels_first",
                                                dtype="float64")(x),
                                  np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))))
    np.testing.assert_array_equal(Cropping2D(((1, 2), (0, 1)), dtype="float64")(x),
                                  x[:, 1:3, 0:3])
    np.testing.assert_array_equal(Cropping2D((1, 0), data_format="channels_first",
                                             dtype="float64")(x), x[:, :, 1:3, :])
    np.testing.assert_array_equal(UpSampling2D((2, 3), dtype="float64")(x),
                                  x.repeat(2, axis=1).repeat(3, axis=2))
    np.testing.assert_array_equal(UpSampling2D(2, data_format="channels_first",
                                               dtype="float64")(x),
                                  x.repeat(2, axis=2).repeat(2, axis=3))
    np.testing.assert_array_equal(Reshape((3, -1), dtype="float64")(x), x.reshape(2, 3, 20))
    s = randn(2, 6, 3)
    np.testing.assert_array_equal(ZeroPadding1D((2, 1), dtype="float64")(s),
                                  np.pad(s, ((0, 0), (2, 1), (0, 0))))
    np.testing.assert_array_equal(Cropping1D((1, 2), dtype="float64")(s), s[:, 1:4])
    np.testing.assert_array_equal(UpSampling1D(3, dtype="float64")(s), s.repeat(3, axis=1))


@pytest.mark.parametrize("cls,shape,axes", [(SpatialDropout2D, (4, 5, 6, 8), (1, 2)),
                                            (SpatialDropout1D, (4, 7, 8), (1,))])
def test_spatial_dropout_drops_whole_channels(backend, cls, shape, axes):
    x = np.abs(randn(*shape)) + 1.0
    layer = build(cls(0.5, seed=3, dtype="float64"), x)
    np.testing.assert_array_equal(layer(x), x)          # inference: the identity
    y = fwd(layer, x, training=True)
    kept = y != 0
    # each (sample, channel) is kept or dropped everywhere
    assert np.all(kept.all(axis=axes) | (~kept).all(axis=axes))
    assert 0 < kept.all(axis=axes).mean() < 1
    np.testing.assert_allclose(y[kept], 2.0 * x[kept])
    dy = randn(*shape)
    np.testing.assert_allclose(bwd(layer, dy), dy * (y / x))


def test_spatial_dropout2d_channels_first(backend):
    x = np.ones((3, 8, 4, 5))
    layer = build(SpatialDropout2D(0.5, data_format="channels_first", seed=1,
                                   dtype="float64"), x)
    y = fwd(layer, x, training=True)
    assert np.all((y == 0).all(axis=(2, 3)) | (y != 0).all(axis=(2, 3)))


# -------------------------------------------------------------------------------------------
# BatchNormalization over the channel axis
# -------------------------------------------------------------------------------------------
def test_batch_normalization_channels_first_axis(backend):
    x = randn(4, 3, 5, 2) * 2 + 1
    last = build(BatchNormalization(momentum=0.5, dtype="float64",
                                    gamma_initializer="random_normal"), x.transpose(0, 2, 3, 1))
    first = build(BatchNormalization(axis=1, momentum=0.5, dtype="float64"), x)
    first.set_weights(last.get_weights())
    assert [w.shape for w in first.weights] == [(3,)] * 4
    y_last = fwd(last, x.transpose(0, 2, 3, 1), training=True)
    y_first = fwd(first, x, training=True)
    np.testing.assert_allclose(y_first, y_last.transpose(0, 3, 1, 2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(first.moving_mean.numpy(), last.moving_mean.numpy())
    dy = randn(4, 3, 5, 2)
    np.testing.assert_allclose(bwd(first, dy), bwd(last, dy.transpose(0, 2, 3, 1))
                               .transpose(0, 3, 1, 2), rtol=1e-12, atol=1e-12)
    check_layer_gradients(first, x)
    assert first.get_config()["axis"] == 1
    with pytest.raises(ValueError, match="batch axis"):
        BatchNormalization(axis=0)(x)
    with pytest.raises(ValueError, match="axis=4"):
        BatchNormalization(axis=4)(x)


# -------------------------------------------------------------------------------------------
# gradients: float64 central differences
# -------------------------------------------------------------------------------------------
GRADIENT_LAYERS = {
    "conv2d_same_strided": (Conv2D, dict(filters=3, kernel_size=(3, 2), strides=(2, 1),
                                         padding="same", activation="tanh"), (2, 5, 4, 2)),
    "conv2d_dilated_groups": (Conv2D, dict(filters=4, kernel_size=2, dilation_rate=2, groups=2,
                                           activation="sigmoid"), (2, 5, 5, 2)),
    "conv2d_gelu_first": (Conv2D, dict(filters=2, kernel_size=2, activation="gelu",
                                       data_format="channels_first"), (2, 2, 4, 3)),
    "conv2d_softmax": (Conv2D, dict(filters=3, kernel_size=2, activation="softmax"),
                       (2, 3, 3, 2)),
    "conv1d_causal": (Conv1D, dict(filters=3, kernel_size=3, padding="causal",
                                   dilation_rate=2, activation="tanh"), (2, 7, 2)),
    "conv1d_first": (Conv1D, dict(filters=2, kernel_size=2, strides=2, use_bias=False,
                                  data_format="channels_first"), (2, 3, 7)),
    "depthwise": (DepthwiseConv2D, dict(kernel_size=3, padding="same", depth_multiplier=2,
                                        activation="tanh"), (2, 4, 4, 2)),
    "separable": (SeparableConv2D, dict(filters=3, kernel_size=2, strides=2, padding="same",
                                        activation="tanh"), (2, 5, 4, 2)),
    "transpose_same": (Conv2DTranspose, dict(filters=2, kernel_size=3, strides=2,
                                             padding="same", activation="tanh"), (2, 3, 2, 2)),
    "transpose_valid_gelu": (Conv2DTranspose, dict(filters=2, kernel_size=(2, 3),
                                                   strides=(3, 1), activation="gelu"),
                             (1, 2, 3, 2)),
    "transpose_first": (Conv2DTranspose, dict(filters=2, kernel_size=2, output_padding=0,
                                              padding="same", data_format="channels_first"),
                        (2, 2, 3, 3)),
    "max_pool_same": (MaxPooling2D, dict(pool_size=3, strides=2, padding="same"),
                      (2, 5, 4, 2)),
    "avg_pool_same": (AveragePooling2D, dict(pool_size=(2, 3), strides=(1, 2), padding="same"),
                      (2, 4, 5, 2)),
    "max_pool1d_first": (MaxPooling1D, dict(pool_size=2, data_format="channels_first"),
                         (2, 3, 6)),
    "avg_pool1d": (AveragePooling1D, dict(pool_size=3, strides=2, padding="same"), (2, 7, 2)),
    "global_max": (GlobalMaxPooling2D, {}, (2, 3, 4, 2)),
    "global_avg_1d": (GlobalAveragePooling1D, dict(keepdims=True), (2, 5, 3)),
    "zero_pad": (ZeroPadding2D, dict(padding=((1, 0), (2, 1))), (2, 3, 2, 2)),
    "crop_first": (Cropping2D, dict(cropping=((1, 0), (0, 1)), data_format="channels_first"),
                   (2, 2, 4, 3)),
    "up_sampling": (UpSampling2D, dict(size=(2, 3)), (2, 2, 2, 2)),
    "up_sampling1d": (UpSampling1D, dict(size=2), (2, 3, 2)),
    "reshape": (Reshape, dict(target_shape=(-1, 2)), (2, 3, 2, 2)),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_LAYERS))
def test_layer_gradients(backend, name):
    cls, kwargs, shape = GRADIENT_LAYERS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.standard_normal(shape)
    layer = build(cls(dtype="float64", **kwargs), x)
    if getattr(layer, "bias", None) is not None:
        layer.bias.assign(rng.standard_normal(layer.bias.shape))
    check_layer_gradients(layer, x)


# -------------------------------------------------------------------------------------------
# configs, names, weights
# -------------------------------------------------------------------------------------------
CONFIG_LAYERS = [
    Conv2D(8, (3, 2), strides=2, padding="same", dilation_rate=1, groups=2, activation="relu",
           use_bias=False, kernel_initializer="he_normal", kernel_regularizer="l2"),
    Conv1D(4, 5, padding="causal", dilation_rate=2, data_format="channels_last"),
    DepthwiseConv2D(3, depth_multiplier=2, data_format="channels_first"),
    SeparableConv2D(6, 3, depth_multiplier=3, pointwise_initializer="zeros"),
    Conv2DTranspose(5, 3, strides=2, padding="same", output_padding=1),
    MaxPooling2D((3, 2), strides=1, padding="same"), AveragePooling1D(4),
    MaxPooling1D(), AveragePooling2D(data_format="channels_first"),
    GlobalMaxPooling1D(keepdims=True), GlobalAveragePooling2D(data_format="channels_first"),
    GlobalMaxPooling2D(), GlobalAveragePooling1D(),
    Reshape((4, -1)), ZeroPadding1D((1, 2)), ZeroPadding2D(((1, 2), (3, 4))),
    Cropping1D(2), Cropping2D(1), UpSampling1D(3), UpSampling2D((2, 3)),
    SpatialDropout1D(0.3, seed=2), SpatialDropout2D(0.2, data_format="channels_first"),
    BatchNormalization(axis=1),
]


@pytest.mark.parametrize("layer", CONFIG_LAYERS, ids=lambda l: type(l).__name__)
def test_config_round_trip(layer):
    cfg = json.loads(json.dumps(serialize(layer)))
    clone = deserialize(cfg)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_keras_config_keys_and_defaults():
    cfg = Conv2D(32, 3).get_config()
    assert cfg["kernel_size"] == [3, 3] and cfg["strides"] == [1, 1]
    assert cfg["padding"] == "valid" and cfg["data_format"] == "channels_last"
    assert cfg["dilation_rate"] == [1, 1] and cfg["groups"] == 1
    assert cfg["activation"] == "linear" and cfg["use_bias"] is True
    assert cfg["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert MaxPooling2D().get_config()["strides"] == [2, 2]
    assert MaxPooling1D(3).get_config()["pool_size"] == [3]
    assert Conv2DTranspose(2, 3).get_config()["output_padding"] is None
    assert set(SpatialDropout1D(0.1).get_config()) >= {"rate", "seed", "name"}
    assert "noise_shape" not in SpatialDropout2D(0.1).get_config()
    assert ZeroPadding2D(2).padding == ((2, 2), (2, 2))
    assert Cropping2D((1, 2)).cropping == ((1, 1), (2, 2))
