"""pynn activation names as ONNX nodes."""
from __future__ import annotations

import math

from ...backends.activation_codes import ACTIVATION_DEFAULT_ALPHA
from .graph import ExportError

__all__ = ["emit_activation", "RNN_ACTIVATIONS"]

#: activations ONNX's RNN/LSTM/GRU operators take by name
RNN_ACTIVATIONS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}


def emit_activation(g, x, name, layer, alpha=None, axis=-1):
    """``name`` (a canonical pynn activation) applied to ``x``; returns the output."""
    hint = layer.name
    if name in (None, "linear"):
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus",
              "softsign": "Softsign", "selu": "Selu"}
    if name in simple:
        return g.op(simple[name], [x], hint)
    if name == "softmax":
        return g.op("Softmax", [x], hint, axis=axis)
    if name == "log_softmax":
        return g.op("LogSoftmax", [x], hint, axis=axis)
    if name in ("leaky_relu", "elu"):
        a = ACTIVATION_DEFAULT_ALPHA[name] if alpha is None else alpha
        return g.op("LeakyRelu" if name == "leaky_relu" else "Elu", [x], hint, alpha=float(a))
    if name == "gelu":  # exact: x * Phi(x)
        half = g.op("Mul", [x, g.const(1 / math.sqrt(2.0), "inv_sqrt2")], hint)
        erf = g.op("Erf", [half], hint)
        one_plus = g.op("Add", [erf, g.const(1.0, "one")], hint)
        return g.op("Mul", [g.op("Mul", [x, one_plus], hint), g.const(0.5, "half")], hint)
    if name in ("swish", "silu"):
        return g.op("Mul", [x, g.op("Sigmoid", [x], hint)], hint)
    if name == "relu6":
        return g.op("Clip", [x, g.const(0.0, "zero"), g.const(6.0, "six")], hint)
    if name == "exponential":
        return g.op("Exp", [x], hint)
    if name in ("hard_sigmoid", "hard_silu"):  # Keras 3: relu6(x + 3) / 6
        hs = g.op("HardSigmoid", [x], hint, alpha=1.0 / 6.0, beta=0.5)
        return hs if name == "hard_sigmoid" else g.op("Mul", [x, hs], hint)
    if name == "mish":
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x], hint)], hint)], hint)
    if name == "celu":
        a = ACTIVATION_DEFAULT_ALPHA[name] if alpha is None else alpha
        return g.op("Celu", [x], hint, alpha=float(a))
    if name == "squareplus":  # (x + sqrt(x^2 + b)) / 2
        b = ACTIVATION_DEFAULT_ALPHA[name] if alpha is None else alpha
        root = g.op("Sqrt", [g.op("Add", [g.op("Mul", [x, x], hint), g.const(float(b), "b")],
                                  hint)], hint)
        return g.op("Mul", [g.op("Add", [x, root], hint), g.const(0.5, "half")], hint)
    if name == "glu":  # first half times the sigmoid of the second, along the axis
        a, b = g.op("Split", [x], hint, outputs=2, axis=axis, num_outputs=2)
        return g.op("Mul", [a, g.op("Sigmoid", [b], hint)], hint)
    if name == "tanh_shrink":
        return g.op("Sub", [x, g.op("Tanh", [x], hint)], hint)
    raise ExportError(f"ONNX export: activation {name!r} of layer {layer.name!r} is not "
                      f"supported by the exporter")
