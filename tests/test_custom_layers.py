"""Layers written the Keras way (build/add_weight/call with pynn.ops), Lambda layers and
built-in layers inside custom call(): same training as the built-in equivalents, float64
finite-difference gradients, shapes traced, saving, and clear errors."""
import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn import ops
from pynn.models import Model, Sequential, load_model

from helpers import assert_grads_match_fd


class Linear(L.Layer):
    """The keras-io "Making new layers" guide's Linear layer, plus a ReLU."""

    def __init__(self, units=32, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.act = activation

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        y = ops.matmul(inputs, self.w) + self.b
        return ops.relu(y) if self.act == "relu" else y

    def get_config(self):
        return dict(super().get_config(), units=self.units, activation=self.act)


class TwoDense(L.Layer):
    """Built-in layers wired in call() (their compiled kernels run inside)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d1 = L.Dense(6, activation="tanh")
        self.d2 = L.Dense(3)

    def call(self, x, training=False):
        return self.d2(self.d1(x)) * 2.0


def data(n=32, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, 3))


@pytest.fixture
def f64():
    pynn.set_floatx("float64")
    yield
    pynn.set_floatx("float32")


def test_custom_layer_trains_like_dense(f64, backend_name):
    x, y = data()
    with pynn.use_backend(backend_name):
        ours = Sequential([pynn.Input((5,)), Linear(8, "relu"), L.Dense(3)])
        ref = Sequential([pynn.Input((5,)), L.Dense(8, activation="relu"), L.Dense(3)])
        ref.set_weights(ours.get_weights())
        for m in (ours, ref):
            m.compile(pynn.optimizers.SGD(0.05), "mse")
            m.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_builtin_layers_inside_call_are_tracked_and_train(f64):
    x, y = data()
    layer = TwoDense()
    m = Sequential([pynn.Input((5,)), layer])
    assert [w.path.split("/")[1] for w in m.weights] == ["kernel", "bias", "kernel", "bias"]
    ref = Sequential([pynn.Input((5,)), L.Dense(6, activation="tanh"), L.Dense(3),
                      L.Lambda(lambda t: t * 2.0)])
    ref.set_weights(m.get_weights())
    for model in (m, ref):
        model.compile(pynn.optimizers.SGD(0.05), "mse")
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(m.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_gradients_through_custom_layers_equal_finite_differences(f64):
    x, _ = data(4, 5)
    layer = TwoDense()
    outer = Linear(3, "relu")
    m = Sequential([pynn.Input((5,)), layer, outer])
    w_out = np.random.default_rng(3).standard_normal((4, 3))
    ctx = m._root_ctx
    out = m._run_forward(ctx, [x], True, None)[0]
    dx = m._run_backward(ctx, [w_out], True)[0]
    grads = [w.grad.copy() for w in m.weights]

    def loss(xx=x):
        return float(np.sum(m.predict(xx, verbose=0) * w_out))

    np.testing.assert_allclose(float(np.sum(out * w_out)), loss())
    assert_grads_match_fd(loss, m.weights, grads, x, dx, rtol=1e-6, atol=1e-9)


def test_functional_graph_traces_output_shapes():
    i = pynn.Input((7, 4))
    y = L.Lambda(lambda t: ops.mean(t, axis=1))(Linear(5)(i))
    m = Model(i, y)
    assert m.output_shape == (None, 5)
    seq = pynn.Input((None, 4))
    assert Linear(2)(seq).shape == (None, None, 2)


def double(t, scale=2.0):
    return t * scale


def test_lambda_saves_by_name_and_loads_with_custom_objects(tmp_path):
    x, _ = data(4, 5)
    m = Sequential([pynn.Input((5,)), L.Dense(3), L.Lambda(double, arguments={"scale": 3.0})])
    m.save(tmp_path / "m.pynn")
    with pytest.raises(ValueError, match="'double' is not in custom_objects"):
        load_model(tmp_path / "m.pynn")
    back = load_model(tmp_path / "m.pynn", custom_objects={"double": double})
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)
    anon = Sequential([pynn.Input((5,)), L.Lambda(lambda t: t + 1)])
    with pytest.raises(ValueError, match="a lambda expression cannot be saved"):
        anon.save(tmp_path / "a.pynn")


def test_custom_layer_saves_and_loads_with_custom_objects(tmp_path):
    x, _ = data(4, 5)
    m = Sequential([pynn.Input((5,)), Linear(4, "relu")])
    m.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="Linear"):
        load_model(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras", custom_objects={"Linear": Linear})
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)


def test_unused_weight_is_named():
    class Forgetful(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2), name="w")
            self.unused = self.add_weight(shape=(2,), name="unused")

        def call(self, x):
            return ops.matmul(x, self.w)

    m = Sequential([pynn.Input((3,)), Forgetful(name="forgetful")])
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"does not depend on the trainable weights "
                                         r"\['forgetful/unused'\]"):
        m.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)


def test_keras_add_weight_arguments():
    class W(L.Layer):
        def build(self, input_shape):
            self.a = self.add_weight(shape=(2, 3))
            self.b = self.add_weight((3,), "ones", trainable=False)

        def call(self, x):
            return x

    layer = W()
    layer(np.zeros((1, 2), np.float32))
    assert [w.name for w in layer.weights] == ["variable", "variable_1"]
    assert not layer.b.trainable and np.all(layer.b.numpy() == 1)
    with pytest.raises(ValueError, match="constraints are not supported"):
        L.Layer().add_weight(shape=(2,), constraint="non_neg")


def test_call_ignoring_its_inputs_names_the_weights_left_without_gradient():
    class Constant(L.Layer):
        def call(self, x):
            return ops.ones((4, 2))  # no path back to x

    m = Sequential([pynn.Input((3,)), L.Dense(5, name="first"), Constant(name="const")])
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"Layer 'const': the output of call\(\) does not "
                                         r"depend on its inputs .*\['first/bias', "
                                         r"'first/kernel'\]"):
        m.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    alone = Sequential([pynn.Input((3,)), Constant()])  # nothing before it to train
    alone.compile("sgd", "mse")
    alone.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)


def test_op_on_incompatible_shapes_inside_call_names_the_op_and_shapes():
    class Mismatch(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(5,), name="w")

        def call(self, x):
            return ops.add(x, self.w)

    with pytest.raises(ValueError, match=r"ops.add: operands of shapes \(1, 3\), \(5,\)"):
        Sequential([pynn.Input((3,)), Mismatch()])


def test_non_differentiable_op_inside_call_is_named_when_training():
    class Rounding(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2), name="w")

        def call(self, x):
            return ops.cast(ops.matmul(x, self.w), "int32") * 1.0

    m = Sequential([pynn.Input((3,)), Rounding()])
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match="cast to int32 has no gradient"):
        m.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
