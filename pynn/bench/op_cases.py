"""Section (a)'s cases: one per op of :mod:`pynn.ops` and shape of the MNIST MLP."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..backends.base import Backend
from .constants import ARCH, BATCHES
from .data import normal


@dataclass(frozen=True)
class OpCase:
    """One benchmarked call: ``make(backend)`` returns a zero-argument callable.

    Inputs are drawn from a fixed seed, so every backend sees identical data; output
    buffers are allocated once, in ``make``, and reused by every call.
    """

    op: str
    label: str
    make: Callable[[Backend], Callable[[], object]]

    @property
    def name(self):
        return f"{self.op} {self.label}"


def _gemm_case(batch, n_in, n_out, activation, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 1, batch, n_in, n_out])
        x = be.asarray(rng.random((batch, n_in)), dtype)
        w = be.asarray(normal(rng, (n_in, n_out), dtype, math.sqrt(2.0 / n_in)))
        b = be.asarray(normal(rng, (n_out,), dtype, 0.1))
        out = be.empty((batch, n_out), dtype)
        return lambda: be.gemm(x, w, out=out, bias=b, activation=activation)
    act = "" if activation == "linear" else f" {activation}"
    return OpCase("gemm", f"({batch},{n_in})@({n_in},{n_out})+bias{act}", make)


def _act_case(op, batch, width, activation, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 2, batch, width])
        x = normal(rng, (batch, width), dtype)
        out = be.empty((batch, width), dtype)
        if op == "activation_forward":
            x = be.asarray(x)
            return lambda: be.activation_forward(x, activation, out=out)
        y = be.asarray(Backend().activation_forward(x, activation))
        dy = be.asarray(normal(rng, (batch, width), dtype))
        return lambda: be.activation_backward(dy, y, activation, out=out)
    return OpCase(op, f"{activation} ({batch},{width})", make)


def _rowwise_case(op, batch, k, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 3, batch, k])
        x = be.asarray(normal(rng, (batch, k), dtype, 3.0))
        out = be.empty((batch, k), dtype)
        fn = getattr(be, op)
        return lambda: fn(x, out=out)
    return OpCase(op, f"({batch},{k})", make)


def _loss_case(op, batch, k, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 4, batch, k])
        logits = normal(rng, (batch, k), dtype, 3.0)
        labels = rng.integers(0, k, batch)
        if op == "softmax_cross_entropy":
            pred, target = logits, labels
        elif op == "categorical_cross_entropy":
            pred, target = Backend().softmax(logits), labels
        elif op == "sigmoid_binary_cross_entropy":
            pred, target = logits, (rng.random((batch, k)) < 0.5).astype(dtype)
        elif op == "binary_cross_entropy":
            pred = Backend().activation_forward(logits, "sigmoid")
            target = (rng.random((batch, k)) < 0.5).astype(dtype)
        else:  # regression losses
            pred, target = logits, normal(rng, (batch, k), dtype)
        pred = be.asarray(pred)
        target = be.asarray(target)
        grad = be.empty((batch, k), dtype)
        fn = getattr(be, op)
        return lambda: fn(pred, target, grad=grad)
    return OpCase(op, f"({batch},{k})", make)


def _bias_grad_case(batch, width, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 5, batch, width])
        dy = be.asarray(normal(rng, (batch, width), dtype))
        out = be.empty((width,), dtype)
        return lambda: be.bias_grad(dy, out=out)
    return OpCase("bias_grad", f"({batch},{width})", make)


def _dropout_case(op, batch, width, dtype, seed, rate=0.2):
    def make(be):
        rng = np.random.default_rng([seed, 6, batch, width])
        x = normal(rng, (batch, width), dtype)
        out = be.empty((batch, width), dtype)
        if op == "dropout_forward":
            x = be.asarray(x)
            mask = be.empty((batch, width), dtype)
            return lambda: be.dropout_forward(x, rate, 12345, out=out, mask=mask)
        _, mask = Backend().dropout_forward(x, rate, 12345)
        mask = be.asarray(mask)
        dy = be.asarray(normal(rng, (batch, width), dtype))
        return lambda: be.dropout_backward(dy, mask, out=out)
    return OpCase(op, f"rate {rate} ({batch},{width})", make)


def _batchnorm_case(op, batch, width, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 7, batch, width])
        x = normal(rng, (batch, width), dtype, 2.0) + 0.5
        gamma = (1.0 + normal(rng, (width,), dtype, 0.1)).astype(dtype)
        beta = normal(rng, (width,), dtype, 0.1)
        if op == "batchnorm_forward":
            xb, g, bt = be.asarray(x), be.asarray(gamma), be.asarray(beta)
            mm, mv = be.zeros((width,), dtype), be.asarray(np.ones(width, dtype))
            out = be.empty((batch, width), dtype)
            return lambda: be.batchnorm_forward(xb, g, bt, mm, mv, True, out=out)
        _, mean, inv_std = Backend().batchnorm_forward(
            x, gamma, beta, np.zeros(width, dtype), np.ones(width, dtype), True)
        dy = be.asarray(normal(rng, (batch, width), dtype))
        xb, g = be.asarray(x), be.asarray(gamma)
        mean, inv_std = be.asarray(mean), be.asarray(inv_std)
        dx = be.empty((batch, width), dtype)
        dg, db = be.empty((width,), dtype), be.empty((width,), dtype)
        return lambda: be.batchnorm_backward(dy, xb, g, mean, inv_std, dx=dx, dgamma=dg,
                                             dbeta=db)
    return OpCase(op, f"training ({batch},{width})", make)


def mlp_param_count(arch=ARCH):
    """Number of parameters (kernels and biases) of a dense MLP with widths ``arch``."""
    return sum(a * b + b for a, b in zip(arch[:-1], arch[1:]))


def _optimizer_case(op, n, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 8, n])
        p = be.asarray(normal(rng, (n,), dtype, 0.05))
        g = be.asarray(normal(rng, (n,), dtype, 1e-3))
        if op == "sgd_update":
            return lambda: be.sgd_update(p, g, learning_rate=0.01)
        if op == "adam_update":
            m = be.asarray(normal(rng, (n,), dtype, 1e-4))
            v = be.asarray(np.abs(normal(rng, (n,), dtype, 1e-6)))
            return lambda: be.adam_update(p, g, m, v, 10, learning_rate=0.001)
        state = be.asarray(np.abs(normal(rng, (n,), dtype, 1e-6)))
        fn = getattr(be, op)
        return lambda: fn(p, g, state, learning_rate=0.001)
    return OpCase(op, f"flat ({n},)", make)


_LOSS_OPS = ("softmax_cross_entropy", "categorical_cross_entropy",
             "sigmoid_binary_cross_entropy", "binary_cross_entropy", "mean_squared_error",
             "mean_absolute_error")
_OPTIMIZER_OPS = ("sgd_update", "adam_update", "rmsprop_update", "adagrad_update")


def op_cases(batches=BATCHES, n_params=None, dtype=np.float32, seed=0):
    """Every op of :data:`pynn.ops._OPS` at the shapes of the MNIST MLP.

    Parameters
    ----------
    batches : sequence of int
        Batch sizes of the per-sample ops.
    n_params : int, optional
        Length of the flat parameter vector for the optimizer updates (default: the
        784-256-128-10 MLP's 235,146 parameters).
    """
    dtype = np.dtype(dtype)
    n_params = mlp_param_count() if n_params is None else int(n_params)
    hidden, k = ARCH[1], ARCH[-1]
    cases = []
    for b in batches:
        for n_in, n_out in zip(ARCH[:-1], ARCH[1:]):
            act = "linear" if n_out == k else "relu"
            cases.append(_gemm_case(b, n_in, n_out, act, dtype, seed))
        for op in ("activation_forward", "activation_backward"):
            for act in ("relu", "sigmoid"):
                cases.append(_act_case(op, b, hidden, act, dtype, seed))
        for op in ("softmax", "log_softmax"):
            cases.append(_rowwise_case(op, b, k, dtype, seed))
        for op in _LOSS_OPS:
            cases.append(_loss_case(op, b, k, dtype, seed))
        cases.append(_bias_grad_case(b, hidden, dtype, seed))
        for op in ("dropout_forward", "dropout_backward"):
            cases.append(_dropout_case(op, b, hidden, dtype, seed))
        for op in ("batchnorm_forward", "batchnorm_backward"):
            cases.append(_batchnorm_case(op, b, hidden, dtype, seed))
    for op in _OPTIMIZER_OPS:
        cases.append(_optimizer_case(op, n_params, dtype, seed))
    return cases
