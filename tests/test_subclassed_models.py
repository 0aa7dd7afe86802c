"""Subclassed models (class MyModel(pynn.Model) with call()) and hand-written training
loops with pynn.GradientTape: same training as the equivalent built-in model, float64
finite-difference gradients, summary, weights files, clear errors."""
import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn import ops
from pynn.models import Sequential

from helpers import assert_grads_match_fd


class MLP(pynn.Model):
    """The seed tutorial's PyTorch-style network: two Dense layers, ReLU between."""

    def __init__(self, hidden=8, outputs=3, **kwargs):
        super().__init__(**kwargs)
        self.fc1 = L.Dense(hidden)
        self.fc2 = L.Dense(outputs)

    def call(self, x, training=False):
        return self.fc2(ops.relu(self.fc1(x)))


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.standard_normal((n, 3))


@pytest.fixture
def f64():
    pynn.set_floatx("float64")
    yield
    pynn.set_floatx("float32")


def reference(model):
    ref = Sequential([pynn.Input((4,)), L.Dense(8, activation="relu"), L.Dense(3)])
    ref.set_weights(model.get_weights())
    return ref


def test_fit_equals_the_builtin_model(f64, backend_name):
    x, y = data()
    with pynn.use_backend(backend_name):
        m = MLP()
        m.build((None, 4))
        ref = reference(m)
        for model in (m, ref):
            model.compile(pynn.optimizers.SGD(0.05, momentum=0.9), "mse", metrics=["mae"])
            h = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history
        np.testing.assert_allclose(m.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0),
                                   rtol=1e-10)
    for a, b in zip(m.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert set(h) >= {"loss", "mae"}


def test_layers_summary_and_weights_files(tmp_path):
    x, _ = data(8)
    m = MLP(name="mlp")
    m.predict(x, verbose=0)  # built by the first data
    assert [layer.name for layer in m.layers] == [m.fc1.name, m.fc2.name]
    assert len(m.trainable_weights) == 4 and m.count_params() == 4 * 8 + 8 + 8 * 3 + 3
    text = []
    m.summary(print_fn=text.append)
    assert any(m.fc1.name in line for line in text)
    for name in ("w.weights.h5", "w.weights.npz"):
        m.save_weights(tmp_path / name)
        other = MLP()
        other.build((None, 4))
        other.load_weights(tmp_path / name)
        np.testing.assert_array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))
    with pytest.raises(NotImplementedError, match="implement get_config"):
        m.save(tmp_path / "m.pynn")


def test_manual_loop_equals_fit(f64):
    """forward, loss, tape.gradient, optimizer.apply: the same weights as fit()."""
    x, y = data()
    m = MLP()
    m.build((None, 4))
    ref = reference(m)
    opt = pynn.optimizers.SGD(0.05)
    for i in range(0, 48, 16):
        with pynn.GradientTape() as tape:
            pred = m(x[i:i + 16], training=True)
            loss = ops.mean(ops.square(pred - y[i:i + 16]))
        grads = tape.gradient(loss, m.trainable_weights)
        opt.apply(grads, m.trainable_weights)
    ref.compile(pynn.optimizers.SGD(0.05), "mse")
    ref.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(m.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_gradient_tape_equals_finite_differences(f64):
    x, y = data(6)
    m = MLP()
    m.build((None, 4))
    extra = L.Dense(3)
    extra.build((None, 3))

    def loss_value():
        return float(np.mean((extra(m(x, training=False)) - y) ** 2 * 0.5))

    with pynn.GradientTape() as tape:
        loss = ops.mean(ops.square(extra(m(x, training=True)) - y) * 0.5)
    weights = m.trainable_weights + extra.trainable_weights
    grads = tape.gradient(loss, weights)
    assert_grads_match_fd(loss_value, weights, grads, rtol=1e-6, atol=1e-10)


def test_errors():
    with pytest.raises(TypeError, match="subclass pynn.Model and define call"):
        pynn.Model()

    class Empty(pynn.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="has no layers"):
        Empty().predict(np.ones((2, 3)), verbose=0)
    with pynn.GradientTape() as tape:
        pass
    with pytest.raises(ValueError, match="not computed inside this tape"):
        tape.gradient(np.ones(()), [])


def test_call_is_traced_into_a_graph_when_it_can_be():
    """Layers and pynn.ops in call() become graph nodes (fused paths apply); Python
    branching on `training` falls back to the tape, with the same results."""
    class Traced(pynn.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = L.Dense(5, activation="relu"), L.Dense(2)

        def call(self, x, training=False):
            return self.b(self.a(x, training=training))

    class Branchy(Traced):
        def call(self, x, training=False):
            h = self.a(x)
            if training:
                h = h * 1.0
            return self.b(h)

    x = np.random.default_rng(0).standard_normal((6, 4)).astype("float32")
    t, b = Traced(), Branchy()
    t.build((None, 4))
    b.build((None, 4))
    b.set_weights(t.get_weights())
    assert any(type(layer).__name__ == "Dense" for layer in t._layers)
    assert not any(type(layer).__name__ == "Dense" for layer in b._layers)  # on the tape
    assert [w.shape for w in t.weights] == [w.shape for w in b.weights]
    np.testing.assert_allclose(t.predict(x, verbose=0), b.predict(x, verbose=0), rtol=1e-6)


def test_functional_api_with_ops_saves_and_loads(tmp_path):
    i = pynn.Input((5, 3))
    y = ops.mean(L.Dense(4)(i), axis=1) * 2.0 + 1
    m = pynn.Model(i, L.Dense(1)(ops.relu(y)))
    x = np.random.default_rng(1).random((6, 5, 3)).astype("float32")
    for name in ("m.pynn", "m.keras"):
        m.save(tmp_path / name)
        np.testing.assert_array_equal(pynn.models.load_model(tmp_path / name).predict(
            x, verbose=0), m.predict(x, verbose=0))


class _Branchy(pynn.Model):
    """Which layer runs depends on the data (the tape path)."""

    def __init__(self, l2=None):
        super().__init__()
        reg = None if l2 is None else pynn.regularizers.L2(l2)
        self.a = pynn.layers.Dense(1, name="a", kernel_regularizer=reg)
        self.b = pynn.layers.Dense(1, name="b")

    def call(self, x):
        if float(pynn.ops.convert_to_numpy(pynn.ops.sum(x))) > 0:
            return self.a(x)
        return self.b(x)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_a_layer_the_call_skipped_keeps_its_weights_and_optimizer_state(opt):
    # Keras updates only the weights that have a gradient; before this, the skipped
    # layer got its gradient of an earlier step again (and Adam moved it anyway)
    m = _Branchy()
    x = np.abs(np.random.default_rng(0).normal(size=(8, 3))).astype("float32")
    y = np.ones((8, 1), "float32")
    m.compile(optimizer=opt, loss="mse")
    for sign in (1, -1, 1):           # a, then b (built), then a again
        m.train_on_batch(sign * x, y)
    before = [w.copy() for w in m.a.get_weights()]
    state = [np.array(v, copy=True) for v in m.optimizer.variables]
    m.train_on_batch(-x, y)           # only b
    for w0, w1 in zip(before, m.a.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    changed = [not np.array_equal(s0, s1) for s0, s1 in zip(state, m.optimizer.variables)]
    assert any(changed) or not state  # b's state moved (sgd has none) ...
    m.train_on_batch(x, y)            # ... and a trains again
    assert not np.array_equal(before[0], m.a.get_weights()[0])


def test_a_skipped_regularized_layer_still_gets_its_penalty_gradient():
    m = _Branchy(l2=0.5)
    x = np.abs(np.random.default_rng(0).normal(size=(8, 3))).astype("float32")
    y = np.ones((8, 1), "float32")
    m.compile(optimizer=pynn.optimizers.SGD(0.1), loss="mse")
    for sign in (1, -1):
        m.train_on_batch(sign * x, y)
    k0, b0 = [w.copy() for w in m.a.get_weights()]
    m.train_on_batch(-x, y)           # a skipped: only its L2 penalty's gradient
    k1, b1 = m.a.get_weights()
    np.testing.assert_allclose(k1, k0 - 0.1 * (2 * 0.5 * k0), rtol=1e-6)
    np.testing.assert_array_equal(b1, b0)
