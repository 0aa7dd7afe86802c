"""Section (e) ``--cnn``: seconds per training epoch of the keras-io MNIST convnet and
``predict`` throughput, pynn beside PyTorch, Keras and the products-only floor."""
from __future__ import annotations

import math
import statistics
import sys

from .cnn import CNN_OPTIMIZER, cnn_data, cnn_flops_per_sample
from .cnn_contestants import FLOOR_NAME, TORCH_NCHW, cnn_contestants, cnn_floor
from .constants import NOT_INSTALLED
from .tables import cnn_epoch_table, cnn_predict_table, ratio
from .timing import epoch_rounds, interleaved


def run_cnn(backends, peers, batches, predict_batch, n_samples, repeats, data_dir, pause,
            target_s, torch_threads=2, out=print):
    """Section (e). Returns ``{"epochs": rows, "predict": rows, "flops_per_sample": f}``:
    one epoch row per contestant and batch (``median_s``, ``samples_s``,
    ``vs_torch_nchw`` = PyTorch NCHW's median over this one, ``vs_floor`` = a pynn
    row's median over the products-only floor's), one predict row per contestant that
    predicts (``images_per_s``)."""
    x, y = cnn_data(n_samples, data_dir)
    cs = cnn_contestants(backends, peers, len(x), data_dir, torch_threads)
    floor = cnn_floor()
    rows, pred_rows = [], []
    try:
        for batch in batches:
            print(f"convnet: batch {batch} ...", file=sys.stderr, flush=True)
            samples, errors = epoch_rounds(
                cs + [floor], lambda c: c.build(CNN_OPTIMIZER, batch, seed=0), x, y,
                min(len(x), 4 * batch), repeats, pause)
            for c in cs + [floor]:
                status = c.status if c.status != "ok" else errors.get(c.name, "ok")
                s = samples[c.name] if status == "ok" else []
                rows.append({"batch": batch, "contestant": c.name, "backend": c.backend,
                             "status": status,
                             "median_s": statistics.median(s) if s else None,
                             "samples_s": s, "n_samples": len(x),
                             "steps": math.ceil(len(x) / batch)})
        # predict with the models built last; Keras and the floor are not timed here
        xb = x[:predict_batch] if predict_batch <= len(x) else cnn_data(predict_batch)[0]
        pred_rows = _predict(cs, rows, xb, repeats, target_s, pause)
    finally:
        for c in cs:
            c.close()
    flops = cnn_flops_per_sample()
    add_epoch_ratios(rows, flops)
    names = [c.name for c in cs] + [floor.name]
    pynn_names = [c.name for c in cs if c.backend]
    src = f"MNIST ({data_dir})" if data_dir else "random MNIST-shaped data"
    out(f"\n## (e) Convnet: seconds per epoch of the keras-io MNIST convnet ({len(x):,} "
        f"samples, {src})\n")
    out("Conv2D(32,3,relu) - MaxPooling2D(2) - Conv2D(64,3,relu) - MaxPooling2D(2) - "
        "Flatten - Dropout(0.5) - Dense(10, softmax), Adam (lr 0.001), categorical "
        f"cross-entropy, float32; {flops / 1e6:.2f} MFLOP of matrix products per "
        "training sample. Contestants interleaved round-robin with a pause between them; "
        f"`{FLOOR_NAME}` = the NHWC im2col GEMMs of every step alone (NumPy's BLAS, "
        "preallocated outputs), timed as one more contestant. "
        f"`{TORCH_NCHW} / X` is X's speed-up over PyTorch; `X / products` what a pynn "
        "epoch costs over its bare matrix products.\n")
    out(cnn_epoch_table(rows, batches, names, pynn_names, TORCH_NCHW, FLOOR_NAME))
    out(f"\n### Inference: `predict` at batch {len(xb)}, images per second (median)\n")
    out(cnn_predict_table(pred_rows, TORCH_NCHW))
    for r in rows + pred_rows:
        if r["status"] not in ("ok", NOT_INSTALLED):
            what = "predict" if "images_per_s" in r else f"batch {r['batch']}"
            out(f"\n- {r['contestant']} {what}: {r['status']}")
    return {"epochs": rows, "predict": pred_rows, "flops_per_sample": flops,
            "optimizer": CNN_OPTIMIZER}


def add_epoch_ratios(rows, flops_per_sample):
    """Add to each epoch row, from the medians of its batch size: ``vs_torch_nchw``
    (PyTorch NCHW's median over this one: the speed-up over PyTorch), ``vs_floor``
    (a pynn row's median over the products-only floor's; ``None`` for the others) and
    ``gflop_per_s`` (the epoch's matrix-product work over its median)."""
    for r in rows:
        same = {q["contestant"]: q["median_s"] for q in rows if q["batch"] == r["batch"]}
        r["vs_torch_nchw"] = ratio(same.get(TORCH_NCHW), r["median_s"])
        r["vs_floor"] = (ratio(r["median_s"], same.get(FLOOR_NAME)) if r["backend"]
                         else None)
        r["gflop_per_s"] = ratio(flops_per_sample * r["n_samples"] / 1e9, r["median_s"])


def _predict(cs, rows, xb, repeats, target_s, pause):
    """Predict rows of the contestants that predict (pynn and PyTorch) on the images
    ``xb``, interleaved; ``vs_torch_nchw`` = this throughput over PyTorch NCHW's."""
    fns = {}
    for c in cs:
        if not c.predicts:
            continue
        if c.status != "ok":
            fns[c.name] = c.status
        elif any(r["contestant"] == c.name and r["status"] != "ok" for r in rows):
            fns[c.name] = "error: training failed"
        else:
            fns[c.name] = (lambda c=c: c.predict(xb))
    res = interleaved(fns, repeats, target_s, pause=pause)
    backend = {c.name: c.backend for c in cs}
    pred = [{"batch": len(xb), "contestant": name, "backend": backend[name],
             "status": err or "ok", "median_s": med, "samples_s": samples,
             "images_per_s": len(xb) / med if med else None}
            for name, (med, samples, err) in res.items()]
    torch_ips = next((r["images_per_s"] for r in pred if r["contestant"] == TORCH_NCHW),
                     None)
    for r in pred:
        r["vs_torch_nchw"] = ratio(r["images_per_s"], torch_ips)
    return pred
