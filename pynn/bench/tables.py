"""Markdown: tables, number formatting, and the tables of ratios computed from medians."""
from __future__ import annotations

from .constants import NOT_INSTALLED


def md_table(headers, rows, n_left=1):
    """A Markdown table; the first ``n_left`` columns are left-aligned, the rest right."""
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i < n_left else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fmt_us(s):
    if s is None:
        return "-"
    us = s * 1e6
    return f"{us:.1f}" if us < 100 else f"{us:.0f}"


def fmt_ratio(ratio):
    return "-" if ratio is None else f"{ratio:.2f}x"


def fmt_secs(s):
    return "-" if s is None else f"{s:.3f}"


def ratio(a, b):
    """``a / b``, or ``None`` when either is missing or ``b`` is not positive."""
    return None if a is None or b is None or b <= 0 else a / b


def status_cell(row, fmt):
    status = row.get("status", "ok")
    if status == "ok":
        return fmt(row["median_s"])
    if status == NOT_INSTALLED:
        return status
    return "error" if status.startswith("error") else "unavailable"


def train_ratios(rows, optimizers, batches, pynn_cs, floor_name):
    """Markdown table of the ratios the speed targets are stated in, from one run's
    medians (``-`` where a contestant did not run)."""
    med = {(r["optimizer"], r["batch"], r["contestant"]): r["median_s"] for r in rows}
    names = [c.name for c in pynn_cs]
    if not names:
        return ""

    table = []
    for opt in optimizers:
        for batch in batches:
            times = {n: med.get((opt, batch, n)) for n in names}
            ran = {n: t for n, t in times.items() if t is not None}
            best = min(ran, key=ran.get) if ran else None
            tb = ran.get(best)
            row = [opt, batch, best or "-", fmt_ratio(ratio(med.get((opt, batch, "PyTorch")), tb)),
                   fmt_ratio(ratio(tb, med.get((opt, batch, floor_name))))]
            row += [fmt_ratio(ratio(times[n], tb)) for n in names]
            if "sgd" in optimizers and opt != "sgd":
                row += [fmt_ratio(ratio(times[n], med.get(("sgd", batch, n)))) for n in names]
            else:
                row += ["-"] * len(names)
            table.append(row)
    headers = (["optimizer", "batch", "best", "PyTorch / best", "best / floor"]
               + [f"{n} / best" for n in names] + [f"{n} / its SGD" for n in names])
    return md_table(headers, table, n_left=3)


def step_table(step_rows, optimizers, batches, pynn_cs, floor_name):
    """Markdown table of the step medians (µs) and of each step over the floor."""
    med = {(r["optimizer"], r["batch"], r["contestant"]): r["median_s"] for r in step_rows}
    names = [c.name for c in pynn_cs]
    if not step_rows or not names:
        return ""
    table = []
    for opt in optimizers:
        for batch in batches:
            fl = med.get((opt, batch, floor_name))
            times = [med.get((opt, batch, n)) for n in names]
            table.append([opt, batch] + [fmt_us(t) for t in times + [fl]]
                         + [fmt_ratio(t / fl) if t and fl else "-" for t in times])
    headers = (["optimizer", "batch"] + names + [floor_name]
               + [f"{n} / floor" for n in names])
    return md_table(headers, table, n_left=2)


def cnn_epoch_table(rows, batches, names, pynn_names, torch_name, floor_name):
    """Markdown table of the ``--cnn`` epochs: per contestant (``names``, in order) the
    median seconds at each batch, then the rows' ``vs_torch_nchw`` (``torch_name``'s
    median over this one) and, for ``pynn_names``, ``vs_floor`` (this median over
    ``floor_name``'s)."""
    by = {(r["contestant"], r["batch"]): r for r in rows}
    table = []
    for name in names:
        cells = [name]
        cells += [status_cell(by[(name, b)], fmt_secs) if (name, b) in by else "-"
                  for b in batches]
        cells += [fmt_ratio(by[(name, b)]["vs_torch_nchw"]) if (name, b) in by else "-"
                  for b in batches]
        cells += [fmt_ratio(by[(name, b)]["vs_floor"])
                  if name in pynn_names and (name, b) in by else "-" for b in batches]
        table.append(cells)
    headers = (["contestant"] + [f"batch {b} (s)" for b in batches]
               + [f"{torch_name} / X, batch {b}" for b in batches]
               + [f"X / {floor_name}, batch {b}" for b in batches])
    return md_table(headers, table)


def cnn_predict_table(pred_rows, torch_name):
    """Markdown table of the ``--cnn`` predict rows: images per second and the
    throughput over ``torch_name``'s."""
    table = [[r["contestant"],
              status_cell(r, lambda s: f"{r['images_per_s']:,.0f}"),
              fmt_ratio(r["vs_torch_nchw"])] for r in pred_rows]
    return md_table(["contestant", "images/s", f"X / {torch_name}"], table)
