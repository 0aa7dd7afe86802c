"""The fused Dense-stack contract: what :meth:`Backend.dense_stack_forward_backward`
and :meth:`Backend.dense_stack_forward` take, their argument checks, and the
reference composition of both from a backend's single ops (the oracle the
compiled fused kernels are tested against).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .activation_codes import ACTIVATIONS, NEEDS_INPUT_FOR_BACKWARD
from .validation import (OP_HYPER, activation_alpha, adam_step_size, as_float, as_labels,
                         check_aliasing, check_hyper, check_layout, check_state,
                         epilogue_code, op_hyper, sample_weights)

_ACTIVATION_NAMES = {v: k for k, v in ACTIVATIONS.items()}

__all__ = ["STACK_LOSSES", "STACK_FOLDED_ACTIVATION", "StackUpdate", "STACK_UPDATE_RULES",
           "check_dense_forward", "check_dense_stack",
           "check_stack_update", "stack_update_hyper", "stack_update_slots"]

#: Losses :meth:`Backend.dense_stack_forward_backward` computes -> integer code.
STACK_LOSSES = {
    "softmax_cross_entropy": 0,
    "sigmoid_binary_cross_entropy": 1,
    "mean_squared_error": 2,
    "mean_absolute_error": 3,
}

#: Loss -> the output activation folded into it when it is the last layer's.
STACK_FOLDED_ACTIVATION = {"softmax_cross_entropy": "softmax",
                           "sigmoid_binary_cross_entropy": "sigmoid"}


def _stack_list(seq, depth, name):
    if isinstance(seq, np.ndarray) or not isinstance(seq, (list, tuple)):
        raise TypeError(f"{name}: expected a list or tuple of {depth} entries, got "
                        f"{type(seq).__name__}")
    if len(seq) != depth:
        raise ValueError(f"{name}: expected {depth} entries (one per layer), got {len(seq)}")
    return list(seq)


def _check_stack_layers(x, kernels, biases, activations, outs, act_alphas):
    """The checks every Dense-stack op shares: ``x`` converted to the kernels' dtype,
    the shape chain, biases and outputs; returns a dict with ``x``, ``dtype``,
    ``depth``, ``kernels``/``biases`` lists and per-layer activation ``codes`` and
    ``alphas`` (every activation as given)."""
    if isinstance(kernels, np.ndarray) or not isinstance(kernels, (list, tuple)):
        raise TypeError(f"kernels: expected a list or tuple of 2-D arrays, got "
                        f"{type(kernels).__name__}")
    depth = len(kernels)
    if depth == 0:
        raise ValueError("kernels: expected at least one layer")
    kernels = list(kernels)
    biases = _stack_list(biases, depth, "biases")
    activations = _stack_list(activations, depth, "activations")
    outs = _stack_list(outs, depth, "outs")
    act_alphas = ([None] * depth if act_alphas is None
                  else _stack_list(act_alphas, depth, "act_alphas"))
    for i, k in enumerate(kernels):
        if not isinstance(k, np.ndarray):
            raise TypeError(f"kernels[{i}]: expected a numpy.ndarray, got {type(k).__name__}")
    dt = kernels[0].dtype
    if dt not in (np.float32, np.float64):
        raise TypeError(f"kernels[0]: expected float32 or float64, got {dt}")
    xa = np.asarray(x)
    if xa.dtype.kind not in "biuf":
        raise TypeError(f"x: expected a numeric array, got dtype {xa.dtype}")
    if xa.ndim != 2:
        raise ValueError(f"x: expected a 2-D array (batch, features), got shape {xa.shape}")
    x = as_float(xa, dt, "x")
    n, width = x.shape
    codes, alphas = [], []
    for i in range(depth):
        k = kernels[i]
        if k.ndim != 2 or k.shape[0] != width:
            raise ValueError(f"kernels[{i}]: expected shape ({width}, units) to follow "
                             f"{'x' if i == 0 else f'kernels[{i - 1}]'} of width {width}, "
                             f"got {k.shape}")
        if k.dtype != dt:
            raise ValueError(f"kernels[{i}]: expected dtype {dt}, got {k.dtype}")
        check_layout(k, f"kernels[{i}]")
        units = k.shape[1]
        codes.append(epilogue_code(activations[i], f"activations[{i}]"))
        alphas.append(activation_alpha(activations[i], act_alphas[i], f"act_alphas[{i}]"))
        if biases[i] is not None:
            if not isinstance(biases[i], np.ndarray):
                raise TypeError(f"biases[{i}]: expected a numpy.ndarray or None, got "
                                f"{type(biases[i]).__name__}")
            if biases[i].shape != (units,) or biases[i].dtype != dt:
                raise ValueError(f"biases[{i}]: expected shape ({units},) and dtype {dt}, got "
                                 f"{biases[i].shape} {biases[i].dtype}")
            check_layout(biases[i], f"biases[{i}]")
        check_state(outs[i], (n, units), dt, f"outs[{i}]")
        width = units
    return dict(x=x, dtype=dt, depth=depth, kernels=kernels, biases=biases, codes=codes,
                alphas=alphas)


def check_dense_forward(x, kernels, biases, activations, outs, act_alphas=None):
    """Validate the arguments of ``dense_stack_forward`` (see :func:`_check_stack_layers`)."""
    a = _check_stack_layers(x, kernels, biases, activations, outs, act_alphas)
    check_aliasing("dense_stack_forward", _named("outs", outs),
                   [("x", x)] + _named("kernels", a["kernels"]) + _named("biases", a["biases"]))
    return a


def _named(name, arrays):
    return [(f"{name}[{i}]", arr) for i, arr in enumerate(arrays) if arr is not None]


def check_dense_stack(x, target, kernels, biases, activations, loss, outs, deltas, dkernels,
                      dbiases, sample_weight=None, act_alphas=None, preacts=None,
                      label_smoothing=0.0, loss_scale=1.0, update=None):
    """Validate and normalise the arguments of ``dense_stack_forward_backward`` once.

    Returns a dict with ``x`` (converted to the kernels' dtype), ``labels`` (intp
    ``(n,)`` or ``None``), ``target`` (dense ``(n, k)`` or ``None``), ``w``
    (float64 ``(n,)`` or ``None``), ``codes`` and ``alphas`` (per layer, with the
    folded last activation replaced by linear), ``preacts`` (list, ``None``
    where unused), ``biases``/``dbiases`` lists, ``loss_code``, ``dtype``,
    ``label_smoothing`` and ``loss_scale`` as floats.
    """
    if loss not in STACK_LOSSES:
        raise ValueError(f"loss: expected one of {sorted(STACK_LOSSES)}, got {loss!r}")
    ls, loss_scale = op_hyper("dense_stack_forward_backward", label_smoothing=label_smoothing,
                              loss_scale=loss_scale)
    st = _check_stack_layers(x, kernels, biases, activations, outs, act_alphas)
    x_in = x
    x, dt, depth, codes, alphas = st["x"], st["dtype"], st["depth"], st["codes"], st["alphas"]
    kernels, biases = st["kernels"], st["biases"]
    n, width = x.shape
    deltas = _stack_list(deltas, depth, "deltas")
    dkernels = _stack_list(dkernels, depth, "dkernels")
    dbiases = _stack_list(dbiases, depth, "dbiases")
    preacts = [None] * depth if preacts is None else _stack_list(preacts, depth, "preacts")
    folded = STACK_FOLDED_ACTIVATION.get(loss)
    if folded is not None and activations[-1] == folded:
        codes[-1], alphas[-1] = 0, 0.0
    for i in range(depth):
        units = kernels[i].shape[1]
        if biases[i] is not None:
            check_state(dbiases[i], (units,), dt, f"dbiases[{i}]")
        elif dbiases[i] is not None:
            raise ValueError(f"dbiases[{i}]: must be None when biases[{i}] is None")
        check_state(deltas[i], (n, units), dt, f"deltas[{i}]")
        check_state(dkernels[i], (width, units), dt, f"dkernels[{i}]")
        if _ACTIVATION_NAMES[codes[i]] in NEEDS_INPUT_FOR_BACKWARD:
            check_state(preacts[i], (n, units), dt, f"preacts[{i}]")
        else:
            preacts[i] = None
        width = units
    k_out = width
    loss_code = STACK_LOSSES[loss]
    labels = dense = None
    t = np.asarray(target)
    if loss_code == 0:
        if t.ndim == 2 and t.shape == (n, k_out):
            dense = as_float(t, dt, "target")
        elif t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1 and k_out != 1):
            labels = as_labels(t, n, k_out, "target")
        else:
            raise ValueError(f"target: expected integer labels of shape ({n},) or "
                             f"probabilities of shape ({n}, {k_out}), got {t.shape}")
    else:
        if t.shape != (n, k_out):
            raise ValueError(f"target: expected shape ({n}, {k_out}), got {t.shape}")
        dense = as_float(t, dt, "target")
    w = sample_weights(sample_weight, n)
    if ls and loss_code != 0:
        raise ValueError(f"label_smoothing: only supported with softmax_cross_entropy, got "
                         f"{ls} with {loss!r}")
    workspaces = (_named("outs", outs) + _named("deltas", deltas)
                  + _named("dkernels", dkernels) + _named("dbiases", dbiases)
                  + _named("preacts", preacts))
    inputs = [("x", x_in), ("target", target), ("sample_weight", sample_weight)]
    if update is None:
        check_aliasing("dense_stack_forward_backward", workspaces,
                       inputs + _named("kernels", kernels) + _named("biases", biases))
    else:  # the weights and the optimizer state are written too
        check_aliasing("dense_stack_forward_backward",
                       workspaces + check_stack_update(update, kernels, biases), inputs)
    return dict(x=x, labels=labels, target=dense, w=w, codes=codes, alphas=alphas,
                preacts=preacts, biases=biases, dbiases=dbiases, loss_code=loss_code,
                dtype=dt, label_smoothing=ls, loss_scale=loss_scale)


class StackUpdate(NamedTuple):
    """An optimizer step folded into :meth:`Backend.dense_stack_forward_backward`.

    ``rule`` is ``'sgd'`` (:meth:`Backend.sgd_update`) or ``'adam'``
    (:meth:`Backend.adam_update`), with the same hyperparameters; ``step`` (Adam)
    counts from 1. ``kernel_states[i]`` / ``bias_states[i]`` hold the state arrays
    of layer ``i``'s kernel and bias, shaped like them: ``()`` for plain SGD,
    ``(velocity,)`` for SGD with momentum, ``(m, v)`` for Adam (``()`` for a layer
    without bias).
    """
    rule: str
    learning_rate: float
    kernel_states: tuple
    bias_states: tuple
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    step: int = 1


#: Update rule -> the integer code the compiled kernels use.
STACK_UPDATE_RULES = {"sgd": 1, "adam": 2}
#: Update rule -> the single op it takes the hyper-parameters (and their ranges) of.
_STACK_UPDATE_OPS = {"sgd": "sgd_update", "adam": "adam_update"}


def stack_update_slots(update):
    """How many state arrays each weight carries under ``update``."""
    if update.rule == "adam":
        return 2
    return 1 if update.momentum else 0


def stack_update_hyper(update):
    """``(rule code, (lr, lr * weight_decay, momentum, nesterov, alpha, 1 - beta_1,
    1 - beta_2, epsilon))`` of a :class:`StackUpdate` as Python numbers, the form the
    compiled kernels take (``alpha``: :func:`adam_step_size`; unused entries 0).
    Raises ``TypeError``/``ValueError`` naming the field that is wrong."""
    if not isinstance(update, StackUpdate):
        raise TypeError(f"update: expected a StackUpdate, got {type(update).__name__}")
    if update.rule not in STACK_UPDATE_RULES:
        raise ValueError(f"update.rule: expected one of {sorted(STACK_UPDATE_RULES)}, got "
                         f"{update.rule!r}")
    # the ranges of the single ops the step stands for (sgd_update, adam_update)
    ranges = OP_HYPER[_STACK_UPDATE_OPS[update.rule]]
    lr = check_hyper("update.learning_rate", update.learning_rate, ranges["learning_rate"])
    wd = check_hyper("update.weight_decay", update.weight_decay, ranges["weight_decay"])
    decay = lr * wd
    if update.rule == "sgd":
        mom = check_hyper("update.momentum", update.momentum, ranges["momentum"])
        return STACK_UPDATE_RULES["sgd"], (lr, decay, mom, bool(update.nesterov), 0.0, 0.0,
                                           0.0, 0.0)
    step = check_hyper("update.step", update.step, ranges["step"])
    b1 = check_hyper("update.beta_1", update.beta_1, ranges["beta_1"])
    b2 = check_hyper("update.beta_2", update.beta_2, ranges["beta_2"])
    eps = check_hyper("update.epsilon", update.epsilon, ranges["epsilon"])
    return STACK_UPDATE_RULES["adam"], (lr, decay, 0.0, False,
                                        adam_step_size(lr, b1, b2, step), 1.0 - b1, 1.0 - b2,
                                        eps)


def check_stack_update(update, kernels, biases):
    """Validate ``update`` against the (already checked) layers; returns the named
    list of arrays it writes (weights and states) for the overlap check."""
    stack_update_hyper(update)
    depth = len(kernels)
    ks = _stack_list(update.kernel_states, depth, "update.kernel_states")
    bs = _stack_list(update.bias_states, depth, "update.bias_states")
    slots = stack_update_slots(update)
    written = []
    for i in range(depth):
        for what, plural, w, states in (("kernel", "kernels", kernels[i], ks[i]),
                                        ("bias", "biases", biases[i], bs[i])):
            states = () if states is None else states
            if not isinstance(states, (list, tuple)):
                raise TypeError(f"update.{what}_states[{i}]: expected a tuple of arrays, got "
                                f"{type(states).__name__}")
            want = 0 if w is None else slots
            if len(states) != want:
                raise ValueError(f"update.{what}_states[{i}]: expected {want} state arrays "
                                 f"for rule {update.rule!r}, got {len(states)}")
            if w is None:
                continue
            check_state(w, w.shape, w.dtype, f"{plural}[{i}]")
            written.append((f"{plural}[{i}]", w))
            for j, st in enumerate(states):
                name = f"update.{what}_states[{i}][{j}]"
                check_state(st, w.shape, w.dtype, name)
                written.append((name, st))
    return written


def _apply_stack_update(be, update, kernels, biases, dkernels, dbiases):
    """The reference optimizer step of a Dense stack: the backend's own single ops."""
    for i in range(len(kernels)):
        for w, g, states in ((kernels[i], dkernels[i], update.kernel_states[i]),
                             (biases[i], dbiases[i], update.bias_states[i])):
            if w is None:
                continue
            if update.rule == "sgd":
                be.sgd_update(w, g, states[0] if states else None,
                              learning_rate=update.learning_rate, momentum=update.momentum,
                              nesterov=update.nesterov, weight_decay=update.weight_decay)
            else:
                be.adam_update(w, g, states[0], states[1], int(update.step),
                               learning_rate=update.learning_rate, beta_1=update.beta_1,
                               beta_2=update.beta_2, epsilon=update.epsilon,
                               weight_decay=update.weight_decay)




def _dense_stack_reference(be, x, target, kernels, biases, activations, loss, outs, deltas,
                           dkernels, dbiases, sample_weight, act_alphas, preacts,
                           label_smoothing, loss_scale, update=None):
    """The fused step composed from ``be``'s single ops (the oracle)."""
    a = check_dense_stack(x, target, kernels, biases, activations, loss, outs, deltas,
                          dkernels, dbiases, sample_weight, act_alphas, preacts,
                          label_smoothing, loss_scale, update)
    x, codes, alphas, pre = a["x"], a["codes"], a["alphas"], a["preacts"]
    biases, dbiases = a["biases"], a["dbiases"]
    depth = len(kernels)
    names = [_ACTIVATION_NAMES[c] for c in codes]
    h = x
    for i in range(depth):
        if names[i] in NEEDS_INPUT_FOR_BACKWARD:
            be.gemm(h, kernels[i], out=pre[i], bias=biases[i])
            be.activation_forward(pre[i], names[i], out=outs[i], alpha=alphas[i])
        else:
            be.gemm(h, kernels[i], out=outs[i], bias=biases[i], activation=names[i],
                    act_alpha=alphas[i])
        h = outs[i]
    t = a["labels"] if a["labels"] is not None else a["target"]
    lossfn = getattr(be, loss)
    if a["loss_code"] == 0:
        value, _ = lossfn(outs[-1], t, grad=deltas[-1], sample_weight=a["w"],
                          label_smoothing=a["label_smoothing"])
    else:
        value, _ = lossfn(outs[-1], t, grad=deltas[-1], sample_weight=a["w"])
    if a["loss_scale"] != 1.0:
        value *= a["loss_scale"]
        be.scale_(deltas[-1], a["loss_scale"])
    for i in range(depth - 1, -1, -1):
        if names[i] != "linear":
            be.activation_backward(deltas[i], outs[i], names[i], x=pre[i], out=deltas[i],
                                   alpha=alphas[i])
        be.gemm(x if i == 0 else outs[i - 1], deltas[i], out=dkernels[i], trans_a=True)
        if biases[i] is not None:
            be.bias_grad(deltas[i], out=dbiases[i])
        if i > 0:
            be.gemm(deltas[i], kernels[i], out=deltas[i - 1], trans_b=True)
    if update is not None and math.isfinite(value):
        _apply_stack_update(be, update, kernels, biases, dkernels, a["dbiases"])
    return float(value)


def _dense_forward_reference(be, x, kernels, biases, activations, outs, act_alphas):
    """The inference pass composed from ``be``'s single ops (the oracle)."""
    a = check_dense_forward(x, kernels, biases, activations, outs, act_alphas)
    h = a["x"]
    for i, k in enumerate(a["kernels"]):
        be.gemm(h, k, out=outs[i], bias=a["biases"][i],
                activation=_ACTIVATION_NAMES[a["codes"][i]], act_alpha=a["alphas"][i])
        h = outs[i]
    return outs[-1]
