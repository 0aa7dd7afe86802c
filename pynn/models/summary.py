"""``model.summary()``: Keras's table of layers, output shapes and parameter counts.

A graph model (not a plain chain built by ``Sequential``) gets Keras's "Connected
to" column, naming the layer (and call) each input comes from. A ``Sequential``
model whose input shape is not known yet lists its layers with ``?`` shapes and
parameter counts instead of failing.
"""
from __future__ import annotations

import numpy as np

from ..layers.node import shape_str

__all__ = ["print_summary", "readable_size"]


def readable_size(nbytes):
    """``'68.00 B'``, ``'1.03 MB'``... (Keras's units, base 1024)."""
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.2f} {unit}"
        size /= 1024


def _row_printer(positions, print_fn):
    def row(fields):
        # Keras 2's print_row: fixed columns, long fields wrap onto more lines
        left = [str(f) for f in fields]
        while any(left):
            line = ""
            for col in range(len(left)):
                start = positions[col - 1] if col > 0 else 0
                space = 2 if col != len(positions) - 1 else 0
                cutoff = positions[col] - start - space - (1 if col != 0 else 0)
                if cutoff <= 0:
                    continue
                fit = left[col][:cutoff]
                breaks = [fit.find(b) + len(b) for b in ("),", "},", "],", "',")
                          if fit.find(b) >= 0]
                if breaks:
                    cutoff = min(breaks)
                    fit = fit[:cutoff]
                if col == 0:
                    line += " "
                line += fit + " " * space
                left[col] = left[col][cutoff:]
                line += " " * (positions[col] - len(line))
            print_fn(line)
    return row


def _rows(model, graph):
    """``(name (type), output shape, params, trainable, connected to)`` per row."""
    out = []
    if not model.built:
        for layer in model.layers:
            params = layer.count_params() if layer.built else "0 (unbuilt)"
            out.append((f"{layer.name} ({type(layer).__name__})", "?", params,
                        layer.trainable, ""))
        return out
    ours = {id(n) for n in model._nodes} | {id(t.node) for t in model._inputs}
    for layer in (model._layers if graph else model.layers):
        nodes = [n for n in layer._inbound_nodes if id(n) in ours]
        shapes = [n.outputs[0].shape if not n.multi_output else [t.shape for t in n.outputs]
                  for n in nodes] or [layer.output_shape]
        shape = shape_str(shapes[0]) if len(shapes) == 1 else " ".join(
            shape_str(s) for s in shapes)
        connected = []
        for node in nodes:
            for t in node.inputs:
                k = next(i for i, n in enumerate(t.node.layer._inbound_nodes) if n is t.node)
                connected.append(f"{t.node.layer.name}[{k}][{t.index}]")
        out.append((f"{layer.name} ({type(layer).__name__})", shape,
                    f"{layer.count_params():,}", layer.trainable,
                    ", ".join(connected) if connected else "-"))
    return out


def print_summary(model, line_length=None, positions=None, print_fn=None,
                  show_trainable=False):
    """Print ``model``'s summary (see :meth:`pynn.models.Model.summary`)."""
    print_fn = print_fn or print
    graph = getattr(model, "_summary_as_graph", True)
    line_length = line_length or (98 if graph else 65)
    positions = positions or ([0.33, 0.55, 0.67, 1.0] if graph else [0.45, 0.85, 1.0])
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    header = ["Layer (type)", "Output Shape", "Param #"]
    if graph:
        header.append("Connected to")
    if show_trainable:
        line_length += 11
        positions = list(positions) + [line_length]
        header.append("Trainable")
    row = _row_printer(positions, print_fn)
    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    row(header)
    print_fn("=" * line_length)
    for name, shape, params, trainable, connected in _rows(model, graph):
        fields = [name, shape, params]
        if graph:
            fields.append(connected)
        if show_trainable:
            fields.append("Y" if trainable else "N")
        row(fields)
        print_fn(" " * line_length)
    print_fn("=" * line_length)
    if not model.built:
        print_fn("Total params: unknown until the model is built (give it an input shape, "
                 "e.g. Input(shape=...), or call it on data)")
        print_fn("_" * line_length)
        return
    itemsize = np.dtype(model._dtype).itemsize
    n_train = sum(w.size for w in model.trainable_weights)
    n_frozen = sum(w.size for w in model.non_trainable_weights)
    print_fn(f"Total params: {n_train + n_frozen:,} "
             f"({readable_size((n_train + n_frozen) * itemsize)})")
    print_fn(f"Trainable params: {n_train:,} ({readable_size(n_train * itemsize)})")
    print_fn(f"Non-trainable params: {n_frozen:,} ({readable_size(n_frozen * itemsize)})")
    print_fn("_" * line_length)
