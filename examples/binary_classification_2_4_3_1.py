"""Binary classification with a 2-4-3-1 sigmoid network (tutorial 001, "Practical Example 1").

Data: ``make_classification(n_samples=1000, n_features=2, n_redundant=0, n_informative=2,
random_state=42, n_clusters_per_class=1)`` (the same points as scikit-learn's), split 80/20
with ``random_state=42``; full-batch SGD (learning rate 0.1) on binary cross-entropy for
2,000 epochs, sigmoid in every layer and He-normal weights as in the tutorial.

    python examples/binary_classification_2_4_3_1.py [--epochs 2000] [--outdir DIR] [--quick]
"""
import sys

import numpy as np

import _common
from pynn.datasets import make_classification, train_test_split
from pynn.layers import Dense, Input
from pynn.models import Sequential
from pynn.optimizers import SGD
from pynn.plot import plot_decision_boundary, plot_history


def main(argv=None):
    args = _common.parser(__doc__.splitlines()[0], epochs=2000, quick_epochs=300).parse_args(argv)
    epochs = _common.setup(args)

    X, y = make_classification(n_samples=1000, n_features=2, n_redundant=0, n_informative=2,
                               random_state=42, n_clusters_per_class=1)
    y = y.reshape(-1, 1)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)

    layers = [2, 4, 3, 1]
    model = Sequential([Input(shape=(layers[0],))] + [
        Dense(units, activation="sigmoid", kernel_initializer="he_normal")
        for units in layers[1:]])
    model.compile(optimizer=SGD(learning_rate=0.1), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=len(X_train), shuffle=False,
                        verbose=0)
    losses = history.history["loss"]
    for epoch in range(0, epochs, max(epochs // 10, 1)):
        print(f"Cost after epoch {epoch}: {losses[epoch]:.6f}")

    train_pred = (model.predict(X_train, verbose=0) > 0.5).astype(int)
    test_pred = (model.predict(X_test, verbose=0) > 0.5).astype(int)
    train_accuracy = float(np.mean(train_pred == y_train))
    test_accuracy = float(np.mean(test_pred == y_test))
    print(f"Training Accuracy: {train_accuracy * 100:.2f}%")
    print(f"Test Accuracy: {test_accuracy * 100:.2f}%")

    _common.save_plot(args, "binary_history.png",
                      lambda path: plot_history(history, metrics=["loss"], path=path,
                                                title="2-4-3-1: training cost"))
    _common.save_plot(args, "binary_decision_boundary.png",
                      lambda path: plot_decision_boundary(
                          model, X_test, y_test, path=path,
                          title="Neural Network Decision Boundary"))
    print(f"Final test accuracy: {test_accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
