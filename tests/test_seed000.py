"""Tutorial 000 (shared/seeds/000_*.txt), sections 7, 8 and 10, replayed with pynn.

The tutorial's Keras code runs as written; only the imports change (and, to keep
the test fast, MNIST is cut to a small slice right after ``load_data``, and the
``...`` the tutorial leaves in ``model.fit(..., callbacks=[lr_scheduler])`` is
filled in).
"""
import os
import warnings

import numpy as np
import pytest

import pynn

N_TRAIN, N_TEST = 1000, 300


def load_mnist():
    """``mnist.load_data()`` from pynn.datasets, or a tiny IDX reader if that is missing."""
    try:
        from pynn.datasets import mnist
    except ImportError:  # pragma: no cover - before pynn.datasets existed
        return _read_idx_mnist()
    return mnist.load_data(download=False)


def _read_idx_mnist():  # pragma: no cover - fallback only
    import gzip
    root = os.path.join(os.environ["PYNN_DATA_DIR"], "mnist")

    def read(name):
        with gzip.open(os.path.join(root, name)) as f:
            data = f.read()
        ndim = data[3]
        dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)

    return ((read("train-images-idx3-ubyte.gz"), read("train-labels-idx1-ubyte.gz")),
            (read("t10k-images-idx3-ubyte.gz"), read("t10k-labels-idx1-ubyte.gz")))


needs_mnist = pytest.mark.skipif(
    not os.path.isdir(os.path.join(os.environ.get("PYNN_DATA_DIR", ""), "mnist")),
    reason="MNIST IDX files not found under $PYNN_DATA_DIR/mnist")


def test_section_7_binary_classification(capsys):
    pynn.set_seed(0)
    # ---- tutorial section 6.7 data + 7.2 / 7.3, imports changed ----
    from pynn.models import Sequential
    from pynn.layers import Dense

    X = np.random.randn(2, 100)  # Shape: [features, samples]
    y = np.random.randint(0, 2, (1, 100))  # Binary labels (0/1)

    # Define model
    model = Sequential([
        Dense(4, activation='relu', input_shape=(2,)),  # Hidden layer: 4 neurons, ReLU
        Dense(1, activation='sigmoid')  # Output layer: 1 neuron, sigmoid
    ])

    model.summary()  # Print architecture

    # Compile: define optimizer, loss, and metrics
    model.compile(
        optimizer='adam',  # Adaptive learning rate optimizer
        loss='binary_crossentropy',  # Loss for binary classification
        metrics=['accuracy']  # Track accuracy during training
    )

    # Train: use model.fit()
    history = model.fit(
        X.T, y.T,  # Keras expects [samples, features], so transpose X/y
        epochs=100,
        batch_size=32,  # Update weights after 32 samples
        validation_split=0.2  # Use 20% data for validation
    )
    # ---- end of tutorial code ----
    out = capsys.readouterr().out
    assert 'Model: "sequential' in out
    rows = [line.split() for line in out.splitlines() if "(Dense)" in line]
    assert [r[-1] for r in rows] == ["12", "5"]
    assert "Total params: 17" in out
    assert "Trainable params: 17" in out
    assert "Epoch 100/100" in out
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 100
    # random labels: nothing to learn, but the training loss must go down
    assert history.history["loss"][-1] < history.history["loss"][0]


@needs_mnist
def test_section_8_mnist_and_section_10_techniques(capsys):
    pynn.set_seed(0)
    # ---- tutorial section 8, imports changed ----
    from pynn.datasets import mnist  # noqa: F401  (the tutorial's import)
    from pynn.models import Sequential
    from pynn.layers import Dense

    # Load data (train/test split)
    (X_train, y_train), (X_test, y_test) = load_mnist()
    print(f"Train shape: {X_train.shape}, Test shape: {X_test.shape}")
    # test-only: a small slice keeps the test fast
    X_train, y_train = X_train[:N_TRAIN], y_train[:N_TRAIN]
    X_test, y_test = X_test[:N_TEST], y_test[:N_TEST]

    # Normalize pixel values to [0, 1]
    X_train = X_train / 255.0
    X_test = X_test / 255.0

    # Flatten 28x28 images to 784 features
    X_train = X_train.reshape(-1, 28*28)  # (-1 = 60000 samples)
    X_test = X_test.reshape(-1, 28*28)

    print(f"Flattened shape: {X_train.shape}")  # (60000, 784)

    model = Sequential([
        Dense(256, activation='relu', input_shape=(784,)),  # Hidden layer 1: 256 neurons
        Dense(128, activation='relu'),  # Hidden layer 2: 128 neurons
        Dense(10, activation='softmax')  # Output: 10 digits, softmax for probabilities
    ])

    model.compile(
        optimizer='adam',
        loss='sparse_categorical_crossentropy',  # Use for integer labels (y_train is 0-9)
        metrics=['accuracy']
    )

    # Train
    history = model.fit(
        X_train, y_train,
        epochs=10,
        batch_size=32,
        validation_split=0.1  # 10% of train data for validation
    )

    # Evaluate on test data
    test_loss, test_acc = model.evaluate(X_test, y_test)
    print(f"Test accuracy: {test_acc:.4f}")  # ~97-98% accuracy

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Predict on test sample
    sample_idx = 42  # Choose a sample
    sample = X_test[sample_idx].reshape(1, 784)  # Reshape to (1, 784)
    pred_probs = model.predict(sample)
    pred_class = np.argmax(pred_probs)  # Class with highest probability

    # Plot the image and prediction
    plt.imshow(X_test[sample_idx].reshape(28, 28), cmap='gray')
    plt.title(f"True: {y_test[sample_idx]}, Predicted: {pred_class}")
    plt.axis('off')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Agg cannot show a window
        plt.show()
    plt.close("all")
    # ---- end of section 8 ----
    out = capsys.readouterr().out
    assert "Train shape: (60000, 28, 28), Test shape: (10000, 28, 28)" in out
    assert f"Flattened shape: ({N_TRAIN}, 784)" in out
    assert "Epoch 10/10" in out
    assert len(history.history["val_accuracy"]) == 10
    assert history.history["accuracy"][-1] > 0.9
    assert test_acc > 0.8 and test_loss < 0.8
    assert pred_probs.shape == (1, 10) and pred_probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert pred_class == np.argmax(model.predict(X_test, verbose=0)[sample_idx])

    # ---- tutorial section 10.1, imports changed ----
    from pynn.callbacks import ReduceLROnPlateau

    # Reduce learning rate by 50% if validation loss plateaus for 3 epochs
    lr_scheduler = ReduceLROnPlateau(
        monitor='val_loss', factor=0.5, patience=3, min_lr=1e-7
    )

    # Pass to model.fit()  (the tutorial's "..." filled in)
    h10 = model.fit(X_train, y_train, epochs=4, batch_size=32, validation_split=0.1,
                    verbose=0, callbacks=[lr_scheduler])
    lrs = h10.history["learning_rate"]
    assert lrs[0] == pytest.approx(0.001)
    assert all(b <= a for a, b in zip(lrs, lrs[1:])) and min(lrs) >= 1e-7

    # ---- tutorial section 10.2, imports changed ----
    from pynn.layers import Dropout
    from pynn.regularizers import L2

    model = Sequential([
        Dense(256, activation='relu', kernel_regularizer=L2(0.001)),  # L2 regularization
        Dropout(0.2),  # Deactivate 20% of neurons
        Dense(128, activation='relu', kernel_regularizer=L2(0.001)),
        Dropout(0.2),
        Dense(10, activation='softmax')
    ])
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',
                  metrics=['accuracy'])
    h = model.fit(X_train, y_train, epochs=2, batch_size=32, verbose=0)
    assert model.built and model.count_params() == 784 * 256 + 256 + 256 * 128 + 128 + 1290
    assert len(model.losses) == 2 and all(p > 0 for p in model.losses)
    assert h.history["loss"][-1] < h.history["loss"][0]
    loss, acc = model.evaluate(X_test, y_test, verbose=0)
    assert acc > 0.7

    # ---- tutorial section 10.3, imports changed ----
    from pynn.layers import BatchNormalization
    from pynn.layers import Activation

    model = Sequential([
        Dense(256, input_shape=(784,)),
        BatchNormalization(),  # Normalize activations
        Activation('relu'),
        # ... rest of layers
        Dense(10, activation='softmax'),
    ])
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',
                  metrics=['accuracy'])
    model.summary()
    h = model.fit(X_train, y_train, epochs=2, batch_size=32, verbose=0)
    out = capsys.readouterr().out
    assert "Non-trainable params: 512" in out
    loss, acc = model.evaluate(X_test, y_test, verbose=0)
    assert acc > 0.7
