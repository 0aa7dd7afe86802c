"""Command line: ``python -m pynn demo`` (the tutorial MNIST network) and ``python -m pynn bench``.

The ``pynn`` console script calls :func:`main`.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

from .callbacks import Callback

__all__ = ["main", "build_parser", "backend_report"]

DEMO_LAYERS = (256, 128)
N_CLASSES = 10


def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="pynn", description="pynn: fast CPU neural networks with a Keras-style API.")
    parser.add_argument("--version", action="version", version=f"pynn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench}")
    demo = sub.add_parser(
        "demo", help="train the tutorial MNIST MLP and report accuracy and speed",
        description="Train the tutorial network (784-256-128-10, ReLU, softmax, Adam, sparse "
                    "categorical cross-entropy, validation_split 0.1) on MNIST, then print the "
                    "test accuracy, the classification report and the seconds per epoch of "
                    "the active backend and of the NumPy reference backend. Uses full MNIST "
                    "when found (--data, $PYNN_DATA_DIR/mnist, ~/.cache/pynn/mnist), otherwise "
                    "the MNIST test set embedded in pynn, split 8,000 / 2,000.")
    demo.add_argument("--data", metavar="DIR", help="directory holding the four MNIST IDX files "
                      "(or a mnist/ subdirectory); nothing is downloaded")
    demo.add_argument("--epochs", type=int, default=None, help="epochs (default 10; 1 with "
                      "--quick)")
    demo.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    demo.add_argument("--backend", metavar="NAME", help="backend to train with (default: the "
                      "fastest available); see pynn.backends.available()")
    demo.add_argument("--reference-epochs", type=int, default=1, metavar="K",
                      help="epochs timed on the NumPy reference backend, on a subset and scaled "
                           "to the full epoch (default 1; 0 skips the reference)")
    demo.add_argument("--reference-samples", type=int, default=None, metavar="N",
                      help="training samples for the reference timing (default 6000; 512 with "
                           "--quick)")
    demo.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    demo.add_argument("--quick", action="store_true",
                      help="a fast smoke run: 2,000 training and 1,000 test samples, 1 epoch")
    sub.add_parser("bench", help="run the benchmark suite (python -m pynn bench --help)",
                   add_help=False)
    return parser


class EpochTimer(Callback):
    """Records the wall time of each epoch (training plus validation) in ``seconds``."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _build_model(seed):
    from ._config import set_seed
    from .layers import Dense, Input
    from .models import Sequential

    set_seed(seed)
    model = Sequential([Input(shape=(784,))]
                       + [Dense(units, activation="relu") for units in DEMO_LAYERS]
                       + [Dense(N_CLASSES, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def backend_report(active, names, missing):
    """Lines naming the backend in use, the available ones, and why each other one is
    missing (with a hint when pynn runs from a source tree whose extension is not built)."""
    lines = [f"Backend: {active} (available: {', '.join(names)})"]
    for name, reason in missing.items():
        lines.append(f"  {name} unavailable: {reason}")
    if "cython" in missing:
        from . import __file__ as init
        root = os.path.dirname(os.path.dirname(os.path.abspath(init)))
        if os.path.exists(os.path.join(root, "setup.py")):
            lines.append(f"  (pynn was imported from the source tree {root}, where the Cython "
                         f"extension is not built: install it with `pip install .` and run "
                         f"`pynn demo`, or build it in place with `python setup.py "
                         f"build_ext --inplace`)")
    return lines


def _prepare(x):
    import numpy as np

    return (x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(255.0))


def _demo(args):
    import numpy as np

    from . import __version__, backends
    from .datasets import DatasetNotFoundError, IDXFormatError, mnist
    from .metrics import classification_report

    if args.batch_size < 1:
        print(f"pynn demo: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    if args.reference_epochs < 0:
        print(f"pynn demo: --reference-epochs must be >= 0, got {args.reference_epochs}",
              file=sys.stderr)
        return 2
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 10)
    if epochs < 1:
        print(f"pynn demo: --epochs must be >= 1, got {epochs}", file=sys.stderr)
        return 2
    try:
        names, missing = backends.available(), backends.unavailable()
        if args.backend:
            try:
                backends.set_backend(args.backend)
            except (ValueError, RuntimeError) as exc:
                print(f"pynn demo: {exc}; available: {', '.join(names)}", file=sys.stderr)
                return 2
        backend = backends.get_backend()
    except (ValueError, RuntimeError) as exc:  # PYNN_BACKEND / PYNN_BLAS set wrongly
        print(f"pynn demo: {exc}", file=sys.stderr)
        return 2

    try:
        ((x_train, y_train), (x_test, y_test)), source = mnist.load_data_or_embedded(
            args.data, download=False, seed=args.seed)
    except (DatasetNotFoundError, IDXFormatError) as exc:
        print(f"pynn demo: {exc}", file=sys.stderr)
        return 2
    if args.quick:
        x_train, y_train = x_train[:2000], y_train[:2000]
        x_test, y_test = x_test[:1000], y_test[:1000]
        source += "; --quick: first 2,000 train / 1,000 test samples"
    x_train, x_test = _prepare(x_train), _prepare(x_test)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    n_fit = x_train.shape[0] - int(x_train.shape[0] * 0.1)

    print(f"pynn {__version__} demo: MNIST MLP 784-256-128-10 (ReLU, softmax), Adam, "
          f"batch {args.batch_size}, sparse categorical cross-entropy, validation_split 0.1")
    print(f"Data: {source}")
    print(f"      {x_train.shape[0]:,} train ({n_fit:,} fit + {x_train.shape[0] - n_fit:,} "
          f"validation) / {x_test.shape[0]:,} test")
    for line in backend_report(backend.name, names, missing):
        print(line)
    print()

    model = _build_model(args.seed)
    timer = EpochTimer()
    model.fit(x_train, y_train, epochs=epochs, batch_size=args.batch_size,
              validation_split=0.1, callbacks=[timer], verbose=1)
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    probs = model.predict(x_test, batch_size=256, verbose=0)
    y_pred = np.argmax(probs, axis=1)

    print()
    print(f"Test accuracy: {test_acc:.4f} (test loss {test_loss:.4f})")
    print()
    print(classification_report(y_test, y_pred, labels=list(range(N_CLASSES)), digits=4))

    secs = timer.seconds
    if len(secs) > 1:
        active, how = float(np.mean(secs[1:])), (f"mean of epochs 2-{len(secs)}; epoch 1 "
                                                f"{secs[0]:.2f} s incl. warm-up")
    else:
        active, how = secs[0], "1 epoch, incl. warm-up"
    print(f"Seconds per epoch ({n_fit:,} samples + validation, batch {args.batch_size}):")
    print(f"  {backend.name + ' (active)':<22} {active:9.3f} s   ({how})")

    reference = None
    if backend.name == "numpy":
        print("  the active backend is the NumPy reference")
    elif args.reference_epochs > 0:
        n_ref = args.reference_samples or (512 if args.quick else 6000)
        n_ref = max(min(n_ref, x_train.shape[0]), 20)
        with backends.use_backend("numpy"):
            ref_model = _build_model(args.seed)
            ref_timer = EpochTimer()
            ref_model.fit(x_train[:n_ref], y_train[:n_ref], epochs=args.reference_epochs,
                          batch_size=args.batch_size, validation_split=0.1,
                          callbacks=[ref_timer], verbose=0)
        scale = x_train.shape[0] / n_ref
        reference = float(np.mean(ref_timer.seconds)) * scale
        k = args.reference_epochs
        print(f"  {'numpy (reference)':<22} {reference:9.3f} s   (estimated: {k} epoch"
              f"{'s' if k > 1 else ''} on {n_ref:,} samples, scaled x{scale:.1f})")
        print(f"  speed-up of {backend.name} over the reference: {reference / active:.1f}x")
    return 0


def _bench(argv):
    if importlib.util.find_spec("pynn.bench") is None:
        print("pynn bench: the benchmark suite (pynn.bench) is not part of this installation; "
              "run benchmarks/run.py from a source checkout", file=sys.stderr)
        return 1
    from . import bench

    return bench.main(argv) or 0


def main(argv=None):
    """Entry point of ``python -m pynn`` and the ``pynn`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
