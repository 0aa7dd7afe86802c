"""Layers, initializers, regularizers and activations: gradients checked by finite
differences in float64 on every backend, Keras names/defaults/configs."""
import math

import numpy as np
import pytest

from pynn import activations, initializers, regularizers
from pynn.backends.base import ACTIVATIONS
from pynn.layers import (Activation, BatchNormalization, Dense, Dropout, Flatten, Input,
                         InputLayer, LeakyReLU, Softmax, clear_session, deserialize, serialize)

from helpers import numerical_grad


def check_layer_gradients(layer, x, training=True, rtol=1e-6, atol=1e-8, seed=0):
    """L = sum(r * forward(x)); compare backward's dx and weight grads with differences."""
    rng = np.random.default_rng(seed)
    y = fwd(layer, x, training=training)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(r * fwd(layer, x, training=training)))

    loss()
    dx = np.array(bwd(layer, r.copy(), input_grad=True), copy=True)
    grads = {w.name: np.array(w.grad, copy=True) for w in layer.trainable_weights}
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=rtol, atol=atol,
                               err_msg=f"{layer.name}: dx")
    for w in layer.trainable_weights:
        np.testing.assert_allclose(grads[w.name], numerical_grad(loss, w.value), rtol=rtol,
                                   atol=atol, err_msg=f"{layer.name}: d{w.name}")
    return dx, grads


def ctx_of(layer):
    """One call context per layer for these single-call tests (the engine keeps one per
    call site)."""
    ctx = layer.__dict__.get("_test_ctx")
    if ctx is None:
        ctx = layer._test_ctx = layer.context()
    return ctx


def fwd(layer, x, *args, **kwargs):
    return layer.forward(ctx_of(layer), x, *args, **kwargs)


def bwd(layer, dy, *args, **kwargs):
    return layer.backward(ctx_of(layer), dy, *args, **kwargs)


def build(layer, x):
    layer(x)  # standalone call builds the layer for x
    return layer


# -------------------------------------------------------------------------------------------
# gradients
# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_gradients_every_activation(backend, activation):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4))
    layer = build(Dense(6, activation=activation, dtype="float64",
                        bias_initializer="random_normal"), x)
    check_layer_gradients(layer, x)


def test_dense_gradients_without_bias_and_rank3(backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 4))
    layer = build(Dense(3, activation="tanh", use_bias=False, dtype="float64"), x)
    assert layer.bias is None and len(layer.weights) == 1
    assert fwd(layer, x).shape == (3, 2, 3)
    check_layer_gradients(layer, x)


def test_dense_forward_matches_numpy_and_logits_skip_activation(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 3))
    layer = build(Dense(4, activation="softmax", dtype="float64",
                        bias_initializer="random_normal"), x)
    W, b = layer.kernel.numpy(), layer.bias.numpy()
    z = x @ W + b
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(fwd(layer, x), e / e.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(fwd(layer, x, logits=True), z, rtol=1e-12)
    # backward in logits mode is the plain affine backward
    dy = rng.standard_normal(z.shape)
    dx = bwd(layer, dy)
    np.testing.assert_allclose(dx, dy @ W.T, rtol=1e-12)
    np.testing.assert_allclose(layer.kernel.grad, x.T @ dy, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, dy.sum(0), rtol=1e-12)


def test_dense_skips_input_gradient(backend):
    x = np.random.default_rng(4).standard_normal((5, 3))
    layer = build(Dense(2, dtype="float64"), x)
    fwd(layer, x, training=True)
    assert bwd(layer, np.ones((5, 2)), input_grad=False) is None
    np.testing.assert_allclose(layer.kernel.grad, x.T @ np.ones((5, 2)))


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False)])
def test_batchnorm_gradients_training(backend, center, scale):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 3)) * 2 + 1
    layer = build(BatchNormalization(center=center, scale=scale, dtype="float64",
                                     gamma_initializer="random_normal",
                                     beta_initializer="random_normal"), x)
    check_layer_gradients(layer, x, training=True, rtol=1e-5, atol=1e-7)


def test_batchnorm_frozen_is_inference_mode_and_gradient(backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 3))
    layer = build(BatchNormalization(dtype="float64", gamma_initializer="random_normal"), x)
    layer.moving_mean.assign(rng.standard_normal(3))
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, 3))
    layer.trainable = False
    mm = layer.moving_mean.numpy()
    y = fwd(layer, x, training=True)
    g, b = layer.gamma.numpy(), layer.beta.numpy()
    want = (x - mm) / np.sqrt(layer.moving_variance.numpy() + 1e-3) * g + b
    np.testing.assert_allclose(y, want, rtol=1e-12)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), mm)  # no update while frozen
    check_layer_gradients(layer, x, training=True)


def test_batchnorm_moving_statistics_update_like_keras(backend):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 4)) * 3 + 2
    layer = build(BatchNormalization(momentum=0.9, dtype="float64"), x)
    fwd(layer, x, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * x.var(0), rtol=1e-12)
    # Keras weight order and trainability
    assert [w.name for w in layer.weights] == ["gamma", "beta", "moving_mean",
                                               "moving_variance"]
    assert [w.name for w in layer.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert layer.count_params() == 16


def test_dropout_gradient_with_fixed_mask(backend):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 5))
    layer = build(Dropout(0.4, dtype="float64"), x)
    layer._next_seed = lambda: 12345  # the same mask on every call
    y = fwd(layer, x, training=True)
    kept = y != 0
    assert 0 < kept.sum() < x.size
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-12)
    dx, _ = check_layer_gradients(layer, x, training=True)
    # inference: identity
    assert fwd(layer, x, training=False) is x


def test_dropout_masks_differ_between_steps_and_follow_the_seed(backend):
    x = np.ones((50, 20))
    a, b = Dropout(0.5, seed=3, dtype="float64"), Dropout(0.5, seed=3, dtype="float64")
    a1, a2 = fwd(a, x, True).copy(), fwd(a, x, True).copy()
    b1 = fwd(b, x, True).copy()
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(a1, b1)
    assert abs((a1 == 0).mean() - 0.5) < 0.05


def test_dropout_noise_shape(backend):
    x = np.random.default_rng(9).standard_normal((4, 6))
    layer = build(Dropout(0.5, noise_shape=(1, None), seed=1, dtype="float64"), x)
    y = fwd(layer, x, training=True)
    dropped = np.all(y == 0, axis=0)
    assert np.array_equal(dropped, np.any(y == 0, axis=0))  # whole columns
    dy = np.ones_like(y)
    dx = bwd(layer, dy)
    np.testing.assert_array_equal(dx == 0, y == 0)


@pytest.mark.parametrize("make", [lambda **k: Activation("tanh", **k),
                                  lambda **k: Activation("gelu", **k),
                                  lambda **k: Activation("elu", **k),
                                  lambda **k: Activation(None, **k),
                                  lambda **k: LeakyReLU(**k),
                                  lambda **k: LeakyReLU(negative_slope=0.1, **k),
                                  lambda **k: Softmax(**k)],
                         ids=["tanh", "gelu", "elu", "linear", "leaky", "leaky0.1", "softmax"])
def test_activation_layers_gradients(backend, make):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 4))
    layer = build(make(dtype="float64"), x)
    check_layer_gradients(layer, x)


def test_leaky_relu_layer_default_slope_is_keras(backend):
    x = np.array([[-1.0, 2.0]])
    np.testing.assert_allclose(LeakyReLU(dtype="float64")(x), [[-0.3, 2.0]])
    np.testing.assert_allclose(Activation("leaky_relu", dtype="float64")(x), [[-0.2, 2.0]])
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(negative_slope=-1)


def test_flatten_round_trip(backend):
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    layer = Flatten()
    y = layer(x)
    assert y.shape == (2, 12) and layer.output_shape == (None, 12)
    fwd(layer, x)
    dy = np.arange(24.0).reshape(2, 12)
    assert bwd(layer, dy).shape == (2, 3, 4)


def test_workspaces_are_reused_per_batch_shape(backend):
    x = np.random.default_rng(11).standard_normal((4, 3))
    layer = build(Dense(2, activation="relu", dtype="float64"), x)
    y1 = fwd(layer, x)
    y2 = fwd(layer, x + 1)
    assert y1 is y2  # same buffer, step after step
    y3 = fwd(layer, x[:3])
    assert y3 is not y1 and y3.shape == (3, 2)


# -------------------------------------------------------------------------------------------
# names, configs, weights
# -------------------------------------------------------------------------------------------
def test_auto_names_like_keras():
    clear_session()
    names = [Dense(1).name, Dense(1).name, BatchNormalization().name, LeakyReLU().name,
             Dropout(0.1).name, Activation("relu").name, Dense(1).name]
    assert names == ["dense", "dense_1", "batch_normalization", "leaky_re_lu", "dropout",
                     "activation", "dense_2"]
    assert Dense(1, name="out").name == "out"


@pytest.mark.parametrize("layer", [
    Dense(3, activation="relu", kernel_regularizer=regularizers.L2(0.001),
          kernel_initializer="he_normal", use_bias=False),
    Dropout(0.25, seed=4), BatchNormalization(momentum=0.9, epsilon=1e-5, center=False),
    Activation("sigmoid"), LeakyReLU(0.1), Softmax(), Flatten()],
    ids=lambda l: type(l).__name__)
def test_config_round_trip(layer):
    clone = deserialize(serialize(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_dense_config_keras_defaults():
    cfg = Dense(4).get_config()
    assert cfg["units"] == 4 and cfg["activation"] == "linear" and cfg["use_bias"] is True
    assert cfg["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert cfg["bias_initializer"]["class_name"] == "Zeros"
    assert cfg["kernel_regularizer"] is None


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    with pytest.raises(ValueError, match="Unknown activation 'relux'.*relu"):
        Dense(3, activation="relux")
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="Unrecognized keyword"):
        Dense(3, foo=1)
    with pytest.raises(ValueError, match="last axis"):
        BatchNormalization(axis=0)(np.ones((4, 3)))


def test_layer_weights_api(backend):
    layer = build(Dense(3, dtype="float64"), np.ones((2, 4)))
    assert [w.shape for w in layer.get_weights()] == [(4, 3), (3,)]
    assert layer.kernel.path.endswith("/kernel")
    new = [np.full((4, 3), 0.5), np.arange(3.0)]
    layer.set_weights(new)
    np.testing.assert_array_equal(layer.kernel.numpy(), new[0])
    with pytest.raises(ValueError, match="expecting 2 weights"):
        layer.set_weights(new[:1])
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 4\)"):
        layer.set_weights([np.ones((3, 4)), np.ones(3)])
    assert layer.count_params() == 15
    with pytest.raises(ValueError, match="isn't built"):
        Dense(2).count_params()


def test_input_layer():
    inp = Input(shape=(5,))  # Keras 3: a symbolic tensor, made by an InputLayer
    assert inp.shape == (None, 5) and inp.dtype == "float32"
    layer = inp.node.layer
    assert isinstance(layer, InputLayer) and layer.input_shape == (None, 5)
    assert layer.get_config()["batch_shape"] == [None, 5]
    ids = Input(shape=(7,), dtype="int32", batch_size=4)
    assert ids.shape == (4, 7) and ids.dtype == "int32"
    with pytest.raises(ValueError, match="dtype"):
        Input(shape=(3,), dtype="complex64")
    with pytest.raises(ValueError, match="shape"):
        Input()


# -------------------------------------------------------------------------------------------
# initializers
# -------------------------------------------------------------------------------------------
def test_initializer_formulas():
    rng = np.random.default_rng(0)
    w = initializers.get("glorot_uniform")((300, 200), dtype="float64", rng=rng)
    limit = math.sqrt(6 / 500)
    assert w.dtype == np.float64 and np.abs(w).max() <= limit
    assert abs(w.std() - limit / math.sqrt(3)) < 0.01 * limit
    w = initializers.HeNormal()((400, 300), dtype="float64", rng=rng)
    std = math.sqrt(2 / 400)
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12  # truncated at 2 sigma
    assert abs(w.std() - std) < 0.03 * std
    w = initializers.LecunUniform()((100, 50), rng=rng)
    assert w.dtype == np.float32 and np.abs(w).max() <= math.sqrt(3 / 100)
    np.testing.assert_array_equal(initializers.get("zeros")((2, 2)), np.zeros((2, 2)))
    np.testing.assert_array_equal(initializers.Ones()((3,)), np.ones(3))
    np.testing.assert_array_equal(initializers.Constant(2.5)((2,)), [2.5, 2.5])
    w = initializers.RandomNormal(mean=1.0, stddev=0.1)((2000,), "float64", rng)
    assert abs(w.mean() - 1.0) < 0.01 and abs(w.std() - 0.1) < 0.01
    w = initializers.RandomUniform(-0.05, 0.05)((1000,), "float64", rng)
    assert w.min() >= -0.05 and w.max() < 0.05


def test_initializers_draw_from_the_given_generator():
    init = initializers.GlorotNormal()
    a = init((5, 5), rng=np.random.default_rng(42))
    b = init((5, 5), rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    seeded = initializers.GlorotNormal(seed=7)
    np.testing.assert_array_equal(seeded((3, 3)), seeded((3, 3)))


def test_initializer_lookup_and_config():
    assert isinstance(initializers.get("he_uniform"), initializers.HeUniform)
    init = initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=3)
    clone = initializers.deserialize(initializers.serialize(init))
    assert clone == init
    with pytest.raises(ValueError, match="glorot_uniform"):
        initializers.get("glorot")


# -------------------------------------------------------------------------------------------
# regularizers and activations
# -------------------------------------------------------------------------------------------
def test_regularizers(backend):
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    assert regularizers.L2().l2 == 0.01 and regularizers.L1().l1 == 0.01
    assert regularizers.L2(0.1)(w) == pytest.approx(0.1 * 5.25)
    assert regularizers.L1(0.1)(w) == pytest.approx(0.1 * 3.5)
    r = regularizers.L1L2(l1=0.1, l2=0.2)
    assert r(w) == pytest.approx(0.35 + 0.2 * 5.25)
    g = np.zeros_like(w)
    r.add_grad_(backend, w, g)
    np.testing.assert_allclose(g, 0.1 * np.sign(w) + 0.4 * w)
    assert isinstance(regularizers.get("l2"), regularizers.L2)
    assert regularizers.get(None) is None
    clone = regularizers.deserialize(regularizers.serialize(r))
    assert clone.get_config() == r.get_config()
    with pytest.raises(ValueError, match="l2"):
        regularizers.get("l3")
    with pytest.raises(ValueError):
        regularizers.L2(-1)


def test_activations_module(backend):
    assert activations.get(None) is activations.linear
    assert activations.get("relu") is activations.relu
    assert activations.get(activations.tanh) is activations.tanh
    x = np.array([[-1.0, 0.5, 2.0]])
    np.testing.assert_allclose(activations.relu(x), [[0, 0.5, 2]])
    np.testing.assert_allclose(activations.sigmoid(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(activations.softmax(x).sum(), 1.0)
    with pytest.raises(ValueError, match="Unknown activation 'swishy'.*'gelu'"):
        activations.get("swishy")
