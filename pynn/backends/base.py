"""The NumPy reference backend: the oracle every compiled backend is tested against.

Everything here is plain NumPy, written to be obviously correct rather than fast.
Compiled backends (``cython``, ``numba``, later ``cuda``) subclass :class:`Backend`
and override the hot ops, keeping each signature (a contract test checks it).

Conventions shared by all ops
-----------------------------
* Arrays are 2-D ``(batch, features)`` unless an op says otherwise.
* The working dtype is taken from the first floating input (``float32`` or
  ``float64``); other numeric dtypes are converted to ``float64`` and every other
  array argument is converted to the working dtype. Non-numeric input raises
  ``TypeError``.
* ``out=`` (and other output buffers) must already have the right shape and dtype
  and be C-contiguous and writable; otherwise ``ValueError`` is raised. Ops
  return the array they wrote to.
* Aliasing: an array an op writes (an output, or state it updates in place) may be
  exactly one of its inputs only where the op's docstring says so (e.g. ``out`` may
  be ``x`` itself); otherwise it must not overlap any input or any other array the
  op writes, and a call where it does raises ``ValueError`` naming both arrays
  (:data:`~pynn.backends.validation.ALIASING`, checked by
  :func:`~pynn.backends.validation.check_aliasing`).
* Hyper-parameters (learning rates, epsilons, label smoothing, ...) must be finite
  and in the range :data:`~pynn.backends.validation.OP_HYPER` gives; otherwise
  ``ValueError`` names the argument and the value, before any array is written.
* Reductions (bias gradient, batch-norm statistics, loss sums) accumulate in
  ``float64``.
* Losses return the *mean* over the batch (``sum(w_i * l_i) / n``, Keras's
  ``sum_over_batch_size``) as a Python float, and write the gradient of that mean
  with respect to the predictions/logits.

Around this class: :mod:`~pynn.backends.activation_codes` (activation names and
codes), :mod:`~pynn.backends.validation` (the argument checks every backend's ops
start with) and :mod:`~pynn.backends.fused_stack` (the fused Dense-stack contract).
Names that code outside ``pynn.backends`` imports from here are re-exported.
"""
from __future__ import annotations

import math

import numpy as np

from .conv import ConvOps
from .conv_pool import ConvPoolOps
from .embedding import EmbeddingOps
from .normalization import NormalizationOps
from .recurrent import RecurrentOps
from . import row_activations as _rows
from .activation_codes import (ACTIVATION_DEFAULT_ALPHA, ACTIVATIONS, ELEMENTWISE,
                               EPILOGUE_ACTIVATIONS, NEEDS_INPUT_FOR_BACKWARD, REFERENCE_ONLY,
                               SELU_ALPHA, SELU_SCALE, activation_code)
from .fused_stack import (STACK_LOSSES, StackUpdate, _dense_forward_reference,
                          _dense_stack_reference)
from .validation import (adam_step_size, check_aliasing, check_out, class_targets, op_hyper,
                         prep_activation_backward, prep_activation_forward, prep_adam,
                         prep_batchnorm_backward, prep_batchnorm_forward, prep_bias_grad,
                         prep_adagrad, prep_class_loss, prep_dropout_backward,
                         prep_dropout_forward, prep_gemm, prep_pair_loss, prep_rmsprop,
                         prep_rows, prep_sgd, prep_take_rows, take_rows_error)

# the names after Backend are re-exported: code outside pynn.backends imports them from here
__all__ = ["Backend", "ACTIVATIONS", "ACTIVATION_DEFAULT_ALPHA", "NEEDS_INPUT_FOR_BACKWARD",
           "REFERENCE_ONLY", "EPILOGUE_ACTIVATIONS", "ELEMENTWISE", "activation_code",
           "STACK_LOSSES", "StackUpdate", "adam_step_size", "check_out",
           "splitmix_uniform", "FINITE_BLOCK"]

#: Elements :meth:`Backend.all_finite` checks per NumPy call (256 KiB of float32).
FINITE_BLOCK = 1 << 16


def splitmix_uniform(seed, n):
    """``n`` uniforms in [0, 1) from a counter-based SplitMix64 hash of ``(seed, i)``.

    Every backend implements exactly this generator, so dropout masks are
    identical on all of them (and on a GPU, where each thread hashes its index).
    """
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    # top 24 bits -> exactly representable in float32 and float64
    return (z >> np.uint64(40)).astype(np.float64) * (1.0 / 16777216.0)


def _flush_denormals(a):
    """Set float32 subnormal values to zero in place (they run ~38x slower)."""
    if a.dtype == np.float32:
        a[np.abs(a) < np.finfo(np.float32).tiny] = 0.0
    return a


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _stable_sigmoid(x):
    """The logistic function, exp of a non-positive number only."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _elementwise_forward(x, code, a):
    """The reference formula of elementwise activation ``code`` (``a``: its extra
    parameter), in ``x``'s dtype (GELU in float64)."""
    if code == 0:
        return x
    if code == 1:
        return np.maximum(x, 0)
    if code == 2:
        return np.where(x > 0, x, a * x)
    if code == 3:
        return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))
    if code == 4:
        return _stable_sigmoid(x)
    if code == 5:
        return np.tanh(x)
    if code == 6:
        return 0.5 * x * (1.0 + _erf(x.astype(np.float64) * _SQRT_HALF))
    if code == 7:
        return _softplus(x)
    if code == 9:  # selu = scale * elu(x, alpha)
        return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))
    if code == 10:  # silu
        return x * _stable_sigmoid(x)
    if code == 11:
        return np.exp(x)
    if code == 12:  # hard_sigmoid
        return np.clip(x / 6 + 0.5, 0, 1)
    if code == 13:  # hard_silu
        return x * np.clip(x / 6 + 0.5, 0, 1)
    if code == 14:  # softsign
        return x / (1 + np.abs(x))
    if code == 15:  # relu6
        return np.minimum(np.maximum(x, 0), 6)
    if code == 16:  # mish
        return x * np.tanh(_softplus(x))
    if code == 17:  # celu
        return np.maximum(x, 0) + a * np.expm1(np.minimum(x, 0) / a)
    if code == 18:  # squareplus: (x + sqrt(x^2 + b)) / 2, without cancellation for x < 0,
        xd = x.astype(np.float64)  # in float64 (x^2 overflows float32 above ~1.8e19)
        s = np.sqrt(xd * xd + a)
        return np.where(xd >= 0, (xd + s) / 2, a / (2 * (s - xd)))
    if code == 19:  # tanh_shrink
        return x - np.tanh(x)
    raise ValueError(f"activation code {code} is not elementwise")


def _elementwise_backward(dy, y, x, code, a):
    """``dy * act'`` for elementwise activation ``code``, from the output ``y`` (the
    input ``x`` for :data:`NEEDS_INPUT_FOR_BACKWARD`)."""
    if code == 0:
        return dy
    if code == 1:
        return np.where(y > 0, dy, 0)
    if code == 2:
        return np.where(y > 0, dy, a * dy)
    if code == 3:
        return np.where(y > 0, dy, dy * (y + a))
    if code == 4:
        return dy * y * (1 - y)
    if code == 5:
        return dy * (1 - y * y)
    if code == 6:
        xd = x.astype(np.float64)
        cdf = 0.5 * (1.0 + _erf(xd * _SQRT_HALF))
        pdf = np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi)
        return dy * (cdf + xd * pdf)
    if code == 7:
        # softplus'(x) = sigmoid(x) = 1 - exp(-softplus(x))
        return dy * -np.expm1(-y)
    if code == 9:  # selu: scale for x > 0, y + scale * alpha otherwise
        return np.where(y > 0, SELU_SCALE * dy, dy * (y + SELU_SCALE * SELU_ALPHA))
    if code == 10:  # silu: s (1 + x (1 - s))
        s = _stable_sigmoid(x)
        return dy * (s * (1 + x * (1 - s)))
    if code == 11:
        return dy * y
    if code == 12:
        return np.where((y > 0) & (y < 1), dy / 6, 0)
    if code == 13:  # hard_silu: 0 below -3, (2x + 3) / 6 up to 3, 1 above (torch's)
        return np.where(x < -3, 0, np.where(x <= 3, dy * (2 * x + 3) / 6, dy))
    if code == 14:  # softsign: 1 / (1 + |x|)^2 = (1 - |y|)^2
        t = 1 - np.abs(y)
        return dy * (t * t)
    if code == 15:
        return np.where((y > 0) & (y < 6), dy, 0)
    if code == 16:  # mish: tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)
        t = np.tanh(_softplus(x))
        return dy * (t + x * _stable_sigmoid(x) * (1 - t * t))
    if code == 17:  # celu: exp(x / alpha) = y / alpha + 1 for x <= 0
        return np.where(y > 0, dy, dy * (y / a + 1))
    if code == 18:  # squareplus: (1 + x / sqrt(x^2 + b)) / 2 = 1 / (1 + b / (4 y^2))
        yd = y.astype(np.float64)
        return np.where(yd > 0, dy if a == 0 else dy / (1 + a / (4 * yd * yd)), 0)
    if code == 19:  # tanh_shrink: tanh(x)^2
        t = np.tanh(x)
        return dy * (t * t)
    raise ValueError(f"activation code {code} is not elementwise")


class Backend(ConvOps, ConvPoolOps, EmbeddingOps, NormalizationOps, RecurrentOps):
    """Reference implementation of every op, in plain NumPy.

    Subclasses override hot ops and must keep each method's signature.
    """

    name = "numpy"
    #: True for backends whose arrays live in host memory as numpy arrays.
    host_memory = True
    #: ``(get, set)`` functions of the BLAS thread count when two of this backend's ops
    #: may run at once on two threads (their work without the GIL, their scratch per
    #: thread), else ``None``: ops run one at a time (:mod:`pynn.backends.concurrent`)
    pair_blas_threads = None

    # ------------------------------------------------------------------
    # allocation and transfer: layers and models allocate only through these
    # ------------------------------------------------------------------
    def empty(self, shape, dtype=np.float32):
        """Uninitialised array of ``shape`` and ``dtype`` in backend memory."""
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype=np.float32):
        """Zero-filled array in backend memory."""
        return np.zeros(shape, dtype=dtype)

    def asarray(self, x, dtype=None):
        """Host data -> backend array (C-contiguous, converted to ``dtype``; a 0-d
        array stays 0-d)."""
        return np.asarray(x, dtype=dtype, order="C")

    def to_numpy(self, x):
        """Backend array -> host ``numpy.ndarray``."""
        return np.asarray(x)

    def synchronize(self):
        """Wait for queued work (a no-op on the CPU)."""

    # ------------------------------------------------------------------
    # matrix product with fused epilogue
    # ------------------------------------------------------------------
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
             bias=None, activation="linear", act_alpha=None):
        """``out = act(alpha * op(a) @ op(b) + beta * out + bias)``.

        Parameters
        ----------
        a : array (m, k), or (k, m) when ``trans_a``
        b : array (k, n), or (n, k) when ``trans_b``
        out : array (m, n), optional
            Output; with ``beta != 0`` its previous contents are accumulated. It may
            be ``a`` or ``b`` itself (the product is formed before it is written).
        bias : array (n,), optional
            Added to every row before the activation.
        activation : str
            Name from :data:`EPILOGUE_ACTIVATIONS` applied as the epilogue.
        act_alpha : float, optional
            The activation's extra parameter (:data:`ACTIVATION_DEFAULT_ALPHA`): negative
            slope for ``leaky_relu``, alpha for ``elu``/``celu``, ``b`` for ``squareplus``.

        Returns
        -------
        out : array (m, n) of the working dtype of ``a``.
        """
        a, b, trans_a, trans_b, out, bias, alpha, beta, code, act_alpha = prep_gemm(
            a, b, out, trans_a, trans_b, alpha, beta, bias, activation, act_alpha)
        opa = a.T if trans_a else a
        opb = b.T if trans_b else b
        r = alpha * (opa @ opb) if alpha != 1.0 else opa @ opb
        if beta != 0.0:
            r = r + beta * out
        if bias is not None:
            r = r + bias
        out[...] = r
        if code != ACTIVATIONS["linear"]:
            self.activation_forward(out, activation, out=out, alpha=act_alpha)
        return out

    # ------------------------------------------------------------------
    # activations
    # ------------------------------------------------------------------
    def activation_forward(self, x, activation, out=None, alpha=None):
        """``out = activation(x)``: elementwise, or along the last axis for the row-wise
        ones (``softmax``: 2-D ``x``; ``log_softmax``, ``sparsemax``, ``glu``: any ``x``
        of rank >= 1, ``glu``'s output half as wide).

        ``alpha`` is the activation's extra parameter (:data:`ACTIVATION_DEFAULT_ALPHA`:
        leaky ReLU's negative slope, ELU's and CELU's alpha, Squareplus's ``b``).
        ``out`` may be ``x`` itself (not for ``glu``).
        """
        code, x, out, a = prep_activation_forward(x, activation, out, alpha)
        if code == ACTIVATIONS["softmax"]:
            return self.softmax(x, out=out)
        if activation in REFERENCE_ONLY:
            return self._row_activation_forward(x, activation, out)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            out[...] = _elementwise_forward(x, code, a)
        return out

    def activation_backward(self, dy, y, activation, x=None, out=None, alpha=None):
        """``out = dy * activation'(x)``, written from the forward output ``y``.

        ``x`` (the forward input) is needed only for :data:`NEEDS_INPUT_FOR_BACKWARD`
        (``gelu``, ``silu``, ``hard_silu``, ``mish``, ``tanh_shrink``, ``glu``). For the
        row-wise activations this is the full Jacobian-vector product along each row
        (``out`` then has ``x``'s shape: twice ``dy``'s width for ``glu``). ``out`` may
        be ``dy`` itself (not for ``glu``).
        """
        code, dy, y, x, out, a = prep_activation_backward(dy, y, activation, x, out, alpha)
        if activation in REFERENCE_ONLY:
            return self._row_activation_backward(dy, y, x, activation, out)
        # np.where evaluates both branches: overflow in the unused one is harmless
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            if code == ACTIVATIONS["softmax"]:
                s = np.sum(dy.astype(np.float64) * y, axis=1, keepdims=True)
                r = y * (dy - s)
            else:
                r = _elementwise_backward(dy, y, x, code, a)
        out[...] = r
        return out

    def _row_activation_forward(self, x, activation, out):
        """:data:`REFERENCE_ONLY` activations along the last axis (``x`` rank >= 1)."""
        if x.size == 0 or out.size == 0:
            return out
        x2 = x.reshape(-1, x.shape[-1])
        o2 = out.reshape(-1, out.shape[-1])
        if activation == "log_softmax":
            self.log_softmax(x2, out=o2)
        else:
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                o2[...] = (_rows.sparsemax_forward(x2) if activation == "sparsemax"
                           else _rows.glu_forward(x2))
        return out

    def _row_activation_backward(self, dy, y, x, activation, out):
        if out.size == 0:
            return out
        d2 = dy.reshape(-1, dy.shape[-1])
        y2 = y.reshape(-1, y.shape[-1])
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if activation == "log_softmax":
                r = _rows.log_softmax_backward(d2, y2)
            elif activation == "sparsemax":
                r = _rows.sparsemax_backward(d2, y2)
            else:
                r = _rows.glu_backward(d2, x.reshape(-1, x.shape[-1]))
        out.reshape(-1, out.shape[-1])[...] = r
        return out

    def softmax(self, x, out=None):
        """Row-wise softmax of 2-D ``x``, stable for large magnitudes (``out`` may be
        ``x`` itself)."""
        x, out = prep_rows("softmax", x, out)
        if x.size == 0:
            return out
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        out[...] = e / e.sum(axis=1, keepdims=True)
        return out

    def log_softmax(self, x, out=None):
        """Row-wise log-softmax of 2-D ``x``, stable for large magnitudes (``out`` may
        be ``x`` itself)."""
        x, out = prep_rows("log_softmax", x, out)
        if x.size == 0:
            return out
        z = x - x.max(axis=1, keepdims=True)
        out[...] = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return out

    # ------------------------------------------------------------------
    # losses: (mean loss as a float, gradient of that mean). ``grad`` may be the
    # predictions (logits or probabilities) themselves: they are read first.
    # ------------------------------------------------------------------
    def _targets(self, target, logits, dt, name="target"):
        """Integer labels (1-D) or a dense target array matching ``logits``."""
        return class_targets(target, logits, dt, name)

    def softmax_cross_entropy(self, logits, target, grad=None, sample_weight=None,
                              label_smoothing=0.0):
        """Fused softmax + categorical cross-entropy from logits.

        Parameters
        ----------
        logits : array (n, k)
        target : int array (n,) of class labels, or array (n, k) of probabilities
        grad : array (n, k), optional
            Receives d(mean loss)/d(logits) = w_i * (softmax - target) / n.
        sample_weight : array (n,), optional
        label_smoothing : float
            Keras's: target = target * (1 - ls) + ls / k.

        Returns
        -------
        (loss, grad) : float mean loss, gradient array
        """
        z, t, w, grad, (label_smoothing,) = prep_class_loss(
            "softmax_cross_entropy", logits, target, grad, sample_weight, "logits",
            label_smoothing=label_smoothing)
        n, k = z.shape
        if z.size == 0:  # no samples, or no classes (dense (n, 0) targets)
            return 0.0, grad
        if t.ndim == 1:
            t = np.eye(k, dtype=np.float64)[t]
        t = t.astype(np.float64)
        if label_smoothing:
            t = t * (1.0 - label_smoothing) + label_smoothing / k
        zd = z.astype(np.float64)
        zs = zd - zd.max(axis=1, keepdims=True)
        lse = np.log(np.exp(zs).sum(axis=1, keepdims=True))
        logp = zs - lse
        per = -(t * logp).sum(axis=1)
        p = np.exp(logp)
        g = (p * t.sum(axis=1, keepdims=True) - t) / n
        if w is not None:
            per = per * w
            g = g * w[:, None]
        grad[...] = g
        return float(per.sum() / n), grad

    def categorical_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                                  epsilon=1e-7):
        """Categorical cross-entropy from probabilities (clipped to [eps, 1-eps]).

        Keras's non-fused path: probabilities are renormalised to sum to one,
        clipped, and the gradient is with respect to the probabilities.
        """
        p, t, w, grad, (epsilon,) = prep_class_loss(
            "categorical_cross_entropy", probs, target, grad, sample_weight, "probs",
            epsilon=epsilon)
        n, k = p.shape
        if n == 0:
            return 0.0, grad
        if t.ndim == 1:
            t = np.eye(k, dtype=np.float64)[t]
        pd = p.astype(np.float64)
        s = pd.sum(axis=1, keepdims=True)
        q = pd / s
        clipped = (q < epsilon) | (q > 1 - epsilon)
        qc = np.clip(q, epsilon, 1 - epsilon)
        per = -(t * np.log(qc)).sum(axis=1)
        # d/dq of -sum t log(clip(q)); then through q = p / s
        dq = np.where(clipped, 0.0, -t / qc)
        g = (dq - (dq * q).sum(axis=1, keepdims=True)) / s / n
        if w is not None:
            per = per * w
            g = g * w[:, None]
        grad[...] = g
        return float(per.sum() / n), grad

    def sigmoid_binary_cross_entropy(self, logits, target, grad=None, sample_weight=None):
        """Binary cross-entropy from logits, stable for any magnitude.

        loss per element = max(z, 0) - z * t + log1p(exp(-|z|)); the per-sample
        loss is the mean over the last axis, the result the mean over samples.
        grad = w_i * (sigmoid(z) - t) / (n * k).
        """
        z, t, w, grad, _ = prep_pair_loss("sigmoid_binary_cross_entropy", logits, target,
                                          grad, sample_weight, "logits")
        n, k = z.shape
        if z.size == 0:
            return 0.0, grad
        zd, td = z.astype(np.float64), t.astype(np.float64)
        per = (np.maximum(zd, 0) - zd * td + np.log1p(np.exp(-np.abs(zd)))).mean(axis=1)
        e = np.exp(-np.abs(zd))
        sig = np.where(zd >= 0, 1 / (1 + e), e / (1 + e))
        g = (sig - td) / (n * k)
        if w is not None:
            per = per * w
            g = g * w[:, None]
        grad[...] = g
        return float(per.sum() / n), grad

    def binary_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                             epsilon=1e-7):
        """Binary cross-entropy from probabilities clipped to [eps, 1 - eps] (Keras)."""
        p, t, w, grad, (epsilon,) = prep_pair_loss("binary_cross_entropy", probs, target,
                                                   grad, sample_weight, "probs",
                                                   epsilon=epsilon)
        n, k = p.shape
        if p.size == 0:
            return 0.0, grad
        pd, td = p.astype(np.float64), t.astype(np.float64)
        pc = np.clip(pd, epsilon, 1 - epsilon)
        per = -(td * np.log(pc) + (1 - td) * np.log(1 - pc)).mean(axis=1)
        inside = (pd >= epsilon) & (pd <= 1 - epsilon)
        g = np.where(inside, (pc - td) / (pc * (1 - pc)), 0.0) / (n * k)
        if w is not None:
            per = per * w
            g = g * w[:, None]
        grad[...] = g
        return float(per.sum() / n), grad

    def mean_squared_error(self, pred, target, grad=None, sample_weight=None):
        """Mean squared error (mean over the last axis, then over samples)."""
        return self._regression_loss(pred, target, grad, sample_weight, squared=True)

    def mean_absolute_error(self, pred, target, grad=None, sample_weight=None):
        """Mean absolute error (mean over the last axis, then over samples).

        The gradient uses sign(pred - target), zero where they are equal.
        """
        return self._regression_loss(pred, target, grad, sample_weight, squared=False)

    def _regression_loss(self, pred, target, grad, sample_weight, squared):
        op = "mean_squared_error" if squared else "mean_absolute_error"
        p, t, w, grad, _ = prep_pair_loss(op, pred, target, grad, sample_weight, "pred")
        n, k = p.shape
        if p.size == 0:
            return 0.0, grad
        d = p.astype(np.float64) - t
        if squared:
            per, g = (d * d).mean(axis=1), 2.0 * d / (n * k)
        else:
            per, g = np.abs(d).mean(axis=1), np.sign(d) / (n * k)
        if w is not None:
            per = per * w
            g = g * w[:, None]
        grad[...] = g
        return float(per.sum() / n), grad

    # ------------------------------------------------------------------
    # reductions, dropout, batch normalisation
    # ------------------------------------------------------------------
    def bias_grad(self, dy, out=None):
        """Column sums of 2-D ``dy`` accumulated in float64: the bias gradient (k,)."""
        dy, out = prep_bias_grad(dy, out)
        out[...] = dy.sum(axis=0, dtype=np.float64)
        return out

    def dropout_forward(self, x, rate, seed, out=None, mask=None):
        """Inverted dropout: ``out = x * mask`` with ``mask`` in {0, 1/(1-rate)}.

        The mask is drawn from :func:`splitmix_uniform` with ``seed``, so every
        backend drops the same units. Returns ``(out, mask)``; ``mask`` has the
        shape and dtype of ``x`` and is what :meth:`dropout_backward` needs.
        ``out`` may be ``x`` itself.
        """
        x, rate, out, mask = prep_dropout_forward(x, rate, out, mask)
        u = splitmix_uniform(int(seed), x.size).reshape(x.shape)
        mask[...] = np.where(u >= rate, 1.0 / (1.0 - rate), 0.0)
        out[...] = x * mask
        return out, mask

    def dropout_backward(self, dy, mask, out=None):
        """``out = dy * mask`` (``out`` may be ``dy`` itself)."""
        dy, mask, out = prep_dropout_backward(dy, mask, out)
        out[...] = dy * mask
        return out

    def batchnorm_forward(self, x, gamma, beta, moving_mean, moving_var, training,
                          momentum=0.99, epsilon=1e-3, out=None):
        """Batch normalisation over the batch axis of 2-D ``x``.

        Training: normalise with the batch mean and (biased) variance, and update
        ``moving_mean``/``moving_var`` in place as Keras does:
        ``moving = momentum * moving + (1 - momentum) * batch``.
        Inference: normalise with the moving statistics.

        Returns ``(out, mean, inv_std)``; ``mean`` and ``inv_std`` (shape (k,),
        float64) are what :meth:`batchnorm_backward` needs.
        """
        x, gamma, beta, moving_mean, moving_var, momentum, epsilon, out = \
            prep_batchnorm_forward(x, gamma, beta, moving_mean, moving_var, training, momentum,
                                   epsilon, out)
        xd = x.astype(np.float64)
        if training:
            mean = xd.mean(axis=0)
            var = ((xd - mean) ** 2).mean(axis=0)
            moving_mean[...] = momentum * moving_mean + (1.0 - momentum) * mean
            moving_var[...] = momentum * moving_var + (1.0 - momentum) * var
        else:
            mean = moving_mean.astype(np.float64)
            var = moving_var.astype(np.float64)
        inv_std = 1.0 / np.sqrt(var + epsilon)
        out[...] = (xd - mean) * (inv_std * gamma) + beta
        return out, mean, inv_std

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std, dx=None, dgamma=None,
                           dbeta=None):
        """Gradients of training-mode batch normalisation.

        Returns ``(dx, dgamma, dbeta)``.
        """
        dy, x, gamma, mean, inv_std, dx, dgamma, dbeta = prep_batchnorm_backward(
            dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        n = x.shape[0]
        dyd = dy.astype(np.float64)
        xhat = (x.astype(np.float64) - mean) * inv_std
        db = dyd.sum(axis=0)
        dg = (dyd * xhat).sum(axis=0)
        if n:
            dx[...] = (gamma * inv_std / n) * (n * dyd - db - xhat * dg)
        dgamma[...] = dg
        dbeta[...] = db
        return dx, dgamma, dbeta

    # ------------------------------------------------------------------
    # optimizer updates, in place. ``weight_decay`` is decoupled as in Keras
    # (and torch.optim.AdamW): param -= lr * weight_decay * param first.
    # float32 state is flushed to zero below the smallest normal number.
    # ------------------------------------------------------------------
    @staticmethod
    def _decay(param, lr, weight_decay):
        if weight_decay:
            param -= param * (lr * weight_decay)

    def sgd_update(self, param, grad, velocity=None, learning_rate=0.01, momentum=0.0,
                   nesterov=False, weight_decay=0.0):
        """Keras SGD: ``v = momentum*v - lr*g``; ``p += v`` (Nesterov: ``p += momentum*v - lr*g``).

        ``velocity`` is required when ``momentum > 0``.
        """
        grad, lr, momentum, weight_decay = prep_sgd(param, grad, velocity, learning_rate,
                                                    momentum, weight_decay)
        self._decay(param, lr, weight_decay)
        if momentum:
            velocity[...] = momentum * velocity - lr * grad
            _flush_denormals(velocity)
            if nesterov:
                param += momentum * velocity - lr * grad
            else:
                param += velocity
        else:
            param -= lr * grad
        return param

    def adam_update(self, param, grad, m, v, step, learning_rate=0.001, beta_1=0.9,
                    beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
        """Keras Adam (AdamW with ``weight_decay``); ``step`` counts from 1.

        ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``;
        ``m += (g - m)(1 - beta_1)``; ``v += (g^2 - v)(1 - beta_2)``;
        ``p -= alpha * m / (sqrt(v) + eps)``.
        """
        grad, step, lr, beta_1, beta_2, epsilon, weight_decay = prep_adam(
            param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon, weight_decay)
        self._decay(param, lr, weight_decay)
        alpha = adam_step_size(lr, beta_1, beta_2, step)
        m += (grad - m) * (1.0 - beta_1)
        v += (grad * grad - v) * (1.0 - beta_2)
        _flush_denormals(m)
        _flush_denormals(v)
        param -= (alpha * m / (np.sqrt(v) + epsilon)).astype(param.dtype)
        return param

    def rmsprop_update(self, param, grad, ms, learning_rate=0.001, rho=0.9, epsilon=1e-7,
                       weight_decay=0.0):
        """Keras RMSprop: ``ms = rho*ms + (1-rho)*g^2``; ``p -= lr * g / sqrt(ms + eps)``."""
        grad, lr, rho, epsilon, weight_decay = prep_rmsprop(param, grad, ms, learning_rate, rho,
                                                            epsilon, weight_decay)
        self._decay(param, lr, weight_decay)
        ms[...] = rho * ms + (1.0 - rho) * grad * grad
        _flush_denormals(ms)
        param -= (lr * grad / np.sqrt(ms + epsilon)).astype(param.dtype)
        return param

    def adagrad_update(self, param, grad, acc, learning_rate=0.001, epsilon=1e-7,
                       weight_decay=0.0):
        """Keras Adagrad: ``acc += g^2``; ``p -= lr * g / sqrt(acc + eps)``."""
        grad, lr, epsilon, weight_decay = prep_adagrad(param, grad, acc, learning_rate, epsilon,
                                                       weight_decay)
        self._decay(param, lr, weight_decay)
        acc += grad * grad
        _flush_denormals(acc)
        param -= (lr * grad / np.sqrt(acc + epsilon)).astype(param.dtype)
        return param

    # ------------------------------------------------------------------
    # small helpers used by layers and optimizers (not hot; rarely overridden)
    # ------------------------------------------------------------------
    def sum_squares(self, x):
        """``sum(x**2)`` accumulated in float64, as a Python float."""
        x = np.asarray(x)
        return float(np.dot(x.ravel().astype(np.float64), x.ravel().astype(np.float64)))

    def scale_(self, x, factor):
        """``x *= factor`` in place."""
        x *= factor
        return x

    def clip_(self, x, lo, hi):
        """Clip ``x`` to ``[lo, hi]`` in place."""
        np.clip(x, lo, hi, out=x)
        return x

    def axpy_(self, alpha, x, y):
        """``y += alpha * x`` in place."""
        check_aliasing("axpy_", [("y", y)], [("x", x)])
        y += alpha * np.asarray(x, dtype=y.dtype)
        return y

    def copy_(self, src, dst):
        """``dst[...] = src``."""
        check_aliasing("copy_", [("dst", dst)], [("src", src)])
        dst[...] = src
        return dst

    def regularizer_loss(self, w, l1=0.0, l2=0.0):
        """``l1 * sum|w| + l2 * sum w^2`` (Keras's L1L2), as a Python float."""
        l1, l2 = op_hyper("regularizer_loss", l1=l1, l2=l2)
        w = np.asarray(w, dtype=np.float64)
        r = 0.0
        if l1:
            r += l1 * float(np.abs(w).sum())
        if l2:
            r += l2 * float((w * w).sum())
        return r

    def regularizer_grad_(self, w, grad, l1=0.0, l2=0.0):
        """``grad += l1 * sign(w) + 2 * l2 * w`` in place."""
        l1, l2 = op_hyper("regularizer_grad_", l1=l1, l2=l2)
        check_aliasing("regularizer_grad_", [("grad", grad)], [("w", w)])
        if l1:
            grad += (l1 * np.sign(w)).astype(grad.dtype)
        if l2:
            grad += ((2.0 * l2) * w).astype(grad.dtype)
        return grad

    def take_rows(self, x, indices, out=None):
        """``out = x[indices]``: the rows ``indices`` of ``x``, gathered along the first
        axis into ``out`` of shape ``(len(indices),) + x.shape[1:]`` and x's dtype.

        How ``fit`` gathers each shuffled batch. Negative indices count from the end as
        in NumPy; one out of range raises IndexError before anything is written. ``out``
        must not overlap ``x`` or ``indices``.
        """
        x, idx, out = prep_take_rows(x, indices, out)
        try:
            # mode "raise" buffers ``out``: nothing is written when an index is bad
            np.take(x, idx, axis=0, out=out)
        except IndexError:
            n = x.shape[0]
            raise take_rows_error(x, idx, int(np.flatnonzero((idx < -n) | (idx >= n))[0])) \
                from None
        return out

    def all_finite(self, x):
        """True when ``x`` holds no NaN or infinity.

        A contiguous array is checked in blocks of :data:`FINITE_BLOCK` elements,
        so checking a training set makes no temporary of its size (and needs no
        compiled kernel: a Numba one cost 0.1 s of a first ``fit``).
        """
        a = np.asarray(x)
        if a.dtype.kind in "biu":
            return True
        if a.size <= FINITE_BLOCK or not (a.flags.c_contiguous or a.flags.f_contiguous):
            return bool(np.isfinite(a).all())
        flat = a.reshape(-1, order="A")  # a view of the memory, in its order
        for start in range(0, flat.shape[0], FINITE_BLOCK):
            if not np.isfinite(flat[start:start + FINITE_BLOCK]).all():
                return False
        return True

    # ------------------------------------------------------------------
    # fused training step of a stack of Dense layers
    # ------------------------------------------------------------------
    def dense_stack_forward_backward(self, x, target, kernels, biases, activations, loss, outs,
                                     deltas, dkernels, dbiases, sample_weight=None,
                                     act_alphas=None, preacts=None, label_smoothing=0.0,
                                     loss_scale=1.0, update=None):
        """One training step of a stack of Dense layers: forward, loss, backward
        and, given ``update``, the optimizer step.

        Layer ``i`` computes ``outs[i] = act_i(h_{i-1} @ kernels[i] + biases[i])``
        with ``h_{-1} = x``. The loss is taken on ``outs[-1]``; when the last
        activation is the one ``loss`` folds in (``'softmax'`` for
        ``'softmax_cross_entropy'``, ``'sigmoid'`` for
        ``'sigmoid_binary_cross_entropy'``) that layer is computed linear, so
        ``outs[-1]`` holds the logits. Backward writes ``dZ_i`` into ``deltas[i]``,
        ``dkernels[i] = h_{i-1}^T dZ_i``, ``dbiases[i] = column sums of dZ_i`` and
        ``deltas[i-1] = act'(dZ_i @ kernels[i]^T)``; no gradient for ``x``.

        Parameters
        ----------
        x : array (n, d_0)
            Converted to the kernels' dtype if needed.
        target : int array (n,) or array (n, d_L)
            Class labels or probabilities for ``'softmax_cross_entropy'``; an array
            (n, d_L) for the other losses.
        kernels : list of L arrays (d_{i}, d_{i+1})
            float32 or float64 (all the same dtype), C-contiguous.
        biases : list of L arrays (d_{i+1},) or None
        activations : list of L str
            Names from :data:`ACTIVATIONS` (``None`` means linear).
        loss : str
            A key of :data:`STACK_LOSSES`.
        outs, deltas : lists of L writable C-contiguous arrays (n, d_{i+1})
            Layer outputs and their gradients (workspaces; they must not overlap
            each other or any input).
        dkernels : list of L writable arrays (d_i, d_{i+1})
        dbiases : list of L writable arrays (d_{i+1},), None where ``biases[i]`` is None
        sample_weight : array (n,), optional
        act_alphas : list of L floats or None, optional
            Each layer's activation parameter (``leaky_relu`` slope, ``elu``/``celu``
            alpha, ``squareplus`` b; None: the default).
        preacts : list of L arrays (n, d_{i+1}) or None, optional
            Pre-activations; required (writable) only for layers whose activation is in
            ``NEEDS_INPUT_FOR_BACKWARD`` (``gelu``, ``silu``, ...), whose
            derivative needs its input.
        label_smoothing : float
            For ``'softmax_cross_entropy'`` only (Keras's).
        loss_scale : float
            Multiplies the returned loss and its gradient (loss weights, reductions).
        update : StackUpdate, optional
            The optimizer step to take on ``kernels`` and ``biases`` (in place) once
            their gradients are known, exactly as :meth:`sgd_update` /
            :meth:`adam_update` would on each; skipped when the loss is not finite
            (the weights then stay as they were). With an update, ``dkernels`` and
            ``dbiases`` are workspaces whose contents afterwards are unspecified: a
            compiled backend may fold the gradient straight into the weights (plain
            SGD: one GEMM ``W <- (1 - lr wd) W - lr h^T dZ``), or update each layer
            while its gradient is still in cache. Kernels and biases must then not
            overlap each other, the state arrays or any workspace.

        Returns
        -------
        float
            ``loss_scale`` times the mean loss (``sum_over_batch_size``).
        """
        return _dense_stack_reference(self, x, target, kernels, biases, activations, loss, outs,
                                     deltas, dkernels, dbiases, sample_weight, act_alphas, preacts,
                                     label_smoothing, loss_scale, update)

    def dense_stack_forward(self, x, kernels, biases, activations, outs, act_alphas=None):
        """Inference through a stack of Dense layers: ``outs[i] = act_i(h_{i-1} @
        kernels[i] + biases[i])`` with ``h_{-1} = x``, every activation applied
        (softmax and sigmoid included). Arguments as in
        :meth:`dense_stack_forward_backward` (``outs`` are workspaces of shape
        ``(n, d_{i+1})``; they must not overlap each other or any input).

        Returns
        -------
        array (n, d_L)
            ``outs[-1]``.
        """
        return _dense_forward_reference(self, x, kernels, biases, activations, outs,
                                        act_alphas)

    def __repr__(self):
        return f"<pynn backend {self.name!r}>"
