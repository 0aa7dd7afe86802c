"""The command line ``python -m pynn bench``: the parser, and ``main``, which runs the
sections asked for and writes the JSON report and the chart."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import numpy as np

from .. import backends as _backends
from .cnn import cnn_backends
from .cnn_contestants import CNN_PEERS
from .cnn_section import run_cnn
from .constants import (BATCHES, CNN_BATCHES, CNN_PREDICT_BATCH, CUSTOM_BATCHES,
                        CUSTOM_SAMPLES, LEARNING_RATES, OPS_PAUSE_S, PAUSE_S,
                        PREDICT_BATCHES, QUICK_BATCHES, QUICK_CUSTOM_BATCHES,
                        QUICK_CNN_BATCHES, QUICK_CNN_PREDICT_BATCH, QUICK_CNN_SAMPLES,
                        QUICK_PREDICT_BATCHES, QUICK_RNN_BATCHES, QUICK_RNN_LENGTH,
                        QUICK_RNN_TIMED_STEPS, QUICK_SAMPLES, QUICK_TRAIN_BATCHES, RNN_BATCHES,
                        RNN_LENGTH, RNN_TIMED_STEPS)
from .custom_section import run_custom
from .contestants import PEERS, default_peers, models_status, train_contestants
from .environment import (default_backends, override_warning, report_header, report_meta,
                          single_threaded)
from .plot import plot
from .rnn_contestants import RNN_PEERS
from .rnn import RNN_CELLS
from .rnn_section import run_rnn
from .sections import run_dense, run_ops, run_train
from .startup import run_startup


def _int_list(s):
    try:
        vals = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}")
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return vals


def _name_list(s):
    return tuple(v.strip() for v in s.split(",") if v.strip())


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m pynn bench",
        description="Benchmark pynn's backends (ops, one dense layer, MLP training, a "
                    "convnet) against each other and against PyTorch, NumPy, "
                    "scikit-learn and Keras.",
        epilog="With none of --ops/--dense/--train/--cnn/--rnn/--custom/--startup, the first "
               "three run (training only when pynn.models works); --cnn, --rnn, --custom "
               "and --startup run "
               "only when asked. "
               "For trustworthy numbers unset OpenBLAS overrides for "
               "the command: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pynn "
               "bench")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and 1 repeat: a smoke test for CI, not a measurement")
    p.add_argument("--ops", action="store_true", help="per-op table (a)")
    p.add_argument("--dense", action="store_true", help="dense layer table (b)")
    p.add_argument("--train", action="store_true", help="training epoch table (c)")
    p.add_argument("--cnn", action="store_true",
                   help="convnet table (e), only when asked: seconds per epoch of the "
                        "keras-io MNIST convnet with Adam (default batches 32,128) for "
                        "the compiled pynn backends (numpy only when named in "
                        "--backends), PyTorch NCHW and channels-last, Keras 3 on torch, "
                        "and its matrix products alone; then predict at batch 1024")
    p.add_argument("--rnn", action="store_true",
                   help="recurrent table (f), only when asked: seconds per epoch (25,000 "
                        "samples, extrapolated from a few timed batches) of the keras-io "
                        "IMDB bidirectional LSTM classifier and its GRU variant (default "
                        "batches 32,128) for the compiled pynn backends, PyTorch, Keras 3 "
                        "on torch and the products alone; then one LSTM/GRU layer's "
                        "training step beside its own matrix products")
    p.add_argument("--rnn-cells", type=_name_list, default=None,
                   help="cells of the --rnn table: lstm,gru (default both)")
    p.add_argument("--custom", action="store_true",
                   help="custom-code table (g), only when asked: seconds per epoch of the "
                        "tutorial MLP written three ways (built-in layers, a subclassed "
                        "Model of built-in layers, custom layers from pynn.ops; 16,384 "
                        "samples, Adam, default batches 32,128) on the compiled pynn "
                        "backends, their ratios, and the op path's per-op overhead")
    p.add_argument("--mpi", action="store_true",
                   help="data-parallel table (h), only when asked: allreduce latency and "
                        "bandwidth on loopback, and the step time of the tutorial MLP and "
                        "the convnet on 2 MPI ranks x 1 thread against 1 process x 2 "
                        "threads, with the share spent communicating and a scaling "
                        "estimate for N machines (needs pynn[mpi])")
    p.add_argument("--startup", action="store_true",
                   help="start-up table (d): import, first-epoch compilation, allocations "
                        "per step, for the MLP and the convnet, and the LSTM classifier "
                        "with --rnn (only when asked)")
    p.add_argument("--json", metavar="PATH", help="write all measurements as JSON")
    p.add_argument("--plot", metavar="PATH", help="save a bar chart (needs matplotlib)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed samples per measurement, median reported (default 3; "
                        "1 with --quick)")
    p.add_argument("--backends", type=_name_list, default=None,
                   help="comma-separated backends (default: every available one)")
    p.add_argument("--batches", type=_int_list, default=None,
                   help="batch sizes (default 32,128,1024; 32,128 for --cnn)")
    p.add_argument("--samples", type=int, default=None,
                   help="training samples per epoch (default 60000)")
    p.add_argument("--data", metavar="DIR", nargs="?", const="",
                   help="train (--train, --cnn) on real MNIST from DIR (IDX .gz files; "
                        "default $PYNN_DATA_DIR/mnist) instead of random data")
    p.add_argument("--optimizers", type=_name_list, default=("sgd", "adam"),
                   help="optimizers of the training table (default sgd,adam)")
    p.add_argument("--peers", type=_name_list, default=None,
                   help="peers of the training table: torch,torch-cuda,numpy,sklearn "
                        "(default torch,numpy,sklearn, and torch-cuda when a GPU is "
                        "there); of the --cnn and --rnn tables: torch,keras (default both)")
    p.add_argument("--no-peers", action="store_true", help="train pynn backends only")
    return p


def main(argv=None):
    """Run the benchmarks; returns 0. See ``python -m pynn bench --help``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for opt in args.optimizers:
        if opt not in LEARNING_RATES:
            parser.error(f"--optimizers: unknown {opt!r}; expected sgd or adam")
    for peer in args.peers or ():
        if peer not in PEERS + CNN_PEERS + RNN_PEERS:
            parser.error(f"--peers: unknown {peer!r}; expected one of "
                         f"{', '.join(dict.fromkeys(PEERS + CNN_PEERS + RNN_PEERS))}")
    if args.no_peers:
        peers = cnn_peers = rnn_peers = ()
    elif args.peers:
        peers = tuple(p for p in args.peers if p in PEERS)
        cnn_peers = tuple(p for p in args.peers if p in CNN_PEERS)
        rnn_peers = tuple(p for p in args.peers if p in RNN_PEERS)
    else:
        peers, cnn_peers, rnn_peers = default_peers(), CNN_PEERS, RNN_PEERS
    args.cnn_peers, args.rnn_peers = cnn_peers, rnn_peers
    for cell in args.rnn_cells or ():
        if cell not in RNN_CELLS:
            parser.error(f"--rnn-cells: unknown {cell!r}; expected one of "
                         f"{', '.join(RNN_CELLS)}")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    avail = _backends.available()
    if args.backends:
        missing = _backends.unavailable()
        for name in args.backends:
            if name not in avail:
                why = missing.get(name, "unknown backend")
                parser.error(f"--backends: {name!r} is not available ({why}); "
                             f"available: {', '.join(avail)}")
        names = [n for n in avail if n in args.backends]
    else:
        names = default_backends(avail)

    sections = [s for s in ("ops", "dense", "train", "cnn", "rnn", "custom", "startup", "mpi")
                if getattr(args, s)]
    models_why = models_status()
    if not sections:
        sections = ["ops", "dense"] + (["train"] if models_why is None else [])

    quick = args.quick
    data_dir = None
    if args.data is not None:
        data_dir = args.data or os.path.join(os.environ.get("PYNN_DATA_DIR", ""), "mnist")
        if not os.path.isfile(os.path.join(data_dir, "train-images-idx3-ubyte.gz")):
            parser.error(f"--data: no train-images-idx3-ubyte.gz in {data_dir!r}")
    args.data_dir = data_dir

    contestants = None
    if "train" in sections:
        # load the peers first so threadpoolctl reports their thread pools too
        contestants = train_contestants(names, peers, torch_threads=1 if quick else 2)
    with contextlib.ExitStack() as stack:
        if quick:
            # a smoke test measures nothing: one thread per pool keeps it fast on a busy
            # machine, where spinning BLAS workers otherwise stall tiny products
            stack.enter_context(single_threaded())
        return _run(args, names, sections, models_why, contestants, peers)


def _run(args, names, sections, models_why, contestants, peers):
    quick = args.quick
    batches = args.batches or (QUICK_BATCHES if quick else BATCHES)
    train_batches = args.batches or (QUICK_TRAIN_BATCHES if quick else BATCHES)
    predict_batches = QUICK_PREDICT_BATCHES if quick else PREDICT_BATCHES
    n_samples = args.samples or (QUICK_SAMPLES if quick else 60_000)
    target_s = 0.0 if quick else 0.05
    pause = 0.0 if quick else PAUSE_S
    data_dir = args.data_dir
    meta = report_meta(args, names)
    if meta["openblas_overrides"]:
        print("warning: " + override_warning(meta["openblas_overrides"]), file=sys.stderr)
    print(report_header(meta))
    result = {"meta": meta}
    sys.stdout.flush()
    if "ops" in sections:
        result["ops"] = run_ops(names, batches, 4096 if quick else None, args.repeats,
                                target_s, 0.0 if quick else OPS_PAUSE_S)
        sys.stdout.flush()
    if "dense" in sections:
        result["dense"] = run_dense(names, batches, args.repeats, target_s, pause)
        sys.stdout.flush()
    if "train" in sections:
        if models_why is not None:
            print(f"\n(pynn.models is unavailable, pynn columns stay empty: {models_why})")
        result["train"], result["predict"], result["train_step"] = run_train(
            names, peers, train_batches, predict_batches, args.optimizers, n_samples,
            args.repeats, data_dir, pause, 0.0 if quick else 0.1, contestants=contestants)
    cnn_names = cnn_backends(names, named=bool(args.backends))
    if "cnn" in sections:
        result["cnn"] = run_cnn(
            cnn_names, args.cnn_peers,
            args.batches or (QUICK_CNN_BATCHES if quick else CNN_BATCHES),
            QUICK_CNN_PREDICT_BATCH if quick else CNN_PREDICT_BATCH,
            args.samples or (QUICK_CNN_SAMPLES if quick else 60_000), args.repeats,
            data_dir, pause, 0.0 if quick else 0.1, torch_threads=1 if quick else 2)
        sys.stdout.flush()
    if "rnn" in sections:
        result["rnn"] = run_rnn(
            cnn_names, args.rnn_peers,
            args.batches or (QUICK_RNN_BATCHES if quick else RNN_BATCHES),
            QUICK_RNN_LENGTH if quick else RNN_LENGTH,
            QUICK_RNN_TIMED_STEPS if quick else RNN_TIMED_STEPS, args.repeats, pause,
            0.0 if quick else 0.1, torch_threads=1 if quick else 2, cells=args.rnn_cells)
        sys.stdout.flush()
    if "custom" in sections:
        result["custom"] = run_custom(
            cnn_names, args.batches or (QUICK_CUSTOM_BATCHES if quick else CUSTOM_BATCHES),
            args.samples or (QUICK_SAMPLES if quick else CUSTOM_SAMPLES), args.repeats,
            data_dir, pause)
        sys.stdout.flush()
    if "startup" in sections:
        # the LSTM classifier's rows join when --rnn is asked for too
        result["startup"] = run_startup(
            names, args.optimizers, args.repeats, quick, cnn_backends=cnn_names,
            rnn_backends=cnn_names if "rnn" in sections else ())
        sys.stdout.flush()
    if "mpi" in sections:
        from .mpi_section import run_mpi
        result["mpi"] = run_mpi(
            mlp_batches=args.batches or ((32,) if quick else (128, 1024)),
            cnn_batches=args.batches or ((32,) if quick else (128,)),
            steps=4 if quick else 20, repeats=args.repeats, rounds=1 if quick else 2)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=_json_default)
        print(f"\nwrote {args.json}")
    if args.plot:
        try:
            plot(result, args.plot)
            print(f"wrote {args.plot}")
        except ImportError:
            print("--plot: matplotlib is not installed (pip install 'pynn[bench]')",
                  file=sys.stderr)
    return 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
