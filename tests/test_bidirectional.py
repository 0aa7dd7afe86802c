"""Bidirectional: Keras 3's outputs, weight order, masks and states (compared with Keras
itself), gradients against float64 finite differences, models, configs and bad input."""
import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn.models import Model, Sequential, load_model

from helpers import import_keras

CELLS = ("SimpleRNN", "LSTM", "GRU")
MODES = ("concat", "sum", "mul", "ave", None)


def _data(seed=0, n=3, t=5, d=4):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, d))
    mask = np.ones((n, t), bool)
    mask[0, 3:] = False   # right-padded
    mask[1] = False       # every step masked
    mask[2, :2] = False   # left-padded
    return x, mask


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge_mode", MODES)
@pytest.mark.parametrize("return_sequences, return_state",
                         [(False, False), (True, False), (True, True), (False, True)])
def test_equals_keras(cell, merge_mode, return_sequences, return_state):
    keras = import_keras()
    x, mask = _data()
    x = x.astype(np.float32)
    kw = dict(return_sequences=return_sequences, return_state=return_state)
    theirs = keras.layers.Bidirectional(getattr(keras.layers, cell)(3, **kw),
                                        merge_mode=merge_mode)
    theirs(x)
    ours = L.Bidirectional(getattr(L, cell)(3, **kw), merge_mode=merge_mode, dtype="float32")
    ours(x)
    assert [w.path for w in ours.weights][0].startswith("forward_")
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    rng = np.random.default_rng(1)
    ours.set_weights([0.5 * rng.standard_normal(w.shape).astype(np.float32)
                      for w in ours.weights])
    theirs.set_weights(ours.get_weights())
    for m in (None, mask):
        want = [keras.ops.convert_to_numpy(w) for w in _as_list(theirs(x, mask=m))]
        got = _as_list(ours(x, mask=m))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_masked_steps_are_zero_in_both_directions():
    x, mask = _data()
    layer = L.Bidirectional(L.LSTM(2, return_sequences=True), dtype="float64")
    y = layer(x, mask=mask)
    assert y.shape == (3, 5, 4)
    assert np.all(y[~mask] == 0) and np.all(y[mask] != 0)
    plain = L.LSTM(2, return_sequences=True, dtype="float64")
    plain(x)
    plain.set_weights(layer.forward_layer.get_weights())
    # a plain layer repeats the last output at masked steps (Keras's default)
    np.testing.assert_array_equal(plain(x, mask=mask)[0, 3:], plain(x, mask=mask)[0, [2, 2]])


def _loss_and_grads(layer, x, mask, ws, initial_state=None):
    ctx = layer.context()
    outs = _as_list(layer.forward(ctx, x, mask=mask, initial_state=initial_state))
    loss = sum(float(np.sum(o * w)) for o, w in zip(outs, ws))
    multi = isinstance(layer.forward(layer.context(), x, mask=mask,
                                     initial_state=initial_state), list)
    dx = layer.backward(ctx, ws if multi else ws[0])
    return loss, dx


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge_mode, return_sequences, return_state",
                         [("concat", True, False), ("mul", False, True), (None, True, True),
                          ("ave", False, False)])
def test_gradients_equal_finite_differences(cell, merge_mode, return_sequences, return_state):
    x, mask = _data(2, n=3, t=4, d=2)
    layer = L.Bidirectional(getattr(L, cell)(2, return_sequences=return_sequences,
                                             return_state=return_state),
                            merge_mode=merge_mode, dtype="float64")
    layer(x)
    rng = np.random.default_rng(3)
    layer.set_weights([0.5 * rng.standard_normal(w.shape) for w in layer.weights])
    ws = [rng.standard_normal(np.shape(o)) for o in _as_list(layer(x, mask=mask))]

    def loss(xx=x):
        return sum(float(np.sum(o * w)) for o, w in zip(_as_list(layer(xx, mask=mask)), ws))

    _, dx = _loss_and_grads(layer, x, mask, ws)
    grads = [w.grad.copy() for w in layer.weights]
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
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8, err_msg=w.path)
    fdx = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        for sign in (1, -1):
            xp = x.copy()
            xp[i] += sign * eps
            fdx[i] += sign * loss(xp) / (2 * eps)
    np.testing.assert_allclose(dx, fdx, rtol=1e-6, atol=1e-8)


def _stack(i, cell="LSTM"):
    e = L.Embedding(9, 4, mask_zero=True)
    b1 = L.Bidirectional(getattr(L, cell)(3, return_sequences=True))
    b2 = L.Bidirectional(getattr(L, cell)(2))
    return Model(i, L.Dense(1, activation="sigmoid")(b2(b1(e(i))))), (e, b1, b2)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_stacked_masked_model_gives_each_sequence_what_it_gives_alone(cell):
    pynn.set_floatx("float64")
    try:
        ids = np.array([[3, 5, 2, 0, 0], [1, 0, 0, 0, 0], [4, 4, 4, 4, 4]], dtype="int32")
        pynn.set_seed(2)
        m, _ = _stack(pynn.Input((5,), dtype="int32"), cell)
        batch = m.predict(ids, verbose=0)
        for row, length in zip(range(3), (3, 1, 5)):
            alone, _ = _stack(pynn.Input((length,), dtype="int32"), cell)
            alone.set_weights(m.get_weights())
            np.testing.assert_allclose(alone.predict(ids[row:row + 1, :length], verbose=0)[0],
                                       batch[row], rtol=1e-12, atol=1e-12)
    finally:
        pynn.set_floatx("float32")


def test_stacked_masked_model_against_keras():
    keras = import_keras()
    ids = np.array([[3, 5, 2, 0, 0], [1, 0, 0, 0, 0], [4, 4, 4, 4, 4]], dtype="int32")
    ki = keras.Input((5,), dtype="int32")
    ke = keras.layers.Embedding(9, 4, mask_zero=True)
    kb1 = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))
    kb2 = keras.layers.Bidirectional(keras.layers.LSTM(2))
    kd = keras.layers.Dense(1, activation="sigmoid")
    km = keras.Model(ki, kd(kb2(kb1(ke(ki)))))
    m, _ = _stack(pynn.Input((5,), dtype="int32"))
    m.set_weights([np.asarray(w) for w in km.get_weights()])
    np.testing.assert_allclose(m.predict(ids, verbose=0), np.asarray(km.predict(ids, verbose=0)),
                               rtol=1e-5, atol=1e-6)


def test_trains_in_sequential_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (64, 6))
    y = (x[:, 0] > 10).astype(np.float32)[:, None]
    m = Sequential([pynn.Input((6,), dtype="int32"), L.Embedding(20, 4),
                    L.Bidirectional(L.GRU(4)), L.Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy")
    h = m.fit(x, y, epochs=3, batch_size=16, verbose=0).history["loss"]
    assert h[-1] < h[0]
    path = tmp_path / "bi.keras"
    m.save(path)
    back = load_model(path)
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)
    assert [w.path for w in back.weights] == [w.path for w in m.weights]


def test_config_round_trip_and_custom_backward_layer():
    fwd = L.LSTM(3, return_sequences=True)
    bwd = L.LSTM(3, activation="relu", return_sequences=True, go_backwards=True)
    layer = L.Bidirectional(fwd, backward_layer=bwd, merge_mode="sum")
    again = L.deserialize(L.serialize(layer))
    assert again.merge_mode == "sum"
    assert again.backward_layer.get_config()["activation"] == "relu"
    assert again.forward_layer.name == "forward_" + fwd.name


def test_trainable_flag_reaches_both_directions():
    layer = L.Bidirectional(L.GRU(2))
    layer(np.zeros((1, 3, 2), np.float32))
    layer.trainable = False
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 6


def test_bad_input():
    with pytest.raises(ValueError, match="merge mode"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="layer instance"):
        L.Bidirectional("lstm")
    with pytest.raises(ValueError, match="go_backwards"):
        L.Bidirectional(L.LSTM(2), backward_layer=L.LSTM(2))
    with pytest.raises(ValueError, match="return_sequences"):
        L.Bidirectional(L.LSTM(2), backward_layer=L.LSTM(2, go_backwards=True,
                                                          return_sequences=True))
    with pytest.raises(ValueError, match="recurrent layer"):
        L.Bidirectional(L.Dense(2))
    layer = L.Bidirectional(L.LSTM(2))
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="takes 4 initial states"):
        layer(x, initial_state=[np.zeros((2, 2), np.float32)] * 2)
    with pytest.raises(ValueError, match="mask must have shape"):
        layer(x, mask=np.ones((2, 4), bool))


def _bi_seq2seq(lib):
    enc_in, dec_in = lib.Input((4, 3)), lib.Input((5, 2))
    outs = lib.layers.Bidirectional(lib.layers.LSTM(3, return_state=True))(enc_in)
    dec = lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=True))
    y = lib.layers.Dense(1)(dec(dec_in, initial_state=list(outs[1:])))
    return lib.Model([enc_in, dec_in], y)


def test_symbolic_initial_states_equal_keras_and_carry_gradients():
    keras = import_keras()
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 2))]
    km = _bi_seq2seq(keras)
    pynn.set_floatx("float64")
    try:
        m = _bi_seq2seq(pynn)
        m.set_weights([np.asarray(w, dtype=np.float64) for w in km.get_weights()])
        np.testing.assert_allclose(m.predict(xs, verbose=0),
                                   np.asarray(km.predict([a.astype(np.float32) for a in xs],
                                                         verbose=0)), rtol=1e-4, atol=1e-5)
        enc = next(lay for lay in m.layers if getattr(lay, "return_state", False))
        enc_kernel = enc.backward_layer.kernel  # reaches the loss only through the states
        ctx = m._root_ctx
        out = m._run_forward(ctx, xs, True, None)[0]
        m._run_backward(ctx, [np.ones_like(out)], False)
        grad = enc_kernel.grad.copy()
        base = enc_kernel.numpy()
        fd = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            for sign in (1, -1):
                v = base.copy()
                v[i] += sign * 1e-6
                enc_kernel.assign(v)
                fd[i] += sign * m.predict(xs, verbose=0).sum() / 2e-6
        enc_kernel.assign(base)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-9)
    finally:
        pynn.set_floatx("float32")
