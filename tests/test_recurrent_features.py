"""Recurrent layers' dropout, stateful carry and symbolic initial states (an encoder's
states starting a decoder), against Keras 3 where it is deterministic and against
float64 finite differences."""
import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn.models import Sequential, load_model

from helpers import import_keras

CELLS = ("SimpleRNN", "LSTM", "GRU")


# --------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_dropout_drops_input_features_with_one_mask_per_sequence(cell):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6, 5))
    layer = getattr(L, cell)(3, dropout=0.4, seed=7, return_sequences=True, dtype="float64")
    plain = getattr(L, cell)(3, return_sequences=True, dtype="float64")
    layer(x)
    plain(x)
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x), plain(x))  # inference: no dropout
    ctx = layer.context()
    y = layer.forward(ctx, x, training=True)
    kept = ctx.child_for(layer._input_dropout, 0).saved  # (n, 1, d), scaled
    assert kept.shape == (64, 1, 5)
    assert set(np.unique(kept)) <= {0.0, 1 / 0.6}
    assert 0.28 < (kept == 0).mean() < 0.52  # rate 0.4 over 320 draws
    np.testing.assert_allclose(y, plain(x * kept), rtol=1e-12)
    # the gradient goes through the same mask: dx is zero on dropped features
    dx = layer.backward(ctx, np.ones_like(y))
    dropped = np.broadcast_to(kept == 0, x.shape)
    assert np.all(dx[dropped] == 0) and np.all(dx[~dropped] != 0)


def test_dropout_is_reproducible_under_a_seed_and_trains():
    def run():
        pynn.set_seed(3)
        m = Sequential([pynn.Input((5, 2)), L.LSTM(4, dropout=0.3), L.Dense(1)])
        m.compile("adam", "mse")
        x = np.random.default_rng(1).standard_normal((32, 5, 2))
        return m.fit(x, x.sum((1, 2))[:, None], epochs=3, verbose=0).history["loss"]
    a, b = run(), run()
    assert a == b and a[-1] < a[0]


def test_dropout_config_matches_keras_keys():
    keras = import_keras()
    ours = L.LSTM(3, dropout=0.25, seed=4).get_config()
    theirs = keras.layers.LSTM(3, dropout=0.25, seed=4).get_config()
    assert ours["dropout"] == theirs["dropout"] and ours["seed"] == theirs["seed"]
    assert L.LSTM(3, dropout=1.5).dropout == 1.0  # clamped, as Keras


# --------------------------------------------------------------------------------------
# stateful
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_stateful_carries_states_across_batches(cell):
    """Two halves of a sequence through a stateful layer equal the whole sequence."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 4))
    whole = getattr(L, cell)(5, return_sequences=True, dtype="float64")
    want = whole(x)
    layer = getattr(L, cell)(5, return_sequences=True, stateful=True, dtype="float64")
    layer(x[:, :1])
    layer.set_weights(whole.get_weights())
    layer.reset_states()
    got = np.concatenate([layer(x[:, :4]), layer(x[:, 4:])], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    layer.reset_states()
    np.testing.assert_allclose(layer(x[:, :4]), want[:, :4], rtol=1e-12, atol=1e-12)


def test_stateful_model_against_keras():
    keras = import_keras()
    x = np.random.default_rng(3).standard_normal((2, 6, 3)).astype(np.float32)
    km = keras.Sequential([keras.Input(batch_shape=(2, 3, 3)),
                           keras.layers.LSTM(4, stateful=True), keras.layers.Dense(1)])
    m = Sequential([pynn.Input(batch_shape=(2, 3, 3)), L.LSTM(4, stateful=True),
                    L.Dense(1)])
    m.set_weights([np.asarray(w) for w in km.get_weights()])
    for chunk in (x[:, :3], x[:, 3:]):
        np.testing.assert_allclose(m.predict(chunk, verbose=0),
                                   np.asarray(km.predict(chunk, verbose=0)), rtol=1e-5,
                                   atol=1e-6)
    km.layers[0].reset_state()
    m.layers[0].reset_states()
    np.testing.assert_allclose(m.predict(x[:, 3:], verbose=0),
                               np.asarray(km.predict(x[:, 3:], verbose=0)), rtol=1e-5,
                               atol=1e-6)


# --------------------------------------------------------------------------------------
# symbolic initial states: encoder-decoder
# --------------------------------------------------------------------------------------
def _seq2seq(lib, cell="LSTM"):
    enc_in = lib.Input((4, 3))
    dec_in = lib.Input((5, 2))
    enc = getattr(lib.layers, cell)(6, return_state=True)
    outs = enc(enc_in)
    states = outs[1:]
    dec = getattr(lib.layers, cell)(6, return_sequences=True)
    y = lib.layers.Dense(2)(dec(dec_in, initial_state=states))
    return lib.Model([enc_in, dec_in], y)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_encoder_decoder_equals_keras(cell):
    keras = import_keras()
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((3, 4, 3)).astype(np.float32),
          rng.standard_normal((3, 5, 2)).astype(np.float32)]
    km = _seq2seq(keras, cell)
    m = _seq2seq(pynn, cell)
    m.set_weights([np.asarray(w) for w in km.get_weights()])
    np.testing.assert_allclose(m.predict(xs, verbose=0), np.asarray(km.predict(xs, verbose=0)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_gradient_reaches_the_encoder_through_the_states(cell):
    pynn.set_floatx("float64")
    try:
        m = _seq2seq(pynn, cell)
        rng = np.random.default_rng(5)
        xs = [rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 2))]
        y = rng.standard_normal((2, 5, 2))
        m.compile("sgd", "mse")
        enc = next(layer for layer in m.layers if getattr(layer, "return_state", False))
        enc_kernel = enc.kernel

        def loss():
            return float(np.mean((m.predict(xs, verbose=0) - y) ** 2))

        ctx = m._root_ctx
        out = m._run_forward(ctx, xs, True, None)[0]
        dy = 2 * (out - y) / out.size
        m._run_backward(ctx, [dy], False)
        grad = enc_kernel.grad.copy()
        assert np.abs(grad).max() > 0
        base = enc_kernel.numpy()
        fd = np.zeros_like(base)
        eps = 1e-6
        for i in np.ndindex(base.shape):
            for sign in (1, -1):
                v = base.copy()
                v[i] += sign * eps
                enc_kernel.assign(v)
                fd[i] += sign * loss() / (2 * eps)
        enc_kernel.assign(base)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-9)
    finally:
        pynn.set_floatx("float32")


def test_encoder_decoder_trains_saves_and_loads(tmp_path):
    m = _seq2seq(pynn)
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((16, 4, 3)), rng.standard_normal((16, 5, 2))]
    y = np.repeat(xs[0][:, :1, :2], 5, axis=1)
    m.compile("adam", "mse")
    h = m.fit(xs, y, epochs=5, verbose=0).history["loss"]
    assert h[-1] < h[0]
    m.save(tmp_path / "s2s.keras")
    back = load_model(tmp_path / "s2s.keras")
    np.testing.assert_allclose(back.predict(xs, verbose=0), m.predict(xs, verbose=0),
                               rtol=1e-6)


def test_symbolic_initial_state_of_the_wrong_shape_or_count():
    enc_in = pynn.Input((4, 3))
    _, h, c = L.LSTM(6, return_state=True)(enc_in)
    dec_in = pynn.Input((5, 2))
    with pytest.raises(ValueError, match=r"takes 2 initial state\(s\) of shape \(None, 6\)"):
        L.LSTM(6)(dec_in, initial_state=[h])
    with pytest.raises(ValueError, match=r"takes 2 initial state\(s\) of shape \(None, 7\)"):
        L.LSTM(7)(dec_in, initial_state=[h, c])
