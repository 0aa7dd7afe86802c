"""Overridden train_step/test_step with compute_loss/compute_metrics (Keras 3's pattern
with pynn.GradientTape): fit and evaluate run them and give what the built-in steps
give."""
import numpy as np

import pynn
from pynn import layers as L


class CustomFit(pynn.Model):
    def __init__(self):
        super().__init__()
        self.hidden = L.Dense(8, activation="relu")
        self.out = L.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))

    def train_step(self, data):
        x, y = data[:2]
        with pynn.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self.compute_metrics(x, y, y_pred)

    def test_step(self, data):
        x, y = data[:2]
        y_pred = self(x, training=False)
        self.compute_loss(y=y, y_pred=y_pred)
        return self.compute_metrics(x, y, y_pred)


class Plain(pynn.Model):
    def __init__(self):
        super().__init__()
        self.hidden = L.Dense(8, activation="relu")
        self.out = L.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))


def test_custom_steps_equal_the_builtin_ones():
    pynn.set_floatx("float64")
    try:
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((48, 4)), rng.standard_normal((48, 2))
        custom, plain = CustomFit(), Plain()
        custom.build((None, 4))
        plain.build((None, 4))
        plain.set_weights(custom.get_weights())
        for m in (custom, plain):
            m.compile(pynn.optimizers.SGD(0.05), "mse", metrics=["mae"])
        hc = custom.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history
        hp = plain.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history
        for a, b in zip(custom.get_weights(), plain.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        for k in ("loss", "mae"):
            np.testing.assert_allclose(hc[k], hp[k], rtol=1e-10)
        np.testing.assert_allclose(custom.evaluate(x, y, verbose=0),
                                   plain.evaluate(x, y, verbose=0), rtol=1e-10)
    finally:
        pynn.set_floatx("float32")


def test_tape_gives_none_for_an_unconnected_weight_and_apply_leaves_it():
    # Keras: tape.gradient gives None where the target does not depend on a source, and
    # optimizer.apply skips that variable (Adam would otherwise move it by its moments)
    used = pynn.Sequential([pynn.Input((3,)), L.Dense(2, name="used")])
    unused = pynn.Sequential([pynn.Input((3,)), L.Dense(2, name="unused")])
    x = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    weights = used.trainable_weights + unused.trainable_weights
    opt = pynn.optimizers.Adam(0.1)
    for step in range(2):
        with pynn.GradientTape() as tape:
            loss = pynn.ops.mean(pynn.ops.square(used(x, training=True)))
        grads = tape.gradient(loss, weights)
        assert [g is None for g in grads] == [False, False, True, True]
        before = [np.array(w.value, copy=True) for w in weights]
        opt.apply(grads, weights)
        after = [np.array(w.value) for w in weights]
        assert not np.array_equal(before[0], after[0])
        for b, a in zip(before[2:], after[2:]):
            np.testing.assert_array_equal(b, a)
