"""XOR with a 2-4-1 sigmoid network (tutorial 001, "Practical Example 2").

Full-batch gradient descent (SGD, learning rate 1.0) on the four XOR points with binary
cross-entropy, weights drawn like the tutorial's ``randn * sqrt(2 / n_in)`` (He normal).

    python examples/xor_2_4_1.py [--epochs 5000] [--outdir example_output] [--quick]
"""
import sys

import numpy as np

import _common
from pynn.datasets import xor
from pynn.layers import Dense, Input
from pynn.models import Sequential
from pynn.optimizers import SGD
from pynn.plot import plot_decision_boundary, plot_history


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0], epochs=5000, quick_epochs=1000).parse_args(argv)
    epochs = _common.setup(args)

    X, y = xor()
    model = Sequential([
        Input(shape=(2,)),
        Dense(4, activation="sigmoid", kernel_initializer="he_normal"),
        Dense(1, activation="sigmoid", kernel_initializer="he_normal"),
    ])
    model.compile(optimizer=SGD(learning_rate=1.0), loss="binary_crossentropy",
                  metrics=["accuracy"])
    print("Training on XOR problem...")
    history = model.fit(X, y, epochs=epochs, batch_size=len(X), shuffle=False, verbose=0)
    losses = history.history["loss"]
    for epoch in range(0, epochs, max(epochs // 10, 1)):
        print(f"Cost after epoch {epoch}: {losses[epoch]:.6f}")

    predictions = model.predict(X, verbose=0)
    print("\nXOR Results:")
    for i in range(len(X)):
        p = predictions[i][0]
        print(f"Input: {X[i].astype(int)} -> Output: {p:.3f} -> Predicted: {int(p > 0.5)}")
    accuracy = float(np.mean((predictions > 0.5) == (y > 0.5)))

    _common.save_plot(args, "xor_history.png",
                      lambda path: plot_history(history, metrics=["loss"], path=path,
                                                title="XOR 2-4-1: training cost"))
    _common.save_plot(args, "xor_decision_boundary.png",
                      lambda path: plot_decision_boundary(model, X, y, path=path, margin=0.5,
                                                          title="XOR decision boundary"))
    print(f"Final accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
