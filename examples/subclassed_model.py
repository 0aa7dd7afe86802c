"""A model written as a class (keras-io "Making new layers and models via
subclassing"): layers assigned in ``__init__`` are tracked, ``call`` wires them, and
``fit``/``evaluate``/``predict``/``summary`` work as for any model. With
``get_config`` and ``@register_keras_serializable`` the whole model saves and loads
again (a file never makes pynn import code: only registered classes, or those passed
in ``custom_objects``, are rebuilt). Data: MNIST (``PYNN_DATA_DIR`` or ``--data``),
else the embedded test set.

    python examples/subclassed_model.py [--epochs 3] [--data DIR] [--quick]
"""
import os
import sys

import numpy as np

import _common
import pynn
from pynn import layers, ops
from pynn.datasets import mnist
from pynn.saving import register_keras_serializable


@register_keras_serializable(package="examples")
class MLP(pynn.Model):
    """Flatten, Dense(hidden) and ReLU, Dropout while training, Dense(10) logits."""

    def __init__(self, hidden=128, dropout=0.2, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.dropout_rate = hidden, dropout
        self.flatten = layers.Flatten()
        self.fc1 = layers.Dense(hidden)
        self.dropout = layers.Dropout(dropout)
        self.fc2 = layers.Dense(10)

    def call(self, x, training=False):
        x = ops.relu(self.fc1(self.flatten(x)))
        return self.fc2(self.dropout(x, training=training))

    def get_config(self):
        return {"hidden": self.hidden, "dropout": self.dropout_rate, "name": self.name}


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=3, quick_epochs=2)
    p.add_argument("--data", default=None, help="directory holding the MNIST files")
    args = p.parse_args(argv)
    epochs = _common.setup(args)
    (x_train, y_train), (x_test, y_test) = mnist.load_data_or_embedded(args.data)[0]
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], \
            y_test[:1000]
    x_train, x_test = x_train.astype("float32") / 255.0, x_test.astype("float32") / 255.0

    model = MLP(hidden=128)
    model.compile(optimizer="adam",
                  loss=pynn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, validation_split=0.1,
              verbose=2)
    model.summary()
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)

    path = os.path.join(args.outdir, "subclassed_mlp.keras")
    model.save(path)
    restored = pynn.models.load_model(path)  # MLP is registered: no custom_objects
    same = np.array_equal(restored.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    print(f"Saved and reloaded {type(restored).__name__} ({path}): same predictions: {same}")
    print(f"Final test accuracy: {accuracy:.4f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
