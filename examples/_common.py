"""Shared command-line plumbing of the example scripts (not part of the pynn API)."""
import argparse
import os
import sys

try:
    import pynn  # noqa: F401
except ImportError:  # running from a source checkout that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import pynn  # noqa: F401


def parser(description, epochs, quick_epochs, seed=42):
    """An ArgumentParser with the options every example takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {epochs}; {quick_epochs} with --quick)")
    p.add_argument("--outdir", default="example_output",
                   help="directory for the plots (default ./example_output)")
    p.add_argument("--quick", action="store_true", help="tiny data / few epochs (smoke test)")
    p.add_argument("--seed", type=int, default=seed, help=f"random seed (default {seed})")
    p.add_argument("--backend", default=None, help="pynn backend (default: fastest available)")
    p.set_defaults(_epochs=(epochs, quick_epochs))
    return p


def setup(args):
    """Apply --backend and --seed, create --outdir; returns the number of epochs."""
    if args.backend:
        pynn.set_backend(args.backend)
    pynn.set_seed(args.seed)
    os.makedirs(args.outdir, exist_ok=True)
    full, quick = args._epochs
    return args.epochs if args.epochs is not None else (quick if args.quick else full)


def quadrant_data(seed, n=1000):
    """``n`` random 2-D points labelled 1 where both coordinates share a sign (the custom-
    piece examples' task: not linearly separable, learnt in seconds)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).astype("float32")
    return x, ((x[:, 0] > 0) == (x[:, 1] > 0)).astype("float32")[:, None]


def save_plot(args, filename, make):
    """Call ``make(path)`` to draw and save a figure; report it (or why plots are skipped)."""
    path = os.path.join(args.outdir, filename)
    try:
        fig = make(path)
    except ImportError as exc:
        print(f"(plot {filename} skipped: {exc})")
        return None
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"Saved {path}")
    return path
