"""LayerNormalization, UnitNormalization, Normalization (with adapt), GaussianNoise and
GaussianDropout (issue 18): the backend ops against finite differences, the layers
against Keras 3 (and LayerNormalization against torch.nn.LayerNorm), float64
finite-difference gradients, Sequential and functional models that train, save and
load, configs, and bad input."""
import warnings

import numpy as np
import pytest

import pynn
from pynn.layers import (Dense, GaussianDropout, GaussianNoise, Input, LayerNormalization,
                         Normalization, UnitNormalization, deserialize, serialize)
from pynn.models import Model, Sequential, load_model

from helpers import REFERENCE, assert_close, check_op, import_keras, numerical_grad
from test_gradients import assert_grad

F64 = np.float64


# --------------------------------------------------------------------------------------
# backend ops: finite differences in float64 on every backend
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("rms,affine", [(False, "gamma_beta"), (False, "gamma"),
                                        (False, "none"), (True, "gamma"), (True, "none")])
def test_layernorm_op_gradient(backend, rms, affine, rng):
    x = rng.standard_normal((4, 6))
    x[1] *= 1e-2  # a row with a variance near epsilon
    gamma = rng.standard_normal(6) if affine != "none" else None
    beta = rng.standard_normal(6) if affine == "gamma_beta" else None
    G = rng.standard_normal(x.shape)

    def f():
        y, _, _ = backend.layernorm_forward(x, gamma, beta, epsilon=1e-3, rms_scaling=rms)
        return float(np.sum(G * y))

    y, mean, inv_std = backend.layernorm_forward(x, gamma, beta, epsilon=1e-3,
                                                 rms_scaling=rms)
    xd = x - (0 if rms else x.mean(1, keepdims=True))
    want = xd / np.sqrt(x.var(1, keepdims=True) + 1e-3)
    want = want * (1 if gamma is None else gamma) + (0 if beta is None else beta)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    dx, dgamma, dbeta = backend.layernorm_backward(G, x, gamma, mean, inv_std,
                                                   rms_scaling=rms)
    assert_grad(dx, numerical_grad(f, x), f"{backend.name} layernorm dx")
    if gamma is not None:
        assert_grad(dgamma, numerical_grad(f, gamma), f"{backend.name} layernorm dgamma")
    else:
        assert dgamma is None
    np.testing.assert_allclose(dbeta, G.sum(0), rtol=1e-12)


def test_l2_normalize_op_gradient(backend, rng):
    x = rng.standard_normal((4, 5))
    x[2] = 0.0  # the norm is clamped at epsilon there: a constant scaling by 1/epsilon
    G = rng.standard_normal(x.shape)

    def f():
        return float(np.sum(G * backend.l2_normalize_forward(x, epsilon=1e-12)[0]))

    y, inv = backend.l2_normalize_forward(x, epsilon=1e-12)
    np.testing.assert_allclose(np.linalg.norm(y[[0, 1, 3]], axis=1), 1.0, rtol=1e-12)
    assert inv[2] == 1e12 and np.all(y[2] == 0.0)
    dx = backend.l2_normalize_backward(G, y, inv, epsilon=1e-12)
    free = [0, 1, 3]
    assert_grad(dx[free], numerical_grad(f, x)[free], f"{backend.name} l2 dx")
    np.testing.assert_allclose(dx[2], G[2] * 1e12)


@pytest.mark.parametrize("rms,affine", [(False, "gamma_beta"), (False, "none"), (True, "gamma")])
def test_layernorm_ops_equal_reference(backend, dtype, rms, affine, rng):
    x = (3.0 * rng.standard_normal((7, 33)) + 2.0).astype(dtype)
    gamma = rng.standard_normal(33).astype(dtype) if affine != "none" else None
    beta = rng.standard_normal(33).astype(dtype) if affine == "gamma_beta" else None
    dy = rng.standard_normal(x.shape).astype(dtype)
    fw = check_op(backend, "layernorm_forward", [x, gamma, beta],
                  dict(epsilon=1e-5, rms_scaling=rms), dtype=dtype)[1]
    _, mean, inv_std = fw
    check_op(backend, "layernorm_backward", [dy, x, gamma, mean, inv_std],
             dict(rms_scaling=rms), dtype=dtype)
    # in place: out is x, dx is dy
    want = REFERENCE.layernorm_forward(x, gamma, beta, 1e-5, rms)[0]
    xc = x.copy()
    assert backend.layernorm_forward(xc, gamma, beta, 1e-5, rms, out=xc)[0] is xc
    assert_close(xc, want, dtype)
    want = REFERENCE.layernorm_backward(dy, x, gamma, mean, inv_std, rms)[0]
    dyc = dy.copy()
    assert backend.layernorm_backward(dyc, x, gamma, mean, inv_std, rms, dx=dyc)[0] is dyc
    assert_close(dyc, want, dtype)


def test_l2_normalize_ops_equal_reference(backend, dtype, rng):
    x = rng.standard_normal((6, 17)).astype(dtype)
    x[3] = 0.0
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, inv = check_op(backend, "l2_normalize_forward", [x], dict(epsilon=1e-12), dtype=dtype)[1]
    check_op(backend, "l2_normalize_backward", [dy, y, inv], dict(epsilon=1e-12), dtype=dtype)
    dyc = dy.copy()
    assert backend.l2_normalize_backward(dyc, y, inv, out=dyc) is dyc
    assert_close(dyc, REFERENCE.l2_normalize_backward(dy, y, inv), dtype)


def test_ops_bad_input(backend):
    with pytest.raises(ValueError, match=r"layernorm_forward: gamma must have shape \(4,\) "
                                         r"for x of shape \(rows, 4\), got \(3,\)"):
        backend.layernorm_forward(np.zeros((2, 4)), np.ones(3))
    with pytest.raises(ValueError, match=r"x of shape \(2, 0\) has no entries"):
        backend.layernorm_forward(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="rms_scaling takes no beta"):
        backend.layernorm_forward(np.zeros((2, 4)), None, np.ones(4), rms_scaling=True)
    with pytest.raises(ValueError, match=r"layernorm_forward: epsilon: expected a finite "
                                         r"number > 0, got 0.0"):
        backend.layernorm_forward(np.zeros((2, 4)), epsilon=0.0)
    with pytest.raises(ValueError, match=r"inv_std must have shape \(2,\)"):
        backend.layernorm_backward(np.zeros((2, 4)), np.zeros((2, 4)), None, np.zeros(2),
                                   np.zeros(3))
    with pytest.raises(ValueError, match=r"dy \(2, 4\) and y \(2, 3\) differ"):
        backend.l2_normalize_backward(np.zeros((2, 4)), np.zeros((2, 3)), np.ones(2))


# --------------------------------------------------------------------------------------
# the layers equal Keras's
# --------------------------------------------------------------------------------------
LN_CASES = [
    dict(shape=(5, 7), kw={}),
    dict(shape=(3, 4, 6), kw=dict(axis=1), keras_torch_fails=True),
    dict(shape=(2, 3, 4, 5), kw=dict(axis=[1, 3], epsilon=1e-5)),
    dict(shape=(2, 3, 4, 5), kw=dict(axis=[-2, -1], center=False)),
    dict(shape=(4, 6), kw=dict(scale=False)),
    dict(shape=(4, 6), kw=dict(center=False, scale=False)),
    dict(shape=(3, 2, 6), kw=dict(rms_scaling=True)),
]


def _quiet(cls, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**kw)


@pytest.mark.parametrize("case", LN_CASES, ids=[str(c["kw"]) for c in LN_CASES])
def test_layer_normalization_equals_keras(case):
    keras = import_keras()
    rng = np.random.default_rng(1)
    x = (3.0 * rng.standard_normal(case["shape"]) + 1.0).astype(np.float32)
    theirs = _quiet(keras.layers.LayerNormalization, **case["kw"])
    theirs.build(x.shape)
    ours = _quiet(LayerNormalization, **case["kw"])
    ours(x)
    assert [w.path.split("/")[-1] for w in ours.weights] == \
        [w.path.split("/")[-1] for w in theirs.weights]
    values = [rng.standard_normal(w.shape).astype(np.float32) for w in theirs.weights]
    theirs.set_weights(values)
    ours.set_weights(values)
    if case.get("keras_torch_fails"):
        # Keras 3.15's torch backend hands a single non-trailing axis to F.layer_norm,
        # which refuses it; its other backends use the moments formula, computed here
        ax = tuple(np.atleast_1d(case["kw"]["axis"]))
        bshape = [x.shape[a] if a in ax else 1 for a in range(x.ndim)]
        xd = x.astype(np.float64)
        want = (xd - xd.mean(ax, keepdims=True)) / np.sqrt(xd.var(ax, keepdims=True) + 1e-3)
        want = want * values[0].reshape(bshape) + values[1].reshape(bshape)
        with pytest.raises(RuntimeError, match="normalized_shape"):
            theirs(x)
    else:
        want = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(ours(x), want, rtol=1e-5, atol=2e-5)
    assert ours.get_config()["axis"] == theirs.get_config()["axis"]


@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_layer_normalization_equals_torch_layer_norm(axis):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5))
    layer = LayerNormalization(axis=axis, epsilon=1e-5, dtype="float64")
    layer(x)
    gamma, beta = rng.standard_normal(layer.gamma.shape), rng.standard_normal(layer.beta.shape)
    layer.set_weights([gamma, beta])
    ln = torch.nn.LayerNorm(layer.gamma.shape, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(gamma))
        ln.bias.copy_(torch.from_numpy(beta))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = ln(tx)
    G = rng.standard_normal(x.shape)
    (ty * torch.from_numpy(G)).sum().backward()
    ctx = layer.context()
    y = layer.forward(ctx, x)
    dx = layer.backward(ctx, G)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.gamma.grad, ln.weight.grad.numpy(), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(layer.beta.grad, ln.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("axis", [-1, 1, [1, 2], 0])
def test_unit_normalization_equals_keras(axis):
    keras = import_keras()
    x = np.random.default_rng(3).standard_normal((4, 3, 5)).astype(np.float32)
    x[0, 0] = 0.0
    want = keras.ops.convert_to_numpy(keras.layers.UnitNormalization(axis=axis)(x))
    np.testing.assert_allclose(UnitNormalization(axis=axis)(x), want, rtol=1e-6, atol=1e-6)


NORM_CASES = [
    dict(shape=(50, 4), kw={}),
    dict(shape=(50, 4), kw=dict(axis=None)),
    dict(shape=(30, 3, 4), kw=dict(axis=(1, 2))),
    dict(shape=(30, 3, 4), kw=dict(axis=1, invert=True)),
    dict(shape=(40,), kw=dict(axis=None)),
]


@pytest.mark.parametrize("batched", [False, True], ids=["array", "batches"])
@pytest.mark.parametrize("case", NORM_CASES, ids=[str(c) for c in NORM_CASES])
def test_normalization_adapt_equals_keras(case, batched):
    keras = import_keras()
    rng = np.random.default_rng(4)
    data = (5.0 * rng.standard_normal(case["shape"]) + 3.0).astype(np.float32)
    # uneven batches, the second one (x, y): Keras weights each by its share of the data,
    # which gives the statistics of all of it (Keras's adapt of a list needs TensorFlow
    # installed, so Keras adapts on the whole array)
    batches = [data[:7], (data[7:23], np.zeros(16)), data[23:]]
    theirs = keras.layers.Normalization(**case["kw"])
    theirs.adapt(data)
    ours = Normalization(**case["kw"])
    ours.adapt(batches if batched else data)
    assert [w.path.split("/")[-1] for w in ours.weights] == ["mean", "variance", "count"]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.adapt_mean.numpy(), data.mean(axis=ours._reduce_axis),
                               rtol=1e-5)
    x = data[:6]
    np.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("kw", [dict(mean=3.0, variance=2.0),
                                dict(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 0.0]),
                                dict(axis=(1, 2), mean=[1.0, -1.0, 0.5], variance=[4.0, 9.0, 1.0]),
                                dict(mean=0.5, variance=0.25, invert=True)])
def test_normalization_given_statistics_equal_keras(kw):
    keras = import_keras()
    x = np.random.default_rng(5).standard_normal((4, 2, 3)).astype(np.float32)
    want = keras.ops.convert_to_numpy(keras.layers.Normalization(**kw)(x))
    ours = Normalization(**kw)
    np.testing.assert_allclose(ours(x), want, rtol=1e-6, atol=1e-6)
    assert ours.weights == []


def test_normalization_documented_examples():
    """Keras's docstring examples, by hand."""
    layer = Normalization(axis=None)
    layer.adapt(np.array([1., 2., 3., 4., 5.], dtype="float32"))
    np.testing.assert_allclose(layer(np.array([1., 2., 3.], dtype="float32")),
                               [-1.4142135, -0.70710677, 0.0], rtol=1e-6)
    data = np.array([[0., 7., 4.], [2., 9., 6.], [0., 7., 4.], [2., 9., 6.]], "float32")
    layer = Normalization(axis=-1)
    layer.adapt(data)
    np.testing.assert_allclose(layer(np.array([[0., 7., 4.]], "float32")), [[-1., -1., -1.]])
    layer = Normalization(axis=-1, invert=True)
    layer.adapt(data)
    np.testing.assert_allclose(layer(np.array([[1., 2., 3.]], "float32")), [[2., 10., 8.]])


def test_normalization_generator_of_batches_and_adapt_again():
    rng = np.random.default_rng(6)
    data = rng.uniform(-2, 7, (100, 3))
    layer = Normalization(dtype="float64")
    layer.adapt(data[i:i + 16] for i in range(0, 100, 16))
    np.testing.assert_allclose(layer.adapt_mean.numpy(), data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(layer.adapt_variance.numpy(), data.var(0), rtol=1e-12)
    layer.adapt(2.0 * data)  # a second adapt replaces the statistics
    np.testing.assert_allclose(layer.adapt_variance.numpy(), 4.0 * data.var(0), rtol=1e-12)


@pytest.mark.parametrize("cls,kw", [(GaussianNoise, dict(stddev=0.3)),
                                    (GaussianDropout, dict(rate=0.3))])
def test_noise_statistics_and_inference_identity(cls, kw):
    x = np.full((400, 50), 2.0, np.float32)
    layer = cls(seed=3, **kw)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True)
    if cls is GaussianNoise:
        noise, mean, std = y - x, 0.0, 0.3
    else:
        noise, mean, std = y / x, 1.0, np.sqrt(0.3 / 0.7)
    assert abs(noise.mean() - mean) < 0.01 and abs(noise.std() - std) < 0.01 * std
    again = layer(x, training=True)
    assert not np.array_equal(again, y)  # fresh noise each training call
    np.testing.assert_array_equal(cls(seed=3, **kw)(x, training=True), y)  # seed repeats
    zero = cls(**{k: 0.0 for k in kw})
    np.testing.assert_array_equal(zero(x, training=True), x)


@pytest.mark.parametrize("cls,kw", [(GaussianNoise, dict(stddev=0.5)),
                                    (GaussianDropout, dict(rate=0.4))])
def test_noise_matches_keras_statistics(cls, kw):
    """Keras draws from torch's generator, so values differ; the distributions agree."""
    keras = import_keras()
    x = np.full((500, 40), 1.5, np.float32)
    theirs = keras.ops.convert_to_numpy(getattr(keras.layers, cls.__name__)(seed=1, **kw)(
        x, training=True))
    ours = cls(seed=1, **kw)(x, training=True)
    for stat in (np.mean, np.std):
        assert abs(stat(ours) - stat(theirs)) < 0.02 * abs(stat(theirs)) + 0.01
    np.testing.assert_array_equal(getattr(keras.layers, cls.__name__)(**kw)(x), x)


# --------------------------------------------------------------------------------------
# float64 finite-difference gradients of the layers
# --------------------------------------------------------------------------------------
def _layer_gradients(make, x, training=False):
    """Analytic (forward/backward) vs central differences, for the input and each
    trainable weight; ``make()`` returns the layer (called afresh per evaluation, so a
    seeded noise layer draws the same noise each time)."""
    rng = np.random.default_rng(0)
    layer = make()
    layer(x)
    values = [rng.standard_normal(w.shape) for w in layer.weights]
    if values:
        layer.set_weights(values)
    G = rng.standard_normal(layer(x).shape)

    def loss(vals):
        fresh = make()
        fresh(x)
        if vals:
            fresh.set_weights(vals)
        return float(np.sum(G * fresh(x, training=training)))

    ctx = layer.context()
    layer.forward(ctx, x, training=training)
    dx = layer.backward(ctx, G)
    assert_grad(dx, numerical_grad(lambda: loss(values), x), f"{layer.name} dx")
    for i, w in enumerate(layer.weights):
        if not w.trainable:
            continue
        vals = list(values)
        vals[i] = values[i].copy()  # numerical_grad perturbs it in place
        assert_grad(w.grad, numerical_grad(lambda: loss(vals), vals[i]), w.path)


GRAD_CASES = {
    "LayerNormalization": (lambda: LayerNormalization(dtype="float64"), (3, 5), False),
    "LayerNormalization_axis1": (lambda: LayerNormalization(axis=1, dtype="float64"),
                                 (2, 4, 3), False),
    "LayerNormalization_axes": (lambda: LayerNormalization(axis=[1, 2], dtype="float64",
                                                           epsilon=0.1), (2, 3, 2), False),
    "LayerNormalization_rms": (lambda: _quiet(LayerNormalization, rms_scaling=True,
                                              dtype="float64"), (3, 4), False),
    "LayerNormalization_noscale": (lambda: LayerNormalization(scale=False, dtype="float64"),
                                   (3, 4), False),
    "UnitNormalization": (lambda: UnitNormalization(dtype="float64"), (3, 5), False),
    "UnitNormalization_axis1": (lambda: UnitNormalization(axis=1, dtype="float64"),
                                (2, 3, 4), False),
    "Normalization": (lambda: Normalization(mean=[1.0, -2.0, 0.5], variance=[4.0, 0.25, 2.0],
                                            dtype="float64"), (4, 3), False),
    "Normalization_invert": (lambda: Normalization(mean=1.0, variance=9.0, invert=True,
                                                   dtype="float64"), (4, 3), False),
    "GaussianNoise": (lambda: GaussianNoise(0.2, seed=5, dtype="float64"), (3, 4), True),
    "GaussianDropout": (lambda: GaussianDropout(0.3, seed=5, dtype="float64"), (3, 4), True),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_layer_gradients_equal_finite_differences(name):
    make, shape, training = GRAD_CASES[name]
    x = np.random.default_rng(7).standard_normal(shape)
    _layer_gradients(make, x, training=training)


def test_frozen_layer_normalization_passes_input_gradients_only():
    layer = LayerNormalization(dtype="float64")
    x = np.random.default_rng(8).standard_normal((3, 4))
    layer(x)
    layer.trainable = False
    ctx = layer.context()
    layer.forward(ctx, x)
    dx = layer.backward(ctx, np.ones((3, 4)))
    assert dx.shape == (3, 4) and all(w.grad is None or not w.trainable for w in layer.weights)


# --------------------------------------------------------------------------------------
# models: Sequential and functional, training, saving, configs
# --------------------------------------------------------------------------------------
def regression_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)) * [1.0, 10.0, 100.0, 0.1] + [0.0, 50.0, -300.0, 1.0]
    y = (x[:, 0] + 0.1 * x[:, 1] + 0.01 * x[:, 2] + 10.0 * x[:, 3])[:, None]
    return x.astype(np.float32), y.astype(np.float32)


def test_sequential_with_every_new_layer_learns_saves_and_loads(tmp_path):
    pynn.set_seed(0)
    x, y = regression_data()
    norm = Normalization()
    norm.adapt(x)
    model = Sequential([Input((4,)), norm, GaussianNoise(0.05), Dense(16, activation="relu"),
                        LayerNormalization(), GaussianDropout(0.1), Dense(8),
                        UnitNormalization(), Dense(1)])
    model.compile(pynn.optimizers.Adam(0.01), "mse")
    hist = model.fit(x, y, epochs=25, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.3 * hist.history["loss"][0]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.get_layer(norm.name).adapt_mean.numpy(), x.mean(0),
                               rtol=1e-5)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_same_seed_same_training_with_noise_layers():
    x, y = regression_data(n=64)

    def run():
        pynn.set_seed(3)
        model = Sequential([Input((4,)), GaussianNoise(0.1), Dense(4), GaussianDropout(0.2),
                            Dense(1)])
        model.compile("sgd", "mse")
        model.fit(x / 100.0, y / 100.0, epochs=2, batch_size=16, verbose=0)
        return model.get_weights()

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)


def test_functional_model_with_normalization_layers():
    pynn.set_seed(1)
    x, y = regression_data(n=128)
    inp = Input((4,))
    norm = Normalization(axis=-1)
    norm.adapt(x)
    h = norm(inp)
    a = Dense(8, activation="tanh")(LayerNormalization()(h))
    b = UnitNormalization()(Dense(8)(h))
    out = Dense(1)(pynn.layers.concatenate([a, GaussianNoise(0.01)(b)]))
    model = Model(inp, out)
    model.compile(pynn.optimizers.Adam(0.01), "mse")
    hist = model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model.predict(x[:5], verbose=0).shape == (5, 1)


def test_adapt_after_the_model_has_laid_out_its_weights():
    x, _ = regression_data(n=64)
    norm = Normalization()
    model = Sequential([Input((4,)), norm])
    np.testing.assert_allclose(model.predict(x, verbose=0), x, rtol=1e-6)  # mean 0, var 1
    norm.adapt(x)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(0), 1.0, rtol=1e-4)


def test_normalization_adapted_on_1d_data_in_a_model():
    """The regression tutorial: ``Normalization(input_shape=[1,], axis=None)`` adapted on
    a 1-D array, then the first layer of a Sequential."""
    rng = np.random.default_rng(2)
    hp = rng.uniform(50, 200, 100).astype(np.float32)
    norm = Normalization(input_shape=[1], axis=None)
    norm.adapt(hp)
    model = Sequential([norm, Dense(1)])
    out = model.predict(hp[:, None], verbose=0)
    assert out.shape == (100, 1)
    np.testing.assert_allclose(norm(hp[:, None]).mean(), 0.0, atol=1e-5)


@pytest.mark.parametrize("layer", [
    LayerNormalization(axis=[1, 2], epsilon=1e-5, center=False, gamma_initializer="zeros",
                       gamma_regularizer="l2", name="ln"),
    UnitNormalization(axis=(1, 2), name="un"),
    Normalization(axis=(1,), mean=[1.0, 2.0], variance=[3.0, 4.0], invert=True, name="nm"),
    Normalization(axis=None, name="nm2"),
    GaussianNoise(0.25, seed=3, name="gn"),
    GaussianDropout(0.5, name="gd"),
], ids=lambda l: type(l).__name__)
def test_config_round_trip(layer):
    cfg = serialize(layer)
    again = deserialize(cfg)
    assert type(again) is type(layer)
    assert again.get_config() == layer.get_config()


@pytest.mark.parametrize("cls,kw", [
    ("LayerNormalization", dict(axis=-1, epsilon=1e-4, center=False)),
    ("UnitNormalization", dict(axis=[1, 2])),
    ("Normalization", dict(axis=-1, mean=[1.0, 2.0], variance=[1.0, 1.0], invert=True)),
    ("GaussianNoise", dict(stddev=0.2, seed=4)),
    ("GaussianDropout", dict(rate=0.2)),
])
def test_keras_config_keys_are_ours(cls, kw):
    """Every config key Keras writes for these layers (besides the base layer's) is one
    of ours, with the same value."""
    keras = import_keras()
    theirs = getattr(keras.layers, cls)(**kw).get_config()
    ours = getattr(pynn.layers, cls)(**kw).get_config()
    base = {"name", "trainable", "dtype"}
    for k, v in theirs.items():
        if k not in base:
            assert k in ours, k
            assert _plain(ours[k]) == _plain(v), k


def _plain(v):
    """A config value without the keys that name its library (module, registered_name),
    tuples as lists."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if k not in ("module", "registered_name")}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
def test_bad_input_layer_normalization():
    with pytest.raises(TypeError, match=r"LayerNormalization 'ln_x': expected an int or a "
                                        r"list/tuple of ints for the argument 'axis'"):
        LayerNormalization(axis="last", name="ln_x")
    with pytest.raises(ValueError, match=r"'ln_x': axis 3 is out of bounds for inputs of "
                                         r"shape \(None, 4\)"):
        LayerNormalization(axis=3, name="ln_x")(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"'ln_y': axis=0 includes the batch axis 0 of inputs "
                                         r"of shape \(None, 4\)"):
        LayerNormalization(axis=0, name="ln_y")(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"duplicate axes are not allowed. Received: "
                                         r"axis=\[1, -1\]"):
        LayerNormalization(axis=[1, -1], name="ln_z")(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"epsilon must be a positive float"):
        LayerNormalization(epsilon=-1.0)
    with pytest.raises(ValueError, match=r"gamma_constraint='non_neg' is not supported"):
        LayerNormalization(gamma_constraint="non_neg")
    layer = LayerNormalization(name="ln_w")
    layer(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"'ln_w' was built for inputs of shape \(None, 4\), "
                                         r"but now receives inputs of shape \(None, 5\)"):
        layer(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"'ln_u': the sizes of the normalised axes must be "
                                         r"known, got inputs of shape \(None, None, 3\)"):
        LayerNormalization(axis=1, name="ln_u").build((None, None, 3))
    with pytest.warns(UserWarning, match="rms_scaling=True"):
        LayerNormalization(rms_scaling=True)


def test_bad_input_normalization():
    with pytest.raises(ValueError, match=r"both `mean` and `variance` must be set"):
        Normalization(mean=1.0)
    with pytest.raises(ValueError, match=r"`mean` and `variance` must have the same shape. "
                                         r"Received: mean shape \(2,\) and variance shape "
                                         r"\(3,\)"):
        Normalization(mean=[1.0, 2.0], variance=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"the rank of `mean` must be less than or equal"):
        Normalization(mean=np.ones((2, 2)), variance=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"'nm_a': all `axis` values must be in the range "
                                         r"\[-ndim, ndim\). Received inputs of shape "
                                         r"\(10, 3\) \(ndim=2\), while axis=\(2,\)"):
        Normalization(axis=2, name="nm_a").adapt(np.zeros((10, 3)))
    layer = Normalization(name="nm_b")
    layer.adapt(np.ones((10, 3)))
    with pytest.raises(ValueError, match=r"'nm_b': the layer was built with input_shape="
                                         r"\(10, 3\), but adapt\(\) received the data with an "
                                         r"incompatible shape, data.shape=\(10, 4\)"):
        layer.adapt(np.ones((10, 4)))
    with pytest.raises(ValueError, match=r"'nm_b': inputs of shape \(None, 5\) do not match its "
                                         r"mean and variance of shape \(3,\)"):
        layer(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"adapt\(\) received an empty iterable"):
        Normalization().adapt([])
    with pytest.raises(TypeError, match=r"adapt\(\) supports a NumPy array or an iterable"):
        Normalization().adapt(3.0)
    with pytest.raises(ValueError, match=r"adapt\(\) data of shape \(0, 3\) holds no values"):
        Normalization().adapt(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"adapt\(\) received only empty batches \(first of "
                                         r"shape \(0, 3\)\)"):
        Normalization().adapt([np.zeros((0, 3)), np.zeros((0, 3))])
    with pytest.raises(ValueError, match=r"holds NaN or inf"):
        Normalization().adapt(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match=r"'nm_c': all `axis` values to be kept must have a "
                                         r"known shape.*pass axis=None"):
        Sequential([Input((3,)), Normalization(axis=0, name="nm_c")])
    with pytest.raises(ValueError, match="cannot be used on a layer created with a given"):
        Normalization(mean=1.0, variance=1.0).adapt(np.zeros((3, 1)))


def test_bad_input_noise_layers():
    with pytest.raises(ValueError, match=r"argument `stddev` of GaussianNoise 'gn_x'. "
                                         r"Expected a float value between 0 and 1. "
                                         r"Received: stddev=1.5"):
        GaussianNoise(1.5, name="gn_x")
    with pytest.raises(ValueError, match=r"Received: stddev='a'"):
        GaussianNoise("a")
    with pytest.raises(ValueError, match=r"argument `rate` of GaussianDropout 'gd_x'. "
                                         r"Expected a float value \[0, 1\). Received: rate=1"):
        GaussianDropout(1, name="gd_x")
    with pytest.raises(ValueError, match=r"GaussianDropout 'gd_y': seed must be an int, got "
                                         r"1.5"):
        GaussianDropout(0.1, seed=1.5, name="gd_y")
    with pytest.raises(ValueError, match=r"'un_x': axis 2 is out of bounds for inputs of "
                                         r"shape \(None, 4\)"):
        UnitNormalization(axis=2, name="un_x")(np.zeros((2, 4)))
