"""Masks through a graph (Keras 3's rules, pynn.layers.masking_rules).

* ``Masking`` makes a ``(batch, steps)`` mask; pass-through layers (Dense, Activation,
  Dropout, BatchNormalization) carry it; a layer that does not support masking drops it
  with a warning; the merge layers combine masks as Keras does (OR; Concatenate widens;
  Dot drops).
* ``GlobalAveragePooling1D`` averages over unmasked steps only, forward and backward
  (float64 finite differences), and refuses a mask of the wrong shape.
* A layer whose ``forward`` takes ``mask`` receives it; ``compute_mask`` of a custom
  layer makes one; a model used as a layer passes masks in and out.
* Against Keras 3 itself where installed.
"""

import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn.layers.layer import Layer
from pynn.models import Model, Sequential, load_model


def seqs(seed=0, n=4, t=6, d=3):
    """Right-padded sequences: row 0 has 4 real steps, row 2 none, row 3 all."""
    x = np.random.default_rng(seed).standard_normal((n, t, d))
    x[0, 4:] = 0
    x[1, 2:] = 0
    x[2, :] = 0
    return x


def masked_mean(y, keep):
    w = keep.astype(float)
    with np.errstate(invalid="ignore"):
        return np.einsum("ntc,nt->nc", y, w) / w.sum(axis=1, keepdims=True)


class Probe(Layer):
    """Identity that records the mask it is given (and passes it on)."""

    _supports_masking = True

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = "not called"

    def build(self, input_shape):
        self.built = True

    def forward(self, ctx, x, training=False, mask=None):
        self.seen = None if mask is None else np.array(mask)
        return x

    def backward(self, ctx, dy, input_grad=True):
        return dy


def test_masking_then_global_average_over_real_steps(backend):
    pynn.set_floatx("float64")
    try:
        x = seqs()
        i = pynn.Input((6, 3))
        d = L.Dense(2)(L.Masking()(i))
        m = Model(i, L.GlobalAveragePooling1D()(d))
        keep = np.abs(x).sum(-1) != 0
        kernel, bias = m.layers[2].get_weights()
        want = masked_mean(x @ kernel + bias, keep)
        got = m.predict(x, verbose=0)
        np.testing.assert_allclose(got[[0, 1, 3]], want[[0, 1, 3]], rtol=1e-12)
        assert np.isnan(got[2]).all()  # every step masked: 0 / 0, as Keras
    finally:
        pynn.set_floatx("float32")


def test_mask_reaches_a_layer_that_takes_it_through_pass_through_layers():
    x = seqs()
    probe = Probe()
    i = pynn.Input((6, 3))
    h = L.Dropout(0.5)(L.Activation("relu")(L.Dense(5)(L.Masking()(i))))
    m = Model(i, probe(L.BatchNormalization()(h)))
    m.predict(x, verbose=0)
    np.testing.assert_array_equal(probe.seen, np.abs(x).sum(-1) != 0)
    # no Masking: no mask, and forward is called without one
    probe2 = Probe()
    j = pynn.Input((6, 3))
    Model(j, probe2(L.Dense(2)(j))).predict(x, verbose=0)
    assert probe2.seen is None


def test_a_layer_without_mask_support_drops_it_with_a_warning():
    x = seqs()
    probe = Probe()
    i = pynn.Input((6, 3))
    flat = L.Flatten()(L.Masking()(i))
    m = Model(i, probe(L.Reshape((6, 3))(flat)))
    with pytest.warns(UserWarning, match="does not support masking"):
        m.predict(x, verbose=0)
    assert probe.seen is None


def test_merge_layers_combine_masks_as_keras():
    a = seqs(1)
    b = seqs(2)
    b[3, 5:] = 0
    ka, kb = np.abs(a).sum(-1) != 0, np.abs(b).sum(-1) != 0
    for merge, want in ((L.Add(), ka | kb), (L.Multiply(), ka | kb),
                        (L.Concatenate(), ka | kb), (L.Concatenate(axis=1), None)):
        probe = Probe()
        i, j = pynn.Input((6, 3)), pynn.Input((6, 3))
        out = probe(merge([L.Masking()(i), L.Masking()(j)]))
        Model([i, j], out).predict([a, b], verbose=0)
        if want is None:  # joined along time: the masks are joined too
            np.testing.assert_array_equal(probe.seen, np.concatenate([ka, kb], axis=1))
        else:
            np.testing.assert_array_equal(probe.seen, want)
    # one input without a mask: no mask for elementwise merges, all-True part for concat
    probe, probe2 = Probe(), Probe()
    i, j = pynn.Input((6, 3)), pynn.Input((6, 3))
    mi = L.Masking()(i)
    Model([i, j], [probe(L.Add()([mi, j])), probe2(L.Concatenate()([mi, j]))]).predict(
        [a, b], verbose=0)
    assert probe.seen is None
    assert probe2.seen.all()
    probe = Probe()
    i, j = pynn.Input((6, 3)), pynn.Input((6, 3))
    d = L.Dot(axes=2)([L.Masking()(i), L.Masking()(j)])
    Model([i, j], probe(d)).predict([a, b], verbose=0)
    assert probe.seen is None


class StepMask(Layer):
    """A custom layer that makes a mask: steps whose first feature is positive."""

    def build(self, input_shape):
        self.built = True

    def compute_mask(self, inputs, previous_mask):
        return np.asarray(inputs)[..., 0] > 0

    def forward(self, ctx, x, training=False):
        return x

    def backward(self, ctx, dy, input_grad=True):
        return dy


def test_custom_compute_mask_and_nested_models_pass_masks():
    x = seqs(3)
    assert StepMask().supports_masking and not L.Flatten().supports_masking
    inner_in = pynn.Input((6, 3))
    inner = Model(inner_in, L.Dense(3)(inner_in))  # masks pass through Dense
    probe = Probe()
    i = pynn.Input((6, 3))
    m = Model(i, probe(inner(StepMask()(i))))
    m.predict(x, verbose=0)
    np.testing.assert_array_equal(probe.seen, x[..., 0] > 0)
    layer = L.Flatten()
    layer.supports_masking = True  # settable, as in Keras
    assert layer.supports_masking


def test_masked_global_average_gradient_matches_finite_differences():
    pynn.set_floatx("float64")
    try:
        x = seqs(4)
        x[2, 0] = 1.0  # no fully masked row: the mean is defined everywhere
        i = pynn.Input((6, 3))
        m = Model(i, L.GlobalAveragePooling1D()(L.Dense(2, activation="tanh")(
            L.Masking()(i))))
        y = np.random.default_rng(5).standard_normal((4, 2))
        m.compile(loss="mse", optimizer=pynn.optimizers.SGD(0.0))  # the step keeps w
        kernel = m.layers[2].kernel
        loss = lambda: float(np.mean((m.predict(x, verbose=0) - y) ** 2))  # noqa: E731
        m.train_step((x, y))
        grad = kernel.grad.copy()
        w = kernel.value
        num = np.zeros_like(grad)
        for idx in np.ndindex(*w.shape):
            old = w[idx]
            w[idx] = old + 1e-6
            up = loss()
            w[idx] = old - 1e-6
            down = loss()
            w[idx] = old
            num[idx] = (up - down) / 2e-6
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)
    finally:
        pynn.set_floatx("float32")


def test_mask_of_the_wrong_shape_is_refused():
    class BadMask(StepMask):
        def compute_mask(self, inputs, previous_mask):
            return np.ones((inputs.shape[0], inputs.shape[1] + 1), bool)
    i = pynn.Input((6, 3))
    m = Model(i, L.GlobalAveragePooling1D(name="gap")(BadMask()(i)))
    with pytest.raises(ValueError, match=r"gap.*mask has shape \(4, 7\).*\(4, 6\)"):
        m.predict(seqs(), verbose=0)


def test_masking_layer_config_save_and_load(tmp_path):
    m = Sequential([pynn.Input((6, 3)), L.Masking(mask_value=1.5), L.GlobalAveragePooling1D()])
    x = seqs(6)
    x[1, 3:] = 1.5
    path = tmp_path / "m.keras"
    m.save(path)
    back = load_model(path)
    assert back.layers[0].mask_value == 1.5
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0))
    with pytest.raises(ValueError, match="mask_value must be a number"):
        L.Masking(mask_value="zero")
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, steps"):
        Sequential([pynn.Input((6,)), L.Masking()])


def test_against_keras():
    keras = pytest.importorskip("keras")
    x = seqs(7).astype("float32")
    x[2, 0] = 1.0
    ki = keras.Input((6, 3))
    kd = keras.layers.Dense(2)
    kmodel = keras.Model(ki, keras.layers.GlobalAveragePooling1D()(kd(keras.layers.Masking()(ki))))
    i = pynn.Input((6, 3))
    d = L.Dense(2)
    m = Model(i, L.GlobalAveragePooling1D()(d(L.Masking()(i))))
    d.set_weights([np.asarray(w) for w in kd.get_weights()])
    np.testing.assert_allclose(m.predict(x, verbose=0), np.asarray(kmodel.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)


def test_masked_steps_count_in_no_loss_or_metric():
    """A per-step output with a mask: the loss (sum_over_batch_size) is the mean over
    the unmasked steps only, as Keras's apply_mask gives, and so are the metrics."""
    pynn.set_floatx("float64")
    try:
        x = seqs(8)
        x[2, 0] = 1.0
        keep = np.abs(x).sum(-1) != 0
        y = np.random.default_rng(9).standard_normal((4, 6, 2))
        i = pynn.Input((6, 3))
        m = Model(i, L.Dense(2)(L.Masking()(i)))
        m.compile(loss="mse", optimizer=pynn.optimizers.SGD(0.0), metrics=["mae"])
        pred = m.predict(x, verbose=0)
        per_step = ((pred - y) ** 2).mean(-1)
        loss, mae = m.evaluate(x, y, verbose=0)
        np.testing.assert_allclose(loss, per_step[keep].mean(), rtol=1e-12)
        np.testing.assert_allclose(mae, np.abs(pred - y).mean(-1)[keep].mean(), rtol=1e-12)
        # the gradient too: changing a masked step's target changes nothing
        y2 = y.copy()
        y2[~keep] += 100.0
        assert m.evaluate(x, y2, verbose=0)[0] == pytest.approx(loss, rel=1e-12)
        hist = m.fit(x, y2, batch_size=4, epochs=1, verbose=0)
        assert hist.history["loss"][0] == pytest.approx(loss, rel=1e-12)
        # a sample weight multiplies in
        sw = np.array([1.0, 2.0, 0.5, 1.0])
        w = keep * sw[:, None]
        got = m.evaluate(x, y, sample_weight=sw, verbose=0)[0]
        np.testing.assert_allclose(got, (per_step * w).sum() / keep.sum(), rtol=1e-12)
    finally:
        pynn.set_floatx("float32")


def test_masked_loss_against_keras():
    keras = pytest.importorskip("keras")
    x = seqs(10).astype("float32")
    y = np.random.default_rng(11).standard_normal((4, 6, 2)).astype("float32")
    ki = keras.Input((6, 3))
    kd = keras.layers.Dense(2)
    kmodel = keras.Model(ki, kd(keras.layers.Masking()(ki)))
    kmodel.compile(loss="mse", metrics=["mae"])
    i = pynn.Input((6, 3))
    d = L.Dense(2)
    m = Model(i, d(L.Masking()(i)))
    d.set_weights([np.asarray(w) for w in kd.get_weights()])
    m.compile(loss="mse", metrics=["mae"])
    np.testing.assert_allclose(m.evaluate(x, y, verbose=0),
                               kmodel.evaluate(x, y, verbose=0), rtol=1e-5)


def _stacked(rs, i=None):
    i = pynn.Input((5,), dtype="int32") if i is None else i
    e = L.Embedding(7, 4, mask_zero=True)
    lstm = L.LSTM(3, return_sequences=True)
    gru = L.GRU(2, return_sequences=rs)
    o = gru(lstm(e(i)))
    return Model(i, L.GlobalAveragePooling1D()(o) if rs else o), (e, lstm, gru)


def test_mask_zero_reaches_stacked_recurrent_layers():
    """A right-padded batch through Embedding(mask_zero) -> LSTM(seq) -> GRU gives each
    sequence what it gives alone, unpadded (the mask reaches both recurrent layers and the
    pooling)."""
    pynn.set_floatx("float64")
    try:
        ids = np.array([[3, 5, 2, 0, 0], [1, 0, 0, 0, 0], [4, 4, 4, 4, 4]], dtype="int32")
        for rs in (True, False):
            pynn.set_seed(1)
            m, _ = _stacked(rs)
            batch = m.predict(ids, verbose=0)
            for row, length in zip(range(3), (3, 1, 5)):
                i = pynn.Input((length,), dtype="int32")
                alone, _ = _stacked(rs, i)
                alone.set_weights(m.get_weights())
                np.testing.assert_allclose(alone.predict(ids[row:row + 1, :length], verbose=0)[0],
                                           batch[row], rtol=1e-12, atol=1e-12)
    finally:
        pynn.set_floatx("float32")


def test_masked_recurrent_stack_against_keras():
    keras = pytest.importorskip("keras")
    ids = np.array([[3, 5, 2, 0, 0], [1, 0, 0, 0, 0], [4, 4, 4, 4, 4]], dtype="int32")
    for rs in (True, False):
        ki = keras.Input((5,), dtype="int32")
        ke = keras.layers.Embedding(7, 4, mask_zero=True)
        kl = keras.layers.LSTM(3, return_sequences=True)
        kg = keras.layers.GRU(2, return_sequences=rs)
        ko = kg(kl(ke(ki)))
        km = keras.Model(ki, keras.layers.GlobalAveragePooling1D()(ko) if rs else ko)
        m, layers = _stacked(rs)
        for ours, theirs in zip(layers, (ke, kl, kg)):
            ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
        np.testing.assert_allclose(m.predict(ids, verbose=0),
                                   np.asarray(km.predict(ids, verbose=0)), rtol=1e-5,
                                   atol=1e-6)
