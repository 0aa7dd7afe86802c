"""Batch normalisation with statistics over the global batch of a data-parallel job
(``BatchNormalization(synchronized=True)`` under :class:`pynn.distribution.DataParallel`).

Forward (training): one float64 ``Allreduce`` of ``[rows, sum(x), sum(x*x)]`` per
feature gives the global mean and (biased) variance; every rank normalises with them
and updates the moving statistics with them, so those stay identical across ranks.

Backward: rank ``r`` holds ``m_r`` of the ``M`` global rows and its incoming gradient
``dy`` is that of its LOCAL mean loss (the trainer later weights rank ``r``'s parameter
gradients by ``w_r = m_r / M``). The global sums the input gradient needs are
``B = sum_r w_r sum(dy_r)`` and ``G = sum_r w_r sum(dy_r * xhat_r)`` (one float64
``Allreduce``); then, in the same local units, ``dx = gamma * inv_std * (dy - (B +
xhat * G) / m_r)`` (with one rank this is the usual formula). ``dgamma``/``dbeta`` stay
the local sums: the trainer's gradient average turns them into the global ones.
"""
from __future__ import annotations

import numpy as np

__all__ = ["forward", "backward"]


def forward(dp, x2, gamma, beta, moving_mean, moving_var, momentum, epsilon, out):
    """Normalise the 2-D ``x2`` with the global batch statistics; update the moving
    ones in place. Returns ``(out, mean, inv_std, weight)`` (``weight``: ``m_r / M``)."""
    m, k = x2.shape
    xd = x2.astype(np.float64)
    stats = np.empty(2 * k + 1)
    stats[0] = m
    stats[1:k + 1] = xd.sum(axis=0)
    stats[k + 1:] = np.einsum("ij,ij->j", xd, xd)
    dp.reduce_(stats, "the synchronized batch-norm statistics")
    total = stats[0]
    mean = stats[1:k + 1] / total
    var = np.maximum(stats[k + 1:] / total - mean * mean, 0.0)
    moving_mean[...] = momentum * moving_mean + (1.0 - momentum) * mean
    moving_var[...] = momentum * moving_var + (1.0 - momentum) * var
    inv_std = 1.0 / np.sqrt(var + epsilon)
    g = np.asarray(gamma, dtype=np.float64)
    out[...] = (xd - mean) * (inv_std * g) + np.asarray(beta, dtype=np.float64)
    return out, mean, inv_std, m / total


def backward(dp, dy, x2, gamma, mean, inv_std, weight, dx, dgamma, dbeta):
    """Fill ``dx`` (the input gradient over the global batch, in local units) and the
    LOCAL ``dgamma``/``dbeta`` (see the module docstring)."""
    m, k = x2.shape
    dyd = dy.astype(np.float64)
    xhat = (x2.astype(np.float64) - mean) * inv_std
    db = dyd.sum(axis=0)
    dg = np.einsum("ij,ij->j", dyd, xhat)
    dgamma[...] = dg
    dbeta[...] = db
    sums = np.concatenate([weight * db, weight * dg])
    dp.reduce_(sums, "the synchronized batch-norm gradient sums")
    scale = np.asarray(gamma, dtype=np.float64) * inv_std
    dx[...] = scale * (dyd - (sums[:k] + xhat * sums[k:]) / m)
    return dx
