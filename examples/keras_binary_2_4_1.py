"""The Keras section of tutorial 000 (section 7): a 2-4-1 model, Adam, binary cross-entropy.

As in the tutorial the data are 100 standard-normal points with *random* 0/1 labels, so
there is nothing to learn: accuracy stays near chance (about 0.5). The point is the API:
``Sequential``, ``Dense(..., input_shape=(2,))``, ``summary()``, ``compile`` and ``fit`` with
``batch_size=32`` and ``validation_split=0.2``.

    python examples/keras_binary_2_4_1.py [--epochs 100] [--outdir DIR] [--quick]
"""
import sys

import numpy as np

import _common
from pynn.layers import Dense
from pynn.models import Sequential
from pynn.plot import plot_history


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0], epochs=100, quick_epochs=5).parse_args(argv)
    epochs = _common.setup(args)

    rng = np.random.RandomState(args.seed)
    X = rng.randn(2, 100)                 # shape [features, samples], as in the tutorial
    y = rng.randint(0, 2, (1, 100))       # random binary labels

    model = Sequential([
        Dense(4, activation="relu", input_shape=(2,)),
        Dense(1, activation="sigmoid"),
    ])
    model.summary()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(X.T, y.T, epochs=epochs, batch_size=32, validation_split=0.2,
                        verbose=2)

    _common.save_plot(args, "keras_binary_history.png",
                      lambda path: plot_history(history, path=path))
    accuracy = history.history["accuracy"][-1]
    val_accuracy = history.history["val_accuracy"][-1]
    print(f"Final accuracy: {accuracy:.4f} (validation accuracy {val_accuracy:.4f}; the labels "
          "are random)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
