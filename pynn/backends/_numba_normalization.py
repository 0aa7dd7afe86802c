"""Numba kernels of the per-row normalisation ops of
:class:`~pynn.backends.numba_backend.NumbaBackend` (the reference, and the
specification: :mod:`pynn.backends.normalization`).

One pass per row for the statistics and one for the output, in float64; the backward
kernels accumulate ``dgamma``/``dbeta`` in float64 vectors. An output may be its
input itself (``out`` is ``x``, ``dx`` is ``dy``): each element is read before it is
written, at the same index.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _numba_kernels as K
from ._numba_cache import cached

__all__ = ["layernorm_forward", "layernorm_backward", "l2_normalize_forward",
           "l2_normalize_backward"]


def _jit(fn):
    # no other module's jitted code is compiled in: no cache dependencies
    return cached(njit(fastmath=set(K.FASTMATH), error_model="numpy", nogil=True)(fn))


@_jit
def layernorm_forward(x, gamma, beta, has_gamma, has_beta, epsilon, rms, out, mean, inv_std):
    """Each row: ``(x - mean) * inv_std * gamma + beta`` (``rms``: ``x * inv_std *
    gamma``); fills ``mean``/``inv_std`` (float64, one per row)."""
    n, k = x.shape
    for i in range(n):
        s = 0.0
        for j in range(k):
            s += x[i, j]
        m = s / k
        v = 0.0
        for j in range(k):
            d = float(x[i, j]) - m
            v += d * d
        r = 1.0 / math.sqrt(v / k + epsilon)
        mean[i] = m
        inv_std[i] = r
        c = 0.0 if rms else m
        for j in range(k):
            y = (float(x[i, j]) - c) * r
            if has_gamma:
                y *= float(gamma[j])
            if has_beta:
                y += float(beta[j])
            out[i, j] = y


@_jit
def layernorm_backward(dy, x, gamma, has_gamma, mean, inv_std, rms, dx, dgamma, want_dgamma,
                       dbeta):
    """Gradients of :func:`layernorm_forward` (``dgamma`` written when ``want_dgamma``)."""
    n, k = x.shape
    dg = np.zeros(k, dtype=np.float64)
    db = np.zeros(k, dtype=np.float64)
    for i in range(n):
        m = mean[i]
        r = inv_std[i]
        c = 0.0 if rms else m
        s1 = 0.0
        s2 = 0.0
        for j in range(k):
            d = float(dy[i, j])
            xv = float(x[i, j])
            xhat = (xv - c) * r
            g = d * float(gamma[j]) if has_gamma else d
            db[j] += d
            dg[j] += d * xhat
            if rms:
                s1 += g * xv
            else:
                s1 += g
                s2 += g * xhat
        if rms:
            a = r * r * r * s1 / k
            for j in range(k):
                d = float(dy[i, j])
                g = d * float(gamma[j]) if has_gamma else d
                dx[i, j] = r * g - a * (float(x[i, j]) - m)
        else:
            a = s1 / k
            b = s2 / k
            for j in range(k):
                d = float(dy[i, j])
                g = d * float(gamma[j]) if has_gamma else d
                xhat = (float(x[i, j]) - m) * r
                dx[i, j] = r * (g - a - xhat * b)
    for j in range(k):
        if want_dgamma:
            dgamma[j] = dg[j]
        dbeta[j] = db[j]


@_jit
def l2_normalize_forward(x, epsilon, out, inv_norm):
    """Each row times ``min(1 / ||row||_2, 1 / epsilon)`` (the factor in ``inv_norm``)."""
    n, k = x.shape
    cap = 1.0 / epsilon
    for i in range(n):
        ss = 0.0
        for j in range(k):
            v = float(x[i, j])
            ss += v * v
        r = cap if ss == 0.0 else min(1.0 / math.sqrt(ss), cap)
        inv_norm[i] = r
        for j in range(k):
            out[i, j] = float(x[i, j]) * r


@_jit
def l2_normalize_backward(dy, y, inv_norm, epsilon, out):
    """Gradient of :func:`l2_normalize_forward` from its output ``y``."""
    n, k = y.shape
    cap = 1.0 / epsilon
    for i in range(n):
        r = inv_norm[i]
        if r >= cap:
            for j in range(k):
                out[i, j] = float(dy[i, j]) * r
            continue
        dot = 0.0
        for j in range(k):
            dot += float(y[i, j]) * float(dy[i, j])
        for j in range(k):
            out[i, j] = r * (float(dy[i, j]) - float(y[i, j]) * dot)
