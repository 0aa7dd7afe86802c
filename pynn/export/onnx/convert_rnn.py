"""Converters of the recurrent layers, ``Bidirectional`` and ``TimeDistributed``.

ONNX's ``RNN``/``LSTM``/``GRU`` run over ``(T, N, d)`` with weights ``W (dirs, gates*u,
d)``, ``R (dirs, gates*u, u)`` and ``B (dirs, 2*gates*u)`` (input bias, then recurrent
bias). Gate orders: ONNX's LSTM is i, o, f, c where Keras's is i, f, c, o; GRU is z, r,
h in both, and Keras's ``reset_after=True`` is ONNX's ``linear_before_reset=1``.
``go_backwards`` is ONNX's ``direction="reverse"``, whose sequence output is in input
time order where Keras returns it reversed.
"""
from __future__ import annotations

import numpy as np

from ... import layers as L
from .activations import RNN_ACTIVATIONS
from .graph import ExportError, converter_for, converts

_INT_MAX = np.iinfo(np.int64).max


def _act(layer, name):
    try:
        return RNN_ACTIVATIONS[name]
    except KeyError:
        raise ExportError(f"ONNX export: activation {name!r} of recurrent layer "
                          f"{layer.name!r} is not available in ONNX's recurrent operators "
                          f"(supported: {sorted(RNN_ACTIVATIONS)})") from None


def _weights(layer):
    """``(op, W, R, B, attrs)`` in ONNX's layout for one direction."""
    k, rk = layer.kernel.numpy(), layer.recurrent_kernel.numpy()
    u = layer.units
    b = layer.bias.numpy() if layer.bias is not None else None
    if layer.cell == "lstm":
        perm = np.r_[0:u, 3 * u:4 * u, u:2 * u, 2 * u:3 * u]  # i, f, c, o -> i, o, f, c
        k, rk = k[:, perm], rk[:, perm]
        wb = np.zeros(4 * u) if b is None else b[perm]
        rb = np.zeros(4 * u)
        acts = [_act(layer, layer._ract), _act(layer, layer._act), _act(layer, layer._act)]
        return "LSTM", k, rk, np.concatenate([wb, rb]), dict(activations=acts)
    if layer.cell == "gru":
        if b is None:
            wb = rb = np.zeros(3 * u)
        elif layer.reset_after:
            wb, rb = b[0], b[1]
        else:
            wb, rb = b, np.zeros(3 * u)
        acts = [_act(layer, layer._ract), _act(layer, layer._act)]
        return "GRU", k, rk, np.concatenate([wb, rb]), dict(
            activations=acts, linear_before_reset=int(layer.reset_after))
    wb = np.zeros(u) if b is None else b
    return "RNN", k, rk, np.concatenate([wb, np.zeros(u)]), dict(
        activations=[_act(layer, layer._act)])


def flip_time(g, x, hint):
    """Reverse axis 1 of ``x``."""
    return g.op("Slice", [x, g.ints([-1], "start"), g.ints([-_INT_MAX], "end"),
                          g.ints([1], "axis"), g.ints([-1], "step")], hint)


def run_rnn(g, layer, x, states):
    """One recurrent layer on ``x (N, T, d)`` with optional initial ``states`` (names of
    ``(N, u)`` tensors): Keras's outputs ``[out, *states]`` or ``out``."""
    if layer.stateful:
        raise ExportError(f"ONNX export: recurrent layer {layer.name!r} is stateful; its "
                          f"carried states cannot be exported")
    op, k, rk, b, attrs = _weights(layer)
    name, u = layer.name, layer.units
    ins = [g.transpose(x, [1, 0, 2], name), g.const(k.T[None], f"{name}/W"),
           g.const(rk.T[None], f"{name}/R"), g.const(b[None], f"{name}/B"), ""]
    n_states = 2 if op == "LSTM" else 1
    if states:
        ins += [g.op("Unsqueeze", [s, g.ints([0], "axes")], name) for s in states]
    outs = g.op(op, ins, name, outputs=1 + n_states, hidden_size=u,
                direction="reverse" if layer.go_backwards else "forward", **attrs)
    seq, finals = outs[0], outs[1:]
    finals = [g.op("Squeeze", [s, g.ints([0], "axes")], name) for s in finals]
    if layer.return_sequences:
        y = g.op("Squeeze", [seq, g.ints([1], "axes")], name)  # (T, N, u)
        y = g.transpose(y, [1, 0, 2], name)
        if layer.go_backwards:
            y = flip_time(g, y, name)
    else:
        y = finals[0]
    return [y] + finals if layer.return_state else [y]


@converts(L.SimpleRNN, L.LSTM, L.GRU)
def recurrent(g, layer, inputs, shapes):
    return run_rnn(g, layer, inputs[0], inputs[1:])


@converts(L.Bidirectional)
def bidirectional(g, layer, inputs, shapes):
    fl, bl = layer.forward_layer, layer.backward_layer
    n = len(fl.state_names)
    states = inputs[1:]
    fo = run_rnn(g, fl, inputs[0], states[:n])
    bo = run_rnn(g, bl, inputs[0], states[n:])
    yf, yb = fo[0], bo[0]
    if layer.return_sequences:
        yb = flip_time(g, yb, layer.name)
    mode = layer.merge_mode
    if mode == "concat":
        outs = [g.op("Concat", [yf, yb], layer.name, axis=-1)]
    elif mode == "sum":
        outs = [g.op("Add", [yf, yb], layer.name)]
    elif mode == "mul":
        outs = [g.op("Mul", [yf, yb], layer.name)]
    elif mode == "ave":
        outs = [g.op("Mul", [g.op("Add", [yf, yb], layer.name), g.const(0.5, "half")],
                     layer.name)]
    else:
        outs = [yf, yb]
    return outs + fo[1:] + bo[1:]


@converts(L.TimeDistributed)
def time_distributed(g, layer, inputs, shapes):
    """The wrapped layer on ``(N * T, ...)``, reshaped back to ``(N, T, ...)``."""
    inner = layer.layer
    shape = shapes[0]
    if any(d is None for d in shape[2:]):
        raise ExportError(f"ONNX export: TimeDistributed layer {layer.name!r} needs known "
                          f"sizes after the time axis, got {shape}")
    x = g.op("Reshape", [inputs[0], g.ints([-1] + [int(d) for d in shape[2:]], "shape")],
             layer.name)
    inner_out = inner.compute_output_shape((None,) + tuple(shape[2:]))
    if any(d is None for d in inner_out[1:]):
        raise ExportError(f"ONNX export: TimeDistributed layer {layer.name!r} needs the "
                          f"wrapped layer's output shape known, got {inner_out}")
    (y,) = converter_for(inner)(g, inner, [x], [(None,) + tuple(shape[2:])])
    lead = g.op("Slice", [g.op("Shape", [inputs[0]], layer.name), g.ints([0], "start"),
                          g.ints([2], "end")], layer.name)
    target = g.op("Concat", [lead, g.ints([int(d) for d in inner_out[1:]], "shape")],
                  layer.name, axis=0)
    return [g.op("Reshape", [y, target], layer.name)]
