"""Convolution and pooling layers against Keras 3 itself (issue 16), where it is installed.

Output shapes (declared and computed) and forward values, in float64 with the same
random weights, for the cases Keras's conventions make easy to get wrong: 'same' padding
with even kernels, strides that do not divide and dilation (the odd pixel at the end),
Conv2DTranspose with 'same', with output_padding and with strides larger than the kernel
('valid'), 'same' pooling (averages count only real elements), channels_first. Keras
runs on its torch backend (``KERAS_BACKEND=torch`` unless set otherwise); the module is
skipped without Keras (CI does not install it: its peer step compares with PyTorch,
test_conv_torch.py).
"""
import os

import numpy as np
import pytest

import pynn.layers as P
from test_conv_layers import TRANSPOSE_CASES, same_or_valid_pads
from test_layers import build

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip(f"Keras runs on {keras.backend.backend()!r} here, not torch",
                allow_module_level=True)

#: Keras's torch backend converts tensors with np.array(x, copy=False) (NumPy 2 warns)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

RTOL = 1e-10


def compare_with_keras(name, kwargs, x, seed=0, values=True):
    """pynn's and Keras's layer ``name`` with ``kwargs`` on ``x``: the same output shape
    (declared and computed) and, with Keras's weights (random), the same values (unless
    ``values=False``)."""
    rng = np.random.default_rng(seed)
    k_layer = getattr(keras.layers, name)(dtype="float64", **kwargs)
    k_layer.build(x.shape)
    weights = [rng.standard_normal(w.shape) * 0.5 for w in k_layer.weights]
    k_layer.set_weights(weights)
    want = keras.ops.convert_to_numpy(k_layer(x))
    layer = build(getattr(P, name)(dtype="float64", **kwargs), x)
    assert [w.shape for w in layer.weights] == [w.shape for w in weights]
    layer.set_weights(weights)
    declared = tuple(k_layer.compute_output_shape((None,) + x.shape[1:]))
    assert layer.output_shape == declared == (None,) + want.shape[1:]
    got = layer(x)
    assert got.shape == want.shape
    if not values:
        return got, want
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * max(1, np.abs(want).max()))


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv2d_transpose_is_keras(backend, case):
    (h, w), ks, st, padding, op, dil = case
    x = np.random.default_rng(1).standard_normal((2, h, w, 3))
    compare_with_keras("Conv2DTranspose", dict(filters=4, kernel_size=ks, strides=st,
                                               padding=padding, output_padding=op,
                                               dilation_rate=dil), x)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_transpose_channels_first_is_keras(backend, padding):
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    compare_with_keras("Conv2DTranspose", dict(filters=2, kernel_size=(2, 3), strides=(3, 2),
                                               padding=padding,
                                               data_format="channels_first"), x)


#: (layer, arguments, input shape) with 'same' padding in odd places
SAME_CASES = [
    ("Conv2D", dict(filters=3, kernel_size=(4, 2)), (2, 6, 7, 2)),
    ("Conv2D", dict(filters=3, kernel_size=3, strides=(2, 3)), (2, 8, 7, 2)),
    ("Conv2D", dict(filters=3, kernel_size=(2, 4), strides=(3, 2)), (2, 7, 9, 2)),
    ("Conv2D", dict(filters=3, kernel_size=2, dilation_rate=(2, 3)), (2, 5, 8, 2)),
    ("Conv2D", dict(filters=4, kernel_size=(4, 3), strides=2, groups=2,
                    data_format="channels_first"), (2, 4, 7, 6)),
    ("Conv1D", dict(filters=3, kernel_size=4, strides=3), (2, 10, 2)),
    ("Conv1D", dict(filters=3, kernel_size=2, dilation_rate=3), (2, 9, 2)),
    ("DepthwiseConv2D", dict(kernel_size=(2, 4), strides=(2, 3), depth_multiplier=2),
     (2, 7, 8, 3)),
    ("SeparableConv2D", dict(filters=4, kernel_size=4, strides=3, depth_multiplier=2),
     (2, 8, 7, 3)),
    ("MaxPooling2D", dict(pool_size=(2, 3), strides=(2, 2)), (2, 7, 8, 3)),
    ("MaxPooling2D", dict(pool_size=4, strides=3, data_format="channels_first"),
     (2, 3, 8, 7)),
    ("MaxPooling1D", dict(pool_size=4, strides=3), (2, 10, 2)),
    # average pooling: symmetric padding (see the next test)
    ("AveragePooling2D", dict(pool_size=3, strides=2), (2, 7, 9, 3)),
    ("AveragePooling2D", dict(pool_size=(3, 5), strides=1, data_format="channels_first"),
     (2, 3, 6, 7)),
    ("AveragePooling1D", dict(pool_size=3, strides=2), (2, 9, 2)),
]

#: average pooling whose 'same' padding is asymmetric (the odd pad at the end)
ASYMMETRIC_AVERAGE_CASES = [
    ("AveragePooling2D", dict(pool_size=(2, 3), strides=(2, 2)), (2, 7, 8, 3)),
    ("AveragePooling2D", dict(pool_size=4, strides=3, data_format="channels_first"),
     (2, 3, 8, 7)),
    ("AveragePooling1D", dict(pool_size=3, strides=2), (2, 8, 2)),
]


@pytest.mark.parametrize("name,kwargs,shape", SAME_CASES, ids=str)
def test_same_padding_is_keras(backend, name, kwargs, shape):
    x = np.random.default_rng(3).standard_normal(shape)
    compare_with_keras(name, dict(padding="same", **kwargs), x)


@pytest.mark.parametrize("name,kwargs,shape", ASYMMETRIC_AVERAGE_CASES, ids=str)
def test_same_average_pooling_with_asymmetric_padding(backend, name, kwargs, shape):
    """Shapes as Keras; values as TensorFlow and JAX, not as Keras's torch backend.

    Keras documents that 'same' average pooling counts only real elements, and its
    TensorFlow and JAX backends do. Its torch backend (3.15,
    ``backend/torch/nn.py: _apply_same_padding``) pads asymmetric 'same' pooling with
    ``mode="replicate"`` (on every axis), so a window over the padding counts edge
    values again. pynn follows the documented rule (checked against PyTorch with
    ``count_include_pad=False`` and explicit padding in test_conv_torch.py); here the
    values agree in the windows that lie inside the input and differ elsewhere."""
    x = np.random.default_rng(5).standard_normal(shape)
    got, want = compare_with_keras(name, dict(padding="same", **kwargs), x, values=False)
    rank = int(name[-2])
    axes = range(2, 2 + rank) if "data_format" in kwargs else range(1, 1 + rank)
    pool = np.broadcast_to(kwargs["pool_size"], (rank,))
    strides = np.broadcast_to(kwargs["strides"], (rank,))
    inside = np.ones(got.shape, bool)    # windows that lie wholly inside the input
    for a, k, st, pads in zip(axes, pool, strides, same_or_valid_pads(
            "same", [shape[a] for a in axes], pool, strides, (1,) * rank)):
        start = np.arange(got.shape[a]) * st - pads[0]
        ok = (start >= 0) & (start + k <= shape[a])
        inside &= ok.reshape([-1 if b == a else 1 for b in range(got.ndim)])
    assert inside.any() and not inside.all()
    np.testing.assert_allclose(got[inside], want[inside], rtol=RTOL, atol=RTOL)
    assert not np.allclose(got, want)


def test_causal_conv1d_is_keras(backend):
    x = np.random.default_rng(4).standard_normal((2, 7, 2))
    compare_with_keras("Conv1D", dict(filters=3, kernel_size=3, dilation_rate=2,
                                      padding="causal"), x)
