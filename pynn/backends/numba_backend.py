"""The ``numba`` backend: every hot op of :class:`~pynn.backends.base.Backend`
as a serial ``@njit`` kernel (see :mod:`pynn.backends._numba_kernels`).

Each method checks and converts its arguments with the helpers of
:mod:`pynn.backends.base` (so bad shapes, dtypes or buffers raise the same
Python exceptions as the reference) and then calls one kernel. Nothing is
compiled on import: kernels compile on first use and are cached on disk.
Importing this module raises ``ImportError`` when Numba is not installed.
"""
from __future__ import annotations

import math
import operator

import numba  # noqa: F401  (ImportError here means the backend is unavailable)
import numpy as np

from . import _numba_kernels as K
from .base import (
    ACTIVATIONS,
    Backend,
    activation_alpha,
    activation_code,
    as_float,
    as_labels,
    check_bias,
    check_dense_stack,
    check_out,
    check_state,
    gemm_shapes,
    sample_weights,
    work_dtype,
)

__all__ = ["NumbaBackend"]

_SOFTMAX = ACTIVATIONS["softmax"]
_GELU = ACTIVATIONS["gelu"]
_FLT_MIN = float(np.finfo(np.float32).tiny)
_NO_WEIGHTS = np.empty(0, dtype=np.float64)
_NO_LABELS = np.empty(0, dtype=np.intp)
_EMPTY_TARGET = {np.dtype(np.float32): np.empty((0, 0), np.float32),
                 np.dtype(np.float64): np.empty((0, 0), np.float64)}
_MASK64 = 0xFFFFFFFFFFFFFFFF
#: (trans_a, trans_b) -> kernel; each compiles only when first used.
_GEMM = {(False, False): K.gemm_nn, (True, False): K.gemm_tn,
         (False, True): K.gemm_nt, (True, True): K.gemm_tt}


def _flat(a):
    """A 1-D view of a C-contiguous array (no copy)."""
    return a.reshape(-1)


def _weights(sample_weight, n):
    w = sample_weights(sample_weight, n)
    return _NO_WEIGHTS if w is None else w


def _tiny(dt):
    """Denormal-flush threshold in the parameter dtype (0 disables it for float64)."""
    return dt.type(_FLT_MIN) if dt == np.float32 else dt.type(0.0)


class NumbaBackend(Backend):
    """Numba JIT kernels for every hot op; the NumPy reference for the rest."""

    name = "numba"

    # ------------------------------------------------------------------
    # matrix product with fused epilogue
    # ------------------------------------------------------------------
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
             bias=None, activation="linear", act_alpha=None):
        code = activation_code(activation)
        act_a = activation_alpha(activation, act_alpha)
        dt = work_dtype(a, "a")
        a, trans_a = _operand(a, dt, "a", bool(trans_a))
        b, trans_b = _operand(b, dt, "b", bool(trans_b))
        m, _, n = gemm_shapes(a, b, trans_a, trans_b)
        alpha, beta = float(alpha), float(beta)
        if beta != 0.0 and out is None:
            raise ValueError("gemm: beta != 0 needs an out= array to accumulate into")
        out = check_out(out, (m, n), dt)
        bias = check_bias(bias, n, dt) if bias is not None else np.empty(0, dtype=dt)
        # BLAS must not write into an operand, and beta needs the old contents
        dst_is_out = beta == 0.0 and not (np.may_share_memory(out, a)
                                          or np.may_share_memory(out, b))
        dst = out if dst_is_out else np.empty((m, n), dtype=dt)
        kernel = _GEMM[trans_a, trans_b]
        kernel(a, b, out, dst, dst_is_out, alpha, beta, bias, code, act_a)
        return out

    # ------------------------------------------------------------------
    # activations
    # ------------------------------------------------------------------
    def activation_forward(self, x, activation, out=None, alpha=None):
        code = activation_code(activation)
        dt = work_dtype(x)
        x = as_float(x, dt, "x")
        out = check_out(out, x.shape, dt)
        a = activation_alpha(activation, alpha)
        if code == _SOFTMAX:
            return self.softmax(x, out=out)
        K.activation_forward(_flat(x), _flat(out), code, a)
        return out

    def activation_backward(self, dy, y, activation, x=None, out=None, alpha=None):
        code = activation_code(activation)
        dt = work_dtype(dy, "dy")
        dy = as_float(dy, dt, "dy")
        y = as_float(y, dt, "y")
        if y.shape != dy.shape:
            raise ValueError(f"activation_backward: dy {dy.shape} and y {y.shape} differ")
        out = check_out(out, dy.shape, dt)
        a = activation_alpha(activation, alpha)
        if code == _SOFTMAX:
            if dy.ndim != 2:
                raise ValueError(f"softmax backward expects 2-D arrays, got {dy.shape}")
            K.softmax_backward(dy, y, out)
            return out
        if code == _GELU:
            if x is None:
                raise ValueError("activation_backward: gelu needs the forward input x")
            x = as_float(x, dt, "x")
            if x.shape != dy.shape:
                raise ValueError(f"activation_backward: dy {dy.shape} and x {x.shape} differ")
        else:
            x = y  # unused by the kernel
        K.activation_backward(_flat(dy), _flat(y), _flat(x), _flat(out), code, a)
        return out

    def softmax(self, x, out=None):
        dt = work_dtype(x)
        x = as_float(x, dt, "x", 2)
        out = check_out(out, x.shape, dt)
        K.softmax_rows(x, out)
        return out

    def log_softmax(self, x, out=None):
        dt = work_dtype(x)
        x = as_float(x, dt, "x", 2)
        out = check_out(out, x.shape, dt)
        K.log_softmax_rows(x, out)
        return out

    # ------------------------------------------------------------------
    # losses
    # ------------------------------------------------------------------
    def _split_targets(self, target, z, dt):
        """(labels, dense) for the kernels: one of them is an empty placeholder."""
        t = self._targets(target, z, dt)
        if t.ndim == 1:
            return t, np.empty((0, 0), dtype=dt)
        return _NO_LABELS, t

    def softmax_cross_entropy(self, logits, target, grad=None, sample_weight=None,
                              label_smoothing=0.0):
        dt = work_dtype(logits, "logits")
        z = as_float(logits, dt, "logits", 2)
        n, _ = z.shape
        labels, t = self._split_targets(target, z, dt)
        w = _weights(sample_weight, n)
        grad = check_out(grad, z.shape, dt, "grad")
        if z.size == 0:  # no samples, or no classes (dense (n, 0) targets)
            return 0.0, grad
        total = K.softmax_cross_entropy(z, labels, t, w, float(label_smoothing), grad)
        return float(total / n), grad

    def categorical_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                                  epsilon=1e-7):
        dt = work_dtype(probs, "probs")
        p = as_float(probs, dt, "probs", 2)
        n, _ = p.shape
        labels, t = self._split_targets(target, p, dt)
        w = _weights(sample_weight, n)
        grad = check_out(grad, p.shape, dt, "grad")
        if n == 0:
            return 0.0, grad
        total = K.categorical_cross_entropy(p, labels, t, w, float(epsilon), grad)
        return float(total / n), grad

    def _pair(self, pred, target, grad, sample_weight, name):
        dt = work_dtype(pred, name)
        p = as_float(pred, dt, name, 2)
        t = as_float(target, dt, "target")
        if t.shape != p.shape:
            raise ValueError(f"target: expected shape {p.shape}, got {t.shape}")
        w = _weights(sample_weight, p.shape[0])
        grad = check_out(grad, p.shape, dt, "grad")
        return p, t, w, grad

    def sigmoid_binary_cross_entropy(self, logits, target, grad=None, sample_weight=None):
        z, t, w, grad = self._pair(logits, target, grad, sample_weight, "logits")
        if z.size == 0:
            return 0.0, grad
        total = K.sigmoid_binary_cross_entropy(z, t, w, grad)
        return float(total / z.shape[0]), grad

    def binary_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                             epsilon=1e-7):
        p, t, w, grad = self._pair(probs, target, grad, sample_weight, "probs")
        if p.size == 0:
            return 0.0, grad
        total = K.binary_cross_entropy(p, t, w, float(epsilon), grad)
        return float(total / p.shape[0]), grad

    def mean_squared_error(self, pred, target, grad=None, sample_weight=None):
        return self._regression_loss(pred, target, grad, sample_weight, squared=True)

    def mean_absolute_error(self, pred, target, grad=None, sample_weight=None):
        return self._regression_loss(pred, target, grad, sample_weight, squared=False)

    def _regression_loss(self, pred, target, grad, sample_weight, squared):
        p, t, w, grad = self._pair(pred, target, grad, sample_weight, "pred")
        if p.size == 0:
            return 0.0, grad
        total = K.regression_loss(p, t, w, bool(squared), grad)
        return float(total / p.shape[0]), grad

    # ------------------------------------------------------------------
    # reductions, dropout, batch normalisation
    # ------------------------------------------------------------------
    def bias_grad(self, dy, out=None):
        dt = work_dtype(dy, "dy")
        dy = as_float(dy, dt, "dy", 2)
        out = check_out(out, (dy.shape[1],), dt)
        K.bias_grad(dy, out)
        return out

    def dropout_forward(self, x, rate, seed, out=None, mask=None):
        dt = work_dtype(x)
        x = as_float(x, dt, "x")
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
        out = check_out(out, x.shape, dt)
        mask = check_out(mask, x.shape, dt, "mask")
        K.dropout_forward(_flat(x), np.uint64(int(seed) & _MASK64), rate, _flat(out),
                          _flat(mask))
        return out, mask

    def dropout_backward(self, dy, mask, out=None):
        dt = work_dtype(dy, "dy")
        dy = as_float(dy, dt, "dy")
        mask = as_float(mask, dt, "mask")
        if mask.shape != dy.shape:
            raise ValueError(f"dropout_backward: dy {dy.shape} and mask {mask.shape} differ")
        out = check_out(out, dy.shape, dt)
        K.multiply(_flat(dy), _flat(mask), _flat(out))
        return out

    def batchnorm_forward(self, x, gamma, beta, moving_mean, moving_var, training,
                          momentum=0.99, epsilon=1e-3, out=None):
        dt = work_dtype(x)
        x = as_float(x, dt, "x", 2)
        n, k = x.shape
        gamma = as_float(gamma, dt, "gamma", 1)
        beta = as_float(beta, dt, "beta", 1)
        for nm, v in (("gamma", gamma), ("beta", beta)):
            if v.shape != (k,):
                raise ValueError(f"{nm}: expected shape ({k},), got {v.shape}")
        moving_mean = check_state(moving_mean, (k,), dt, "moving_mean")
        moving_var = check_state(moving_var, (k,), dt, "moving_var")
        out = check_out(out, x.shape, dt)
        if training and n == 0:
            raise ValueError("batchnorm_forward: training needs at least one sample")
        mean = np.empty(k, dtype=np.float64)
        inv_std = np.empty(k, dtype=np.float64)
        K.batchnorm_forward(x, gamma, beta, moving_mean, moving_var, bool(training),
                            float(momentum), float(epsilon), out, mean, inv_std)
        return out, mean, inv_std

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std, dx=None, dgamma=None,
                           dbeta=None):
        dt = work_dtype(dy, "dy")
        dy = as_float(dy, dt, "dy", 2)
        x = as_float(x, dt, "x", 2)
        if x.shape != dy.shape:
            raise ValueError(f"batchnorm_backward: dy {dy.shape} and x {x.shape} differ")
        n, k = x.shape
        gamma = as_float(gamma, dt, "gamma", 1)
        mean = as_float(mean, np.float64, "mean")
        inv_std = as_float(inv_std, np.float64, "inv_std")
        for nm, v in (("gamma", gamma), ("mean", mean), ("inv_std", inv_std)):
            if v.shape != (k,):
                raise ValueError(f"{nm}: expected shape ({k},), got {v.shape}")
        dx = check_out(dx, x.shape, dt, "dx")
        dgamma = check_out(dgamma, (k,), dt, "dgamma")
        dbeta = check_out(dbeta, (k,), dt, "dbeta")
        K.batchnorm_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        return dx, dgamma, dbeta

    # ------------------------------------------------------------------
    # optimizer updates, in place (scalars handed over in the param dtype)
    # ------------------------------------------------------------------
    def sgd_update(self, param, grad, velocity=None, learning_rate=0.01, momentum=0.0,
                   nesterov=False, weight_decay=0.0):
        grad = self._opt_args(param, grad,
                              *([("velocity", velocity)] if velocity is not None else []))
        if momentum and velocity is None:
            raise ValueError("sgd_update: momentum > 0 needs a velocity array")
        s = param.dtype.type
        lr = float(learning_rate)
        vel = _flat(velocity) if momentum else np.empty(0, dtype=param.dtype)
        K.sgd_update(_flat(param), _flat(grad), vel, bool(momentum), s(lr), s(momentum),
                     bool(nesterov), s(lr * weight_decay), _tiny(param.dtype))
        return param

    def adam_update(self, param, grad, m, v, step, learning_rate=0.001, beta_1=0.9,
                    beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
        grad = self._opt_args(param, grad, ("m", m), ("v", v))
        if step < 1:
            raise ValueError(f"adam_update: step counts from 1, got {step}")
        s = param.dtype.type
        lr = float(learning_rate)
        alpha = lr * math.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)
        K.adam_update(_flat(param), _flat(grad), _flat(m), _flat(v), s(alpha),
                      s(1.0 - beta_1), s(1.0 - beta_2), s(epsilon), s(lr * weight_decay),
                      _tiny(param.dtype))
        return param

    def rmsprop_update(self, param, grad, ms, learning_rate=0.001, rho=0.9, epsilon=1e-7,
                       weight_decay=0.0):
        grad = self._opt_args(param, grad, ("ms", ms))
        s = param.dtype.type
        lr = float(learning_rate)
        K.rmsprop_update(_flat(param), _flat(grad), _flat(ms), s(lr), s(rho), s(1.0 - rho),
                         s(epsilon), s(lr * weight_decay), _tiny(param.dtype))
        return param

    def adagrad_update(self, param, grad, acc, learning_rate=0.001, epsilon=1e-7,
                       weight_decay=0.0):
        grad = self._opt_args(param, grad, ("acc", acc))
        s = param.dtype.type
        lr = float(learning_rate)
        K.adagrad_update(_flat(param), _flat(grad), _flat(acc), s(lr), s(epsilon),
                         s(lr * weight_decay), _tiny(param.dtype))
        return param

    # ------------------------------------------------------------------
    # fused training step of a stack of Dense layers
    # ------------------------------------------------------------------
    _stack_plan = None

    def dense_stack_forward_backward(self, x, target, kernels, biases, activations, loss, outs,
                                     deltas, dkernels, dbiases, sample_weight=None,
                                     act_alphas=None, preacts=None, label_smoothing=0.0,
                                     loss_scale=1.0):
        """One ``@njit`` call (:func:`~pynn.backends._numba_kernels.dense_stack`).

        The per-layer arrays are validated once and remembered: a later call
        with the very same array objects (a model's workspaces and weight views)
        only checks ``x``, ``target`` and ``sample_weight``.
        """
        meta = _stack_meta(loss, activations, act_alphas, label_smoothing)
        arrays = (*kernels, *biases, *outs, *deltas, *dkernels, *dbiases,
                  *(() if preacts is None else preacts))
        plan = self._stack_plan
        if not (plan is not None and plan.meta == meta and len(plan.arrays) == len(arrays)
                and all(map(operator.is_, plan.arrays, arrays))):
            plan = None
        xs = ts = ws = None
        if plan is not None:
            xs, ts, ws = _stack_fast_inputs(plan, x, target, sample_weight)
        if xs is None:
            a = check_dense_stack(x, target, kernels, biases, activations, loss, outs, deltas,
                                  dkernels, dbiases, sample_weight, act_alphas, preacts,
                                  label_smoothing, loss_scale)
            if a["x"].shape[0] == 0:  # no samples: the reference gives zero gradients
                return Backend.dense_stack_forward_backward(
                    self, x, target, kernels, biases, activations, loss, outs, deltas,
                    dkernels, dbiases, sample_weight, act_alphas, preacts, label_smoothing,
                    loss_scale)
            plan = self._stack_plan = _stack_plan(a, meta, arrays, kernels, outs, deltas,
                                                  dkernels)
            xs = a["x"]
            if a["labels"] is not None:
                ts = (a["labels"], np.empty((0, 0), dtype=plan.dtype))
            else:
                ts = (_NO_LABELS, a["target"])
            ws = _NO_WEIGHTS if a["w"] is None else a["w"]
        loss_value = K.dense_stack(xs, ts[0], ts[1], ws, *plan.args, float(loss_scale),
                                   plan.tiny, plan.scratch)
        if math.isnan(loss_value) and ts[0].shape[0]:
            as_labels(ts[0], plan.n, plan.k, "target")  # raises with the bad range
        return float(loss_value)


class _StackPlan:
    """What one validated ``dense_stack_forward_backward`` call handed to the kernel."""

    __slots__ = ("meta", "arrays", "args", "dtype", "n", "width", "k", "labels_ok",
                 "loss_code", "tiny", "scratch")


def _stack_meta(loss, activations, act_alphas, label_smoothing):
    return (loss, tuple(activations),
            None if act_alphas is None else tuple(act_alphas), float(label_smoothing))


def _stack_plan(a, meta, arrays, kernels, outs, deltas, dkernels):
    """Kernel arguments (tuples, placeholders, scratch) from ``check_dense_stack``'s dict."""
    dt = a["dtype"]
    n = a["x"].shape[0]
    empty1, empty2 = np.empty(0, dtype=dt), np.empty((0, 0), dtype=dt)
    plan = _StackPlan()
    plan.meta, plan.arrays, plan.dtype, plan.n = meta, arrays, dt, n
    plan.width = kernels[0].shape[0]
    plan.k = kernels[-1].shape[1]
    plan.loss_code = a["loss_code"]
    plan.labels_ok = a["loss_code"] == 0
    plan.tiny = _tiny(dt)
    plan.args = (
        tuple(kernels),
        tuple(empty1 if b is None else b for b in a["biases"]),
        tuple(outs),
        tuple(empty2 if p is None else p for p in a["preacts"]),
        tuple(deltas),
        tuple(dkernels),
        tuple(empty1 if b is None else b for b in a["dbiases"]),
        np.array(a["codes"], dtype=np.int64),
        np.array(a["alphas"], dtype=np.float64),
        a["loss_code"], a["label_smoothing"],
    )
    plan.scratch = np.zeros(max(k.shape[1] for k in kernels), dtype=np.float64)
    return plan


def _stack_fast_inputs(plan, x, target, sample_weight):
    """``(x, (labels, dense target), w)`` when they need no conversion, else Nones."""
    none = None, None, None
    n = plan.n
    if not (type(x) is np.ndarray and x.dtype == plan.dtype and x.shape == (n, plan.width)
            and x.flags.c_contiguous):
        return none
    if type(target) is not np.ndarray:
        return none
    if target.ndim == 1:
        if not (plan.labels_ok and target.dtype == np.intp and target.shape[0] == n
                and target.flags.c_contiguous):
            return none
        ts = (target, _EMPTY_TARGET[plan.dtype])
    elif (target.dtype == plan.dtype and target.shape == (n, plan.k)
          and target.flags.c_contiguous):
        ts = (_NO_LABELS, target)
    else:
        return none
    if sample_weight is None:
        ws = _NO_WEIGHTS
    elif (type(sample_weight) is np.ndarray and sample_weight.dtype == np.float64
          and sample_weight.shape == (n,) and sample_weight.flags.c_contiguous):
        ws = sample_weight
    else:
        return none
    return x, ts, ws


def _operand(x, dt, name, trans):
    """A GEMM operand as a C-contiguous ``dt`` array and its transpose flag.

    An F-contiguous 2-D array of the right dtype (e.g. ``w.T``) is used through
    its C-contiguous transpose with the flag flipped, so no copy is made.
    """
    a = np.asarray(x)
    if (a.ndim == 2 and a.dtype == dt and a.flags.f_contiguous
            and not a.flags.c_contiguous):
        return a.T, not trans
    return as_float(a, dt, name, 2), trans
