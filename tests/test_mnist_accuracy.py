"""The tutorial's MNIST network reaches 98% test accuracy on every CPU backend.

784-256-128-10 ReLU, softmax, Adam, batch 32, 10 epochs, full MNIST (seed 000,
section 8). Slow (about a minute per backend): run with ``pytest -m slow``; CI runs it
in its own step.
"""
import time

import numpy as np
import pytest

import pynn
from pynn.datasets import mnist
from pynn.layers import Dense
from pynn.models import Sequential

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data():
    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data(download=False)
    except (OSError, ValueError) as exc:  # no full MNIST here: say so, never download
        pytest.skip(f"full MNIST not found ({exc}); set PYNN_DATA_DIR")
    x_train = (x_train / 255.0).reshape(-1, 784).astype(np.float32)
    x_test = (x_test / 255.0).reshape(-1, 784).astype(np.float32)
    return x_train, y_train, x_test, y_test


def test_mnist_mlp_reaches_98_percent(backend_name, data):
    x_train, y_train, x_test, y_test = data
    pynn.set_seed(0)
    with pynn.use_backend(backend_name):
        model = Sequential([
            Dense(256, activation="relu", input_shape=(784,)),
            Dense(128, activation="relu"),
            Dense(10, activation="softmax"),
        ])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        t0 = time.perf_counter()
        history = model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
        seconds = (time.perf_counter() - t0) / 10
        loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"\n{backend_name}: test accuracy {acc:.4f}, loss {loss:.4f}, "
          f"{seconds:.2f} s/epoch, final train loss {history.history['loss'][-1]:.4f}")
    # The bar: 98.0%. All CPU backends follow the NumPy reference's training
    # trajectory bit for bit (test_model.py, test_compiled_backends_follow_...), so they
    # land on the same accuracy: 98.08% for seed 0 (seed 1: 98.22-98.33%). The recipe
    # itself spreads 97.2-98.3% over seeds (benchmarks/mnist_seeds.py), on PyTorch alike.
    assert acc >= 0.98
