"""MNIST with the tutorial's optimisation techniques (tutorial 000, section 10).

The 784-256-128-10 MLP with L2(0.001) kernel regularisation, BatchNormalization before each
ReLU, Dropout(0.2) after it, and ``ReduceLROnPlateau(monitor='val_loss', factor=0.5,
patience=3, min_lr=1e-7)``; Adam, sparse categorical cross-entropy, batch 32,
``validation_split=0.1``. Data as in ``mnist_mlp.py``.

    python examples/mnist_regularized.py [--epochs 10] [--data DIR] [--outdir DIR] [--quick]
"""
import sys

import numpy as np

import _common
from mnist_mlp import load
from pynn.callbacks import ReduceLROnPlateau
from pynn.layers import Activation, BatchNormalization, Dense, Dropout, Input
from pynn.metrics import classification_report
from pynn.models import Sequential
from pynn.plot import plot_confusion_matrix, plot_history
from pynn.regularizers import L2


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=10, quick_epochs=2, seed=0)
    p.add_argument("--data", default=None, help="directory with the MNIST IDX files")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    epochs = _common.setup(args)

    (X_train, y_train), (X_test, y_test) = load(args)
    X_train = X_train.reshape(-1, 784).astype("float32") / 255.0
    X_test = X_test.reshape(-1, 784).astype("float32") / 255.0

    model = Sequential([
        Input(shape=(784,)),
        Dense(256, kernel_regularizer=L2(0.001)),
        BatchNormalization(),
        Activation("relu"),
        Dropout(0.2),
        Dense(128, kernel_regularizer=L2(0.001)),
        BatchNormalization(),
        Activation("relu"),
        Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    model.summary()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    lr_scheduler = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-7)
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=args.batch_size,
                        validation_split=0.1, callbacks=[lr_scheduler])
    if "learning_rate" in history.history:
        rates = ", ".join(f"{lr:.2e}" for lr in history.history["learning_rate"])
        print(f"Learning rate per epoch: {rates}")

    test_loss, test_acc = model.evaluate(X_test, y_test, verbose=0)
    print(f"Test loss: {test_loss:.4f}")
    y_pred = np.argmax(model.predict(X_test, verbose=0), axis=1)
    print(classification_report(y_test, y_pred))

    _common.save_plot(args, "mnist_regularized_history.png",
                      lambda path: plot_history(history, path=path))
    _common.save_plot(args, "mnist_regularized_confusion_matrix.png",
                      lambda path: plot_confusion_matrix(y_test, y_pred, labels=list(range(10)),
                                                         path=path, normalize=True))
    print(f"Test accuracy: {test_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
