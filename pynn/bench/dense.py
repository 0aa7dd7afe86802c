"""One dense layer's forward and backward step, and the bare NumPy matrix products
(GEMM floors) of that step and of one MLP training step."""
from __future__ import annotations

import math

import numpy as np

from .constants import ARCH
from .data import normal


def dense_step(be, batch, n_in=ARCH[0], n_out=ARCH[1], dtype=np.float32, seed=0):
    """Callables ``(forward, backward, step)`` of one ``n_in -> n_out`` ReLU dense layer.

    forward: ``H = relu(X @ W + b)`` (one GEMM with fused bias+ReLU epilogue);
    backward: ``dZ = activation_backward(dH, H)``, ``dW = X.T @ dZ`` (``trans_a``),
    ``db = bias_grad(dZ)``, ``dX = dZ @ W.T`` (``trans_b``). All buffers preallocated.
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([seed, 9, batch, n_in, n_out])
    x = be.asarray(rng.random((batch, n_in)), dtype)
    w = be.asarray(normal(rng, (n_in, n_out), dtype, math.sqrt(2.0 / n_in)))
    b = be.asarray(normal(rng, (n_out,), dtype, 0.1))
    dh = be.asarray(normal(rng, (batch, n_out), dtype, 0.01))
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


def dense_gemm_floor(batch, n_in=ARCH[0], n_out=ARCH[1], dtype=np.float32, seed=0):
    """The three bare NumPy matrix products of :func:`dense_step` (no bias, no ReLU)."""
    rng = np.random.default_rng([seed, 9, batch, n_in, n_out])
    x = rng.random((batch, n_in)).astype(dtype)
    w = normal(rng, (n_in, n_out), dtype)
    dz = normal(rng, (batch, n_out), dtype)
    h, dw, dx = (np.empty((batch, n_out), dtype), np.empty((n_in, n_out), dtype),
                 np.empty((batch, n_in), dtype))

    def step():
        np.matmul(x, w, out=h)
        np.matmul(x.T, dz, out=dw)
        np.matmul(dz, w.T, out=dx)
    return step


def mlp_gemm_floor(batch, arch=ARCH, dtype=np.float32, seed=0):
    """The matrix products of one MLP training step in NumPy: the floor under any step.

    Forward ``H_i @ W_i`` for every layer, ``H_i.T @ G_i`` for every weight gradient and
    ``G_i @ W_i.T`` for every layer but the first (whose input gradient nobody needs).
    """
    rng = np.random.default_rng([seed, 10, batch])
    hs = [rng.random((batch, n)).astype(dtype) for n in arch]
    ws = [normal(rng, (a, b), dtype) for a, b in zip(arch[:-1], arch[1:])]
    gs = [normal(rng, (batch, n), dtype) for n in arch[1:]]
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
