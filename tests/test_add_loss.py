"""``Layer.add_loss`` (Keras 3's semantics): losses a ``call()`` adds are summed into the
loss ``fit``/``evaluate`` minimise and log, with gradients through the tape (float64
finite differences), listed by ``losses`` for the latest forward pass only; a model of
built-in layers records nothing. Compared with Keras 3 itself where it is installed."""
import os

import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn import ops
from pynn.models import Sequential

from helpers import assert_grads_match_fd


class ActivityL2(L.Layer):
    """Keras's guide example: an activity penalty added in call(), input passed on."""

    def __init__(self, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, x):
        self.add_loss(self.rate * ops.sum(ops.square(x)))
        return x


class PenalisedLinear(L.Layer):
    """A linear layer whose call() adds a penalty on its own kernel and output."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, x):
        y = ops.matmul(x, self.w) + self.b
        self.add_loss(0.05 * ops.sum(ops.square(self.w)))
        self.add_loss(0.01 * ops.mean(ops.tanh(y)))
        return y


class Regularised(pynn.Model):
    """A subclassed model whose own call() adds a loss."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fc1 = L.Dense(6, activation="tanh")
        self.fc2 = L.Dense(2)

    def call(self, x):
        h = self.fc1(x)
        self.add_loss(0.2 * ops.mean(ops.square(h)))
        return self.fc2(h)


@pytest.fixture
def f64():
    pynn.set_floatx("float64")
    yield
    pynn.set_floatx("float32")


def data(n=12, d=4, k=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, k))


def added_total(model):
    return sum(float(np.sum(v)) for v in model._added_losses())


def test_gradients_with_added_losses_equal_finite_differences(f64):
    x, _ = data()
    m = Sequential([pynn.Input((4,)), L.Dense(5, activation="tanh"), ActivityL2(0.3),
                    PenalisedLinear(3), ActivityL2(0.1)])
    w_out = np.random.default_rng(3).standard_normal((12, 3))
    ctx = m._root_ctx
    out = m._run_forward(ctx, [x], True, None)[0]
    assert len(m._added_losses()) == 4
    dx = m._run_backward(ctx, [w_out], True)[0]
    grads = [w.grad.copy() for w in m.weights]

    def objective(xx=x):
        value = float(np.sum(m.predict(xx, verbose=0) * w_out))
        return value + added_total(m)

    np.testing.assert_allclose(float(np.sum(out * w_out)) + added_total(m), objective())
    assert_grads_match_fd(objective, m.weights, grads, x, dx, rtol=1e-6, atol=1e-9)


def test_subclassed_model_add_loss_gradients_equal_finite_differences(f64):
    x, y = data()
    m = Regularised()
    m.compile(pynn.optimizers.SGD(1.0), "mse")
    m.build((None, 4))
    before = [w.numpy() for w in m.weights]

    def objective():
        m.predict(x, verbose=0)
        pred = m.predict(x, verbose=0)
        return float(np.mean((pred - y) ** 2)) + added_total(m)

    want = objective()
    logs = m.train_on_batch(x, y, return_dict=True)  # one SGD step with lr 1: -grad
    np.testing.assert_allclose(logs["loss"], want, rtol=1e-12)
    grads = [b - w.numpy() for b, w in zip(before, m.weights)]
    m.set_weights(before)
    assert_grads_match_fd(objective, m.weights, grads, rtol=1e-6, atol=1e-9)


def test_logged_loss_includes_added_losses_and_losses_lists_them(f64):
    x, y = data()
    pynn.set_seed(0)
    m = Sequential([pynn.Input((4,)), L.Dense(5, activation="tanh", kernel_regularizer="l2"),
                    ActivityL2(0.3), L.Dense(2)])
    ref = Sequential([pynn.Input((4,)), L.Dense(5, activation="tanh", kernel_regularizer="l2"),
                      L.Dense(2)])
    ref.set_weights(m.get_weights())
    for model in (m, ref):
        model.compile(pynn.optimizers.SGD(0.0), "mse")
    assert m.evaluate(x, y, verbose=0) > ref.evaluate(x, y, verbose=0)
    hidden = np.tanh(x @ m.weights[0].numpy() + m.weights[1].numpy())
    penalty = 0.3 * np.sum(hidden ** 2)
    np.testing.assert_allclose(m.evaluate(x, y, verbose=0),
                               ref.evaluate(x, y, verbose=0) + penalty, rtol=1e-10)
    h = m.fit(x, y, batch_size=12, epochs=1, verbose=0)
    np.testing.assert_allclose(h.history["loss"][0], ref.evaluate(x, y, verbose=0) + penalty,
                               rtol=1e-10)
    # Keras's order: added losses, then the weight regularization penalties
    assert len(m.losses) == 2
    np.testing.assert_allclose(float(m.losses[0]), penalty, rtol=1e-10)
    np.testing.assert_allclose(m.losses[1], ref.losses[0], rtol=1e-12)
    # cleared at each forward pass: a smaller batch gives a smaller penalty, one entry
    m.predict(x[:3], verbose=0)
    np.testing.assert_allclose(float(m.losses[0]), 0.3 * np.sum(hidden[:3] ** 2), rtol=1e-10)
    assert len(m.layers[1].losses) == 1 and len(m.losses) == 2


def test_shared_layer_keeps_both_calls_losses():
    act = ActivityL2(1.0)
    inp = pynn.Input((3,))
    m = pynn.Model(inp, L.Add()([act(inp), act(L.Dense(3)(inp))]))
    x = np.ones((2, 3), np.float32)
    m.predict(x, verbose=0)
    assert len(act.losses) == 2
    np.testing.assert_allclose(float(act.losses[0]), 6.0)
    m.predict(x, verbose=0)
    assert len(act.losses) == 2


def test_manual_loop_counts_added_losses_through_compute_loss(f64):
    """An overridden train_step: compute_loss includes the added losses (value) and the
    gradient includes their terms (the layers' backward passes seed them)."""
    x, y = data()

    class Stepped(Regularised):
        def train_step(self, data):
            xb, yb = data
            with pynn.GradientTape() as tape:
                pred = self(xb, training=True)
                loss = self.compute_loss(y=yb, y_pred=pred)
            self.optimizer.apply(tape.gradient(loss, self.trainable_weights),
                                 self.trainable_weights)
            return self.compute_metrics(xb, yb, pred)

    a, b = Regularised(), Stepped()
    a.build((None, 4))
    b.build((None, 4))
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(pynn.optimizers.SGD(0.1), "mse")
    ha = a.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(hb.history["loss"], ha.history["loss"], rtol=1e-10)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wb, wa, rtol=1e-10, atol=1e-12)


def test_builtin_model_records_nothing():
    m = Sequential([pynn.Input((4,)), L.Dense(3)])
    m.compile("sgd", "mse")
    m.fit(*data(k=3), verbose=0)
    assert m.losses == [] and m._added_losses() == []


def test_add_loss_refuses_non_numeric_values():
    class Bad(L.Layer):
        def call(self, x):
            self.add_loss("oops")
            return x

    with pytest.raises(ValueError, match=r"Layer 'bad_one': add_loss\(\) takes a numeric"):
        Bad(name="bad_one")(np.ones((2, 2), np.float32))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_same_logged_loss_as_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3."):
        pytest.skip("compares with Keras 3")
    from keras import ops as kops

    class KActivityL2(keras.layers.Layer):
        def call(self, x):
            self.add_loss(0.3 * kops.sum(kops.square(x)))
            return x

    x, y = data(n=16)
    x, y = x.astype(np.float32), y.astype(np.float32)
    pynn.set_seed(0)
    p = Sequential([pynn.Input((4,)), L.Dense(5, activation="tanh"), ActivityL2(0.3),
                    L.Dense(2)])
    k = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                          KActivityL2(), keras.layers.Dense(2)])
    k.set_weights(p.get_weights())
    p.compile(pynn.optimizers.SGD(0.01), "mse")
    k.compile(keras.optimizers.SGD(0.01), "mse")
    hp = p.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    hk = k.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(hp.history["loss"], hk.history["loss"], rtol=2e-5)
    np.testing.assert_allclose(p.evaluate(x, y, verbose=0), k.evaluate(x, y, verbose=0),
                               rtol=2e-5)
    for a, b in zip(p.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_a_model_call_that_stops_adding_clears_its_losses():
    class Sometimes(pynn.Model):
        def __init__(self):
            super().__init__()
            self.fc = L.Dense(2)
            self.add = True

        def call(self, x):
            if self.add:
                self.add_loss(ops.sum(x))
            return self.fc(x)

    m = Sometimes()
    x = np.ones((2, 3), np.float32)
    m.predict(x, verbose=0)
    np.testing.assert_allclose([float(v) for v in m.losses], [6.0])
    m.add = False
    m.predict(x, verbose=0)
    assert m.losses == []
