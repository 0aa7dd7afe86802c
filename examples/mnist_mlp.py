"""MNIST digits with the tutorial's 784-256-128-10 MLP (tutorial 000, sections 8 and 9).

Loads MNIST (``mnist.load_data()``: ``--data DIR``, ``$PYNN_DATA_DIR``, the cache, else a
download; the embedded 10,000-image test set when none of those works), scales pixels to
[0, 1], flattens to 784 features, trains with Adam on sparse categorical cross-entropy
(batch 32, ``validation_split=0.1``), evaluates on the test set, predicts sample 42, prints
the classification report and saves the training curves, the sample and the confusion matrix.

    python examples/mnist_mlp.py [--epochs 10] [--data DIR] [--outdir DIR] [--quick]
"""
import sys

import numpy as np

import _common
from pynn.datasets import DatasetError, mnist
from pynn.layers import Dense
from pynn.metrics import classification_report
from pynn.models import Sequential
from pynn.plot import plot_confusion_matrix, plot_history


def load(args):
    """MNIST as the tutorial uses it, with the fallbacks described in the module docstring."""
    if args.quick:
        data, source = mnist.load_data_or_embedded(args.data, download=False)
    else:
        try:
            data, source = mnist.load_data(args.data), "full MNIST"
        except DatasetError as exc:
            if args.data is not None:
                raise
            print(f"{exc}\nFalling back to the embedded test set.")
            data, source = mnist.load_data_or_embedded(download=False)
    (X_train, y_train), (X_test, y_test) = data
    if args.quick:
        X_train, y_train = X_train[:2000], y_train[:2000]
        X_test, y_test = X_test[:500], y_test[:500]
        source += " (--quick: 2,000 train / 500 test samples)"
    print(f"Data: {source}")
    return (X_train, y_train), (X_test, y_test)


def save_sample(path, image, true, pred):
    from matplotlib.figure import Figure  # pyplot-free: no GUI needed

    fig = Figure(figsize=(3, 3))
    ax = fig.subplots()
    ax.imshow(image.reshape(28, 28), cmap="gray")
    ax.set_title(f"True: {true}, Predicted: {pred}")
    ax.axis("off")
    fig.savefig(path)
    return fig


def main(argv=None):
    p = _common.parser(__doc__.splitlines()[0], epochs=10, quick_epochs=1, seed=0)
    p.add_argument("--data", default=None, help="directory with the MNIST IDX files")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    epochs = _common.setup(args)

    (X_train, y_train), (X_test, y_test) = load(args)
    print(f"Train shape: {X_train.shape}, Test shape: {X_test.shape}")
    X_train = X_train.reshape(-1, 28 * 28).astype("float32") / 255.0
    X_test = X_test.reshape(-1, 28 * 28).astype("float32") / 255.0
    print(f"Flattened shape: {X_train.shape}")

    model = Sequential([
        Dense(256, activation="relu", input_shape=(784,)),
        Dense(128, activation="relu"),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=args.batch_size,
                        validation_split=0.1)
    test_loss, test_acc = model.evaluate(X_test, y_test, verbose=0)
    print(f"Test loss: {test_loss:.4f}")

    sample_idx = 42 if len(X_test) > 42 else 0
    pred_probs = model.predict(X_test[sample_idx].reshape(1, 784), verbose=0)
    pred_class = int(np.argmax(pred_probs))
    print(f"Sample {sample_idx}: true {y_test[sample_idx]}, predicted {pred_class}")

    y_pred_classes = np.argmax(model.predict(X_test, verbose=0), axis=1)
    print(classification_report(y_test, y_pred_classes))

    _common.save_plot(args, "mnist_history.png", lambda path: plot_history(history, path=path))
    _common.save_plot(args, f"mnist_sample_{sample_idx}.png",
                      lambda path: save_sample(path, X_test[sample_idx], y_test[sample_idx],
                                               pred_class))
    _common.save_plot(args, "mnist_confusion_matrix.png",
                      lambda path: plot_confusion_matrix(y_test, y_pred_classes,
                                                         labels=list(range(10)), path=path))
    print(f"Test accuracy: {test_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
