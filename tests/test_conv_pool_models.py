"""The planner's convolution + pooling fusion inside models.

A ``Conv2D`` whose output only a non-overlapping ``MaxPooling2D`` reads runs with it as
one step (``pynn.trainers.explain(model)['conv_pool']`` counts them). Trained with the
fusion and with ``jit_compile=False`` (layer by layer) from the same weights, a model
ends with the same weights and outputs; every graph shape the fusion must not touch is
left layer by layer.
"""
import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn.models import Model, Sequential
from pynn.trainers import explain


def convnet(seed=0):
    pynn.set_seed(seed)
    return Sequential([pynn.Input((12, 12, 2)), L.Conv2D(6, 3, activation="relu"),
                       L.MaxPooling2D(2), L.Conv2D(8, (2, 3), activation="tanh"),
                       L.MaxPooling2D((2, 1)), L.Flatten(), L.Dense(3, activation="softmax")])


def data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12, 12, 2))
    y = np.eye(3)[rng.integers(0, 3, n)]
    return x, y


def train(model, jit, x, y, epochs=2):
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=jit)
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False)
    return model


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_and_layered_training_agree(backend, dtype):
    x, y = data()
    with pynn.backends.use_backend(backend):
        pynn.set_floatx(dtype)
        try:
            fused, layered = convnet(), convnet()
            layered.set_weights(fused.get_weights())
            train(fused, "auto", x, y)
            assert explain(fused)["conv_pool"] == 2
            train(layered, False, x, y)
            assert explain(layered)["conv_pool"] == 0
            tol = 1e-9 if dtype == "float64" else 2e-4
            for a, b in zip(fused.get_weights(), layered.get_weights()):
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
            np.testing.assert_allclose(fused.predict(x, verbose=0),
                                       layered.predict(x, verbose=0), rtol=tol, atol=tol)
        finally:
            pynn.set_floatx("float32")


def test_shared_convolution_fuses_at_each_call_and_sums_its_gradients(backend):
    x, y = data()
    with pynn.backends.use_backend(backend):
        pynn.set_floatx("float64")
        try:
            def build():
                pynn.set_seed(3)
                conv = L.Conv2D(4, 3, activation="relu")
                a = pynn.Input((12, 12, 2))
                b = pynn.Input((12, 12, 2))
                pa = L.MaxPooling2D(2)(conv(a))
                pb = L.MaxPooling2D(2)(conv(b))
                z = L.Dense(3, activation="softmax")(L.Flatten()(L.Add()([pa, pb])))
                return Model([a, b], z)
            fused, layered = build(), build()
            layered.set_weights(fused.get_weights())
            for m, jit in ((fused, "auto"), (layered, False)):
                m.compile(optimizer="sgd", loss="categorical_crossentropy", jit_compile=jit)
                m.fit([x, x[::-1]], y, batch_size=8, epochs=1, verbose=0, shuffle=False)
            assert explain(fused)["conv_pool"] == 2
            for a, b in zip(fused.get_weights(), layered.get_weights()):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        finally:
            pynn.set_floatx("float32")


def _count(inputs, outputs):
    return explain(Model(inputs, outputs))["conv_pool"]


def test_only_a_convolution_read_by_one_plain_max_pooling_is_fused():
    def inp():
        return pynn.Input((10, 10, 3))
    a = inp()
    assert _count(a, L.MaxPooling2D(2)(L.Conv2D(4, 3)(a))) == 1
    a = inp()
    c = L.Conv2D(4, 3)(a)  # read twice
    assert _count(a, [L.MaxPooling2D(2)(c), L.Flatten()(c)]) == 0
    a = inp()
    c = L.Conv2D(4, 3)(a)  # a model output itself
    assert _count(a, [c, L.MaxPooling2D(2)(c)]) == 0
    for pool in (L.MaxPooling2D(2, strides=1), L.MaxPooling2D(2, padding="same"),
                 L.AveragePooling2D(2)):
        a = inp()
        assert _count(a, pool(L.Conv2D(4, 3)(a))) == 0
    for conv in (L.Conv2D(4, 3, activation="gelu"), L.Conv2D(4, 3, activation="softmax"),
                 L.DepthwiseConv2D(3), L.Conv2DTranspose(4, 3)):
        a = inp()
        assert _count(a, L.MaxPooling2D(2)(conv(a))) == 0
    a = pynn.Input((3, 10, 10))
    c = L.Conv2D(4, 3, data_format="channels_first")(a)
    assert _count(a, L.MaxPooling2D(2, data_format="channels_first")(c)) == 0


def test_sequential_that_gains_layers_is_planned_again():
    m = Sequential([pynn.Input((10, 10, 3)), L.Conv2D(4, 3)])
    m.compile(loss="mse")
    assert explain(m)["conv_pool"] == 0
    m.add(L.MaxPooling2D(2))
    m.build((None, 10, 10, 3))
    assert explain(m)["conv_pool"] == 1
