"""Section (f) ``--rnn``: seconds per training epoch of the keras-io IMDB bidirectional
classifier (LSTM and GRU cells), pynn beside PyTorch, Keras and the products-only floor,
extrapolated from a few timed batches; then one recurrent layer's training step beside
its own matrix products."""
from __future__ import annotations

import statistics
import sys

from .. import backends as _backends
from .constants import RNN_SAMPLES
from .pynn_api import train_one_step
from .rnn import (RNN_CELLS, RNN_OPTIMIZER, rnn_data, rnn_flops_per_sample, rnn_layer_data,
                  rnn_layer_model, rnn_products)
from .rnn_contestants import RNN_FLOOR_NAME, RNN_TORCH, RNNFloor, rnn_contestants
from .tables import fmt_ratio, md_table, ratio
from .timing import epoch_rounds, interleaved


def run_rnn(backends, peers, batches, length, timed_steps, repeats, pause, target_s,
            torch_threads=2, out=print, cells=None):
    """Section (f). Returns ``{"epochs": rows, "layer_steps": rows}``: one epoch row per
    cell, batch and contestant (``median_s`` of the timed batches, ``epoch_s`` that
    extrapolated to :data:`RNN_SAMPLES` samples, ``vs_torch`` = PyTorch's epoch over
    this one, ``vs_floor`` = a pynn row's over the products-only floor's), and one
    layer-step row per cell, batch and backend (``step_s``, ``products_s``,
    ``vs_products``). ``cells``: the cells to run (default every one of
    :data:`~pynn.bench.rnn.RNN_CELLS`)."""
    rows, layer_rows = [], []
    n_timed = max(batches) * timed_steps
    x, y = rnn_data(n_timed, length)
    cells = tuple(cells or RNN_CELLS)
    for cell in cells:
        cs = rnn_contestants(backends, peers, cell, n_timed, length, torch_threads)
        floor = RNNFloor(cell, length)
        try:
            for batch in batches:
                print(f"rnn: {cell} batch {batch} ...", file=sys.stderr, flush=True)
                n = batch * timed_steps
                samples, errors = epoch_rounds(
                    cs + [floor], lambda c: c.build(RNN_OPTIMIZER, batch, seed=0), x[:n],
                    y[:n], batch, repeats, pause)
                for c in cs + [floor]:
                    status = c.status if c.status != "ok" else errors.get(c.name, "ok")
                    s = samples[c.name] if status == "ok" else []
                    med = statistics.median(s) if s else None
                    rows.append({"cell": cell, "batch": batch, "contestant": c.name,
                                 "backend": c.backend, "status": status, "median_s": med,
                                 "samples_s": s, "timed_samples": n,
                                 "epoch_s": None if med is None else med * RNN_SAMPLES / n})
        finally:
            for c in cs:
                c.close()
        layer_rows += _layer_steps(backends, cell, batches, length, repeats, target_s, pause)
    _add_ratios(rows)
    names = list(dict.fromkeys(r["contestant"] for r in rows))
    out(f"\n## (f) Recurrent: seconds per epoch of the keras-io IMDB bidirectional "
        f"classifier ({RNN_SAMPLES:,} samples of {length} random tokens)\n")
    out("Embedding(20000, 128) - Bidirectional(RNN(64, return_sequences)) - "
        "Bidirectional(RNN(64)) - Dense(1, sigmoid), RNN = LSTM or GRU (reset_after), "
        "Adam (lr 0.001), binary cross-entropy, float32. An epoch is extrapolated from "
        f"{timed_steps} timed batches (median of {repeats} rounds, contestants "
        "interleaved round-robin with a pause between them). "
        f"`{RNN_FLOOR_NAME}` = the recurrent kernels' matrix products of every step alone "
        "(the same BLAS calls, no epilogue, no embedding, no optimizer). "
        f"`{RNN_TORCH} / X` is X's speed-up over PyTorch; `X / products` what a pynn "
        "epoch costs over its bare matrix products. "
        + ", ".join(f"{c.upper()}: {rnn_flops_per_sample(c, length) / 1e6:.0f} MFLOP"
                    for c in cells) + " of recurrent products per training sample.\n")
    out(epoch_table(rows, names))
    out("\n### One recurrent layer's training step beside its own matrix products\n")
    out(f"One {{LSTM, GRU}}(64) layer on float32 input (batch, {length}, 128), final state "
        "against zero targets (MSE), Adam: `train_step` of that one-layer model; "
        "products = its forward and backward products alone (no input gradient, as "
        "the first layer needs none). The issue's target: step / products <= 1.4.\n")
    out(layer_table(layer_rows))
    for r in rows + layer_rows:
        if r["status"] not in ("ok", "not installed"):
            out(f"\n- {r.get('contestant', r.get('backend'))} {r['cell']} batch "
                f"{r['batch']}: {r['status']}")
    return {"epochs": rows, "layer_steps": layer_rows, "optimizer": RNN_OPTIMIZER,
            "samples_per_epoch": RNN_SAMPLES, "length": length}


def _add_ratios(rows):
    for r in rows:
        same = {q["contestant"]: q["epoch_s"] for q in rows
                if q["batch"] == r["batch"] and q["cell"] == r["cell"]}
        r["vs_torch"] = ratio(same.get(RNN_TORCH), r["epoch_s"])
        r["vs_floor"] = (ratio(r["epoch_s"], same.get(RNN_FLOOR_NAME)) if r["backend"]
                         else None)


def _layer_steps(backends, cell, batches, length, repeats, target_s, pause):
    """Layer-step rows of ``cell``: each backend's ``train_step`` of
    :func:`rnn_layer_model` and the products alone, interleaved."""
    rows = []
    for batch in batches:
        xb, yb = rnn_layer_data(batch, length)
        fns = {}
        for name in backends:
            try:
                with _backends.use_backend(name):
                    model = rnn_layer_model(cell)

                def step(model=model, name=name):
                    with _backends.use_backend(name):
                        train_one_step(model, xb, yb)
                fns[name] = step
            except Exception as exc:  # a broken backend must not hide the others
                fns[name] = f"error: {type(exc).__name__}: {exc}"
        products = rnn_products(cell, batch, length, directions=1, input_grad=False)
        fns[RNN_FLOOR_NAME] = products or "unavailable: needs the cython backend's extension"
        res = interleaved(fns, repeats, target_s, pause=pause)
        floor = res[RNN_FLOOR_NAME][0]
        for name in backends:
            med, samples, err = res[name]
            rows.append({"cell": cell, "batch": batch, "backend": name,
                         "status": err or "ok", "step_s": med, "products_s": floor,
                         "samples_s": samples, "vs_products": ratio(med, floor)})
    return rows


def _ms(s):
    return "-" if s is None else f"{s * 1e3:.1f}"


def _secs(s):
    return "-" if s is None else f"{s:.1f}"


def epoch_table(rows, names):
    """Markdown: seconds per epoch per cell and batch, with the ratios."""
    table = []
    for r in rows:
        if r["contestant"] not in names:
            continue
        cell = _secs(r["epoch_s"]) if r["status"] == "ok" else r["status"].split(":")[0]
        table.append([r["cell"].upper(), r["batch"], r["contestant"], cell,
                      fmt_ratio(r["vs_torch"]), fmt_ratio(r["vs_floor"])])
    return md_table(["cell", "batch", "contestant", "s / epoch", f"{RNN_TORCH} / X",
                     "X / products"], table, n_left=3)


def layer_table(rows):
    """Markdown: one layer's step and its products (milliseconds) and their ratio."""
    table = [[r["cell"].upper(), r["batch"], f"pynn[{r['backend']}]", _ms(r["step_s"]),
              _ms(r["products_s"]), fmt_ratio(r["vs_products"])] for r in rows]
    return md_table(["cell", "batch", "backend", "step ms", "products ms",
                     "step / products"], table, n_left=3)
