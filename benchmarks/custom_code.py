"""The tutorial MLP written three ways (issue 21): built-in layers, a subclassed
``pynn.Model`` of built-in layers, and custom layers built from ``pynn.ops`` (their
gradients from the tape), trained side by side, interleaved; plus the op path's
per-op overhead.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/custom_code.py \\
        [--backend cython] [--samples 8192] [--repeats 3]

784-256-128-10 ReLU/softmax, Adam, batch 32, random data of MNIST's shape. Prints a
Markdown table: seconds per epoch of ``--samples`` samples (medians of ``--repeats``
interleaved rounds) and each way's ratio to the built-in layers.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

try:
    import pynn
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import pynn
from pynn import layers, ops  # noqa: E402


class Linear(layers.Layer):
    """A Dense layer written with ops (what a Keras user would write)."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.act = units, activation

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units))
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, x):
        y = ops.matmul(x, self.w) + self.b
        return ops.relu(y) if self.act == "relu" else ops.softmax(y)


class MLP(pynn.Model):
    def __init__(self):
        super().__init__()
        self.d1 = layers.Dense(256, activation="relu")
        self.d2 = layers.Dense(128, activation="relu")
        self.d3 = layers.Dense(10, activation="softmax")

    def call(self, x):
        return self.d3(self.d2(self.d1(x)))


def models():
    builtin = pynn.Sequential([pynn.Input((784,)), layers.Dense(256, activation="relu"),
                               layers.Dense(128, activation="relu"),
                               layers.Dense(10, activation="softmax")])
    sub = MLP()
    sub.build((None, 784))
    custom = pynn.Sequential([pynn.Input((784,)), Linear(256, "relu"), Linear(128, "relu"),
                              Linear(10)])
    return {"built-in layers": builtin, "subclassed Model of built-in layers": sub,
            "custom layers from pynn.ops": custom}


def op_overhead(n=2000):
    """Microseconds per recorded op beyond NumPy's own work, on 32x32 arrays."""
    a = np.ones((32, 32), np.float32)
    t0 = time.perf_counter()
    for _ in range(n):
        np.add(a, a)
    plain = (time.perf_counter() - t0) / n
    with pynn.GradientTape() as tape:
        t = tape.leaf(a)
        t0 = time.perf_counter()
        for _ in range(n):
            ops.add(t, t)
        taped = (time.perf_counter() - t0) / n
    return (taped - plain) * 1e6, plain * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="cython")
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    pynn.set_backend(args.backend)
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    ms = models()
    for m in ms.values():
        m.compile("adam", "sparse_categorical_crossentropy")
        m.fit(x[:256], y[:256], batch_size=32, verbose=0)  # warm
    times = {k: [] for k in ms}
    for _ in range(args.repeats):
        for k, m in ms.items():
            t0 = time.perf_counter()
            m.fit(x, y, batch_size=32, epochs=1, verbose=0)
            times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["built-in layers"])
    print(f"Tutorial MLP, {args.samples} samples per epoch, batch 32, backend "
          f"{args.backend} (medians of {args.repeats} interleaved rounds)\n")
    print("| written as | s per epoch | vs built-in |\n| --- | ---: | ---: |")
    for k, v in times.items():
        med = statistics.median(v)
        print(f"| {k} | {med:.3f} | {med / base:.2f}x |")
    extra, plain = op_overhead()
    print(f"\nop path: {extra:.1f} us per recorded op beyond NumPy's {plain:.1f} us "
          f"(ops.add on 32x32 float32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
