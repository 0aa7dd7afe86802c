"""Quadrants problem with a 2-10-1 ReLU network trained on logits (tutorial 002).

Class 1 = points in the first or third quadrant of standard-normal 2-D data
(``generate_data``, seed 42). The output layer is linear and the loss is binary
cross-entropy computed from the logits (PyTorch's ``BCEWithLogitsLoss``); accuracy thresholds
the logits at 0. Full-batch SGD; the defaults are the from-scratch section's learning rate 0.1
and 2,000 epochs (the PyTorch section used ``--lr 0.01 --epochs 1000``).

    python examples/quadrants_2_10_1.py [--epochs 2000] [--lr 0.1] [--outdir DIR] [--quick]
"""
import sys

import numpy as np

import _common
from pynn.datasets import quadrants
from pynn.layers import Dense, Input
from pynn.losses import BinaryCrossentropy
from pynn.metrics import BinaryAccuracy
from pynn.models import Sequential
from pynn.optimizers import SGD
from pynn.plot import plot_decision_boundary, plot_history


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=2000, quick_epochs=300)
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--samples", type=int, default=1000, help="data points (default 1000)")
    args = p.parse_args(argv)
    epochs = _common.setup(args)

    X, y = quadrants(args.samples, random_state=args.seed, dtype="float32")
    model = Sequential([
        Input(shape=(2,)),
        Dense(10, activation="relu"),
        Dense(1),  # logits
    ])
    model.compile(optimizer=SGD(learning_rate=args.lr),
                  loss=BinaryCrossentropy(from_logits=True),
                  metrics=[BinaryAccuracy(name="accuracy", threshold=0.0)])
    history = model.fit(X, y, epochs=epochs, batch_size=len(X), shuffle=False, verbose=0)
    losses = history.history["loss"]
    step = max(epochs // 10, 1)
    for epoch in range(step - 1, epochs, step):
        print(f"Epoch [{epoch + 1}/{epochs}], Loss: {losses[epoch]:.4f}")

    logits = model.predict(X, verbose=0)
    accuracy = float(np.mean((logits >= 0) == (y > 0.5)))

    _common.save_plot(args, "quadrants_history.png",
                      lambda path: plot_history(history, path=path, title="2-10-1 on quadrants"))
    _common.save_plot(args, "quadrants_decision_boundary.png",
                      lambda path: plot_decision_boundary(model, X, y, path=path, logits=True))
    print(f"Final accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
