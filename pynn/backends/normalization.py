"""Per-row normalisation ops of the reference backend: layer normalisation and L2
(unit) normalisation, forward and backward.

:class:`NormalizationOps` is mixed into :class:`~pynn.backends.base.Backend`; ``prep_*``
are the argument checks every backend's versions start with. ``x`` is 2-D
``(rows, k)``: each row is normalised over its ``k`` entries (a layer moves the axes it
normalises to the end and flattens them). Statistics are computed in float64 and
returned as float64 ``(rows,)`` arrays, which are what the backward ops need.
"""
from __future__ import annotations

import numpy as np

from .validation import ALIASING, as_float, check_aliasing, check_out, op_hyper, work_dtype

__all__ = ["NormalizationOps", "empty_if_none", "prep_layernorm_forward", "prep_layernorm_backward",
           "prep_l2_normalize_forward", "prep_l2_normalize_backward"]

ALIASING.update({
    "layernorm_forward": {"out": ("x",)},
    "layernorm_backward": {"dx": ("dy",), "dgamma": (), "dbeta": ()},
    "l2_normalize_forward": {"out": ("x",)},
    "l2_normalize_backward": {"out": ("dy",)},
})


def _rows(op, x, dt, name):
    a = as_float(x, dt, name, 2)
    if a.shape[1] == 0:
        raise ValueError(f"{op}: {name} of shape {a.shape} has no entries to normalise over "
                         f"(axis 1 has size 0)")
    return a


def _vector(op, v, dt, name, k):
    if v is None:
        return None
    a = as_float(v, dt, name, 1)
    if a.shape != (k,):
        raise ValueError(f"{op}: {name} must have shape ({k},) for x of shape (rows, {k}), "
                         f"got {a.shape}")
    return a


def _stats(op, mean, inv_std, n):
    out = []
    for name, v in (("mean", mean), ("inv_std", inv_std)):
        a = as_float(v, np.float64, name, 1)
        if a.shape != (n,):
            raise ValueError(f"{op}: {name} must have shape ({n},) (one value per row), "
                             f"got {a.shape}")
        out.append(a)
    return out


def prep_layernorm_forward(x, gamma, beta, epsilon, rms_scaling, out):
    """Checked ``layernorm_forward`` arguments: ``(x, gamma, beta, epsilon, out)``."""
    op = "layernorm_forward"
    epsilon, = op_hyper(op, epsilon=epsilon)
    inputs = (("x", x), ("gamma", gamma), ("beta", beta))
    dt = work_dtype(x)
    x = _rows(op, x, dt, "x")
    k = x.shape[1]
    gamma = _vector(op, gamma, dt, "gamma", k)
    beta = _vector(op, beta, dt, "beta", k)
    if rms_scaling and beta is not None:
        raise ValueError(f"{op}: rms_scaling takes no beta (the output is not re-centred)")
    out = check_out(out, x.shape, dt)
    check_aliasing(op, [("out", out)], inputs)
    return x, gamma, beta, epsilon, out


def prep_layernorm_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta):
    """Checked ``layernorm_backward`` arguments (``mean``/``inv_std`` float64)."""
    op = "layernorm_backward"
    inputs = (("dy", dy), ("x", x), ("gamma", gamma), ("mean", mean), ("inv_std", inv_std))
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy", 2)
    x = _rows(op, x, dt, "x")
    if x.shape != dy.shape:
        raise ValueError(f"{op}: dy {dy.shape} and x {x.shape} differ")
    n, k = x.shape
    gamma = _vector(op, gamma, dt, "gamma", k)
    mean, inv_std = _stats(op, mean, inv_std, n)
    dx = check_out(dx, x.shape, dt, "dx")
    if gamma is None and dgamma is not None:
        raise ValueError(f"{op}: dgamma was given but gamma is None (no scale to "
                         f"differentiate)")
    dgamma = None if gamma is None else check_out(dgamma, (k,), dt, "dgamma")
    dbeta = check_out(dbeta, (k,), dt, "dbeta")
    check_aliasing(op, [("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)], inputs)
    return dy, x, gamma, mean, inv_std, dx, dgamma, dbeta


def prep_l2_normalize_forward(x, epsilon, out):
    """Checked ``l2_normalize_forward`` arguments: ``(x, epsilon, out)``."""
    op = "l2_normalize_forward"
    epsilon, = op_hyper(op, epsilon=epsilon)
    dt = work_dtype(x)
    xs = _rows(op, x, dt, "x")
    out = check_out(out, xs.shape, dt)
    check_aliasing(op, [("out", out)], [("x", x)])
    return xs, epsilon, out


def prep_l2_normalize_backward(dy, y, inv_norm, epsilon, out):
    """Checked ``l2_normalize_backward`` arguments: ``(dy, y, inv_norm, epsilon, out)``."""
    op = "l2_normalize_backward"
    epsilon, = op_hyper(op, epsilon=epsilon)
    inputs = (("dy", dy), ("y", y), ("inv_norm", inv_norm))
    dt = work_dtype(dy, "dy")
    g = as_float(dy, dt, "dy", 2)
    ys = _rows(op, y, dt, "y")
    if ys.shape != g.shape:
        raise ValueError(f"{op}: dy {g.shape} and y {ys.shape} differ")
    inv = as_float(inv_norm, np.float64, "inv_norm", 1)
    if inv.shape != (g.shape[0],):
        raise ValueError(f"{op}: inv_norm must have shape ({g.shape[0]},) (one value per "
                         f"row), got {inv.shape}")
    out = check_out(out, g.shape, dt)
    check_aliasing(op, [("out", out)], inputs)
    return g, ys, inv, epsilon, out


_EMPTY = {}


def empty_if_none(a, dtype):
    """``a``, or a cached empty vector of ``dtype`` where it is ``None`` (compiled kernels
    take an absent gamma/beta/dgamma as an empty vector and a flag)."""
    if a is not None:
        return a
    dt = np.dtype(dtype)
    e = _EMPTY.get(dt.char)
    if e is None:
        e = _EMPTY[dt.char] = np.zeros(0, dt)
    return e


class NormalizationOps:
    """Layer normalisation and L2 normalisation of rows (mixed into the reference
    backend)."""

    def layernorm_forward(self, x, gamma=None, beta=None, epsilon=1e-3, rms_scaling=False,
                          out=None):
        """Normalise each row of 2-D ``x`` (Keras's ``ops.layer_normalization``).

        ``out = (x - mean) * inv_std * gamma + beta`` with the row's mean and biased
        variance, ``inv_std = 1 / sqrt(var + epsilon)``; ``gamma``/``beta`` of shape
        ``(k,)`` or ``None`` (not applied). With ``rms_scaling`` (Keras's deprecated
        option) the row is not centred: ``out = x * inv_std * gamma`` (no ``beta``).

        Returns ``(out, mean, inv_std)``; ``mean`` and ``inv_std`` (shape ``(rows,)``,
        float64) are what :meth:`layernorm_backward` needs. ``out`` may be ``x`` itself.
        """
        x, gamma, beta, epsilon, out = prep_layernorm_forward(x, gamma, beta, epsilon,
                                                              rms_scaling, out)
        xd = x.astype(np.float64)
        mean = xd.mean(axis=1)
        var = ((xd - mean[:, None]) ** 2).mean(axis=1)
        inv_std = 1.0 / np.sqrt(var + epsilon)
        y = xd * inv_std[:, None] if rms_scaling else (xd - mean[:, None]) * inv_std[:, None]
        if gamma is not None:
            y *= gamma
        if beta is not None:
            y += beta
        out[...] = y
        return out, mean, inv_std

    def layernorm_backward(self, dy, x, gamma, mean, inv_std, rms_scaling=False, dx=None,
                           dgamma=None, dbeta=None):
        """Gradients of :meth:`layernorm_forward` given its ``mean`` and ``inv_std``.

        Returns ``(dx, dgamma, dbeta)``; ``dgamma`` is ``None`` when ``gamma`` is
        ``None``. ``dbeta`` is the column sum of ``dy`` (the gradient of an added
        ``beta``). ``dx`` may be ``dy`` itself.
        """
        dy, x, gamma, mean, inv_std, dx, dgamma, dbeta = prep_layernorm_backward(
            dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        k = x.shape[1]
        dyd = dy.astype(np.float64)
        xd = x.astype(np.float64)
        r = inv_std[:, None]
        g = dyd * gamma if gamma is not None else dyd
        if rms_scaling:
            xhat = xd * r
            s = (g * xd).sum(axis=1, keepdims=True)
            grad_x = r * g - (r ** 3) * (xd - mean[:, None]) * (s / k)
        else:
            xhat = (xd - mean[:, None]) * r
            grad_x = r * (g - g.mean(axis=1, keepdims=True)
                          - xhat * (g * xhat).mean(axis=1, keepdims=True))
        if dgamma is not None:
            dgamma[...] = (dyd * xhat).sum(axis=0)
        dbeta[...] = dyd.sum(axis=0)
        dx[...] = grad_x
        return dx, dgamma, dbeta

    def l2_normalize_forward(self, x, epsilon=1e-12, out=None):
        """Scale each row of 2-D ``x`` to unit L2 norm (Keras's ``ops.normalize`` with
        ``order=2``): ``out = x * min(1 / sqrt(sum(x**2)), 1 / epsilon)``.

        Returns ``(out, inv_norm)``; ``inv_norm`` (shape ``(rows,)``, float64) is the
        factor applied, what :meth:`l2_normalize_backward` needs. ``out`` may be ``x``.
        """
        x, epsilon, out = prep_l2_normalize_forward(x, epsilon, out)
        xd = x.astype(np.float64)
        ss = (xd * xd).sum(axis=1)
        with np.errstate(divide="ignore"):
            inv_norm = np.minimum(1.0 / np.sqrt(ss), 1.0 / epsilon)
        out[...] = xd * inv_norm[:, None]
        return out, inv_norm

    def l2_normalize_backward(self, dy, y, inv_norm, epsilon=1e-12, out=None):
        """Gradient of :meth:`l2_normalize_forward` from its output ``y`` and
        ``inv_norm``: ``dx = inv_norm * (dy - y * sum(y * dy))`` per row, or
        ``dy / epsilon`` for a row whose factor was clamped at ``1 / epsilon`` (there
        the op is a constant scaling). ``out`` may be ``dy`` itself."""
        dy, y, inv_norm, epsilon, out = prep_l2_normalize_backward(dy, y, inv_norm, epsilon,
                                                                   out)
        g = dy.astype(np.float64)
        yd = y.astype(np.float64)
        r = inv_norm[:, None]
        clamped = (inv_norm >= 1.0 / epsilon)[:, None]
        free = r * (g - yd * (yd * g).sum(axis=1, keepdims=True))
        out[...] = np.where(clamped, g * r, free)
        return out
