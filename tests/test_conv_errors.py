"""Bad input to the convolution, pooling and reshaping layers (issue 16): each gives a
ValueError naming the layer and the offending value or shapes.

Issue 16's list: a kernel (or pool, or cropping) larger than the padded input; zero or
negative sizes (filters, kernel_size, strides, pool_size, dilation_rate, groups,
depth_multiplier, size, padding); strides > 1 with dilation_rate > 1 where Keras refuses
them (Conv and ConvTranspose layers; the depthwise and separable layers take both);
channel counts that do not divide ``groups``; input of the wrong rank; channels_first data
given to a channels_last layer or model.
"""
import re

import numpy as np
import pytest

import pynn
from pynn.layers import (AveragePooling1D, AveragePooling2D, Conv1D, Conv2D, Conv2DTranspose,
                         Cropping1D, Cropping2D, DepthwiseConv2D, Flatten,
                         GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D,
                         GlobalMaxPooling2D, Input, MaxPooling1D, MaxPooling2D, Reshape,
                         SeparableConv2D, SpatialDropout1D, SpatialDropout2D, UpSampling1D,
                         UpSampling2D, ZeroPadding1D, ZeroPadding2D)
from pynn.models import Model, Sequential


def shape_re(shape):
    return re.escape(str(tuple(shape)))


# -------------------------------------------------------------------------------------------
# arguments
# -------------------------------------------------------------------------------------------
#: (constructor, what the message must hold after the layer's name)
ARGUMENT_ERRORS = [
    # zero or negative sizes
    (lambda: Conv2D(0, 3, name="e"), r"`filters`.*filters=0"),
    (lambda: Conv2D(-2, 3, name="e"), r"`filters`.*filters=-2"),
    (lambda: Conv2D(2.5, 3, name="e"), r"`filters`.*filters=2.5"),
    (lambda: Conv1D(2, 0, name="e"), r"`kernel_size`.*kernel_size=0"),
    (lambda: Conv2D(2, (3, 0), name="e"), r"`kernel_size`.*kernel_size=\(3, 0\)"),
    (lambda: Conv2D(2, -1, name="e"), r"`kernel_size`.*kernel_size=-1"),
    (lambda: Conv2D(2, 3, strides=(1, 0), name="e"), r"`strides`.*strides=\(1, 0\)"),
    (lambda: Conv1D(2, 3, strides=-1, name="e"), r"`strides`.*strides=-1"),
    (lambda: Conv2D(2, 3, dilation_rate=0, name="e"), r"`dilation_rate`.*dilation_rate=0"),
    (lambda: Conv1D(2, 3, dilation_rate=-2, name="e"), r"`dilation_rate`.*dilation_rate=-2"),
    (lambda: Conv2D(2, 3, groups=0, name="e"), r"`groups`.*groups=0"),
    (lambda: Conv2DTranspose(0, 3, name="e"), r"`filters`.*filters=0"),
    (lambda: Conv2DTranspose(2, (2, -1), name="e"), r"`kernel_size`.*\(2, -1\)"),
    (lambda: Conv2DTranspose(2, 3, strides=0, name="e"), r"`strides`.*strides=0"),
    (lambda: DepthwiseConv2D(0, name="e"), r"`kernel_size`.*kernel_size=0"),
    (lambda: DepthwiseConv2D(3, depth_multiplier=0, name="e"),
     r"`depth_multiplier`.*depth_multiplier=0"),
    (lambda: DepthwiseConv2D(3, dilation_rate=(0, 1), name="e"), r"`dilation_rate`"),
    (lambda: SeparableConv2D(0, 3, name="e"), r"`filters`.*filters=0"),
    (lambda: SeparableConv2D(2, 3, depth_multiplier=-1, name="e"),
     r"`depth_multiplier`.*depth_multiplier=-1"),
    (lambda: SeparableConv2D(2, 3, strides=(2, 0), name="e"), r"`strides`.*\(2, 0\)"),
    (lambda: MaxPooling2D((2, 0), name="e"), r"`pool_size`.*pool_size=\(2, 0\)"),
    (lambda: AveragePooling2D(2, strides=0, name="e"), r"`strides`.*strides=0"),
    (lambda: MaxPooling1D(-1, name="e"), r"`pool_size`.*pool_size=-1"),
    (lambda: AveragePooling1D(2, strides=(0,), name="e"), r"`strides`.*strides=\(0,\)"),
    (lambda: UpSampling1D(0, name="e"), r"`size`.*size=0"),
    (lambda: UpSampling2D((2, -1), name="e"), r"`size`.*size=\(2, -1\)"),
    (lambda: ZeroPadding2D(-1, name="e"), r"`padding`.*padding=-1"),
    (lambda: ZeroPadding1D((1, -2), name="e"), r"`padding`.*padding=\(1, -2\)"),
    (lambda: Cropping2D(((0, 1), (-1, 0)), name="e"), r"`cropping\[1\]`.*\(-1, 0\)"),
    (lambda: Cropping1D(-1, name="e"), r"`cropping`.*cropping=-1"),
    (lambda: Reshape((0, 2), name="e"), r"`target_shape`.*\(0, 2\)"),
    (lambda: Reshape((-1, -1), name="e"), r"`target_shape`.*at most one -1.*\(-1, -1\)"),
    (lambda: Cropping2D(-1, name="e"), r"`cropping`.*cropping=-1"),
    # strides > 1 with dilation_rate > 1: refused where Keras refuses them
    (lambda: Conv2D(2, 3, strides=2, dilation_rate=2, name="e"),
     r"`strides > 1`.*`dilation_rate > 1`.*strides=\(2, 2\).*dilation_rate=\(2, 2\)"),
    (lambda: Conv1D(2, 3, strides=3, dilation_rate=2, name="e"),
     r"`strides > 1`.*`dilation_rate > 1`.*strides=\(3,\).*dilation_rate=\(2,\)"),
    (lambda: Conv2DTranspose(2, 3, strides=(1, 2), dilation_rate=(2, 1), name="e"),
     r"`strides > 1`.*`dilation_rate > 1`.*strides=\(1, 2\).*dilation_rate=\(2, 1\)"),
    # filters that do not divide into the groups
    (lambda: Conv2D(4, 3, groups=3, name="e"), r"divisible.*groups=3, filters=4"),
    (lambda: Conv1D(5, 3, groups=2, name="e"), r"divisible.*groups=2, filters=5"),
    # other arguments
    (lambda: Conv2D(2, 3, padding="causal", name="e"), r"`padding`.*'causal'"),
    (lambda: MaxPooling2D(padding="full", name="e"), r"`padding`.*'full'"),
    (lambda: Conv2D(2, 3, data_format="NHWC", name="e"), r"`data_format`.*'NHWC'"),
    (lambda: Conv2DTranspose(2, 3, strides=2, output_padding=2, name="e"),
     r"`output_padding`.*less than.*`strides`"),
    (lambda: UpSampling2D(interpolation="bilinear", name="e"), r"interpolation.*'bilinear'"),
]


@pytest.mark.parametrize("make,match", ARGUMENT_ERRORS,
                         ids=[m for _, m in ARGUMENT_ERRORS])
def test_argument_errors_name_the_layer_and_the_value(make, match):
    with pytest.raises(ValueError, match=r"^[A-Za-z0-9]+ 'e'.*" + match):
        make()


def test_depthwise_and_separable_take_strides_with_dilation_as_keras():
    """Keras's depthwise and separable layers accept strides > 1 with dilation > 1
    (their forward passes and gradients: test_conv_torch.py)."""
    x = Input((9, 9, 2))
    assert DepthwiseConv2D(3, strides=2, dilation_rate=2)(x).shape == (None, 3, 3, 2)
    assert SeparableConv2D(4, 3, strides=2, dilation_rate=2)(x).shape == (None, 3, 3, 4)


# -------------------------------------------------------------------------------------------
# shapes
# -------------------------------------------------------------------------------------------
#: (layer, sample shape, what the message must hold after the layer's name); the message
#: must also hold the whole input shape
TOO_LARGE = [
    (Conv2D(2, 5, name="e"), (3, 3, 2), r"kernel \(5, 5\)"),
    (Conv2D(2, (1, 4), strides=3, name="e"), (5, 3, 2), r"kernel \(1, 4\)"),
    (Conv2D(2, 3, dilation_rate=3, name="e"), (6, 8, 2), r"kernel \(3, 3\) \(dilation \(3, 3\)\)"),
    (Conv2D(2, 3, data_format="channels_first", name="e"), (2, 8, 2), r"kernel \(3, 3\)"),
    (Conv1D(2, 5, name="e"), (3, 2), r"kernel \(5,\)"),
    (Conv1D(2, 2, dilation_rate=4, name="e"), (4, 1), r"kernel \(2,\) \(dilation \(4,\)\)"),
    (DepthwiseConv2D(5, name="e"), (3, 8, 2), r"kernel \(5, 5\)"),
    (SeparableConv2D(2, (1, 9), name="e"), (8, 8, 2), r"kernel \(1, 9\)"),
    (MaxPooling2D(3, name="e"), (2, 5, 1), r"pool \(3, 3\)"),
    (AveragePooling2D((2, 6), strides=1, name="e"), (4, 5, 1), r"pool \(2, 6\)"),
    (MaxPooling1D(4, name="e"), (3, 2), r"pool \(4,\)"),
    (AveragePooling1D(3, data_format="channels_first", name="e"), (2, 2), r"pool \(3,\)"),
    (Cropping1D((2, 2), name="e"), (4, 1), r"`cropping` \(\(2, 2\),\)"),
    (Cropping2D(((0, 0), (3, 3)), name="e"), (4, 6, 1), r"`cropping`"),
]


@pytest.mark.parametrize("layer,sample,match", TOO_LARGE, ids=lambda v: str(v))
def test_kernel_pool_or_cropping_larger_than_the_input(layer, sample, match):
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name} 'e'.*{match}.*{shape_re((None, *sample))}"):
        layer(Input(sample))


def test_reshape_to_a_size_that_does_not_divide():
    with pytest.raises(ValueError, match=r"Reshape 'e'.*\(3, 4\).*cannot be reshaped to "
                                         r"\(5, -1\)"):
        Reshape((5, -1), name="e")(Input((3, 4)))
    with pytest.raises(ValueError, match=r"Reshape 'e2'.*\(3, 4\) \(12 values\).*\(5, 2\) "
                                         r"\(10 values\)"):
        Reshape((5, 2), name="e2")(Input((3, 4)))


def test_same_padding_never_makes_a_kernel_too_large():
    """'same' pads up to the kernel: the output has ceil(size / stride) positions."""
    assert Conv2D(2, 5, padding="same")(Input((3, 2, 1))).shape == (None, 3, 2, 2)
    assert MaxPooling2D(4, strides=3, padding="same")(Input((2, 5, 1))).shape == (
        None, 1, 2, 1)
    assert Conv1D(2, 9, padding="causal")(Input((3, 1))).shape == (None, 3, 2)


RANK_LAYERS = [
    (Conv1D(2, 3, name="e"), 1), (Conv2D(2, 3, name="e"), 2),
    (Conv2DTranspose(2, 3, name="e"), 2), (DepthwiseConv2D(3, name="e"), 2),
    (SeparableConv2D(2, 3, name="e"), 2), (MaxPooling1D(name="e"), 1),
    (AveragePooling2D(name="e"), 2), (GlobalMaxPooling1D(name="e"), 1),
    (GlobalAveragePooling2D(name="e"), 2), (GlobalMaxPooling2D(name="e"), 2),
    (ZeroPadding1D(name="e"), 1),
    (Cropping2D(name="e"), 2), (UpSampling1D(name="e"), 1), (UpSampling2D(name="e"), 2),
    (SpatialDropout1D(0.1, name="e"), 1), (SpatialDropout2D(0.1, name="e"), 2),
]


@pytest.mark.parametrize("layer,rank", RANK_LAYERS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("wrong", [-1, 1])
def test_wrong_rank(layer, rank, wrong):
    sample = (6,) * (rank + wrong) + (2,)
    want = rf"{type(layer).__name__} 'e' expects {rank + 2}-D inputs"
    with pytest.raises(ValueError, match=rf"{want}.*{shape_re((None, *sample))}"):
        layer(Input(sample))


@pytest.mark.parametrize("layer,sample", [
    (Conv2D(4, 1, groups=2, name="e"), (4, 4, 3)),
    (Conv2D(6, 1, groups=3, data_format="channels_first", name="e"), (4, 4, 3)),
    (Conv1D(4, 1, groups=4, name="e"), (5, 6)),
], ids=str)
def test_input_channels_that_do_not_divide_groups(layer, sample):
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name} 'e'.*input channels.*divisible.*groups="
                                         rf"{layer.groups}.*{shape_re((None, *sample))}"):
        layer(Input(sample))


@pytest.mark.parametrize("layer", [Conv2D(2, 1), MaxPooling2D(1), GlobalAveragePooling2D(),
                                   UpSampling2D(), ZeroPadding2D()],
                         ids=lambda l: type(l).__name__)
def test_a_zero_size_input_dimension(layer):
    with pytest.raises(ValueError, match=rf"{type(layer).__name__} '{layer.name}'.*must be "
                                         r"positive.*\(None, 0, 3, 1\)"):
        layer(Input((0, 3, 1)))


# -------------------------------------------------------------------------------------------
# channels_first data given to channels_last layers and models
# -------------------------------------------------------------------------------------------
CF_HINT = "looks like channels_first data"


@pytest.mark.parametrize("layer,sample", [
    (Conv2D(8, 3, name="e"), (1, 28, 28)), (MaxPooling2D(2, name="e"), (1, 8, 8)),
    (DepthwiseConv2D(3, name="e"), (2, 16, 16)), (SeparableConv2D(4, 3, name="e"), (1, 9, 9)),
    (AveragePooling2D(3, name="e"), (2, 9, 9)), (Conv1D(4, 3, name="e"), (2, 20)),
    (MaxPooling1D(2, name="e"), (1, 20)),
], ids=str)
def test_channels_first_data_given_to_an_unbuilt_layer(layer, sample):
    """A layer not yet built can only tell when the channels on axis 1 are fewer than
    the kernel or pool (it has no other shape to compare with): the error names the
    layer, the shape and the likely cause. A model knows its input shape: see below."""
    name = type(layer).__name__
    with pytest.raises(ValueError,
                       match=rf"{name} 'e'.*{shape_re((None, *sample))}.*{CF_HINT}"):
        layer(Input(sample))


def test_channels_first_data_given_to_a_built_layer():
    conv = Conv2D(4, 3, name="e")
    conv(np.zeros((2, 28, 28, 1)))
    with pytest.raises(ValueError, match=r"'e'.*built for inputs of shape \(None, 28, 28, 1\)"
                                         rf".*\(None, 1, 28, 28\).*{CF_HINT}"):
        conv(np.zeros((2, 1, 28, 28)))


def keras_io_convnet(functional):
    layers = [Conv2D(8, 3, activation="relu", name="conv"), MaxPooling2D(2), Flatten(),
              pynn.layers.Dense(10, activation="softmax")]
    if not functional:
        return Sequential([Input((28, 28, 1))] + layers)
    inp = h = Input((28, 28, 1))
    for layer in layers:
        h = layer(h)
    return Model(inp, h)


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_channels_first_data_given_to_a_channels_last_model(functional):
    """(n, 1, 28, 28) where (28, 28, 1) images are expected: fit, evaluate and predict
    name the layer, both shapes and the likely cause."""
    model = keras_io_convnet(functional)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.zeros((4, 1, 28, 28), np.float32)
    y = np.zeros(4, np.int64)
    match = (rf"layer 'conv'.*{shape_re((4, 1, 28, 28))}.*expects shape "
             rf"{shape_re((None, 28, 28, 1))}.*{CF_HINT}")
    for call in [lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y, verbose=0),
                 lambda: model.predict(x, verbose=0)]:
        with pytest.raises(ValueError, match=match):
            call()
    # sequences: (n, channels, steps) where (steps, channels) is expected
    seq = Sequential([Input((20, 3)), Conv1D(4, 3, name="c1"), GlobalAveragePooling1D()])
    with pytest.raises(ValueError, match=rf"layer 'c1'.*{shape_re((2, 3, 20))}.*expects "
                                         rf"shape {shape_re((None, 20, 3))}.*{CF_HINT}"):
        seq.predict(np.zeros((2, 3, 20)), verbose=0)


def test_a_missing_channel_axis_of_one_is_added_as_keras_does():
    """Keras 3 adds a missing last axis of size 1 (``_adjust_input_rank``): (4, 28, 28)
    images feed a (28, 28, 1) model; a missing axis of another size is an error naming
    both shapes."""
    model = keras_io_convnet(functional=False)
    x = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  model.predict(x[..., None], verbose=0))
    rgb = Sequential([Input((28, 28, 3)), Conv2D(8, 3, name="conv")])
    with pytest.raises(ValueError, match=r"layer 'conv'.*expected shape=\(None, 28, 28, 3\)"
                                         r".*found shape=\(4, 28, 28\)"):
        rgb.predict(x, verbose=0)
