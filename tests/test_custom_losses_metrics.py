"""Custom losses (a plain function of (y_true, y_pred), a Loss subclass with only call())
and custom metrics (a Metric subclass with add_variable/update_state/result): they train
and report as Keras's do; gradients from the tape equal finite differences."""
import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn import ops


def custom_mean_squared_error(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class CustomMSE(pynn.losses.Loss):
    """The keras-io "Training & evaluation" guide's loss."""

    def __init__(self, regularization_factor=0.1, name="custom_mse"):
        super().__init__(name=name)
        self.regularization_factor = regularization_factor

    def call(self, y_true, y_pred):
        mse = ops.mean(ops.square(y_true - y_pred), axis=-1)
        reg = ops.mean(ops.square(0.5 - y_pred), axis=-1)
        return mse + reg * self.regularization_factor


class BinaryTruePositives(pynn.metrics.Metric):
    """The keras-io guide's metric."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros",
                                                name="true_positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "bool")
        y_pred = ops.cast(ops.greater(y_pred, 0.5), "bool")
        values = ops.cast(ops.logical_and(ops.equal(y_true, True), ops.equal(y_pred, True)),
                          "float64")
        if sample_weight is not None:
            values = ops.multiply(values, ops.reshape(sample_weight, ops.shape(values)))
        self.true_positives.assign(self.true_positives + ops.sum(values))

    def result(self):
        return self.true_positives


@pytest.fixture
def f64():
    pynn.set_floatx("float64")
    yield
    pynn.set_floatx("float32")


def _model():
    m = pynn.Sequential([pynn.Input((4,)), L.Dense(2)])
    m.set_weights([np.full((4, 2), 0.1), np.zeros(2)])
    return m


def test_function_loss_trains_like_the_builtin(f64):
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4)), rng.random((32, 2))
    w = rng.random(32)
    got, want = _model(), _model()
    got.compile(pynn.optimizers.SGD(0.1), loss=custom_mean_squared_error)
    want.compile(pynn.optimizers.SGD(0.1), loss="mse")
    for m in (got, want):
        m.fit(x, y, sample_weight=w, epochs=3, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(got.get_weights(), want.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(got.evaluate(x, y, verbose=0), want.evaluate(x, y, verbose=0),
                               rtol=1e-12)


def test_loss_subclass_with_only_call_trains_and_its_gradient_is_right(f64):
    loss = CustomMSE()
    rng = np.random.default_rng(1)
    y, out = rng.random((5, 3)), rng.random((5, 3))
    be = pynn.get_backend()
    value, grad = loss.loss_and_grad(be, y, out.copy())
    np.testing.assert_allclose(value, loss(y, out), rtol=1e-12)
    fd = np.zeros_like(out)
    for i in np.ndindex(out.shape):
        for sign in (1, -1):
            o = out.copy()
            o[i] += sign * 1e-6
            fd[i] += sign * loss(y, o) / 2e-6
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-10)
    m = _model()
    m.compile("adam", loss=loss)
    h = m.fit(rng.random((64, 4)), rng.random((64, 2)), epochs=5, verbose=0).history["loss"]
    assert h[-1] < h[0]


def test_loss_object_inside_a_gradient_tape(f64):
    m = _model()
    rng = np.random.default_rng(2)
    x, y = rng.random((8, 4)), rng.random((8, 2))
    with pynn.GradientTape() as tape:
        loss = pynn.losses.MeanSquaredError()(y, m(x, training=True))
    g = tape.gradient(loss, m.trainable_weights)
    pred = x @ m.get_weights()[0] + m.get_weights()[1]
    np.testing.assert_allclose(g[0], x.T @ (2 * (pred - y) / y.size), rtol=1e-10)


def test_custom_metric_hand_computed_and_in_fit():
    metric = BinaryTruePositives()
    metric.update_state(np.array([1, 1, 0, 1]), np.array([0.9, 0.2, 0.8, 0.7]))
    assert float(metric.result()) == 2.0
    metric.update_state(np.array([1, 1]), np.array([0.9, 0.9]), sample_weight=np.array([0.5, 2]))
    assert float(metric.result()) == 4.5
    metric.reset_state()
    assert float(metric.result()) == 0.0
    m = pynn.Sequential([pynn.Input((1,)), L.Dense(1, activation="sigmoid")])
    m.set_weights([np.array([[10.0]], "float32"), np.array([0.0], "float32")])
    x = np.array([[1.0], [-1.0], [2.0], [0.5]], "float32")
    y = np.array([1, 1, 0, 1], "float32")
    m.compile("sgd", "binary_crossentropy", metrics=[BinaryTruePositives()])
    logs = m.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["binary_true_positives"] == 2.0  # x=1 and x=0.5 (x=2 is a false positive)
    h = m.fit(x, y, epochs=2, batch_size=2, verbose=0).history
    assert len(h["binary_true_positives"]) == 2 and max(h["binary_true_positives"]) <= 3


def test_metric_without_variables_or_reset_is_named():
    class Half(pynn.metrics.Metric):
        def update_state(self, y_true, y_pred, sample_weight=None):
            pass

        def result(self):
            return 0.5

    with pytest.raises(NotImplementedError, match="Half must implement reset_state"):
        Half().reset_state()
    with pytest.raises(ValueError, match="does not depend on y_pred"):
        pynn.losses.LossFunctionWrapper(lambda t, p: ops.sum(t)).loss_and_grad(
            pynn.get_backend(), np.ones((2, 1)), np.ones((2, 1)))
