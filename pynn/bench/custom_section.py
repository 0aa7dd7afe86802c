"""Section (g) ``--custom``: seconds per training epoch of the tutorial MLP written three
ways (built-in layers, a subclassed Model of built-in layers, custom layers from
``pynn.ops``) on each pynn backend, with each way's ratio to the built-in layers; then
the op path's measured per-op overhead."""
from __future__ import annotations

import statistics
import sys

from .constants import ARCH, CUSTOM_OPTIMIZER
from .custom import WAY_COLUMNS, WAYS, CustomWay, op_overhead
from .data import training_data
from .tables import fmt_ratio, fmt_secs, md_table, ratio, status_cell
from .timing import epoch_rounds


def run_custom(backends, batches, n_samples, repeats, data_dir, pause, out=print):
    """Section (g). Returns ``{"epochs": rows, "op_overhead": {...}}``: one row per
    backend, batch and way (``median_s`` of the epochs, ``vs_builtin`` = this median
    over the built-in layers' on the same backend and batch)."""
    x, y = training_data(n_samples, data_dir)
    rows = []
    for batch in batches:
        for name in backends:
            print(f"custom: {name} batch {batch} ...", file=sys.stderr, flush=True)
            cs = [CustomWay(way, name) for way in WAYS]
            samples, errors = epoch_rounds(
                cs, lambda c: c.build(CUSTOM_OPTIMIZER, batch, seed=0), x, y,
                min(len(x), 4 * batch), repeats, pause)
            for c in cs:
                s = samples[c.name] if c.name not in errors else []
                rows.append({"backend": name, "batch": batch, "way": c.way,
                             "status": errors.get(c.name, "ok"), "samples_s": s,
                             "median_s": statistics.median(s) if s else None,
                             "n_samples": len(x)})
    for r in rows:
        base = next(q["median_s"] for q in rows if q["backend"] == r["backend"]
                    and q["batch"] == r["batch"] and q["way"] == WAYS[0])
        r["vs_builtin"] = ratio(r["median_s"], base)
    overhead = op_overhead()
    src = f"MNIST ({data_dir})" if data_dir else "random MNIST-shaped data"
    out(f"\n## (g) Custom code: seconds per epoch of the tutorial MLP written three ways "
        f"({len(x):,} samples, {src})\n")
    out(f"{'-'.join(str(a) for a in ARCH)} ReLU, softmax, sparse categorical cross-entropy, "
        f"{CUSTOM_OPTIMIZER} (Keras's defaults), `fit` with shuffling; the three ways start "
        "from the same weights and run interleaved round-robin with a pause between them "
        f"(median of {repeats} rounds). Columns: "
        + ", ".join(f"`{c}` = {w}" for c, w in zip(WAY_COLUMNS, WAYS))
        + "; `X / built-in` = that way's epoch over the built-in "
        "layers' on the same backend and batch. A subclassed model whose `call()` only "
        "wires layers is traced into the same graph (the fused Dense-stack step applies); "
        "custom layers run their `call()` on the tape, each op recorded and its "
        "vector-Jacobian product run backwards.\n")
    table = []
    for batch in batches:
        for name in backends:
            sel = {r["way"]: r for r in rows if r["backend"] == name and r["batch"] == batch}
            table.append([name, batch]
                         + [status_cell(sel[w], fmt_secs) for w in WAYS]
                         + [fmt_ratio(sel[w]["vs_builtin"]) for w in WAYS[1:]])
    out(md_table(["backend", "batch"] + [f"{w} (s)" for w in WAY_COLUMNS]
                 + [f"{w} / built-in" for w in WAY_COLUMNS[1:]], table, n_left=2))
    us = {k: v * 1e6 for k, v in overhead.items() if k.endswith("_s")}
    out(f"\nOp path overhead: `ops.add` on {overhead['size']}x{overhead['size']} float32 "
        f"recorded on a tape takes {us['forward_s']:.1f} µs forward and {us['backward_s']:.1f}"
        f" µs backward (a chain of {overhead['ops']}), against {us['numpy_s']:.1f} µs for "
        f"`np.add`: {us['overhead_s']:.1f} µs per op beyond NumPy's own work.")
    for r in rows:
        if r["status"] != "ok":
            out(f"\n- {r['way']} [{r['backend']}] batch {r['batch']}: {r['status']}")
    return {"epochs": rows, "op_overhead": overhead, "optimizer": CUSTOM_OPTIMIZER}
