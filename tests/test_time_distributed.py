"""TimeDistributed: Keras 3's outputs (compared with Keras itself) for Dense and Conv2D,
masks passing through to a recurrent layer, float64 finite-difference gradients, models,
configs and bad input."""
import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn.models import Model, Sequential, load_model

from helpers import import_keras


@pytest.mark.parametrize("make, shape", [
    (lambda M: M.Dense(3, activation="tanh"), (2, 4, 5)),
    (lambda M: M.Conv2D(2, 3, padding="same"), (2, 3, 6, 6, 2)),
    (lambda M: M.Flatten(), (2, 3, 2, 2)),
])
def test_equals_keras(make, shape):
    keras = import_keras()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    theirs = keras.layers.TimeDistributed(make(keras.layers))
    ours = L.TimeDistributed(make(L), dtype="float32")
    want = keras.ops.convert_to_numpy(theirs(x))
    ours(x)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    np.testing.assert_allclose(ours(x), want, rtol=1e-5, atol=1e-5)


def test_mask_passes_through_to_a_recurrent_layer_as_in_keras():
    keras = import_keras()
    ids = np.array([[3, 4, 0, 0, 0], [1, 2, 3, 4, 5]], dtype="int32")
    ki = keras.Input((5,), dtype="int32")
    kl = [keras.layers.Embedding(10, 3, mask_zero=True),
          keras.layers.TimeDistributed(keras.layers.Dense(4)),
          keras.layers.LSTM(2, return_sequences=True)]
    ko = ki
    for lay in kl:
        ko = lay(ko)
    km = keras.Model(ki, ko)
    i = pynn.Input((5,), dtype="int32")
    o = L.LSTM(2, return_sequences=True)(L.TimeDistributed(L.Dense(4))(
        L.Embedding(10, 3, mask_zero=True)(i)))
    m = Model(i, o)
    m.set_weights([np.asarray(w) for w in km.get_weights()])
    got = m.predict(ids, verbose=0)
    np.testing.assert_allclose(got, np.asarray(km.predict(ids, verbose=0)), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(got[0, 2:], got[0, [1, 1, 1]])  # masked: repeated


def test_gradients_equal_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4))
    layer = L.TimeDistributed(L.Dense(2, activation="sigmoid"), dtype="float64")
    layer(x)
    w_out = rng.standard_normal((2, 3, 2))
    ctx = layer.context()
    layer.forward(ctx, x)
    dx = layer.backward(ctx, w_out)
    grads = [w.grad.copy() for w in layer.weights]

    def loss(xx=x):
        return float(np.sum(layer(xx) * w_out))

    eps = 1e-6
    for w, g in zip(layer.weights, grads):
        base = w.numpy()
        fd = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            for sign in (1, -1):
                v = base.copy()
                v[i] += sign * eps
                w.assign(v)
                fd[i] += sign * loss() / (2 * eps)
        w.assign(base)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    fdx = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        for sign in (1, -1):
            xp = x.copy()
            xp[i] += sign * eps
            fdx[i] += sign * loss(xp) / (2 * eps)
    np.testing.assert_allclose(dx, fdx, rtol=1e-6, atol=1e-9)


def test_trains_in_sequential_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5, 3)).astype(np.float32)
    y = x.sum(-1, keepdims=True)
    m = Sequential([pynn.Input((None, 3)), L.TimeDistributed(L.Dense(8, activation="relu")),
                    L.TimeDistributed(L.Dense(1))])
    m.compile("adam", "mse")
    h = m.fit(x, y, epochs=5, verbose=0).history["loss"]
    assert h[-1] < h[0]
    m.save(tmp_path / "td.keras")
    back = load_model(tmp_path / "td.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)
    assert m.layers[0].weights[0].path == m.layers[0].layer.name + "/kernel"


def test_bad_input():
    with pytest.raises(ValueError, match="supported layer type"):
        L.TimeDistributed("dense")
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        L.TimeDistributed(L.Dense(2))(np.zeros((2, 3), np.float32))
    layer = L.TimeDistributed(L.Dense(2))
    x = np.zeros((2, 3, 4), np.float32)
    layer(x)
    with pytest.raises(ValueError, match=r"mask.*\(2, 4\).*\(2, 3, 4\)"):
        layer.forward(layer.context(), x, mask=np.ones((2, 4), bool))
