"""Custom losses (keras-io "Training & evaluation with the built-in methods"): a loss
is a plain function of ``(y_true, y_pred)`` written with ``pynn.ops``, or a
``pynn.losses.Loss`` subclass with only ``call()``; pynn derives the gradients. The
task is tutorial 001's: points in the first and third quadrants are class 1.

    python examples/custom_loss.py [--epochs 30] [--quick]
"""
import sys

import numpy as np

import _common
import pynn
from pynn import layers, ops


def logistic_loss(y_true, y_pred):
    """Binary cross-entropy on logits, as a plain function."""
    return ops.mean(ops.binary_crossentropy(y_true, y_pred, from_logits=True), axis=-1)


class FocalLoss(pynn.losses.Loss):
    """Binary cross-entropy on logits, down-weighting the easy examples."""

    def __init__(self, gamma=2.0, name="focal_loss"):
        super().__init__(name=name)
        self.gamma = gamma

    def call(self, y_true, y_pred):
        bce = ops.binary_crossentropy(y_true, y_pred, from_logits=True)
        p = ops.sigmoid(y_pred)
        p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
        return ops.mean(ops.power(1.0 - p_t, self.gamma) * bce, axis=-1)


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0], epochs=30, quick_epochs=10).parse_args(argv)
    epochs = _common.setup(args)
    x, y = _common.quadrant_data(args.seed)

    for loss in (logistic_loss, FocalLoss(gamma=2.0)):
        model = pynn.Sequential([pynn.Input((2,)), layers.Dense(16, activation="relu"),
                                 layers.Dense(1)])
        model.compile(optimizer=pynn.optimizers.Adam(0.02), loss=loss)
        history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
        accuracy = float(np.mean((model.predict(x, verbose=0) > 0) == (y > 0.5)))
        name = getattr(loss, "name", None) or loss.__name__
        print(f"{name}: loss {history.history['loss'][-1]:.4f}, accuracy {accuracy:.4f}")
    print(f"Final accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
