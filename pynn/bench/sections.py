"""Sections (a) ops, (b) one dense layer and (c) training: measure, print a Markdown
table, return the rows."""
from __future__ import annotations

import math
import statistics
import sys

import numpy as np

from .. import backends as _backends
from .constants import NOT_INSTALLED
from .contestants import GemmFloor, train_contestants
from .data import training_data
from .dense import dense_gemm_floor, dense_step, mlp_gemm_floor
from .op_cases import op_cases
from .tables import fmt_ratio, fmt_secs, fmt_us, md_table, status_cell, step_table, train_ratios
from .timing import blocked, epoch_rounds, interleaved


def run_ops(backends, batches, n_params, repeats, target_s, pause=0.0, out=print):
    """Section (a): rows of ``{op, case, backend, median_us, speedup_vs_numpy}``."""
    rows, table = [], []
    for case in op_cases(batches, n_params):
        fns = {}
        for name in backends:
            try:
                fns[name] = case.make(_backends.get(name))
            except Exception as exc:
                fns[name] = f"error: {type(exc).__name__}: {exc}"
        res = blocked(fns, repeats, target_s, pause)
        ref = res.get("numpy", (None,))[0]
        line = [case.op, case.label]
        for name in backends:
            med, samples, err = res[name]
            ratio = ref / med if (ref and med) else None
            rows.append({"op": case.op, "case": case.label, "backend": name,
                         "median_s": med, "median_us": None if med is None else med * 1e6,
                         "samples_s": samples, "speedup_vs_numpy": ratio,
                         "status": err or "ok"})
            line.append(fmt_us(med) if err is None else "error")
            if name != "numpy" and "numpy" in backends:
                line.append(fmt_ratio(ratio))
        table.append(line)
    headers = ["op", "case"]
    for name in backends:
        headers.append(f"{name} µs")
        if name != "numpy" and "numpy" in backends:
            headers.append(f"{name} vs numpy")
    out("\n## (a) Ops: median µs per call (float32, out= buffers preallocated)\n")
    out(md_table(headers, table, n_left=2))
    errors = [r for r in rows if r["status"] != "ok"]
    for r in errors:
        out(f"\n- {r['backend']} {r['op']} {r['case']}: {r['status']}")
    return rows


def run_dense(backends, batches, repeats, target_s, pause=0.0, out=print):
    """Section (b): one 784->256 ReLU layer forward+backward per backend and batch."""
    rows, table = [], []
    for batch in batches:
        fns = {}
        for name in backends:
            try:
                f, b, s = dense_step(_backends.get(name), batch)
                fns[(name, "forward")], fns[(name, "backward")], fns[(name, "step")] = f, b, s
            except Exception as exc:
                for part in ("forward", "backward", "step"):
                    fns[(name, part)] = f"error: {type(exc).__name__}: {exc}"
        fns[("numpy GEMMs only", "step")] = dense_gemm_floor(batch)
        res = blocked(fns, repeats, target_s, pause)
        ref = res.get(("numpy", "step"), (None,))[0]
        for name in list(backends) + ["numpy GEMMs only"]:
            parts = ("forward", "backward", "step") if name in backends else ("step",)
            rec = {"batch": batch, "backend": name, "status": "ok"}
            for part in parts:
                med, samples, err = res[(name, part)]
                rec[f"{part}_us"] = None if med is None else med * 1e6
                rec[f"{part}_samples_s"] = samples
                if err:
                    rec["status"] = err
            step, step_samples = res[(name, "step")][:2]
            rec["step_min_us"] = min(step_samples) * 1e6 if step_samples else None
            rec["speedup_vs_numpy"] = ref / step if (ref and step) else None
            rows.append(rec)
            fwd = fmt_us(res[(name, "forward")][0]) if name in backends else "-"
            bwd = fmt_us(res[(name, "backward")][0]) if name in backends else "-"
            table.append([batch, name, fwd, bwd,
                          fmt_us(step) if rec["status"] == "ok" else "error",
                          fmt_us(min(step_samples)) if step_samples else "-",
                          fmt_ratio(rec["speedup_vs_numpy"])])
    out("\n## (b) Dense 784->256 ReLU layer: forward + backward, median µs\n")
    out("forward = GEMM with fused bias+ReLU; backward = activation_backward, GEMM trans_a "
        "(dW), bias_grad, GEMM trans_b (dX). `numpy GEMMs only` = the three bare "
        "`np.matmul` calls of the same step (no bias, no ReLU). `fwd+bwd best` = fastest "
        "sample (a busy machine only ever adds time).\n")
    out(md_table(["batch", "backend", "forward", "backward", "forward+backward",
                  "fwd+bwd best", "vs numpy backend"], table, n_left=2))
    for r in rows:
        if r["status"] != "ok":
            out(f"\n- {r['backend']} batch {r['batch']}: {r['status']}")
    return rows


def run_train(backends, peers, batches, predict_batches, optimizers, n_samples, repeats,
              data_dir, pause, target_s, out=print, contestants=None):
    """Section (c): seconds per training epoch, and predict latency, pynn beside peers."""
    x, y = training_data(n_samples, data_dir)
    cs = contestants if contestants is not None else train_contestants(backends, peers)
    floor = GemmFloor()
    rows, pred_rows, step_rows = [], [], []
    steps = {b: math.ceil(len(x) / b) for b in batches}
    warm_n = {b: min(len(x), 4 * b) for b in batches}
    for opt in optimizers:
        for batch in batches:
            print(f"training: {opt}, batch {batch} ...", file=sys.stderr, flush=True)
            samples, errors = epoch_rounds(
                cs + [floor], lambda c: c.build(opt, batch, seed=0), x, y, warm_n[batch],
                repeats, pause)
            step_rows += time_steps(cs, floor, errors, opt, batch, x, y, repeats, target_s,
                                    pause)
            for c in cs + [floor]:
                status = c.status if c.status != "ok" else errors.get(c.name, "ok")
                s = samples[c.name] if status == "ok" else []
                med = statistics.median(s) if s else None
                rows.append({"optimizer": opt, "batch": batch, "contestant": c.name,
                             "backend": c.backend, "status": status, "median_s": med,
                             "step_us": None if med is None else med / steps[batch] * 1e6,
                             "samples_s": s, "n_samples": len(x), "steps": steps[batch]})
    # predict with the models built last (the floor predicts nothing)
    for pb in predict_batches:
        xb = np.ascontiguousarray(x[:pb]) if pb <= len(x) else training_data(pb)[0]
        fns = {}
        for c in cs:
            if c.status != "ok":
                fns[c.name] = c.status
            elif any(r["contestant"] == c.name and r["status"] != "ok" for r in rows):
                fns[c.name] = "error: training failed"
            else:
                fns[c.name] = (lambda c=c: c.predict(xb))
        res = interleaved(fns, repeats, target_s, pause=pause)
        for c in cs:
            med, samples, err = res[c.name]
            pred_rows.append({"batch": pb, "contestant": c.name, "backend": c.backend,
                              "status": err or "ok", "median_s": med, "samples_s": samples})

    names = [c.name for c in cs]
    src = f"MNIST ({data_dir})" if data_dir else "random MNIST-shaped data"
    out(f"\n## (c) Training: seconds per epoch of 784-256-128-10 ReLU, softmax CE "
        f"({len(x):,} samples, {src})\n")
    out("Contestants interleaved round-robin with a pause between them; `GEMM floor` = the "
        "matrix products of every step alone (NumPy/OpenBLAS), timed as one more "
        "contestant. SGD lr 0.01, Adam lr 0.001.\n")
    table = []
    for opt in optimizers:
        for batch in batches:
            sel = {r["contestant"]: r for r in rows
                   if r["optimizer"] == opt and r["batch"] == batch}
            table.append([opt, batch]
                         + [status_cell(sel[n], fmt_secs) for n in names + [floor.name]])
    out(md_table(["optimizer", "batch"] + names + [floor.name], table, n_left=2))
    ratios = train_ratios(rows, optimizers, batches, [c for c in cs if c.backend], floor.name)
    if ratios:
        out("\n### Ratios of those medians\n")
        out("`best` = the fastest pynn backend; `PyTorch / best` is its speed-up over PyTorch; "
            "`best / floor` what its epoch costs over the bare matrix products; "
            "`X / best` each pynn backend against the fastest; `X / its SGD` that "
            "backend's epoch with this optimizer over its SGD epoch at the same batch.\n")
        out(ratios)
    steps = step_table(step_rows, optimizers, batches, [c for c in cs if c.backend],
                       floor.name)
    if steps:
        out("\n### One training step beside its matrix products, median µs\n")
        out("The step `fit` runs on one batch already gathered (`Model.train_step`: "
            "forward, loss, backward, optimizer update), timed on a fixed batch "
            "interleaved with the `GEMM floor` step of the same batch size; `X / floor` "
            "is the ratio the step target is stated in. The epoch table adds the "
            "shuffled gather, callbacks and the last partial batch.\n")
        out(steps)
    out("\n### Inference: `predict` median µs per call\n")
    table = []
    for pb in predict_batches:
        sel = {r["contestant"]: r for r in pred_rows if r["batch"] == pb}
        table.append([pb] + [status_cell(sel[n], fmt_us) for n in names])
    out(md_table(["batch"] + names, table))
    for r in rows + pred_rows:
        if r["status"] not in ("ok", NOT_INSTALLED):
            what = f"{r.get('optimizer', 'predict')} batch {r['batch']}"
            out(f"\n- {r['contestant']} {what}: {r['status']}")
    for r in step_rows:
        if r["status"] != "ok":
            out(f"\n- {r['contestant']} {r['optimizer']} batch {r['batch']}, one step: "
                f"{r['status']}")
    return rows, pred_rows, step_rows


def time_steps(cs, floor, errors, opt, batch, x, y, repeats, target_s, pause):
    """Rows of one training step of each pynn contestant (built for ``opt``, ``batch``)
    and of the products floor, interleaved, on the first ``batch`` rows."""
    n = min(batch, len(x))
    fns = {}
    for c in cs:
        if c.backend is None or c.status != "ok" or c.name in errors:
            continue
        try:
            fns[c.name] = c.step(x[:n], y[:n])
        except Exception as exc:  # a broken backend must not hide the others
            fns[c.name] = f"error: {type(exc).__name__}: {exc}"
    if not fns:
        return []
    fns[floor.name] = mlp_gemm_floor(n)
    res = interleaved(fns, repeats, target_s, pause=pause)
    return [{"optimizer": opt, "batch": batch, "rows": n, "contestant": name,
             "status": err or "ok", "median_s": med, "samples_s": samples}
            for name, (med, samples, err) in res.items()]
