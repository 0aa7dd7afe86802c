"""Writing your own layers (keras-io "Making new layers and models via subclassing"):
``build`` creates the weights with ``add_weight``, ``call`` computes with ``pynn.ops``,
and pynn derives the gradients. A second layer adds an activity penalty with
``add_loss``, which ``fit`` adds to the loss it minimises. The task is tutorial 001's:
points in the first and third quadrants are class 1.

    python examples/custom_layer.py [--epochs 30] [--quick]
"""
import sys

import numpy as np

import _common
import pynn
from pynn import layers, ops


class Linear(layers.Layer):
    """y = x @ w + b, with an optional ReLU."""

    def __init__(self, units=32, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        y = ops.matmul(inputs, self.w) + self.b
        return ops.relu(y) if self.activation == "relu" else y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation}


class ActivityRegularization(layers.Layer):
    """Passes its input on and adds ``rate * mean(x**2)`` to the training loss."""

    def __init__(self, rate=1e-2, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * ops.mean(ops.square(inputs)))
        return inputs


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0], epochs=30, quick_epochs=10).parse_args(argv)
    epochs = _common.setup(args)
    x, y = _common.quadrant_data(args.seed)

    model = pynn.Sequential([pynn.Input((2,)), Linear(16, activation="relu"),
                             ActivityRegularization(1e-2), Linear(1)])
    model.compile(optimizer=pynn.optimizers.Adam(0.02),
                  loss=pynn.losses.BinaryCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    model.summary()
    penalty = float(model.losses[0])  # what add_loss added in the latest forward pass
    print(f"Loss {history.history['loss'][-1]:.4f} (activity penalty {penalty:.4f} "
          f"included)")
    accuracy = float(np.mean((model.predict(x, verbose=0) > 0) == (y > 0.5)))
    print(f"Final accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
