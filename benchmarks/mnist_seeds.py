"""Test accuracy of the tutorial MNIST network after every epoch, per backend and seed.

784-256-128-10 ReLU, softmax, Adam, batch 32, full MNIST (the model of
tests/test_mnist_accuracy.py), evaluated on the 10,000 test images after each epoch, so
the spread from seed to seed and from one epoch to the next can be seen:

    PYNN_DATA_DIR=../shared/data python benchmarks/mnist_seeds.py --backends cython,numba \\
        --seeds 0,1,2,3,4 --epochs 10

Prints one Markdown row per backend and seed (accuracy in % after each epoch) and the
mean of the last epoch per backend. Reads the data like ``pynn.datasets.mnist`` (never
downloads).
"""
import argparse
import os
import sys

import numpy as np

try:
    import pynn  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pynn  # noqa: E402
from pynn.datasets import mnist  # noqa: E402
from pynn.layers import Dense  # noqa: E402
from pynn.models import Sequential  # noqa: E402


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def run(backend, seed, epochs, data):
    x_train, y_train, x_test, y_test = data
    pynn.set_seed(seed)
    with pynn.use_backend(backend):
        model = Sequential([Dense(256, activation="relu", input_shape=(784,)),
                            Dense(128, activation="relu"),
                            Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        accs = []
        for _ in range(epochs):
            model.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)
            accs.append(model.evaluate(x_test, y_test, verbose=0)[1])
    return accs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default=",".join(pynn.backends.available()),
                   help="comma-separated backends (default: every available one)")
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="e.g. 0,1,2")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args(argv)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(download=False)
    data = ((x_train / 255.0).reshape(-1, 784).astype(np.float32), y_train,
            (x_test / 255.0).reshape(-1, 784).astype(np.float32), y_test)
    print("| backend | seed | " + " | ".join(f"ep {e + 1}" for e in range(args.epochs)) + " |")
    print("|---|---:|" + "---:|" * args.epochs)
    last = {}
    for backend in [b for b in args.backends.split(",") if b]:
        for seed in args.seeds:
            accs = run(backend, seed, args.epochs, data)
            last.setdefault(backend, []).append(accs[-1])
            print(f"| {backend} | {seed} | " + " | ".join(f"{100 * a:.2f}" for a in accs)
                  + " |", flush=True)
    for backend, values in last.items():
        print(f"\n{backend}: epoch {args.epochs} mean {100 * np.mean(values):.2f}%, "
              f"min {100 * min(values):.2f}%, max {100 * max(values):.2f}% "
              f"over {len(values)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
