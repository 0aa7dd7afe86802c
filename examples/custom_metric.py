"""A custom metric (keras-io "Training & evaluation with the built-in methods"): a
``pynn.metrics.Metric`` subclass keeps its state in ``add_variable`` variables, adds
each batch in ``update_state``, and reports ``result``; ``fit`` and ``evaluate`` log
it beside the built-in ones. The task is tutorial 001's: points in the first and
third quadrants are class 1.

    python examples/custom_metric.py [--epochs 30] [--quick]
"""
import sys

import numpy as np

import _common
import pynn
from pynn import layers, ops


class BinaryTruePositives(pynn.metrics.Metric):
    """How many class-1 points the model calls class 1 (its output is a logit)."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros",
                                                name="true_positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        hits = ops.logical_and(ops.equal(ops.cast(y_true, "bool"), True),
                               ops.greater(y_pred, 0.0))
        hits = ops.cast(hits, "float64")
        if sample_weight is not None:
            hits = ops.multiply(hits, ops.reshape(ops.cast(sample_weight, "float64"), (-1, 1)))
        self.true_positives.assign(self.true_positives + ops.sum(hits))

    def result(self):
        return self.true_positives

    def reset_state(self):
        self.true_positives.assign(0.0)


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0], epochs=30, quick_epochs=10).parse_args(argv)
    epochs = _common.setup(args)
    x, y = _common.quadrant_data(args.seed)

    model = pynn.Sequential([pynn.Input((2,)), layers.Dense(16, activation="relu"),
                             layers.Dense(1)])
    model.compile(optimizer=pynn.optimizers.Adam(0.02),
                  loss=pynn.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[BinaryTruePositives()])
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    print(f"Last epoch: true positives {history.history['binary_true_positives'][-1]:.0f} "
          f"of {int(y.sum())}")
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    print(f"evaluate: loss {logs['loss']:.4f}, true positives "
          f"{logs['binary_true_positives']:.0f}")
    accuracy = float(np.mean((model.predict(x, verbose=0) > 0) == (y > 0.5)))
    print(f"Final accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
