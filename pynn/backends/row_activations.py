"""Reference NumPy code of the row-wise activations without compiled kernels
(:data:`~pynn.backends.activation_codes.REFERENCE_ONLY`): ``log_softmax``'s backward,
``sparsemax`` and ``glu``, along the last axis of 2-D arrays.

Formulas are Keras 3's (``keras/src/backend/numpy/nn.py``); the backward passes are
written from the forward output where it suffices (``glu`` reads its input).
"""
from __future__ import annotations

import numpy as np

__all__ = ["log_softmax_backward", "sparsemax_forward", "sparsemax_backward", "glu_forward",
           "glu_backward"]


def log_softmax_backward(dy, y):
    """``dx = dy - softmax(x) * sum(dy)`` per row, with ``softmax(x) = exp(y)``."""
    s = np.sum(dy, axis=1, keepdims=True, dtype=np.float64)
    return dy - np.exp(y) * s


def sparsemax_forward(x):
    """Sparsemax of each row of ``x`` (n, k): ``max(x - tau, 0)``, the Euclidean
    projection onto the probability simplex (Martins & Astudillo 2016, Algorithm 1):
    sort descending, support ``z_(j) > (sum_{i<=j} z_(i) - 1) / j``, and ``tau`` =
    (sum of the support - 1) / its size.

    Keras 3.15.1 sums the *cumulative* sums over the support instead (keras-team/keras
    issue 23425, fixed upstream by pull request 23469): its rows do not sum to 1 when
    the support has more than one element. pynn follows the definition.
    """
    k = x.shape[1]
    z = -np.sort(-x, axis=1)
    cum = np.cumsum(z, axis=1, dtype=np.float64)
    r = np.arange(1, k + 1, dtype=np.float64)
    support = z - (cum - 1) / r > 0
    size = np.sum(support, axis=1, keepdims=True)
    tau = (np.sum(np.where(support, z, 0.0), axis=1, keepdims=True, dtype=np.float64) - 1) / size
    return np.maximum(x - tau, 0)


def sparsemax_backward(dy, y):
    """``dx_j = s_j (dy_j - mean of dy over the support)`` with ``s = y > 0``."""
    s = y > 0
    count = np.sum(s, axis=1, keepdims=True)
    total = np.sum(np.where(s, dy, 0), axis=1, keepdims=True, dtype=np.float64)
    mean = total / np.maximum(count, 1)
    return np.where(s, dy - mean, 0)


def _halves(x):
    h = x.shape[1] // 2
    return x[:, :h], x[:, h:]


def _sigmoid(b):
    e = np.exp(-np.abs(b))
    return np.where(b >= 0, 1 / (1 + e), e / (1 + e))


def glu_forward(x):
    """``a * sigmoid(b)`` with ``a, b`` the first and second halves of each row."""
    a, b = _halves(x)
    return a * _sigmoid(b)


def glu_backward(dy, x):
    """``(dy * sigmoid(b), dy * a * sigmoid(b) * (1 - sigmoid(b)))`` side by side."""
    a, b = _halves(x)
    s = _sigmoid(b)
    return np.concatenate([dy * s, dy * a * s * (1 - s)], axis=1)
