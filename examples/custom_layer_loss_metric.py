"""Custom pieces as the keras-io guides write them, trained with ``fit``: a layer with
``build``/``add_weight``/``call``, a loss written as a ``Loss`` subclass with only
``call()``, a loss given as a plain function, and a ``Metric`` subclass with
``add_variable``/``update_state``/``result`` -- all built from ``pynn.ops``, their
gradients derived by pynn. The task is tutorial 001's: points in the first and third
quadrants are class 1.

    python examples/custom_layer_loss_metric.py [--epochs 40] [--quick]
"""
import sys

import numpy as np

import _common
import pynn
from pynn import layers, ops


class Linear(layers.Layer):
    """keras-io "Making new layers and models via subclassing": y = x @ w + b."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class FocalLikeLoss(pynn.losses.Loss):
    """Binary cross-entropy on logits, down-weighting easy examples (a call()-only
    Loss subclass)."""

    def __init__(self, gamma=1.0, name="focal_like"):
        super().__init__(name=name)
        self.gamma = gamma

    def call(self, y_true, y_pred):
        bce = ops.binary_crossentropy(y_true, y_pred, from_logits=True)
        p = ops.sigmoid(y_pred)
        p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
        return ops.mean(ops.power(1.0 - p_t, self.gamma) * bce, axis=-1)


def logistic_loss(y_true, y_pred):
    """A loss as a plain function of (y_true, y_pred)."""
    return ops.mean(ops.binary_crossentropy(y_true, y_pred, from_logits=True), axis=-1)


class BinaryTruePositives(pynn.metrics.Metric):
    """keras-io "Training & evaluation with the built-in methods": true positives."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros",
                                                name="true_positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ops.logical_and(ops.equal(ops.cast(y_true, "bool"), True),
                                 ops.greater(y_pred, 0.0))  # logits: > 0 means class 1
        self.true_positives.assign(self.true_positives + ops.sum(ops.cast(values,
                                                                           "float64")))

    def result(self):
        return self.true_positives


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0], epochs=40, quick_epochs=15).parse_args(argv)
    epochs = _common.setup(args)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((1000, 2)).astype("float32")
    y = ((x[:, 0] > 0) == (x[:, 1] > 0)).astype("float32")[:, None]

    for loss in (FocalLikeLoss(gamma=1.0), logistic_loss):
        model = pynn.Sequential([pynn.Input((2,)), Linear(16), layers.Activation("relu"),
                                 Linear(1)])
        model.compile(optimizer=pynn.optimizers.Adam(0.02), loss=loss,
                      metrics=[BinaryTruePositives()])
        history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
        accuracy = float(np.mean((model.predict(x, verbose=0) > 0) == (y > 0.5)))
        name = getattr(loss, "name", None) or loss.__name__
        print(f"{name}: loss {history.history['loss'][-1]:.4f}, true positives "
              f"{history.history['binary_true_positives'][-1]:.0f} of {int(y.sum())}, "
              f"accuracy {accuracy:.4f}")
    print(f"Final accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
