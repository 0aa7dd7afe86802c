"""Embedding, SimpleRNN, LSTM, GRU layers: Keras's arguments, outputs and weight layouts
(compared with Keras 3 itself), gradients against finite differences, models (Sequential
and functional) that train, save and load, configs, and bad input."""
import numpy as np
import pytest

import pynn
from pynn.layers import GRU, LSTM, Dense, Embedding, Input, SimpleRNN
from pynn.layers import deserialize, serialize
from pynn.models import Model, Sequential, load_model

from helpers import import_keras

RNNS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def keras_or_skip():
    return import_keras()


# --------------------------------------------------------------------------------------
# the layers equal Keras's
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", list(RNNS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_equals_keras(cls, return_sequences, return_state, go_backwards):
    keras = keras_or_skip()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = rng.random((3, 5)) < 0.7
    mask[1] = False
    kw = dict(return_sequences=return_sequences, return_state=return_state,
              go_backwards=go_backwards)
    theirs = getattr(keras.layers, cls)(3, **kw)
    theirs(x)
    ours = RNNS[cls](3, dtype="float32", **kw)
    ours(x)
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5
                      for w in ours.weights])
    theirs.set_weights(ours.get_weights())
    for call in (dict(), dict(mask=mask)):
        want = theirs(x, mask=call.get("mask"))
        got = ours(x, **call)
        want = [keras.ops.convert_to_numpy(w) for w in (want if return_state else [want])]
        got = got if return_state else [got]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", list(RNNS))
def test_initial_state_equals_keras(cls):
    keras = keras_or_skip()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    states = [rng.standard_normal((2, 5)).astype(np.float32)
              for _ in range(2 if cls == "LSTM" else 1)]
    theirs = getattr(keras.layers, cls)(5, return_sequences=True)
    theirs(x)
    ours = RNNS[cls](5, return_sequences=True, dtype="float32")
    ours(x)
    theirs.set_weights(ours.get_weights())
    want = keras.ops.convert_to_numpy(theirs(x, initial_state=states))
    np.testing.assert_allclose(ours(x, initial_state=states), want, rtol=1e-5, atol=1e-5)


def test_default_initialisation_matches_keras_rules():
    lstm = LSTM(4)
    lstm(np.zeros((1, 2, 3)))
    np.testing.assert_array_equal(lstm.bias.numpy(), np.r_[np.zeros(4), np.ones(4),
                                                          np.zeros(8)])
    rk = lstm.recurrent_kernel.numpy()
    np.testing.assert_allclose(rk @ rk.T, np.eye(4), atol=1e-5)  # orthogonal rows
    gru = GRU(4)
    gru(np.zeros((1, 2, 3)))
    assert gru.bias.shape == (2, 12)
    assert GRU(4, reset_after=False).compute_output_shape((None, 2, 3)) == (None, 4)
    g2 = GRU(4, reset_after=False)
    g2(np.zeros((1, 2, 3)))
    assert g2.bias.shape == (12,)
    emb = Embedding(10, 3)
    emb(np.zeros((2, 4), np.int64))
    e = emb.embeddings.numpy()
    assert e.shape == (10, 3) and np.abs(e).max() <= 0.05 and np.abs(e).max() > 0


def test_embedding_equals_keras_and_mask():
    keras = keras_or_skip()
    ids = np.array([[0, 3, 9], [9, 9, 1]], np.int32)
    theirs = keras.layers.Embedding(10, 4, mask_zero=True)
    theirs(ids)
    ours = Embedding(10, 4, mask_zero=True, dtype="float32")
    ours(ids)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_array_equal(ours(ids), keras.ops.convert_to_numpy(theirs(ids)))
    np.testing.assert_array_equal(ours.compute_mask(ids),
                                  keras.ops.convert_to_numpy(theirs.compute_mask(ids)))
    assert Embedding(10, 4).compute_mask(ids) is None
    # float ids holding whole numbers are taken as Keras casts them
    np.testing.assert_array_equal(ours(ids.astype(np.float32)), ours(ids))


# --------------------------------------------------------------------------------------
# gradients through the layers
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", list(RNNS))
@pytest.mark.parametrize("return_sequences, return_state", [(False, False), (True, True)])
def test_layer_gradients_equal_finite_differences(cls, return_sequences, return_state):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3))
    layer = RNNS[cls](3, return_sequences=return_sequences, return_state=return_state,
                      go_backwards=True, dtype="float64")
    layer(x)
    layer.set_weights([0.5 * rng.standard_normal(w.shape) for w in layer.weights])
    outs = layer(x)
    outs = outs if return_state else [outs]
    ws = [rng.standard_normal(np.shape(o)) for o in outs]

    def loss():
        o = layer(x)
        o = o if return_state else [o]
        return sum(float(np.sum(a * w)) for a, w in zip(o, ws))

    ctx = layer.context()
    out = layer.forward(ctx, x)
    dx = layer.backward(ctx, ws if return_state else ws[0])
    eps = 1e-6
    for w in layer.weights:
        base = w.numpy()
        fd = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            for sign in (1, -1):
                v = base.copy()
                v[i] += sign * eps
                w.assign(v)
                fd[i] += sign * loss() / (2 * eps)
        w.assign(base)
        np.testing.assert_allclose(w.grad, fd, rtol=1e-6, atol=1e-8, err_msg=w.path)
    fdx = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        for sign in (1, -1):
            xp = x.copy()
            xp[i] += sign * eps
            o = layer(xp)
            o = o if return_state else [o]
            fdx[i] += sign * sum(float(np.sum(a * w)) for a, w in zip(o, ws)) / (2 * eps)
    np.testing.assert_allclose(dx, fdx, rtol=1e-6, atol=1e-8)
    assert out is not None


def test_embedding_gradient_accumulates_repeated_ids():
    layer = Embedding(5, 2, dtype="float64")
    ids = np.array([[1, 1, 4]])
    layer(ids)
    ctx = layer.context()
    layer.forward(ctx, ids)
    dy = np.arange(6, dtype=np.float64).reshape(1, 3, 2)
    assert layer.backward(ctx, dy) is None
    want = np.zeros((5, 2))
    want[1] = dy[0, 0] + dy[0, 1]
    want[4] = dy[0, 2]
    np.testing.assert_array_equal(layer.embeddings.grad, want)


# --------------------------------------------------------------------------------------
# models: Sequential and functional, training, saving, configs
# --------------------------------------------------------------------------------------
def sentiment_data(n=256, t=12, vocab=30, seed=0):
    """Token sequences; the label says whether 'good' tokens (< 10) outnumber 'bad' ones
    (>= 20)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, (n, t))
    y = ((x < 10).sum(1) > (x >= 20).sum(1)).astype(np.int64)
    return x, y


@pytest.mark.parametrize("cls", list(RNNS))
def test_sequential_model_learns_saves_and_loads(cls, tmp_path):
    pynn.set_seed(0)
    x, y = sentiment_data()
    model = Sequential([Embedding(30, 8, input_shape=(12,)),
                        RNNS[cls](16, return_sequences=True),
                        RNNS[cls](8), Dense(1, activation="sigmoid")])
    model.compile(pynn.optimizers.Adam(0.02), "binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.7 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.8
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_functional_model_with_int_input_and_states():
    pynn.set_seed(1)
    x, y = sentiment_data(n=64)
    inp = Input((12,), dtype="int32")
    e = Embedding(30, 6)(inp)
    seq, h, c = LSTM(5, return_sequences=True, return_state=True)(e)
    g = GRU(4, go_backwards=True)(seq)
    out = Dense(1, activation="sigmoid")(pynn.layers.concatenate([g, h, c]))
    model = Model(inp, out)
    model.compile("adam", "binary_crossentropy")
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert model.predict(x[:5], verbose=0).shape == (5, 1)


@pytest.mark.parametrize("layer", [
    Embedding(7, 3, mask_zero=True, embeddings_initializer="zeros",
              embeddings_regularizer="l2", name="emb"),
    SimpleRNN(3, activation="relu", use_bias=False, return_sequences=True, name="s"),
    LSTM(4, recurrent_activation="tanh", unit_forget_bias=False, return_state=True,
         go_backwards=True, kernel_regularizer="l2", name="l"),
    GRU(2, reset_after=False, recurrent_initializer="glorot_uniform", name="g"),
], ids=["Embedding", "SimpleRNN", "LSTM", "GRU"])
def test_config_round_trip(layer):
    cfg = serialize(layer)
    again = deserialize(cfg)
    assert type(again) is type(layer)
    assert again.get_config() == layer.get_config()


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
def test_bad_input_recurrent():
    layer = LSTM(3, name="lstm_x")
    with pytest.raises(ValueError, match=r"'lstm_x' needs inputs of shape \(batch, timesteps"):
        layer(np.zeros((2, 4)))
    layer(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"'lstm_x' takes 2 initial state\(s\) \(h, c\), got 1"):
        layer(np.zeros((2, 4, 5)), initial_state=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"initial state 'c' must have shape \(batch, units\) "
                                         r"= \(2, 3\), got \(2, 4\)"):
        layer(np.zeros((2, 4, 5)), initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"the mask must have shape \(batch, timesteps\) = "
                                         r"\(2, 4\) for inputs of shape \(2, 4, 5\)"):
        layer(np.zeros((2, 4, 5)), mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match=r"`recurrent_dropout` must be a float"):
        LSTM(3, recurrent_dropout=[0.2])
    with pytest.raises(ValueError, match=r"`dropout` must be a float"):
        LSTM(3, dropout="a lot")
    stateful = GRU(3, stateful=True, name="gru_s")
    stateful(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"'gru_s' is stateful with batch size 2 \(states of "
                                         r"shape \(2, 3\)\), but got a batch of 3"):
        stateful(np.zeros((3, 4, 5)))
    with pytest.raises(AttributeError, match="must be stateful"):
        layer.reset_states()
    with pytest.raises(ValueError, match=r"invalid value for argument `units`"):
        SimpleRNN(0)


def test_bad_input_embedding():
    layer = Embedding(5, 2, name="emb_x")
    with pytest.raises(ValueError, match=r"'emb_x' \(input_dim=5\): token ids must lie in "
                                         r"\[0, 5\); its input of shape \(1, 3\) holds 5"):
        layer(np.array([[0, 5, 1]]))
    with pytest.raises(ValueError, match=r"input of shape \(1, 3\) holds -1"):
        layer(np.array([[0, -1, 2]]))
    with pytest.raises(TypeError, match=r"'emb_x' takes integer token ids; got non-integer "
                                        r"float64 values in its input of shape \(1, 3\)"):
        layer(np.array([[0.5, 1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"holds 7.0"):
        layer(np.array([[7.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"`input_dim` must be a positive integer"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match=r"`output_dim` must be a positive integer"):
        Embedding(3, 2.5)


@pytest.mark.parametrize("cls", list(RNNS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_right_padded_masked_batch_equals_each_sequence_alone(cls, go_backwards):
    """With a mask (what mask_zero gives), padding changes no sequence's final output."""
    rng = np.random.default_rng(3)
    lengths = [5, 2, 1, 4]
    layer = RNNS[cls](4, go_backwards=go_backwards, dtype="float64")
    x = rng.standard_normal((4, 5, 3))
    mask = np.arange(5)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 7.0  # padding values must not matter
    batch = layer(x, mask=mask)
    for i, k in enumerate(lengths):
        alone = RNNS[cls](4, go_backwards=go_backwards, dtype="float64")
        alone(x[i:i + 1, :k])
        alone.set_weights(layer.get_weights())
        np.testing.assert_allclose(batch[i], alone(x[i:i + 1, :k])[0], rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_synthetic_sentiment_task_learns(cls):
    """A sentiment task built from token statistics: above 95% held-out accuracy."""
    pynn.set_seed(0)
    x, y = sentiment_data(n=2048, t=20, seed=0)
    xv, yv = sentiment_data(n=512, t=20, seed=1)
    model = Sequential([Input((20,), dtype="int32"), Embedding(30, 16), RNNS[cls](32),
                        Dense(1, activation="sigmoid")])
    model.compile(pynn.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    _, acc = model.evaluate(xv, yv, verbose=0)
    print(f"{cls} synthetic sentiment: held-out accuracy {acc:.4f}")
    assert acc > 0.95


def test_recurrent_layer_without_weight_gradients_still_passes_input_gradients():
    """Weights with no gradient buffer (created frozen): backward still returns dx."""
    x = np.random.default_rng(4).standard_normal((2, 3, 2))
    layer = GRU(3, dtype="float64")
    layer(x)
    ctx = layer.context()
    layer.forward(ctx, x)
    want = layer.backward(ctx, np.ones((2, 3))).copy()
    for w in layer.weights:
        w.grad = None
    layer.forward(ctx, x)
    np.testing.assert_array_equal(layer.backward(ctx, np.ones((2, 3))), want)


def test_variable_length_input_trains_predicts_and_saves(tmp_path):
    """``Input((None,))``: one model takes batches of any sequence length (the keras-io
    IMDB classifier's input), including a multi-output layer whose states get no
    gradient and a second input that gets none."""
    from pynn.layers import Bidirectional, GlobalAveragePooling1D, concatenate
    rng = np.random.default_rng(0)
    ids = Input((None,), dtype="int32")
    side = Input((None, 2))
    h = Bidirectional(LSTM(4, return_sequences=True))(Embedding(30, 5, mask_zero=True)(ids))
    out, state_h, state_c = LSTM(3, return_state=True)(h)
    o = Dense(1, activation="sigmoid")(concatenate([out, GlobalAveragePooling1D()(side)]))
    m = Model([ids, side], o)
    m.compile("adam", "binary_crossentropy")
    y = rng.integers(0, 2, (8, 1)).astype(np.float32)
    for t in (7, 3, 12):
        m.fit([rng.integers(0, 30, (8, t)), rng.random((8, t + 1, 2))], y, verbose=0)
    x = [rng.integers(0, 30, (4, 9)), rng.random((4, 2, 2))]
    assert m.predict(x, verbose=0).shape == (4, 1)
    m.save(tmp_path / "var.keras")
    back = load_model(tmp_path / "var.keras")
    assert back.inputs[0].shape == (None, None)
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)
