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


# --------------------------------------------------------------------------------------
# recurrent dropout
# --------------------------------------------------------------------------------------
RDROP_CASES = [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}), ("GRU", dict(reset_after=False))]
RDROP_IDS = ["SimpleRNN", "LSTM", "GRU", "GRU_reset_before"]


def _rdrop_pair(keras, cell, kw, x, u=3, **extra):
    """A pynn layer with recurrent dropout, and Keras's with the same weights."""
    ours = getattr(L, cell)(u, recurrent_dropout=0.4, seed=5, return_sequences=True,
                            return_state=True, dtype="float64", **kw, **extra)
    ours(x)
    theirs = getattr(keras.layers, cell)(u, recurrent_dropout=0.4, return_sequences=True,
                                         return_state=True, dtype="float64", **kw, **extra)
    theirs(x)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


@pytest.mark.parametrize("cell, kw", RDROP_CASES, ids=RDROP_IDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent_dropout_equals_keras_with_the_same_masks(cell, kw, go_backwards):
    """Training: Keras's cell given our masks (one per gate block) gives our outputs,
    states and weight gradients; the mask is fixed over the sequence and differs per
    sample; inference drops nothing, in both. (Keras's float64 torch path agrees with a
    hand-written float64 loop to about 1e-7 only, hence the tolerance; dropping a unit
    moves the outputs by far more, which the test checks too.)"""
    keras = import_keras()
    import torch
    rng = np.random.default_rng(2)
    n, t, u = 6, 5, 3
    x = rng.standard_normal((n, t, 4))
    mask = np.ones((n, t), bool)
    mask[1, 3:] = False  # masked steps keep the state
    ours, theirs = _rdrop_pair(keras, cell, kw, x, u, go_backwards=go_backwards)
    ctx = ours.context()
    res = ours.forward(ctx, x, training=True, mask=mask)
    rmask = np.array(ctx.saved[-1], copy=True)
    k = rmask.shape[1] // u
    assert rmask.shape == (n, {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[cell] * u)
    assert set(np.unique(rmask)) == {0.0, 1 / 0.6}
    wy = rng.standard_normal((n, t, u))
    wh = rng.standard_normal((n, u))
    grads = [np.ones((n, t, u)) * wy, wh] + ([np.zeros((n, u))] if cell == "LSTM" else [])
    ours.backward(ctx, grads)
    ctx.end_backward()
    got = [np.array(ctx.grad_out(w)) for w in (ours.kernel, ours.recurrent_kernel)]
    blocks = [torch.tensor(rmask[:, j * u:(j + 1) * u]) for j in range(k)]
    theirs.cell._recurrent_dropout_mask = blocks if k > 1 else blocks[0]
    outs = theirs(torch.tensor(x), training=True, mask=torch.tensor(mask))
    close = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res[0], outs[0].detach().numpy(), **close)
    np.testing.assert_allclose(res[1], outs[1].detach().numpy(), **close)
    assert np.abs(np.asarray(res[0]) - ours(x, mask=mask)[0]).max() > 1e-2  # dropout acts
    loss = (outs[0] * torch.tensor(wy)).sum() + (outs[1] * torch.tensor(wh)).sum()
    loss.backward()
    for ours_g, w in zip(got, (theirs.cell.kernel, theirs.cell.recurrent_kernel)):
        np.testing.assert_allclose(ours_g, w.value.grad.numpy(), **close)
    # inference: no dropout, in both
    want = theirs(x)
    for a, b in zip(ours(x), want):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), **close)


def _assert_fd(loss, x, kernel, dx, dk, eps=1e-6):
    """``dx``/``dk`` equal central differences of ``loss(x, kernel)``."""
    for arr, want, name in ((x, dx, "x"), (kernel, dk, "kernel")):
        fd = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[i] += eps
            minus[i] -= eps
            args = (plus, kernel) if name == "x" else (x, plus)
            args_m = (minus, kernel) if name == "x" else (x, minus)
            fd[i] = (loss(*args) - loss(*args_m)) / (2 * eps)
        np.testing.assert_allclose(want, fd, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_dropout_gradients_equal_finite_differences(cell):
    """The layer's gradients (input, weights) with this call's recurrent mask held fixed."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 2))
    layer = getattr(L, cell)(2, recurrent_dropout=0.5, seed=1, return_sequences=True,
                             dtype="float64")
    layer(x)
    wy = rng.standard_normal((3, 4, 2))
    ctx = layer.context()
    layer.forward(ctx, x, training=True)
    rmask = np.array(ctx.saved[-1], copy=True)
    assert 0 < (rmask == 0).mean() < 1
    dx = np.array(layer.backward(ctx, wy), copy=True)
    ctx.end_backward()
    dk = np.array(ctx.grad_out(layer.kernel), copy=True)
    be = layer.backend
    op = getattr(be, f"{layer.cell}_forward")

    def loss(x, kernel):
        out = op(x, kernel, layer.recurrent_kernel.value, layer.bias.value,
                 recurrent_dropout_mask=rmask, **layer._op_kwargs())[0]
        return np.sum(out * wy)

    _assert_fd(loss, x, layer.kernel.value, dx, dk)


GATE_CASES = [("LSTM", {}), ("GRU", {}), ("GRU", dict(reset_after=False))]


@pytest.mark.parametrize("cell, kw", GATE_CASES, ids=["LSTM", "GRU", "GRU_reset_before"])
def test_both_dropouts_equal_keras_per_gate_input_masks(cell, kw):
    """With recurrent_dropout set, Keras's cells draw one input mask per gate too
    (implementation=1): given our masks, Keras's LSTM/GRU give our outputs, states and
    weight and input gradients, with masked steps and go_backwards."""
    keras = import_keras()
    import torch
    rng = np.random.default_rng(7)
    n, t, d, u = 5, 4, 3, 2
    x = rng.standard_normal((n, t, d))
    mask = np.ones((n, t), bool)
    mask[2, 2:] = False
    ours, theirs = _rdrop_pair(keras, cell, kw, x, u, dropout=0.3, go_backwards=True)
    ctx = ours.context()
    res = ours.forward(ctx, x, training=True, mask=mask)
    gate_drop, rmask = ctx.saved[-2], np.array(ctx.saved[-1], copy=True)
    k = {"LSTM": 4, "GRU": 3}[cell]
    imask = np.array(gate_drop.mask, copy=True)
    assert imask.shape == (n, k * d) and set(np.unique(imask)) == {0.0, 1 / 0.7}
    assert not all(np.array_equal(imask[:, :d], imask[:, j * d:(j + 1) * d])
                   for j in range(1, k))  # the gates' masks differ
    wy, wh = rng.standard_normal((n, t, u)), rng.standard_normal((n, u))
    grads = [wy, wh] + ([np.zeros((n, u))] if cell == "LSTM" else [])
    dx = np.array(ours.backward(ctx, grads), copy=True)
    ctx.end_backward()
    got = [np.array(ctx.grad_out(w)) for w in (ours.kernel, ours.recurrent_kernel)]
    theirs.cell._dropout_mask = [torch.tensor(imask[:, j * d:(j + 1) * d]) for j in range(k)]
    theirs.cell._recurrent_dropout_mask = [torch.tensor(rmask[:, j * u:(j + 1) * u])
                                           for j in range(k)]
    xt = torch.tensor(x, requires_grad=True)
    outs = theirs(xt, training=True, mask=torch.tensor(mask))
    close = dict(rtol=1e-5, atol=1e-6)
    for a, b in zip(res[:2], outs[:2]):
        np.testing.assert_allclose(a, b.detach().numpy(), **close)
    ((outs[0] * torch.tensor(wy)).sum() + (outs[1] * torch.tensor(wh)).sum()).backward()
    for ours_g, w in zip(got, (theirs.cell.kernel, theirs.cell.recurrent_kernel)):
        np.testing.assert_allclose(ours_g, w.value.grad.numpy(), **close)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **close)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_per_gate_input_dropout_gradients_equal_finite_differences(cell):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 2))
    layer = getattr(L, cell)(2, dropout=0.5, recurrent_dropout=0.5, seed=2,
                             return_sequences=True, dtype="float64")
    layer(x)
    wy = rng.standard_normal((3, 4, 2))
    ctx = layer.context()
    layer.forward(ctx, x, training=True)
    gate_drop, rmask = ctx.saved[-2], np.array(ctx.saved[-1], copy=True)
    imask, k = np.array(gate_drop.mask, copy=True), gate_drop.k
    dx = np.array(layer.backward(ctx, wy), copy=True)
    ctx.end_backward()
    dk = np.array(ctx.grad_out(layer.kernel), copy=True)
    op = getattr(layer.backend, f"{layer.cell}_forward")

    def loss(x, kernel):  # Keras's implementation=1, written out per gate
        d, u = x.shape[2], kernel.shape[1] // k
        xg = np.concatenate([x * imask[:, None, j * d:(j + 1) * d] for j in range(k)], 2)
        kg = np.zeros((k * d, k * u))
        for j in range(k):
            kg[j * d:(j + 1) * d, j * u:(j + 1) * u] = kernel[:, j * u:(j + 1) * u]
        out = op(xg, kg, layer.recurrent_kernel.value, layer.bias.value,
                 recurrent_dropout_mask=rmask, **layer._op_kwargs())[0]
        return np.sum(out * wy)

    _assert_fd(loss, x, layer.kernel.value, dx, dk)


def test_recurrent_dropout_trains_reproducibly_alone_and_in_bidirectional():
    def run(make):
        pynn.set_seed(3)
        m = Sequential([pynn.Input((5, 2)), make(), L.Dense(1)])
        m.compile(pynn.optimizers.Adam(0.02), "mse")
        x = np.random.default_rng(1).standard_normal((64, 5, 2))
        return m.fit(x, x.sum((1, 2))[:, None], epochs=8, batch_size=16,
                     verbose=0).history["loss"]
    for make in (lambda: L.LSTM(4, recurrent_dropout=0.2),
                 lambda: L.GRU(4, dropout=0.1, recurrent_dropout=0.2),
                 lambda: L.Bidirectional(L.SimpleRNN(4, recurrent_dropout=0.2))):
        a, b = run(make), run(make)
        assert a == b and a[-1] < 0.5 * a[0], a


def test_recurrent_dropout_draws_a_fresh_mask_per_call_and_none_at_inference():
    x = np.random.default_rng(0).standard_normal((8, 4, 3)).astype(np.float32)
    layer = L.LSTM(5, recurrent_dropout=0.5, seed=2)
    layer(x)
    ctx = layer.context()
    layer.forward(ctx, x, training=True)
    first = np.array(ctx.saved[-1], copy=True)
    layer.forward(ctx, x, training=True)
    assert not np.array_equal(first, ctx.saved[-1])
    layer.forward(ctx, x, training=False)
    assert ctx.saved[-1] is None
    # a rate of 1 is clamped and ignored, as Keras ignores it
    assert L.GRU(2, recurrent_dropout=1.0)._recurrent_dropout is None


def test_recurrent_dropout_config_round_trip_and_keras_keys(tmp_path):
    keras = import_keras()
    layer = L.GRU(3, dropout=0.1, recurrent_dropout=0.25, seed=4)
    cfg = layer.get_config()
    theirs = keras.layers.GRU(3, dropout=0.1, recurrent_dropout=0.25, seed=4).get_config()
    assert cfg["recurrent_dropout"] == theirs["recurrent_dropout"] == 0.25
    again = L.GRU.from_config(cfg)
    assert again.recurrent_dropout == 0.25 and again.get_config() == cfg
    m = Sequential([pynn.Input((4, 2)), L.Bidirectional(L.LSTM(3, recurrent_dropout=0.3)),
                    L.Dense(1)])
    m.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras")
    assert back.layers[0].forward_layer.recurrent_dropout == 0.3
    x = np.random.default_rng(0).standard_normal((2, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))


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
