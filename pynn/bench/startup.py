"""Section (d) start-up: import, first-epoch compilation, allocations per step."""
from __future__ import annotations

import json
import statistics
import sys

import numpy as np

from .. import backends as _backends
from .cnn import CNN_OPTIMIZER, cnn_data, cnn_model, one_hot
from .constants import ARCH, QUICK_RNN_LENGTH, RNN_LENGTH
from .contestants import tutorial_model
from .environment import child_env
from .pynn_api import train_one_step, uses_fused_step
from .rnn import RNN_OPTIMIZER, rnn_data, rnn_model
from .tables import fmt_secs, md_table

#: What one fresh process runs: ``import pynn`` timed, then (given a backend, an
#: optimizer, a sample count and the network, ``mlp``, ``cnn`` or ``rnn`` with its
#: sequence length) the first and second
#: training epoch timed.
_STARTUP_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import pynn
result = {"import_s": time.perf_counter() - t0}
if len(sys.argv) > 1:
    import numpy as np
    from pynn.bench import tutorial_model
    from pynn.bench.cnn import cnn_data, cnn_model, one_hot
    backend, optimizer, n, network = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with pynn.use_backend(backend):
        if network == "cnn":
            model = cnn_model()
            x, y = cnn_data(n)
            y = one_hot(y)
        elif network == "rnn":
            from pynn.bench.rnn import rnn_data, rnn_model
            model = rnn_model("lstm")
            x, y = rnn_data(n, int(sys.argv[5]))
        else:
            model = tutorial_model(optimizer)
            rng = np.random.default_rng(0)
            x = rng.random((n, 784), dtype=np.float32)
            y = rng.integers(0, 10, n)
        for key in ("first_epoch_s", "second_epoch_s"):
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            result[key] = time.perf_counter() - t0
print(json.dumps(result))
"""


def _startup_process(args, cache_dir):
    """Run :data:`_STARTUP_SCRIPT` in a fresh interpreter that imports this very pynn:
    its parent directory goes first on the path, and the child runs in ``cache_dir``
    (``python -c`` puts the working directory first, where a source checkout without
    the compiled extension could shadow an installed pynn)."""
    import subprocess

    res = subprocess.run([sys.executable, "-c", _STARTUP_SCRIPT, *map(str, args)],
                         env=child_env(NUMBA_CACHE_DIR=cache_dir), cwd=cache_dir,
                         capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip()
                           else f"exit status {res.returncode}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def step_allocations(backend, optimizer, steps=50, batch=128, arch=ARCH):
    """Memory a fused training step of a ReLU/softmax Dense stack of widths ``arch``
    (the tutorial network by default) allocates once warm: :func:`warm_allocations`.
    Raises ``RuntimeError`` when the model does not train through the fused Dense-stack
    step on ``backend``."""
    rng = np.random.default_rng(0)
    x = rng.random((2 * batch, arch[0]), dtype=np.float32)
    y = rng.integers(0, arch[-1], 2 * batch)
    with _backends.use_backend(backend):
        model = tutorial_model(optimizer, arch)
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # the first epoch allocates
        xb, yb = x[:batch], y[:batch].astype(np.intp)
        if not uses_fused_step(model, xb):
            raise RuntimeError(f"the model does not take the fused step on {backend!r}")
        return warm_allocations(model, xb, yb, steps)


def cnn_step_allocations(backend, steps=50, batch=128):
    """Memory a training step of the ``--cnn`` convnet (layer by layer) allocates once
    warm on ``backend``: :func:`warm_allocations`."""
    x, y = cnn_data(2 * batch)
    y = one_hot(y)
    with _backends.use_backend(backend):
        model = cnn_model()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # the first epoch allocates
        return warm_allocations(model, x[:batch], y[:batch], steps)


def rnn_step_allocations(backend, steps=50, batch=32, length=RNN_LENGTH):
    """Memory a training step of the ``--rnn`` classifier (LSTM cells, ``length``
    tokens) allocates once warm on ``backend``: :func:`warm_allocations`."""
    x, y = rnn_data(2 * batch, length)
    with _backends.use_backend(backend):
        model = rnn_model("lstm")
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # the first epoch allocates
        return warm_allocations(model, x[:batch], y[:batch], steps)


def warm_allocations(model, xb, yb, steps):
    """Memory ``steps`` training steps of ``model`` on the batch ``(xb, yb)`` allocate
    on the active backend, from ``tracemalloc``, after one more step (the model has
    trained before): ``(transient, held)`` in bytes. ``transient`` is the traced peak
    above both the start and the end (an array made and freed within a step shows here;
    Python's object free lists only make the total creep a few dozen bytes per step,
    which is not counted) and ``held`` is what NumPy arrays hold at the end beyond the
    start."""
    import tracemalloc

    numpy_domain = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
    tracemalloc.start()
    try:
        train_one_step(model, xb, yb)
        before = tracemalloc.take_snapshot().filter_traces([numpy_domain])
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(steps):
            train_one_step(model, xb, yb)
        current, peak = tracemalloc.get_traced_memory()
        after = tracemalloc.take_snapshot().filter_traces([numpy_domain])
    finally:
        tracemalloc.stop()
    held = sum(st.size_diff for st in after.compare_to(before, "filename"))
    return max(0, peak - max(base, current)), max(0, held)


def run_startup(backends, optimizers, repeats, quick, cnn_backends=(), rnn_backends=(),
                out=print):
    """Section (d): import time, first-epoch compilation (cold/warm Numba cache) and
    allocations per warm training step, of the MLP on ``backends`` with each of
    ``optimizers``, of the ``--cnn`` convnet (Adam) on ``cnn_backends`` and of the
    ``--rnn`` LSTM classifier (Adam) on ``rnn_backends``. Rows carry ``network``
    (``"mlp"``, ``"cnn"`` or ``"rnn"``)."""
    import tempfile
    n = {"mlp": 256 if quick else 2048, "cnn": 64 if quick else 1024,
         "rnn": 32 if quick else 256}
    length = QUICK_RNN_LENGTH if quick else RNN_LENGTH  # the LSTM classifier's
    runs = ([("mlp", name, opt) for name in backends for opt in optimizers]
            + [("cnn", name, CNN_OPTIMIZER) for name in cnn_backends]
            + [("rnn", name, RNN_OPTIMIZER) for name in rnn_backends])
    result = {"import": [], "first_epoch": [], "allocations": []}
    imports = [_startup_process([], tempfile.mkdtemp(prefix="pynn-bench-"))["import_s"]
               for _ in range(max(1, repeats))]
    result["import"] = imports
    out("\n## (d) Start-up\n")
    out(f"`import pynn` in a fresh process: median {statistics.median(imports):.3f} s "
        f"over {len(imports)} processes.\n")
    out(f"First and second training epoch (batch 32; MLP {n['mlp']:,} samples, convnet "
        f"{n['cnn']:,}, LSTM classifier {n['rnn']:,} of {length} tokens) in a fresh "
        "process; \"cold\" = an "
        "empty Numba cache directory, "
        "\"warm\" = the same directory again. The difference of the two epochs is what "
        "the first one spent compiling (and loading); issue 16's target for the "
        "convnet's cold compile on numba is under 3 s.\n")
    rows = []
    for network, name, opt in runs:
        with tempfile.TemporaryDirectory(prefix="pynn-bench-") as cache:
            for state in ("cold", "warm"):
                key = {"network": network, "backend": name, "optimizer": opt,
                       "cache": state}
                try:
                    r = _startup_process([name, opt, n[network], network, length], cache)
                    row = {**key, "status": "ok", **r,
                           "compile_s": r["first_epoch_s"] - r["second_epoch_s"]}
                except Exception as exc:  # one broken backend must not hide the rest
                    row = {**key, "status": f"error: {exc}"}
                result["first_epoch"].append(row)
                rows.append([network, name, opt, state] + (
                    [fmt_secs(row["first_epoch_s"]), fmt_secs(row["second_epoch_s"]),
                     fmt_secs(row["compile_s"])] if row["status"] == "ok"
                    else ["error", "error", "error"]))
    out(md_table(["network", "backend", "optimizer", "Numba cache", "first epoch (s)",
                  "second epoch (s)", "first - second (s)"], rows, n_left=4))
    out("\nMemory a training step allocates once warm (batch 128, 50 steps, `tracemalloc`): "
        "the traced peak above both the start and the end (an array made and freed within "
        "a step shows here), and the bytes NumPy arrays still hold at the end. 0 and 0: "
        "no array is made per step. The MLP takes the fused step; the convnet goes layer "
        "by layer (the LSTM classifier too, at batch 32).\n")
    rows = []
    steps = 5 if quick else 50
    for network, name, opt in runs:
        key = {"network": network, "backend": name, "optimizer": opt}
        try:
            if network == "mlp":
                peak, held = step_allocations(name, opt, steps=steps)
            elif network == "cnn":
                peak, held = cnn_step_allocations(name, steps=steps)
            else:
                peak, held = rnn_step_allocations(name, steps=steps, length=length)
            row = {**key, "status": "ok", "transient_bytes": peak, "held_bytes": held}
            rows.append([network, name, opt, f"{peak:,}", f"{held:,}"])
        except Exception as exc:
            row = {**key, "status": f"error: {type(exc).__name__}: {exc}"}
            rows.append([network, name, opt, "error", "error"])
        result["allocations"].append(row)
    out(md_table(["network", "backend", "optimizer", "transient peak (bytes)",
                  "array bytes held"], rows, n_left=3))
    return result
