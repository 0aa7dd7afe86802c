"""The compiled backends' per-row normalisation ops: layer normalisation and L2
normalisation.

:class:`CompiledNormalizationOps` is mixed into the Cython and Numba backends; each names
its kernel module in ``_normalization_kernels`` (``pynn._ext.layers``,
:mod:`pynn.backends._numba_normalization`: the same four kernels, the same arguments).
Each op validates its arguments with the reference's ``prep_*`` function, then runs one
kernel (an absent gamma/beta is an empty vector and a flag).
"""
from __future__ import annotations

import numpy as np

from .normalization import (empty_if_none, prep_l2_normalize_backward,
                            prep_l2_normalize_forward, prep_layernorm_backward,
                            prep_layernorm_forward)

__all__ = ["CompiledNormalizationOps"]


class CompiledNormalizationOps:
    """Compiled layer-normalisation and L2-normalisation ops (see the module docstring)."""

    #: the kernel module (set by each backend)
    _normalization_kernels = None

    def layernorm_forward(self, x, gamma=None, beta=None, epsilon=1e-3, rms_scaling=False,
                          out=None):
        x, gamma, beta, epsilon, out = prep_layernorm_forward(x, gamma, beta, epsilon,
                                                              rms_scaling, out)
        n, dt = x.shape[0], x.dtype
        mean, inv_std = np.empty(n), np.empty(n)
        self._normalization_kernels.layernorm_forward(
            x, empty_if_none(gamma, dt), empty_if_none(beta, dt), gamma is not None,
            beta is not None, epsilon, bool(rms_scaling), out, mean, inv_std)
        return out, mean, inv_std

    def layernorm_backward(self, dy, x, gamma, mean, inv_std, rms_scaling=False, dx=None,
                           dgamma=None, dbeta=None):
        dy, x, gamma, mean, inv_std, dx, dgamma, dbeta = prep_layernorm_backward(
            dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        dt = x.dtype
        self._normalization_kernels.layernorm_backward(
            dy, x, empty_if_none(gamma, dt), gamma is not None, mean, inv_std,
            bool(rms_scaling), dx, empty_if_none(dgamma, dt), dgamma is not None, dbeta)
        return dx, dgamma, dbeta

    def l2_normalize_forward(self, x, epsilon=1e-12, out=None):
        x, epsilon, out = prep_l2_normalize_forward(x, epsilon, out)
        inv_norm = np.empty(x.shape[0])
        self._normalization_kernels.l2_normalize_forward(x, epsilon, out, inv_norm)
        return out, inv_norm

    def l2_normalize_backward(self, dy, y, inv_norm, epsilon=1e-12, out=None):
        dy, y, inv_norm, epsilon, out = prep_l2_normalize_backward(dy, y, inv_norm, epsilon,
                                                                   out)
        self._normalization_kernels.l2_normalize_backward(dy, y, inv_norm, epsilon, out)
        return out
