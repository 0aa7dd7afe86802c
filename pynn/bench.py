"""Benchmarks: pynn's backends side by side, and beside PyTorch, NumPy and scikit-learn.

Run ``python -m pynn bench`` (or ``python benchmarks/run.py``). It prints Markdown tables
and, with ``--json PATH``, writes every measurement as JSON:

(a) ``--ops``: every op of :mod:`pynn.ops` on every available backend at the shapes of the
    MNIST MLP (batch 32/128/1024 x 784/256/128/10, float32, preallocated ``out=``
    buffers): median microseconds per call and the speed-up over the NumPy reference.
(b) ``--dense``: one 784->256 ReLU layer, forward (GEMM with fused bias+ReLU) and backward
    (activation_backward, GEMM for dW, bias_grad, GEMM for dX) per backend and batch
    size, beside the bare NumPy matrix products of that step.
(c) ``--train``: one epoch of a 784-256-128-10 ReLU softmax/cross-entropy MLP on 60,000
    MNIST-shaped samples (random, or real MNIST with ``--data``) with SGD and Adam at batch
    32/128/1024, for every backend through :class:`pynn.models.Sequential`, interleaved
    with the peers that are installed (PyTorch eager CPU on 2 threads, a hand-written
    NumPy MLP, scikit-learn's ``MLPClassifier.partial_fit``), with the GEMM-only floor of
    the epoch beside them; then ``predict`` at batch 1 and 1024.
(d) ``--startup`` (only when asked): ``import pynn`` in fresh processes; per backend the
    first and second training epoch in a fresh process with a cold and then a warm Numba
    cache (a new, empty ``NUMBA_CACHE_DIR``), so the first epoch's compilation shows as
    the difference; and the NumPy memory a fused training step allocates once warm
    (``tracemalloc``, NumPy's domain: 0 means no array is made per step).

Timing rules: every contestant is warmed up first (Numba compiles lazily); timed samples
are taken round-robin over the contestants so that drift of a shared machine hits all of
them alike, with a short pause between contestants in (c) because OpenBLAS worker threads
keep spinning after a call and would steal a core from the next one. Reported figures are
medians of ``--repeats`` samples.

OpenBLAS environment overrides such as ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` make
NumPy's matrix products slower; the report warns when they are set. To benchmark, unset
them for that one command: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pynn
bench``.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import backends as _backends
from .backends.base import Backend
from .trainers.planner import explain

__all__ = ["main", "OpCase", "op_cases", "dense_step", "blas_info", "openblas_overrides"]

#: Layer widths of the benchmark MLP.
ARCH = (784, 256, 128, 10)
BATCHES = (32, 128, 1024)
PREDICT_BATCHES = (1, 1024)
QUICK_BATCHES = (8,)
QUICK_PREDICT_BATCHES = (1, 64)
QUICK_SAMPLES = 512
QUICK_TRAIN_BATCHES = (32,)
#: Pause between contestants of the training benchmark (OpenBLAS threads spin ~0.1 s).
PAUSE_S = 0.3
#: Pause before each backend of each op case (their BLAS copies differ; see _blocked).
OPS_PAUSE_S = 0.2
#: Environment variables that change OpenBLAS's kernel choice and slow NumPy down.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
NOT_INSTALLED = "not installed"
LEARNING_RATES = {"sgd": 0.01, "adam": 0.001}


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------
def _calibrate(fn, target_s):
    """Calls per timed sample so that one sample lasts about ``target_s``."""
    if target_s <= 0:
        return 1
    # the fastest of a few short runs: one stall (a descheduled BLAS thread on a busy
    # machine) during calibration must not shrink every later sample to a single call
    n, best, spent = 1, math.inf, 0.0
    while spent < 0.5 * target_s or best == math.inf:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        spent += dt
        best = min(best, dt / n)
        if dt < 0.05 * target_s and n < 1 << 20:
            n *= 4
    return max(1, min(1 << 20, int(round(target_s / max(best, 1e-9)))))


def _sample(fn, n):
    """Seconds per call over ``n`` back-to-back calls (garbage collector off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n
    finally:
        if enabled:
            gc.enable()


def _interleaved(fns, repeats, target_s, pause=0.0):
    """Median seconds per call of each callable, samples taken round-robin.

    ``fns`` maps a name to a zero-argument callable (or to an error string, which is
    passed through). Each callable is warmed up and calibrated first; ``pause``
    seconds are slept before each of them runs, so that the thread pool of the one
    before has gone to sleep. Returns ``{name: (median_s or None, [samples], error)}``.
    """
    counts, result = {}, {}
    for name, fn in fns.items():
        if isinstance(fn, str):
            result[name] = (None, [], fn)
            continue
        try:
            if pause:
                time.sleep(pause)
            fn()  # warm-up: JIT compilation, workspaces, caches
            counts[name] = _calibrate(fn, target_s)
        except Exception as exc:  # a broken backend must not hide the others
            result[name] = (None, [], f"error: {type(exc).__name__}: {exc}")
    samples = {name: [] for name in counts}
    for _ in range(max(1, repeats)):
        for name in counts:
            if pause:
                time.sleep(pause)
            samples[name].append(_sample(fns[name], counts[name]))
    for name, s in samples.items():
        result[name] = (statistics.median(s), s, None)
    return {name: result[name] for name in fns}


def _blocked(fns, repeats, target_s, pause=0.0):
    """Like :func:`_interleaved`, but all samples of one callable back to back.

    Used for the op and dense tables, where a sample lasts milliseconds: switching
    contestant costs one ``pause`` instead of one per sample. The pause matters: the
    cython and numba backends reach SciPy's OpenBLAS while NumPy carries its own
    copy, and a product on one copy right after work on the other stalls for as long
    as the other's workers spin (measured: 6 ms instead of 0.25 ms per call).
    """
    result = {}
    for name, fn in fns.items():
        if pause and not isinstance(fn, str):
            time.sleep(pause)
        result.update(_interleaved({name: fn}, repeats, target_s))
    return result


# ---------------------------------------------------------------------------
# (a) one case per op and shape
# ---------------------------------------------------------------------------
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


def _normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _gemm_case(batch, n_in, n_out, activation, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 1, batch, n_in, n_out])
        x = be.asarray(rng.random((batch, n_in)), dtype)
        w = be.asarray(_normal(rng, (n_in, n_out), dtype, math.sqrt(2.0 / n_in)))
        b = be.asarray(_normal(rng, (n_out,), dtype, 0.1))
        out = be.empty((batch, n_out), dtype)
        return lambda: be.gemm(x, w, out=out, bias=b, activation=activation)
    act = "" if activation == "linear" else f" {activation}"
    return OpCase("gemm", f"({batch},{n_in})@({n_in},{n_out})+bias{act}", make)


def _act_case(op, batch, width, activation, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 2, batch, width])
        x = _normal(rng, (batch, width), dtype)
        out = be.empty((batch, width), dtype)
        if op == "activation_forward":
            x = be.asarray(x)
            return lambda: be.activation_forward(x, activation, out=out)
        y = be.asarray(Backend().activation_forward(x, activation))
        dy = be.asarray(_normal(rng, (batch, width), dtype))
        return lambda: be.activation_backward(dy, y, activation, out=out)
    return OpCase(op, f"{activation} ({batch},{width})", make)


def _rowwise_case(op, batch, k, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 3, batch, k])
        x = be.asarray(_normal(rng, (batch, k), dtype, 3.0))
        out = be.empty((batch, k), dtype)
        fn = getattr(be, op)
        return lambda: fn(x, out=out)
    return OpCase(op, f"({batch},{k})", make)


def _loss_case(op, batch, k, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 4, batch, k])
        logits = _normal(rng, (batch, k), dtype, 3.0)
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
            pred, target = logits, _normal(rng, (batch, k), dtype)
        pred = be.asarray(pred)
        target = be.asarray(target)
        grad = be.empty((batch, k), dtype)
        fn = getattr(be, op)
        return lambda: fn(pred, target, grad=grad)
    return OpCase(op, f"({batch},{k})", make)


def _bias_grad_case(batch, width, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 5, batch, width])
        dy = be.asarray(_normal(rng, (batch, width), dtype))
        out = be.empty((width,), dtype)
        return lambda: be.bias_grad(dy, out=out)
    return OpCase("bias_grad", f"({batch},{width})", make)


def _dropout_case(op, batch, width, dtype, seed, rate=0.2):
    def make(be):
        rng = np.random.default_rng([seed, 6, batch, width])
        x = _normal(rng, (batch, width), dtype)
        out = be.empty((batch, width), dtype)
        if op == "dropout_forward":
            x = be.asarray(x)
            mask = be.empty((batch, width), dtype)
            return lambda: be.dropout_forward(x, rate, 12345, out=out, mask=mask)
        _, mask = Backend().dropout_forward(x, rate, 12345)
        mask = be.asarray(mask)
        dy = be.asarray(_normal(rng, (batch, width), dtype))
        return lambda: be.dropout_backward(dy, mask, out=out)
    return OpCase(op, f"rate {rate} ({batch},{width})", make)


def _batchnorm_case(op, batch, width, dtype, seed):
    def make(be):
        rng = np.random.default_rng([seed, 7, batch, width])
        x = _normal(rng, (batch, width), dtype, 2.0) + 0.5
        gamma = (1.0 + _normal(rng, (width,), dtype, 0.1)).astype(dtype)
        beta = _normal(rng, (width,), dtype, 0.1)
        if op == "batchnorm_forward":
            xb, g, bt = be.asarray(x), be.asarray(gamma), be.asarray(beta)
            mm, mv = be.zeros((width,), dtype), be.asarray(np.ones(width, dtype))
            out = be.empty((batch, width), dtype)
            return lambda: be.batchnorm_forward(xb, g, bt, mm, mv, True, out=out)
        _, mean, inv_std = Backend().batchnorm_forward(
            x, gamma, beta, np.zeros(width, dtype), np.ones(width, dtype), True)
        dy = be.asarray(_normal(rng, (batch, width), dtype))
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
        p = be.asarray(_normal(rng, (n,), dtype, 0.05))
        g = be.asarray(_normal(rng, (n,), dtype, 1e-3))
        if op == "sgd_update":
            return lambda: be.sgd_update(p, g, learning_rate=0.01)
        if op == "adam_update":
            m = be.asarray(_normal(rng, (n,), dtype, 1e-4))
            v = be.asarray(np.abs(_normal(rng, (n,), dtype, 1e-6)))
            return lambda: be.adam_update(p, g, m, v, 10, learning_rate=0.001)
        state = be.asarray(np.abs(_normal(rng, (n,), dtype, 1e-6)))
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


# ---------------------------------------------------------------------------
# (b) one dense layer, forward and backward
# ---------------------------------------------------------------------------
def dense_step(be, batch, n_in=ARCH[0], n_out=ARCH[1], dtype=np.float32, seed=0):
    """Callables ``(forward, backward, step)`` of one ``n_in -> n_out`` ReLU dense layer.

    forward: ``H = relu(X @ W + b)`` (one GEMM with fused bias+ReLU epilogue);
    backward: ``dZ = activation_backward(dH, H)``, ``dW = X.T @ dZ`` (``trans_a``),
    ``db = bias_grad(dZ)``, ``dX = dZ @ W.T`` (``trans_b``). All buffers preallocated.
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([seed, 9, batch, n_in, n_out])
    x = be.asarray(rng.random((batch, n_in)), dtype)
    w = be.asarray(_normal(rng, (n_in, n_out), dtype, math.sqrt(2.0 / n_in)))
    b = be.asarray(_normal(rng, (n_out,), dtype, 0.1))
    dh = be.asarray(_normal(rng, (batch, n_out), dtype, 0.01))
    h, dz = be.empty((batch, n_out), dtype), be.empty((batch, n_out), dtype)
    dw, db = be.empty((n_in, n_out), dtype), be.empty((n_out,), dtype)
    dx = be.empty((batch, n_in), dtype)

    def forward():
        be.gemm(x, w, out=h, bias=b, activation="relu")

    def backward():
        be.activation_backward(dh, h, "relu", out=dz)
        be.gemm(x, dz, out=dw, trans_a=True)
        be.bias_grad(dz, out=db)
        be.gemm(dz, w, out=dx, trans_b=True)

    def step():
        forward()
        backward()

    forward()
    return forward, backward, step


def _dense_gemm_floor(batch, n_in=ARCH[0], n_out=ARCH[1], dtype=np.float32, seed=0):
    """The three bare NumPy matrix products of :func:`dense_step` (no bias, no ReLU)."""
    rng = np.random.default_rng([seed, 9, batch, n_in, n_out])
    x = rng.random((batch, n_in)).astype(dtype)
    w = _normal(rng, (n_in, n_out), dtype)
    dz = _normal(rng, (batch, n_out), dtype)
    h, dw, dx = (np.empty((batch, n_out), dtype), np.empty((n_in, n_out), dtype),
                 np.empty((batch, n_in), dtype))

    def step():
        np.matmul(x, w, out=h)
        np.matmul(x.T, dz, out=dw)
        np.matmul(dz, w.T, out=dx)
    return step


def _mlp_gemm_floor(batch, arch=ARCH, dtype=np.float32, seed=0):
    """The matrix products of one MLP training step in NumPy: the floor under any step.

    Forward ``H_i @ W_i`` for every layer, ``H_i.T @ G_i`` for every weight gradient and
    ``G_i @ W_i.T`` for every layer but the first (whose input gradient nobody needs).
    """
    rng = np.random.default_rng([seed, 10, batch])
    hs = [rng.random((batch, n)).astype(dtype) for n in arch]
    ws = [_normal(rng, (a, b), dtype) for a, b in zip(arch[:-1], arch[1:])]
    gs = [_normal(rng, (batch, n), dtype) for n in arch[1:]]
    zs = [np.empty((batch, n), dtype) for n in arch[1:]]
    dws = [np.empty_like(w) for w in ws]
    dhs = [np.empty((batch, n), dtype) for n in arch]

    def step():
        for i, w in enumerate(ws):
            np.matmul(hs[i], w, out=zs[i])
        for i in reversed(range(len(ws))):
            np.matmul(hs[i].T, gs[i], out=dws[i])
            if i:
                np.matmul(gs[i], ws[i].T, out=dhs[i])
    return step


# ---------------------------------------------------------------------------
# (c) training: pynn and its peers
# ---------------------------------------------------------------------------
def tutorial_model(optimizer, arch=ARCH, seed=0):
    """The benchmark network, compiled on the active backend: ReLU Dense layers of
    widths ``arch`` and a softmax output, sparse categorical cross-entropy."""
    from . import layers
    from ._config import set_seed
    from .models import Sequential

    set_seed(seed)
    model = Sequential([layers.Input(shape=(arch[0],)),
                        *[layers.Dense(n, activation="relu") for n in arch[1:-1]],
                        layers.Dense(arch[-1], activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


class _Contestant:
    """One way of training the benchmark MLP. ``status`` is 'ok' or why it cannot run."""

    name = "?"
    backend = None
    status = "ok"

    def build(self, optimizer, batch_size, seed):
        raise NotImplementedError

    def epoch(self, x, y):
        raise NotImplementedError

    def predict(self, x):
        raise NotImplementedError


class _Pynn(_Contestant):
    def __init__(self, backend_name):
        self.backend = backend_name
        self.name = f"pynn[{backend_name}]"
        self.model = None

    def build(self, optimizer, batch_size, seed):
        self.batch_size = batch_size
        with _backends.use_backend(self.backend):
            self.model = tutorial_model(optimizer, seed=seed)

    def epoch(self, x, y):
        with _backends.use_backend(self.backend):
            self.model.fit(x, y, batch_size=self.batch_size, epochs=1, verbose=0,
                           shuffle=True)

    def predict(self, x):
        with _backends.use_backend(self.backend):
            return self.model.predict(x, batch_size=len(x), verbose=0)

    def step(self, x, y):
        """A zero-argument callable: the step ``fit`` runs on one batch, on the rows
        ``x``, ``y`` as they are (no shuffled gather, no callbacks), so that it can be
        timed beside the matrix products it is made of."""
        model = self.model
        with _backends.use_backend(self.backend):
            be = _backends.get_backend()
            xb, yb = be.asarray(x, np.float32), np.asarray(y)

        def run():
            with _backends.use_backend(self.backend):
                model.train_step((xb, yb))
        return run


class _NumpyMLP(_Contestant):
    """The MLP as one would write it by hand in NumPy (no out= buffers, no fusion).

    Adam's moments are not flushed to zero, as in typical hand-written code, so its
    epochs slow down once they decay into float32 denormals (see PERF_NOTES).
    """

    name = "NumPy MLP"

    def build(self, optimizer, batch_size, seed):
        self.rng = np.random.default_rng(seed)
        self.optimizer, self.batch_size = optimizer, batch_size
        self.lr = LEARNING_RATES[optimizer]
        self.W, self.b = [], []
        for a, b in zip(ARCH[:-1], ARCH[1:]):
            lim = np.sqrt(6.0 / (a + b))
            self.W.append(self.rng.uniform(-lim, lim, (a, b)).astype(np.float32))
            self.b.append(np.zeros(b, np.float32))
        self.params = self.W + self.b
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def _forward(self, x):
        hs = [x]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = hs[-1] @ W + b
            if i < len(self.W) - 1:
                z = np.maximum(z, 0)
            hs.append(z)
        z = hs[-1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        hs[-1] = e / e.sum(axis=1, keepdims=True)
        return hs

    def _step(self, xb, yb):
        hs = self._forward(xb)
        n = len(xb)
        g = hs[-1].copy()
        g[np.arange(n), yb] -= 1
        g /= n
        dW, db = [None] * len(self.W), [None] * len(self.W)
        for i in reversed(range(len(self.W))):
            dW[i] = hs[i].T @ g
            db[i] = g.sum(axis=0)
            if i:
                g = (g @ self.W[i].T) * (hs[i] > 0)
        grads = dW + db
        if self.optimizer == "sgd":
            for p, gr in zip(self.params, grads):
                p -= self.lr * gr
        else:
            self.t += 1
            b1, b2, eps = 0.9, 0.999, 1e-7
            lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
            for p, gr, m, v in zip(self.params, grads, self.m, self.v):
                m *= b1
                m += (1 - b1) * gr
                v *= b2
                v += (1 - b2) * gr * gr
                p -= (lr_t * m / (np.sqrt(v) + eps)).astype(np.float32)

    def epoch(self, x, y):
        idx = self.rng.permutation(len(x))
        for s in range(0, len(x), self.batch_size):
            j = idx[s:s + self.batch_size]
            self._step(x[j], y[j])

    def predict(self, x):
        return self._forward(x)[-1]


class _Torch(_Contestant):
    name = "PyTorch"

    def __init__(self, threads=2):
        try:
            import torch
        except Exception:  # ImportError, or a broken install
            self.status = NOT_INSTALLED
            return
        self.torch = torch
        torch.set_num_threads(threads)

    def build(self, optimizer, batch_size, seed):
        torch, nn = self.torch, self.torch.nn
        torch.manual_seed(seed)
        mods = []
        for i, (a, b) in enumerate(zip(ARCH[:-1], ARCH[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(ARCH) - 2:
                mods.append(nn.ReLU())
        self.model = nn.Sequential(*mods)
        lr = LEARNING_RATES[optimizer]
        params = self.model.parameters()
        self.opt = (torch.optim.SGD(params, lr=lr) if optimizer == "sgd"
                    else torch.optim.Adam(params, lr=lr, eps=1e-7))
        self.loss = nn.CrossEntropyLoss()
        self.batch_size = batch_size
        self._data = None

    def epoch(self, x, y):
        torch = self.torch
        if self._data is None or self._data[0] is not x:
            self._data = (x, torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
        _, xt, yt = self._data
        perm = torch.randperm(len(x))
        for s in range(0, len(x), self.batch_size):
            j = perm[s:s + self.batch_size]
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(xt[j]), yt[j]).backward()
            self.opt.step()

    def predict(self, x):
        torch = self.torch
        with torch.inference_mode():
            return torch.softmax(self.model(torch.from_numpy(x)), dim=1).numpy()


class _TorchCuda(_Torch):
    """PyTorch on the GPU (eager): the data set is copied to the device once, every step
    runs there, and the epoch ends with a synchronize so its time is all counted."""

    name = "PyTorch CUDA"

    def __init__(self, threads=2):
        super().__init__(threads)
        if self.status == NOT_INSTALLED:
            return
        try:
            has_gpu = bool(self.torch.cuda.is_available())
        except Exception as exc:  # a broken CUDA runtime
            has_gpu, why = False, f"no GPU ({type(exc).__name__})"
        else:
            why = "no GPU"
        if not has_gpu:
            self.status = why

    def build(self, optimizer, batch_size, seed):
        super().build(optimizer, batch_size, seed)
        self.model = self.model.to("cuda")
        lr = LEARNING_RATES[optimizer]
        params = self.model.parameters()
        self.opt = (self.torch.optim.SGD(params, lr=lr) if optimizer == "sgd"
                    else self.torch.optim.Adam(params, lr=lr, eps=1e-7))

    def epoch(self, x, y):
        torch = self.torch
        if self._data is None or self._data[0] is not x:
            self._data = (x, torch.from_numpy(x).to("cuda"),
                          torch.from_numpy(y.astype(np.int64)).to("cuda"))
        _, xt, yt = self._data
        perm = torch.randperm(len(x), device="cuda")
        for s in range(0, len(x), self.batch_size):
            j = perm[s:s + self.batch_size]
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(xt[j]), yt[j]).backward()
            self.opt.step()
        torch.cuda.synchronize()

    def predict(self, x):
        torch = self.torch
        with torch.inference_mode():
            out = torch.softmax(self.model(torch.from_numpy(x).to("cuda")), dim=1)
            return out.cpu().numpy()


class _Sklearn(_Contestant):
    name = "scikit-learn"

    def __init__(self):
        try:
            from sklearn.neural_network import MLPClassifier
        except Exception:
            self.status = NOT_INSTALLED
            return
        self.cls = MLPClassifier

    def build(self, optimizer, batch_size, seed):
        kw = {"momentum": 0.0} if optimizer == "sgd" else {"epsilon": 1e-7}
        self.model = self.cls(hidden_layer_sizes=ARCH[1:-1], activation="relu",
                              solver=optimizer, alpha=0.0, batch_size=batch_size,
                              learning_rate_init=LEARNING_RATES[optimizer], shuffle=True,
                              random_state=seed, **kw)
        self.classes = np.arange(ARCH[-1])

    def epoch(self, x, y):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on random data
            self.model.partial_fit(x, y, classes=self.classes)

    def predict(self, x):
        return self.model.predict_proba(x)


#: Peers of the training table; ``torch-cuda`` joins the default ones when a GPU is there.
PEERS = ("torch", "torch-cuda", "numpy", "sklearn")


class _GemmFloor(_Contestant):
    """The matrix products of every training step alone (:func:`_mlp_gemm_floor`,
    NumPy's OpenBLAS), the last partial batch at its own size: run as a contestant,
    interleaved with the others, so the floor is measured beside the epochs it
    bounds."""

    name = "GEMM floor"

    def build(self, optimizer, batch_size, seed):
        self.batch_size, self.seed, self.steps = batch_size, seed, {}

    def _step(self, n):
        if n not in self.steps:
            self.steps[n] = _mlp_gemm_floor(n, seed=self.seed)
        return self.steps[n]

    def epoch(self, x, y):
        full, rest = divmod(len(x), self.batch_size)
        step = self._step(self.batch_size)
        for _ in range(full):
            step()
        if rest:
            self._step(rest)()


def _peers(names, torch_threads=2):
    table = {"torch": lambda: _Torch(torch_threads),
             "torch-cuda": lambda: _TorchCuda(torch_threads),
             "numpy": _NumpyMLP, "sklearn": _Sklearn}
    return [table[n]() for n in names]


def default_peers():
    """torch, numpy, sklearn, and PyTorch on the GPU when torch sees one."""
    peers = ["torch", "numpy", "sklearn"]
    if _TorchCuda().status == "ok":
        peers.insert(1, "torch-cuda")
    return tuple(peers)


def default_backends(available):
    """Every available backend, except ``cuda`` when it is Numba's CUDA simulator (which
    interprets each GPU thread in Python: a correctness tool, not something to time)."""
    names = list(available)
    if "cuda" in names:
        try:
            simulated = bool(getattr(_backends.get("cuda"), "_simulator", False))
        except Exception:  # it failed to start: leave it out, its row would say so
            simulated = True
        if simulated:
            names.remove("cuda")
    return names


def _load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def training_data(n_samples, data_dir=None, seed=0):
    """``(x, y)``: MNIST-shaped random float32 data, or the real MNIST training set.

    ``data_dir`` is a folder holding ``train-images-idx3-ubyte.gz`` and
    ``train-labels-idx1-ubyte.gz``; pixels are scaled to [0, 1].
    """
    if data_dir:
        x = _load_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
        y = _load_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
        n = min(n_samples, len(x))
        x = x[:n].reshape(n, -1).astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(x), y[:n].astype(np.int64)
    rng = np.random.default_rng(seed)
    x = rng.random((n_samples, ARCH[0]), dtype=np.float32)
    y = rng.integers(0, ARCH[-1], n_samples)
    return x, y


def models_status():
    """``None`` when :class:`pynn.models.Sequential` can be used, else why not."""
    try:
        from . import layers  # noqa: F401
        from .models import Sequential  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# ---------------------------------------------------------------------------
# environment report
# ---------------------------------------------------------------------------
def blas_info():
    """The thread pools threadpoolctl sees: BLAS kernels and OpenMP runtimes."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")
    return [{k: d.get(k) for k in keep} for d in threadpool_info()]


def openblas_overrides():
    """``{name: value}`` of the OpenBLAS override variables set in the environment."""
    return {k: os.environ[k] for k in OPENBLAS_OVERRIDES if k in os.environ}


def _meta(args, backends):
    import pynn
    return {
        "pynn": pynn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "backends": backends,
        "unavailable": {n: _backends.why_unavailable(n) for n in ("cython", "numba")
                        if n not in backends and _backends.why_unavailable(n)},
        "dtype": "float32",
        "quick": args.quick,
        "repeats": args.repeats,
        "thread_pools": blas_info(),
        "openblas_overrides": openblas_overrides(),
    }


def _header(meta):
    lines = ["# pynn benchmarks", ""]
    lines.append(f"- pynn {meta['pynn']}, NumPy {meta['numpy']}, Python {meta['python']}, "
                 f"{meta['platform']}, {meta['cpus']} CPUs, float32"
                 + (", QUICK (smoke sizes, timings meaningless)" if meta["quick"] else ""))
    lines.append(f"- backends: {', '.join(meta['backends'])}")
    for name, why in meta["unavailable"].items():
        lines.append(f"- backend {name} unavailable: {why}")
    for p in meta["thread_pools"]:
        arch = f" {p['architecture']}" if p.get("architecture") else ""
        lines.append(f"- thread pool (threadpoolctl): {p['internal_api']} {p['version']}"
                     f"{arch}, {p['num_threads']} thread{'' if p['num_threads'] == 1 else 's'} "
                     f"({p['prefix']})")
    if meta["openblas_overrides"]:
        lines.append("- **warning**: " + _override_warning(meta["openblas_overrides"]))
    lines.append(f"- medians of {meta['repeats']} samples")
    return "\n".join(lines)


def _override_warning(env):
    set_ = " ".join(f"{k}={v}" for k, v in env.items())
    unset = " ".join(f"-u {k}" for k in env)
    return (f"{set_} is set: it makes OpenBLAS (NumPy's matrix products) slower. To "
            f"benchmark, unset it for this command only: `env {unset} python -m pynn bench`")


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------
def _md_table(headers, rows, n_left=1):
    """A Markdown table; the first ``n_left`` columns are left-aligned, the rest right."""
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i < n_left else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _us(s):
    if s is None:
        return "-"
    us = s * 1e6
    return f"{us:.1f}" if us < 100 else f"{us:.0f}"


def _x(ratio):
    return "-" if ratio is None else f"{ratio:.2f}x"


def _secs(s):
    return "-" if s is None else f"{s:.3f}"


def _cell(row, fmt):
    status = row.get("status", "ok")
    if status == "ok":
        return fmt(row["median_s"])
    if status == NOT_INSTALLED:
        return status
    return "error" if status.startswith("error") else "unavailable"


# ---------------------------------------------------------------------------
# the sections
# ---------------------------------------------------------------------------
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
        res = _blocked(fns, repeats, target_s, pause)
        ref = res.get("numpy", (None,))[0]
        line = [case.op, case.label]
        for name in backends:
            med, samples, err = res[name]
            ratio = ref / med if (ref and med) else None
            rows.append({"op": case.op, "case": case.label, "backend": name,
                         "median_s": med, "median_us": None if med is None else med * 1e6,
                         "samples_s": samples, "speedup_vs_numpy": ratio,
                         "status": err or "ok"})
            line.append(_us(med) if err is None else "error")
            if name != "numpy" and "numpy" in backends:
                line.append(_x(ratio))
        table.append(line)
    headers = ["op", "case"]
    for name in backends:
        headers.append(f"{name} µs")
        if name != "numpy" and "numpy" in backends:
            headers.append(f"{name} vs numpy")
    out("\n## (a) Ops: median µs per call (float32, out= buffers preallocated)\n")
    out(_md_table(headers, table, n_left=2))
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
        fns[("numpy GEMMs only", "step")] = _dense_gemm_floor(batch)
        res = _blocked(fns, repeats, target_s, pause)
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
            fwd = _us(res[(name, "forward")][0]) if name in backends else "-"
            bwd = _us(res[(name, "backward")][0]) if name in backends else "-"
            table.append([batch, name, fwd, bwd,
                          _us(step) if rec["status"] == "ok" else "error",
                          _us(min(step_samples)) if step_samples else "-",
                          _x(rec["speedup_vs_numpy"])])
    out("\n## (b) Dense 784->256 ReLU layer: forward + backward, median µs\n")
    out("forward = GEMM with fused bias+ReLU; backward = activation_backward, GEMM trans_a "
        "(dW), bias_grad, GEMM trans_b (dX). `numpy GEMMs only` = the three bare "
        "`np.matmul` calls of the same step (no bias, no ReLU). `fwd+bwd best` = fastest "
        "sample (a busy machine only ever adds time).\n")
    out(_md_table(["batch", "backend", "forward", "backward", "forward+backward",
                   "fwd+bwd best", "vs numpy backend"], table, n_left=2))
    for r in rows:
        if r["status"] != "ok":
            out(f"\n- {r['backend']} batch {r['batch']}: {r['status']}")
    return rows


def _train_contestants(backends, peers, torch_threads=2):
    why = models_status()
    pynn_cs = [_Pynn(n) for n in backends]
    if why is not None:
        for c in pynn_cs:
            c.status = f"pynn.models unavailable: {why}"
    return pynn_cs + _peers(peers, torch_threads)


def _train_ratios(rows, optimizers, batches, pynn_cs, floor_name):
    """Markdown table of the ratios the speed targets are stated in, from one run's
    medians (``-`` where a contestant did not run)."""
    med = {(r["optimizer"], r["batch"], r["contestant"]): r["median_s"] for r in rows}
    names = [c.name for c in pynn_cs]
    if not names:
        return ""

    def ratio(a, b):
        return None if a is None or b is None or b <= 0 else a / b

    table = []
    for opt in optimizers:
        for batch in batches:
            times = {n: med.get((opt, batch, n)) for n in names}
            ran = {n: t for n, t in times.items() if t is not None}
            best = min(ran, key=ran.get) if ran else None
            tb = ran.get(best)
            row = [opt, batch, best or "-", _x(ratio(med.get((opt, batch, "PyTorch")), tb)),
                   _x(ratio(tb, med.get((opt, batch, floor_name))))]
            row += [_x(ratio(times[n], tb)) for n in names]
            if "sgd" in optimizers and opt != "sgd":
                row += [_x(ratio(times[n], med.get(("sgd", batch, n)))) for n in names]
            else:
                row += ["-"] * len(names)
            table.append(row)
    headers = (["optimizer", "batch", "best", "PyTorch / best", "best / floor"]
               + [f"{n} / best" for n in names] + [f"{n} / its SGD" for n in names])
    return _md_table(headers, table, n_left=3)


def run_train(backends, peers, batches, predict_batches, optimizers, n_samples, repeats,
              data_dir, pause, target_s, out=print, contestants=None):
    """Section (c): seconds per training epoch, and predict latency, pynn beside peers."""
    x, y = training_data(n_samples, data_dir)
    cs = contestants if contestants is not None else _train_contestants(backends, peers)
    floor = _GemmFloor()
    rows, pred_rows, step_rows = [], [], []
    steps = {b: math.ceil(len(x) / b) for b in batches}
    warm_n = {b: min(len(x), 4 * b) for b in batches}
    for opt in optimizers:
        for batch in batches:
            errors = {}
            print(f"training: {opt}, batch {batch} ...", file=sys.stderr, flush=True)
            for c in cs + [floor]:
                if c.status != "ok":
                    continue
                try:
                    c.build(opt, batch, seed=0)
                    c.epoch(x[:warm_n[batch]], y[:warm_n[batch]])  # warm-up (JIT, buffers)
                except Exception as exc:
                    errors[c.name] = f"error: {type(exc).__name__}: {exc}"
            samples = {c.name: [] for c in cs + [floor]}
            for _ in range(max(1, repeats)):
                for c in cs + [floor]:
                    if c.status != "ok" or c.name in errors:
                        continue
                    if pause:
                        time.sleep(pause)
                        gc.collect()
                    t0 = time.perf_counter()
                    try:
                        c.epoch(x, y)
                    except Exception as exc:
                        errors[c.name] = f"error: {type(exc).__name__}: {exc}"
                        continue
                    samples[c.name].append(time.perf_counter() - t0)
            step_rows += _time_steps(cs, floor, errors, opt, batch, x, y, repeats, target_s,
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
        res = _interleaved(fns, repeats, target_s, pause=pause)
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
            table.append([opt, batch] + [_cell(sel[n], _secs) for n in names + [floor.name]])
    out(_md_table(["optimizer", "batch"] + names + [floor.name], table, n_left=2))
    ratios = _train_ratios(rows, optimizers, batches, [c for c in cs if c.backend], floor.name)
    if ratios:
        out("\n### Ratios of those medians\n")
        out("`best` = the fastest pynn backend; `PyTorch / best` is its speed-up over PyTorch; "
            "`best / floor` what its epoch costs over the bare matrix products; "
            "`X / best` each pynn backend against the fastest; `X / its SGD` that "
            "backend's epoch with this optimizer over its SGD epoch at the same batch.\n")
        out(ratios)
    steps = _step_table(step_rows, optimizers, batches, [c for c in cs if c.backend],
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
        table.append([pb] + [_cell(sel[n], _us) for n in names])
    out(_md_table(["batch"] + names, table))
    for r in rows + pred_rows:
        if r["status"] not in ("ok", NOT_INSTALLED):
            what = f"{r.get('optimizer', 'predict')} batch {r['batch']}"
            out(f"\n- {r['contestant']} {what}: {r['status']}")
    for r in step_rows:
        if r["status"] != "ok":
            out(f"\n- {r['contestant']} {r['optimizer']} batch {r['batch']}, one step: "
                f"{r['status']}")
    return rows, pred_rows, step_rows


def _time_steps(cs, floor, errors, opt, batch, x, y, repeats, target_s, pause):
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
    fns[floor.name] = _mlp_gemm_floor(n)
    res = _interleaved(fns, repeats, target_s, pause=pause)
    return [{"optimizer": opt, "batch": batch, "rows": n, "contestant": name,
             "status": err or "ok", "median_s": med, "samples_s": samples}
            for name, (med, samples, err) in res.items()]


def _step_table(step_rows, optimizers, batches, pynn_cs, floor_name):
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
            table.append([opt, batch] + [_us(t) for t in times + [fl]]
                         + [_x(t / fl) if t and fl else "-" for t in times])
    headers = (["optimizer", "batch"] + names + [floor_name]
               + [f"{n} / floor" for n in names])
    return _md_table(headers, table, n_left=2)


# ---------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------
def plot(result, path):
    """Bar charts of the dense layer step and of the training epochs, saved to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    if result.get("dense"):
        panels.append("dense")
    if result.get("train"):
        panels.append("train")
    if not panels:
        raise ValueError("plot: nothing to plot (run --dense or --train)")
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "dense":
            rows = [r for r in result["dense"] if r["status"] == "ok"]
            groups = sorted({r["batch"] for r in rows})
            series = list(dict.fromkeys(r["backend"] for r in rows))
            value = {(r["batch"], r["backend"]): r["step_us"] for r in rows}
            ax.set_title("Dense 784->256 ReLU forward+backward")
            ax.set_ylabel("µs per step (log)")
            xlabel = "batch"
        else:
            opt = result["train"][0]["optimizer"]
            rows = [r for r in result["train"]
                    if r["status"] == "ok" and r["optimizer"] == opt]
            groups = sorted({r["batch"] for r in rows})
            series = list(dict.fromkeys(r["contestant"] for r in rows))
            value = {(r["batch"], r["contestant"]): r["median_s"] for r in rows}
            ax.set_title(f"One training epoch, {opt}")
            ax.set_ylabel("seconds per epoch (log)")
            xlabel = "batch"
        width = 0.8 / max(1, len(series))
        for i, s in enumerate(series):
            xs = [g + i * width for g in range(len(groups))]
            ax.bar(xs, [value.get((g, s), 0) or 0 for g in groups], width, label=s)
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
        ax.set_xticklabels([str(g) for g in groups])
        ax.set_xlabel(xlabel)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def _int_list(s):
    try:
        vals = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}")
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return vals


def _name_list(s):
    return tuple(v.strip() for v in s.split(",") if v.strip())


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m pynn bench",
        description="Benchmark pynn's backends (ops, one dense layer, MLP training) "
                    "against each other and against PyTorch, NumPy and scikit-learn.",
        epilog="With none of --ops/--dense/--train, all three run (training only when "
               "pynn.models works). For trustworthy numbers unset OpenBLAS overrides for "
               "the command: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pynn "
               "bench")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and 1 repeat: a smoke test for CI, not a measurement")
    p.add_argument("--ops", action="store_true", help="per-op table (a)")
    p.add_argument("--dense", action="store_true", help="dense layer table (b)")
    p.add_argument("--train", action="store_true", help="training epoch table (c)")
    p.add_argument("--startup", action="store_true",
                   help="start-up table (d): import, first-epoch compilation, allocations "
                        "per step (only when asked)")
    p.add_argument("--json", metavar="PATH", help="write all measurements as JSON")
    p.add_argument("--plot", metavar="PATH", help="save a bar chart (needs matplotlib)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed samples per measurement, median reported (default 3; "
                        "1 with --quick)")
    p.add_argument("--backends", type=_name_list, default=None,
                   help="comma-separated backends (default: every available one)")
    p.add_argument("--batches", type=_int_list, default=None,
                   help="batch sizes (default 32,128,1024)")
    p.add_argument("--samples", type=int, default=None,
                   help="training samples per epoch (default 60000)")
    p.add_argument("--data", metavar="DIR", nargs="?", const="",
                   help="train on real MNIST from DIR (IDX .gz files; default "
                        "$PYNN_DATA_DIR/mnist) instead of random data")
    p.add_argument("--optimizers", type=_name_list, default=("sgd", "adam"),
                   help="optimizers of the training table (default sgd,adam)")
    p.add_argument("--peers", type=_name_list, default=None,
                   help="peers of the training table: torch,torch-cuda,numpy,sklearn "
                        "(default torch,numpy,sklearn, and torch-cuda when a GPU is there)")
    p.add_argument("--no-peers", action="store_true", help="train pynn backends only")
    return p


def main(argv=None):
    """Run the benchmarks; returns 0. See ``python -m pynn bench --help``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for opt in args.optimizers:
        if opt not in LEARNING_RATES:
            parser.error(f"--optimizers: unknown {opt!r}; expected sgd or adam")
    for peer in args.peers or ():
        if peer not in PEERS:
            parser.error(f"--peers: unknown {peer!r}; expected one of {', '.join(PEERS)}")
    peers = () if args.no_peers else (args.peers or default_peers())
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    avail = _backends.available()
    if args.backends:
        for name in args.backends:
            if name not in avail:
                why = _backends.why_unavailable(name) if name in _backends._REGISTRY else \
                    "unknown backend"
                parser.error(f"--backends: {name!r} is not available ({why}); "
                             f"available: {', '.join(avail)}")
        names = [n for n in avail if n in args.backends]
    else:
        names = default_backends(avail)

    sections = [s for s in ("ops", "dense", "train", "startup") if getattr(args, s)]
    models_why = models_status()
    if not sections:
        sections = ["ops", "dense"] + (["train"] if models_why is None else [])

    quick = args.quick
    data_dir = None
    if args.data is not None:
        data_dir = args.data or os.path.join(os.environ.get("PYNN_DATA_DIR", ""), "mnist")
        if not os.path.isfile(os.path.join(data_dir, "train-images-idx3-ubyte.gz")):
            parser.error(f"--data: no train-images-idx3-ubyte.gz in {data_dir!r}")
    args.data_dir = data_dir

    contestants = None
    if "train" in sections:
        # load the peers first so threadpoolctl reports their thread pools too
        contestants = _train_contestants(names, peers, torch_threads=1 if quick else 2)
    with contextlib.ExitStack() as stack:
        if quick:
            # a smoke test measures nothing: one thread per pool keeps it fast on a busy
            # machine, where spinning BLAS workers otherwise stall tiny products
            stack.enter_context(_single_threaded())
        return _run(args, names, sections, models_why, contestants, peers)


@contextlib.contextmanager
def _single_threaded():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limiter = None
    else:
        limiter = threadpool_limits(limits=1)
    numba = sys.modules.get("numba")
    numba_threads = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        if numba is not None:
            numba.set_num_threads(numba_threads)
        if limiter is not None:
            limiter.restore_original_limits()


def _run(args, names, sections, models_why, contestants, peers):
    quick = args.quick
    batches = args.batches or (QUICK_BATCHES if quick else BATCHES)
    train_batches = args.batches or (QUICK_TRAIN_BATCHES if quick else BATCHES)
    predict_batches = QUICK_PREDICT_BATCHES if quick else PREDICT_BATCHES
    n_samples = args.samples or (QUICK_SAMPLES if quick else 60_000)
    target_s = 0.0 if quick else 0.05
    pause = 0.0 if quick else PAUSE_S
    data_dir = args.data_dir
    meta = _meta(args, names)
    if meta["openblas_overrides"]:
        print("warning: " + _override_warning(meta["openblas_overrides"]), file=sys.stderr)
    print(_header(meta))
    result = {"meta": meta}
    sys.stdout.flush()
    if "ops" in sections:
        result["ops"] = run_ops(names, batches, 4096 if quick else None, args.repeats,
                                target_s, 0.0 if quick else OPS_PAUSE_S)
        sys.stdout.flush()
    if "dense" in sections:
        result["dense"] = run_dense(names, batches, args.repeats, target_s, pause)
        sys.stdout.flush()
    if "train" in sections:
        if models_why is not None:
            print(f"\n(pynn.models is unavailable, pynn columns stay empty: {models_why})")
        result["train"], result["predict"], result["train_step"] = run_train(
            names, peers, train_batches, predict_batches, args.optimizers, n_samples,
            args.repeats, data_dir, pause, 0.0 if quick else 0.1, contestants=contestants)
    if "startup" in sections:
        result["startup"] = run_startup(names, args.optimizers, args.repeats, quick)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=_json_default)
        print(f"\nwrote {args.json}")
    if args.plot:
        try:
            plot(result, args.plot)
            print(f"wrote {args.plot}")
        except ImportError:
            print("--plot: matplotlib is not installed (pip install 'pynn[bench]')",
                  file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# (d) start-up: import, first-epoch compilation, allocations per step
# ---------------------------------------------------------------------------
_STARTUP_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import pynn
result = {"import_s": time.perf_counter() - t0}
if len(sys.argv) > 1:
    import numpy as np
    from pynn.bench import tutorial_model
    backend, optimizer, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with pynn.use_backend(backend):
        model = tutorial_model(optimizer)
        rng = np.random.default_rng(0)
        x = rng.random((n, 784), dtype=np.float32)
        y = rng.integers(0, 10, n)
        for key in ("first_epoch_s", "second_epoch_s"):
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            result[key] = time.perf_counter() - t0
print(json.dumps(result))
"""


def _startup_process(args, cache_dir):
    """Run :data:`_STARTUP_SCRIPT` in a fresh interpreter that imports this very pynn:
    its parent directory goes first on the path, and the child runs in ``cache_dir``
    (``python -c`` puts the working directory first, where a source checkout without
    the compiled extension could shadow an installed pynn)."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir,
               PYTHONPATH=root + os.pathsep + path if path else root)
    res = subprocess.run([sys.executable, "-c", _STARTUP_SCRIPT, *map(str, args)], env=env,
                         cwd=cache_dir, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip()
                           else f"exit status {res.returncode}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def step_allocations(backend, optimizer, steps=50, batch=128, arch=ARCH):
    """Memory a fused training step of a ReLU/softmax Dense stack of widths ``arch``
    (the tutorial network by default) allocates once warm, from
    ``tracemalloc``: ``(transient, held)`` in bytes over ``steps`` steps. ``transient``
    is the traced peak above both the start and the end (an array made and freed within
    a step shows here; Python's object free lists only make the total creep a few dozen
    bytes per step, which is not counted) and ``held`` is what NumPy arrays hold at the
    end beyond the start. Raises ``RuntimeError`` when the model does not train
    through the fused Dense-stack step on ``backend``."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.random((2 * batch, arch[0]), dtype=np.float32)
    y = rng.integers(0, arch[-1], 2 * batch)
    numpy_domain = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
    with _backends.use_backend(backend):
        model = tutorial_model(optimizer, arch)
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # the first epoch allocates
        xb, yb = x[:batch], y[:batch].astype(np.intp)
        if not explain(model)["train"]:
            raise RuntimeError(f"the model does not take the fused step on {backend!r}")
        tracemalloc.start()
        try:
            model.train_step((xb, yb))
            before = tracemalloc.take_snapshot().filter_traces([numpy_domain])
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            for _ in range(steps):
                model.train_step((xb, yb))
            current, peak = tracemalloc.get_traced_memory()
            after = tracemalloc.take_snapshot().filter_traces([numpy_domain])
        finally:
            tracemalloc.stop()
    held = sum(st.size_diff for st in after.compare_to(before, "filename"))
    return max(0, peak - max(base, current)), max(0, held)


def run_startup(backends, optimizers, repeats, quick, out=print):
    """Section (d): import time, first-epoch compilation (cold/warm Numba cache) and
    allocations per warm training step."""
    import tempfile
    n = 256 if quick else 2048
    result = {"import": [], "first_epoch": [], "allocations": []}
    imports = [_startup_process([], tempfile.mkdtemp(prefix="pynn-bench-"))["import_s"]
               for _ in range(max(1, repeats))]
    result["import"] = imports
    out("\n## (d) Start-up\n")
    out(f"`import pynn` in a fresh process: median {statistics.median(imports):.3f} s "
        f"over {len(imports)} processes.\n")
    out(f"First and second training epoch ({n:,} samples, batch 32) in a fresh process; "
        "\"cold\" = an empty Numba cache directory, \"warm\" = the same directory again. "
        "The difference of the two epochs is what the first one spent compiling "
        "(and loading).\n")
    rows = []
    for name in backends:
        for opt in optimizers:
            with tempfile.TemporaryDirectory(prefix="pynn-bench-") as cache:
                for state in ("cold", "warm"):
                    try:
                        r = _startup_process([name, opt, n], cache)
                        row = {"backend": name, "optimizer": opt, "cache": state,
                               "status": "ok", **r,
                               "compile_s": r["first_epoch_s"] - r["second_epoch_s"]}
                    except Exception as exc:  # one broken backend must not hide the rest
                        row = {"backend": name, "optimizer": opt, "cache": state,
                               "status": f"error: {exc}"}
                    result["first_epoch"].append(row)
                    rows.append([name, opt, state] + (
                        [_secs(row["first_epoch_s"]), _secs(row["second_epoch_s"]),
                         _secs(row["compile_s"])] if row["status"] == "ok"
                        else ["error", "error", "error"]))
    out(_md_table(["backend", "optimizer", "Numba cache", "first epoch (s)",
                   "second epoch (s)", "first - second (s)"], rows, n_left=3))
    out("\nMemory a training step allocates once warm (batch 128, 50 steps, `tracemalloc`): "
        "the traced peak above both the start and the end (an array made and freed within "
        "a step shows here), and the bytes NumPy arrays still hold at the end. 0 and 0: "
        "no array is made per step.\n")
    rows = []
    for name in backends:
        for opt in optimizers:
            try:
                peak, held = step_allocations(name, opt, steps=5 if quick else 50)
                row = {"backend": name, "optimizer": opt, "status": "ok",
                       "transient_bytes": peak, "held_bytes": held}
                rows.append([name, opt, f"{peak:,}", f"{held:,}"])
            except Exception as exc:
                row = {"backend": name, "optimizer": opt,
                       "status": f"error: {type(exc).__name__}: {exc}"}
                rows.append([name, opt, "error", "error"])
            result["allocations"].append(row)
    out(_md_table(["backend", "optimizer", "transient peak (bytes)", "array bytes held"],
                  rows, n_left=2))
    return result


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


if __name__ == "__main__":
    sys.exit(main())
