"""The ``numba`` backend: every hot op of :class:`~pynn.backends.base.Backend`
as a serial ``@njit`` kernel (see :mod:`pynn.backends._numba_kernels`).

Each method checks and converts its arguments with the helpers of
:mod:`pynn.backends.validation` (so bad shapes, dtypes or buffers raise the same
Python exceptions as the reference) and then calls one kernel. Nothing is
compiled on import: kernels compile on first use and are cached on disk, in
pynn's checked directory (:mod:`pynn.backends._numba_cache`). Importing this
module raises ``ImportError`` when Numba is not installed or when
``NUMBA_DISABLE_JIT`` is set.
"""
from __future__ import annotations

import math
import operator
import threading

import numba  # ImportError here means the backend is unavailable
import numpy as np

if numba.config.DISABLE_JIT:
    # njit then returns plain Python functions, and the kernels' intrinsics only run
    # compiled: refuse here, so the registry lists the backend as unavailable with this
    raise ImportError("NUMBA_DISABLE_JIT is set: the numba backend's kernels run only "
                      "compiled (unset NUMBA_DISABLE_JIT to use it)")

from . import _numba_codegen as G  # noqa: E402  (after the check above)
from . import _numba_conv as C  # noqa: E402
from . import _numba_kernels as K  # noqa: E402
from .activation_codes import ACTIVATIONS, REFERENCE_ONLY, activation_code  # noqa: E402
from .base import Backend  # noqa: E402
from .conv import (composed_conv_backward, prep_conv_backward,  # noqa: E402
                   prep_conv_backward_input, prep_conv_backward_kernel,
                   prep_conv_forward, prep_pool_backward, prep_pool_forward)
from .conv_pool import (composed_conv_pool_backward, prep_conv_pool,  # noqa: E402
                        prep_conv_pool_backward)
from .compiled_normalization import CompiledNormalizationOps  # noqa: E402
from . import _numba_normalization  # noqa: E402
from .numba_sequence import NumbaSequenceOps  # noqa: E402
from .fused_stack import (check_dense_forward, check_dense_stack,  # noqa: E402
                          stack_update_hyper, stack_update_slots)
from .validation import (activation_alpha, adam_step_size, as_float,  # noqa: E402
                         as_labels, op_hyper, prep_activation_backward,
                         prep_activation_forward, prep_adagrad,
                         prep_adam, prep_batchnorm_backward, prep_batchnorm_forward,
                         prep_bias_grad, prep_class_loss, prep_dropout_backward,
                         prep_dropout_forward, prep_gemm, prep_pair_loss, prep_rmsprop,
                         prep_rows, prep_sgd)

__all__ = ["NumbaBackend"]

_SOFTMAX = ACTIVATIONS["softmax"]
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_FLT_MIN = float(np.finfo(np.float32).tiny)
_NO_WEIGHTS = np.empty(0, dtype=np.float64)
_NO_LABELS = np.empty(0, dtype=np.intp)
_EMPTY_TARGET = {np.dtype(np.float32): np.empty((0, 0), np.float32),
                 np.dtype(np.float64): np.empty((0, 0), np.float64)}
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _flat(a):
    """A 1-D view of a C-contiguous array (no copy)."""
    return a.reshape(-1)


def _weights(w):
    """A kernel's weights from checked sample weights (or None)."""
    return _NO_WEIGHTS if w is None else w


def _tiny(dt):
    """Denormal-flush threshold in the parameter dtype (0 disables it for float64)."""
    return dt.type(_FLT_MIN) if dt == np.float32 else dt.type(0.0)


class NumbaBackend(NumbaSequenceOps, CompiledNormalizationOps, Backend):
    """Numba JIT kernels for every hot op; the NumPy reference for the rest."""

    name = "numba"
    _normalization_kernels = _numba_normalization

    # ------------------------------------------------------------------
    # matrix product with fused epilogue
    # ------------------------------------------------------------------
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
             bias=None, activation="linear", act_alpha=None):
        a, b, trans_a, trans_b, out, bias, alpha, beta, code, act_a = prep_gemm(
            a, b, out, bool(trans_a), bool(trans_b), alpha, beta, bias, activation, act_alpha,
            operand=_operand)
        dt = out.dtype
        if bias is None:
            bias = np.empty(0, dtype=dt)
        # BLAS must not write into an operand, and beta needs the old contents
        dst_is_out = beta == 0.0 and not (np.may_share_memory(out, a)
                                          or np.may_share_memory(out, b))
        dst = out if dst_is_out else np.empty(out.shape, dtype=dt)
        G.gemm(trans_a, trans_b, code)(a, b, out, dst, dst_is_out, alpha, beta, bias, act_a)
        return out

    # ------------------------------------------------------------------
    # activations
    # ------------------------------------------------------------------
    def activation_forward(self, x, activation, out=None, alpha=None):
        code, x, out, a = prep_activation_forward(x, activation, out, alpha)
        if code == _SOFTMAX:
            return self.softmax(x, out=out)
        if activation in REFERENCE_ONLY:
            return self._row_activation_forward(x, activation, out)
        G.activation_forward(code)(_flat(x), _flat(out), a)
        return out

    def activation_backward(self, dy, y, activation, x=None, out=None, alpha=None):
        code, dy, y, x, out, a = prep_activation_backward(dy, y, activation, x, out, alpha)
        if code == _SOFTMAX:
            K.softmax_backward(dy, y, out)
            return out
        if activation in REFERENCE_ONLY:
            return self._row_activation_backward(dy, y, x, activation, out)
        if x is None:
            x = y  # unused by the kernel
        G.activation_backward(code)(_flat(dy), _flat(y), _flat(x), _flat(out), a)
        return out

    def softmax(self, x, out=None):
        x, out = prep_rows("softmax", x, out)
        K.softmax_rows(x, out)
        return out

    def log_softmax(self, x, out=None):
        x, out = prep_rows("log_softmax", x, out)
        K.log_softmax_rows(x, out)
        return out

    # ------------------------------------------------------------------
    # losses
    # ------------------------------------------------------------------
    def _class_loss_args(self, op, x, target, grad, sample_weight, name, **hyper):
        """``(x, labels, dense target, w, grad, hyper)`` for the kernels (one of labels
        and dense target an empty placeholder; ``hyper`` the checked keywords)."""
        x, t, w, grad, hyper = prep_class_loss(op, x, target, grad, sample_weight, name,
                                               **hyper)
        if t.ndim == 1:
            return x, t, np.empty((0, 0), dtype=x.dtype), _weights(w), grad, hyper
        return x, _NO_LABELS, t, _weights(w), grad, hyper

    def softmax_cross_entropy(self, logits, target, grad=None, sample_weight=None,
                              label_smoothing=0.0):
        z, labels, t, w, grad, (ls,) = self._class_loss_args(
            "softmax_cross_entropy", logits, target, grad, sample_weight, "logits",
            label_smoothing=label_smoothing)
        n = z.shape[0]
        if z.size == 0:  # no samples, or no classes (dense (n, 0) targets)
            return 0.0, grad
        if labels.shape[0]:
            total = K.softmax_cross_entropy_labels(z, labels, w, ls, grad)
        else:
            total = K.softmax_cross_entropy_dense(z, t, w, ls, grad)
        return float(total / n), grad

    def categorical_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                                  epsilon=1e-7):
        p, labels, t, w, grad, (eps,) = self._class_loss_args(
            "categorical_cross_entropy", probs, target, grad, sample_weight, "probs",
            epsilon=epsilon)
        n = p.shape[0]
        if n == 0:
            return 0.0, grad
        total = K.categorical_cross_entropy(p, labels, t, w, eps, grad)
        return float(total / n), grad

    def _pair(self, op, pred, target, grad, sample_weight, name, **hyper):
        p, t, w, grad, hyper = prep_pair_loss(op, pred, target, grad, sample_weight, name,
                                              **hyper)
        return p, t, _weights(w), grad, hyper

    def sigmoid_binary_cross_entropy(self, logits, target, grad=None, sample_weight=None):
        z, t, w, grad, _ = self._pair("sigmoid_binary_cross_entropy", logits, target, grad,
                                      sample_weight, "logits")
        if z.size == 0:
            return 0.0, grad
        total = K.sigmoid_binary_cross_entropy(z, t, w, grad)
        return float(total / z.shape[0]), grad

    def binary_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                             epsilon=1e-7):
        p, t, w, grad, (eps,) = self._pair("binary_cross_entropy", probs, target, grad,
                                           sample_weight, "probs", epsilon=epsilon)
        if p.size == 0:
            return 0.0, grad
        total = K.binary_cross_entropy(p, t, w, eps, grad)
        return float(total / p.shape[0]), grad

    def mean_squared_error(self, pred, target, grad=None, sample_weight=None):
        return self._regression_loss(pred, target, grad, sample_weight, squared=True)

    def mean_absolute_error(self, pred, target, grad=None, sample_weight=None):
        return self._regression_loss(pred, target, grad, sample_weight, squared=False)

    def _regression_loss(self, pred, target, grad, sample_weight, squared):
        op = "mean_squared_error" if squared else "mean_absolute_error"
        p, t, w, grad, _ = self._pair(op, pred, target, grad, sample_weight, "pred")
        if p.size == 0:
            return 0.0, grad
        total = K.regression_loss(p, t, w, bool(squared), grad)
        return float(total / p.shape[0]), grad

    # ------------------------------------------------------------------
    # reductions, dropout, batch normalisation
    # ------------------------------------------------------------------
    def bias_grad(self, dy, out=None):
        dy, out = prep_bias_grad(dy, out)
        K.bias_grad(dy, out)
        return out

    def dropout_forward(self, x, rate, seed, out=None, mask=None):
        x, rate, out, mask = prep_dropout_forward(x, rate, out, mask)
        K.dropout_forward(_flat(x), np.uint64(int(seed) & _MASK64), rate, _flat(out),
                          _flat(mask))
        return out, mask

    def dropout_backward(self, dy, mask, out=None):
        dy, mask, out = prep_dropout_backward(dy, mask, out)
        K.multiply(_flat(dy), _flat(mask), _flat(out))
        return out

    def batchnorm_forward(self, x, gamma, beta, moving_mean, moving_var, training,
                          momentum=0.99, epsilon=1e-3, out=None):
        x, gamma, beta, moving_mean, moving_var, momentum, epsilon, out = \
            prep_batchnorm_forward(x, gamma, beta, moving_mean, moving_var, training, momentum,
                                   epsilon, out)
        k = x.shape[1]
        mean = np.empty(k, dtype=np.float64)
        inv_std = np.empty(k, dtype=np.float64)
        K.batchnorm_forward(x, gamma, beta, moving_mean, moving_var, bool(training),
                            momentum, epsilon, out, mean, inv_std)
        return out, mean, inv_std

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std, dx=None, dgamma=None,
                           dbeta=None):
        dy, x, gamma, mean, inv_std, dx, dgamma, dbeta = prep_batchnorm_backward(
            dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        K.batchnorm_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        return dx, dgamma, dbeta

    # ------------------------------------------------------------------
    # convolution and pooling (kernels: pynn.backends._numba_conv). Each op
    # makes the reference's checks, in its order and with its messages, then
    # calls one kernel with scratch arrays from _scratch().
    # ------------------------------------------------------------------
    def _scratch(self):
        """This backend's :class:`_Scratch` (per thread)."""
        s = self.__dict__.get("_scratch_local")
        if s is None:
            s = self.__dict__.setdefault("_scratch_local", _Scratch())
        return s

    def _conv_scratch(self, dt, rows, kk, cog, groups):
        """``(col, per-group rows, per-group matrices)`` for a convolution: the
        columns of one block of rows, and (groups > 1 only) one group's block of
        ``dy``/``out`` and the per-group kernels or kernel gradients."""
        s = self._scratch()
        rb = C.block_rows(rows, kk, dt.itemsize)
        grouped = groups > 1
        return (s.get("col", dt, (rb, kk)),
                s.get("group_rows", dt, (rb, cog) if grouped else (0, 0)),
                s.get("group_mats", dt, (groups, kk, cog) if grouped else (0, 0, 0)))

    def conv2d_forward(self, x, kernel, bias=None, strides=1, padding=((0, 0), (0, 0)),
                       dilation=1, groups=1, activation="linear", out=None):
        x, kernel, bias, strides, padding, dilation, groups, out = prep_conv_forward(
            x, kernel, bias, strides, padding, dilation, groups, activation, out)
        kh, kw, cig, co = kernel.shape
        _, oh, ow, _ = out.shape
        dt = x.dtype
        code = activation_code(activation)
        alpha = activation_alpha(activation, None)
        if bias is None:
            bias = self._scratch().get("zeros", dt, (co,), zeros=True)
        col, tile, wpack = self._conv_scratch(dt, x.shape[0] * oh * ow, kh * kw * cig,
                                              co // groups, groups)
        fused = code in C.EPILOGUE_CODES
        C.conv_forward(x, kernel, bias, out, col, tile, wpack, strides,
                       (padding[0][0], padding[1][0]), dilation, groups,
                       code if fused else 0, alpha)
        if code == _SOFTMAX:  # row-wise over the channels, after the bias
            rows = out.reshape(-1, co)
            K.softmax_rows(rows, rows)
        elif not fused:  # one more pass, in place (see C.EPILOGUE_CODES)
            G.activation_forward(code)(_flat(out), _flat(out), alpha)
        return out

    def conv2d_backward_input(self, dy, kernel, input_shape, strides=1,
                              padding=((0, 0), (0, 0)), dilation=1, groups=1, out=None):
        dy, kernel, (n, h, w, ci), strides, padding, dilation, groups, out = (
            prep_conv_backward_input(dy, kernel, input_shape, strides, padding, dilation,
                                     groups, out))
        kh, kw, cig, co = kernel.shape
        _, oh, ow, _ = dy.shape
        dt = dy.dtype
        col, dyg, wpack = self._conv_scratch(dt, n * oh * ow, kh * kw * cig, co // groups,
                                             groups)
        C.conv_backward_input(dy, kernel, out, col, dyg, wpack, strides,
                              (padding[0][0], padding[1][0]), dilation, groups)
        return out

    def conv2d_backward_kernel(self, x, dy, kernel_shape, strides=1,
                               padding=((0, 0), (0, 0)), dilation=1, groups=1, out=None):
        x, dy, kshape, strides, padding, dilation, groups, out = prep_conv_backward_kernel(
            x, dy, kernel_shape, strides, padding, dilation, groups, out)
        kh, kw, cig, co = kshape
        _, oh, ow, _ = dy.shape
        dt = x.dtype
        col, dyg, acc = self._conv_scratch(dt, x.shape[0] * oh * ow, kh * kw * cig,
                                           co // groups, groups)
        C.conv_backward_kernel(x, dy, out, col, dyg, acc, strides,
                               (padding[0][0], padding[1][0]), dilation, groups)
        return out

    def conv2d_backward(self, dy, x, kernel, y=None, activation="linear", strides=1,
                        padding=((0, 0), (0, 0)), dilation=1, groups=1, input_grad=True,
                        kernel_grad=True, bias_grad=True, dx=None, dkernel=None, dbias=None):
        """This backend's activation-gradient, kernel-, bias- and input-gradient kernels
        one after another (``dz`` in a reused scratch array; not fused into one sweep
        as the Cython backend's)."""
        x, kernel, strides, padding, dilation, groups, dy, y, (dx, dkernel, dbias) = (
            prep_conv_backward(x, kernel, strides, padding, dilation, groups, dy, y,
                               activation, (input_grad, kernel_grad, bias_grad),
                               (dx, dkernel, dbias)))
        return composed_conv_backward(
            self, dy, x, kernel, y, activation,
            dict(strides=strides, padding=padding, dilation=dilation, groups=groups),
            (dx, dkernel, dbias), dz=self._scratch().get("dz", dy.dtype, dy.shape))

    def conv2d_pool_forward(self, x, kernel, bias=None, strides=1, padding=((0, 0), (0, 0)),
                            dilation=1, groups=1, activation="linear", pool_size=2,
                            out=None, index=None):
        """This backend's convolution into a reused scratch array, then its pooling (not
        tiled as the Cython backend's)."""
        x, kernel, bias, strides, padding, dilation, groups, pool, conv_shape, out, index = (
            prep_conv_pool(x, kernel, bias, strides, padding, dilation, groups, activation,
                           pool_size, out, index))
        y = self._scratch().get("conv_pool_y", x.dtype, conv_shape)
        self.conv2d_forward(x, kernel, bias, strides=strides, padding=padding,
                            dilation=dilation, groups=groups, activation=activation, out=y)
        return self.pool2d_forward(y, pool, out=out, index=index)

    def conv2d_pool_backward(self, dy, x, kernel, out, index, activation="linear", strides=1,
                             padding=((0, 0), (0, 0)), dilation=1, groups=1, pool_size=2,
                             input_grad=True, kernel_grad=True, bias_grad=True, dx=None,
                             dkernel=None, dbias=None):
        """This backend's pooling gradient and fused convolution backward, on reused
        scratch arrays (the convolution output holds ``out`` at the maxima, zeros
        elsewhere, where the gradient is zero)."""
        (dy, x, kernel, out, index, strides, padding, dilation, groups, pool, conv_shape,
         (dx, dkernel, dbias)) = prep_conv_pool_backward(
            dy, x, kernel, out, index, activation, strides, padding, dilation, groups,
            pool_size, (input_grad, kernel_grad, bias_grad), (dx, dkernel, dbias))
        s = self._scratch()
        return composed_conv_pool_backward(
            self, dy, x, kernel, out, index, activation,
            dict(strides=strides, padding=padding, dilation=dilation, groups=groups), pool,
            (dx, dkernel, dbias), s.get("conv_pool_dy", x.dtype, conv_shape),
            s.get("conv_pool_y", x.dtype, conv_shape))

    def pool2d_forward(self, x, pool_size, strides=None, padding=((0, 0), (0, 0)), mode="max",
                       out=None, index=None):
        x, pool, strides, padding, out, index = prep_pool_forward(
            x, pool_size, strides, padding, mode, out, index)
        c = x.shape[3]
        pads = (padding[0][0], padding[1][0])
        if mode == "max":
            C.max_pool_forward(x, out, index, pool, strides, pads)
        else:
            acc = self._scratch().get("acc64", np.dtype(np.float64), (c,))
            C.avg_pool_forward(x, out, pool, strides, pads, acc)
        return out, index

    def pool2d_backward(self, dy, input_shape, pool_size, strides=None,
                        padding=((0, 0), (0, 0)), mode="max", index=None, out=None):
        dy, _, pool, strides, padding, index, out = prep_pool_backward(
            dy, input_shape, pool_size, strides, padding, mode, index, out)
        if mode == "max":
            C.max_pool_backward(dy, np.ascontiguousarray(index, dtype=np.int64), out)
        else:
            C.avg_pool_backward(dy, out, pool, strides, (padding[0][0], padding[1][0]))
        return out

    # ------------------------------------------------------------------
    # optimizer updates, in place (scalars handed over in the param dtype)
    # ------------------------------------------------------------------
    def sgd_update(self, param, grad, velocity=None, learning_rate=0.01, momentum=0.0,
                   nesterov=False, weight_decay=0.0):
        grad, lr, momentum, weight_decay = prep_sgd(param, grad, velocity, learning_rate,
                                                    momentum, weight_decay)
        s = param.dtype.type
        if momentum:
            K.sgd_momentum_update(_flat(param), _flat(grad), _flat(velocity), s(lr),
                                  s(momentum), bool(nesterov), s(lr * weight_decay),
                                  _tiny(param.dtype))
        else:
            K.sgd_update(_flat(param), _flat(grad), s(lr), s(lr * weight_decay))
        return param

    def adam_update(self, param, grad, m, v, step, learning_rate=0.001, beta_1=0.9,
                    beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
        grad, step, lr, beta_1, beta_2, epsilon, weight_decay = prep_adam(
            param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon, weight_decay)
        s = param.dtype.type
        alpha = adam_step_size(lr, beta_1, beta_2, step)
        K.adam_update(_flat(param), _flat(grad), _flat(m), _flat(v), s(alpha),
                      s(1.0 - beta_1), s(1.0 - beta_2), s(epsilon), s(lr * weight_decay),
                      _tiny(param.dtype))
        return param

    def rmsprop_update(self, param, grad, ms, learning_rate=0.001, rho=0.9, epsilon=1e-7,
                       weight_decay=0.0):
        grad, lr, rho, epsilon, weight_decay = prep_rmsprop(param, grad, ms, learning_rate, rho,
                                                            epsilon, weight_decay)
        s = param.dtype.type
        K.rmsprop_update(_flat(param), _flat(grad), _flat(ms), s(lr), s(rho), s(1.0 - rho),
                         s(epsilon), s(lr * weight_decay), _tiny(param.dtype))
        return param

    def adagrad_update(self, param, grad, acc, learning_rate=0.001, epsilon=1e-7,
                       weight_decay=0.0):
        grad, lr, epsilon, weight_decay = prep_adagrad(param, grad, acc, learning_rate, epsilon,
                                                       weight_decay)
        s = param.dtype.type
        K.adagrad_update(_flat(param), _flat(grad), _flat(acc), s(lr), s(epsilon),
                         s(lr * weight_decay), _tiny(param.dtype))
        return param

    # ------------------------------------------------------------------
    # fused Dense-stack inference and training step
    # ------------------------------------------------------------------
    _stack_plan = None
    _forward_plan = None

    def dense_stack_forward(self, x, kernels, biases, activations, outs, act_alphas=None):
        """One ``@njit`` call (generated for the stack's activations by
        :func:`~pynn.backends._numba_codegen.stack_forward`); the per-layer arrays
        are validated once and remembered, as for the step. ``x`` and the last
        output (often a fresh array: a model writes into its result) are checked
        for overlaps by the kernel; a call it refuses goes through the validator,
        which names the arrays."""
        meta = (tuple(activations), None if act_alphas is None else tuple(act_alphas))
        arrays = (*kernels, *biases, *outs[:-1])
        plan = self._forward_plan
        last = outs[-1] if len(outs) else None
        if (plan is not None and plan.meta == meta and len(plan.arrays) == len(arrays)
                and all(map(operator.is_, plan.arrays, arrays))
                and type(x) is np.ndarray and x.dtype == plan.dtype
                and x.shape == (plan.n, plan.width) and x.flags.c_contiguous
                and x.flags.aligned and type(last) is np.ndarray
                and last.dtype == plan.dtype and last.shape == plan.last_shape
                and last.flags.c_contiguous and last.flags.aligned and last.flags.writeable):
            if plan.kernel(x, last, *plan.args) == 0:
                return last
        a = check_dense_forward(x, kernels, biases, activations, outs, act_alphas)
        xs = a["x"]
        plan = self._forward_plan = _StackPlan()
        plan.meta, plan.arrays, plan.dtype = meta, arrays, a["dtype"]
        plan.n, plan.width = xs.shape
        plan.last_shape = outs[-1].shape
        empty1, empty2 = np.empty(0, dtype=plan.dtype), np.empty((0, 0), dtype=plan.dtype)
        plan.kernel = G.stack_forward(a["codes"], G.biases_kind(a["biases"]))
        # the last output is an argument of each call (nothing shared is written per
        # call): its table row is an empty placeholder
        plan.keep = [(k, empty1 if b is None else b, o)
                     for k, b, o in zip(a["kernels"], a["biases"], [*outs[:-1], empty2])]
        plan.table = G.table(plan.keep)
        plan.args = (plan.table, np.array(a["codes"], dtype=np.int64),
                     np.array(a["alphas"], dtype=np.float64))
        if plan.kernel(xs, outs[-1], *plan.args) != 0:  # the validator found no overlap
            raise RuntimeError("dense_stack_forward: the kernel refused arguments the "
                               "validator accepted (a bug in pynn)")
        return outs[-1]

    def dense_stack_forward_backward(self, x, target, kernels, biases, activations, loss, outs,
                                     deltas, dkernels, dbiases, sample_weight=None,
                                     act_alphas=None, preacts=None, label_smoothing=0.0,
                                     loss_scale=1.0, update=None):
        """One ``@njit`` call (generated for the stack's activations, loss and update
        rule by :func:`~pynn.backends._numba_codegen.stack_step`).

        The per-layer arrays are validated once and remembered: a later call
        with the very same array objects (a model's workspaces, weight views and
        optimizer state) only checks the types and shapes of ``x``, ``target`` and
        ``sample_weight``; the kernel checks them for overlaps with what it writes,
        and a call it refuses goes through the validator, which names the arrays.
        With ``update`` each layer's optimizer step runs right after its gradient.
        """
        # checks the rule and hyperparameters first (TypeError/ValueError naming them)
        hyper = _NO_HYPER if update is None else stack_update_hyper(update)
        meta = _stack_meta(loss, activations, act_alphas, label_smoothing, update)
        arrays = (*kernels, *biases, *outs, *deltas, *dkernels, *dbiases,
                  *(() if preacts is None else preacts), *_update_arrays(update))
        plan = self._stack_plan
        if (plan is not None and plan.meta == meta and len(plan.arrays) == len(arrays)
                and all(map(operator.is_, plan.arrays, arrays))):
            xs, ts, ws = _stack_fast_inputs(plan, x, target, sample_weight)
            if xs is not None:
                # loss_scale changes from call to call (the plan does not hold it)
                op_hyper("dense_stack_forward_backward", loss_scale=loss_scale)
                status, value = _run_step(plan, xs, ts, ws, hyper, loss_scale)
                if status == G.STEP_OK:
                    return value
                if status == G.STEP_BAD_LABEL:
                    as_labels(ts[0], plan.n, plan.k, "target")  # raises with the range
                # an overlap: the validator below names the arrays
        a = check_dense_stack(x, target, kernels, biases, activations, loss, outs, deltas,
                              dkernels, dbiases, sample_weight, act_alphas, preacts,
                              label_smoothing, loss_scale, update)
        if a["x"].shape[0] == 0:  # no samples: the reference gives zero gradients
            return Backend.dense_stack_forward_backward(
                self, x, target, kernels, biases, activations, loss, outs, deltas,
                dkernels, dbiases, sample_weight, act_alphas, preacts, label_smoothing,
                loss_scale, update)
        plan = self._stack_plan = _stack_plan(a, meta, arrays, kernels, outs, deltas,
                                              dkernels, update)
        if a["labels"] is not None:
            ts = (a["labels"], np.empty((0, 0), dtype=plan.dtype))
        else:
            ts = (_NO_LABELS, a["target"])
        ws = _NO_WEIGHTS if a["w"] is None else a["w"]
        status, value = _run_step(plan, a["x"], ts, ws, hyper, loss_scale)
        if status != G.STEP_OK:  # the validator found nothing wrong
            raise RuntimeError("dense_stack_forward_backward: the kernel refused arguments "
                               "the validator accepted (a bug in pynn)")
        return value


def _run_step(plan, xs, ts, ws, hyper, loss_scale):
    """``(status, loss)`` of the generated step for the kind of target (labels or
    dense, for the softmax cross-entropy) and update rule (SGD with and without
    momentum apart) of this call, generated on first use."""
    rule = G.SGD_MOMENTUM if hyper[0] == 1 and hyper[1][2] != 0.0 else hyper[0]
    key = (ts[0].shape[0] > 0, rule)
    kernel = plan.kernels.get(key)
    if kernel is None:
        codes, loss_code, biases = plan.spec
        kernel = plan.kernels[key] = G.stack_step(codes, loss_code, rule, key[0], biases)
    status, value = kernel(xs, ts[0], ts[1], ws, *plan.args, float(loss_scale), plan.tiny,
                           plan.scratch, *_kernel_scalars(hyper, plan.dtype.type))
    return status, float(value)


def _update_arrays(update):
    """The arrays ``update`` writes besides the weights (its state), flattened."""
    if update is None:
        return ()
    return tuple(a for states in (*update.kernel_states, *update.bias_states)
                 for a in (states or ()))


#: ``stack_update_hyper``'s result for "no update".
_NO_HYPER = (0, (0.0, 0.0, 0.0, False, 0.0, 0.0, 0.0, 0.0))


def _kernel_scalars(hyper, s):
    """``(lr, decay, momentum, nesterov, alpha, 1 - beta_1, 1 - beta_2, epsilon)`` for
    the kernel (the rule is the generated kernel's own), the floats in the weights'
    dtype ``s`` (as :meth:`sgd_update` hands them)."""
    _, (lr, decay, mom, nesterov, alpha, c1, c2, eps) = hyper
    return (s(lr), s(decay), s(mom), nesterov, s(alpha), s(c1), s(c2), s(eps))


class _Scratch(threading.local):
    """Scratch arrays of the convolution ops, one set per thread (so concurrent
    calls on one backend never share a buffer), by name and dtype. Each is grown
    to the largest size asked for and then reused: a warm call allocates nothing
    (the views handed out are new objects, their memory is not)."""

    def __init__(self):
        self.buffers = {}

    def get(self, name, dtype, shape, zeros=False):
        """A C-contiguous ``shape`` view of the buffer ``name``; with ``zeros`` a
        buffer kept all zeros (nothing may write to it)."""
        size = math.prod(shape)
        key = (name, dtype, zeros)
        buf = self.buffers.get(key)
        if buf is None or buf.size < size:
            buf = self.buffers[key] = (np.zeros if zeros else np.empty)(size, dtype)
        return buf[:size].reshape(shape)


class _StackPlan:
    """What one validated ``dense_stack_forward_backward`` call handed to the kernel."""

    __slots__ = ("meta", "arrays", "args", "dtype", "n", "width", "k", "labels_ok",
                 "tiny", "scratch", "last_shape", "kernel", "kernels", "spec", "table",
                 "keep")


def _stack_meta(loss, activations, act_alphas, label_smoothing, update=None):
    return (loss, tuple(activations),
            None if act_alphas is None else tuple(act_alphas), float(label_smoothing),
            None if update is None else (update.rule, stack_update_slots(update)))


def _stack_plan(a, meta, arrays, kernels, outs, deltas, dkernels, update=None):
    """Kernel arguments (tuples, placeholders, scratch) from ``check_dense_stack``'s dict."""
    dt = a["dtype"]
    n = a["x"].shape[0]
    empty1, empty2 = np.empty(0, dtype=dt), np.empty((0, 0), dtype=dt)
    plan = _StackPlan()
    plan.meta, plan.arrays, plan.dtype, plan.n = meta, arrays, dt, n
    plan.width = kernels[0].shape[0]
    plan.k = kernels[-1].shape[1]
    plan.labels_ok = a["loss_code"] == 0
    plan.tiny = _tiny(dt)
    plan.scratch = np.zeros(max(k.shape[1] for k in kernels), dtype=np.float64)
    plan.spec = (a["codes"], a["loss_code"], G.biases_kind(a["biases"]))
    plan.kernels = {}  # by (labels or dense targets, update rule): see _run_step
    # per layer, the arrays in G.STEP_SLOTS order, with placeholders of size 0 where
    # absent (no bias, no GELU pre-activation, optimizer state unused)
    plan.keep = []
    for i in range(len(kernels)):
        kst = update.kernel_states[i] if update is not None else ()
        bst = (update.bias_states[i] or ()) if update is not None else ()
        bias, dbias, preact = a["biases"][i], a["dbiases"][i], a["preacts"][i]
        plan.keep.append((
            kernels[i], empty1 if bias is None else bias, outs[i],
            empty2 if preact is None else preact, deltas[i], dkernels[i],
            empty1 if dbias is None else dbias,
            kst[0] if len(kst) > 0 else empty2, kst[1] if len(kst) > 1 else empty2,
            bst[0] if len(bst) > 0 else empty1, bst[1] if len(bst) > 1 else empty1))
    plan.table = G.table(plan.keep)
    plan.args = (plan.table, np.array(a["codes"], dtype=np.int64),
                 np.array(a["alphas"], dtype=np.float64), a["label_smoothing"])
    return plan


def _stack_fast_inputs(plan, x, target, sample_weight):
    """``(x, (labels, dense target), w)`` when they need no conversion, else Nones."""
    none = None, None, None
    n = plan.n
    if not (type(x) is np.ndarray and x.dtype == plan.dtype and x.shape == (n, plan.width)
            and x.flags.c_contiguous and x.flags.aligned):
        return none
    if type(target) is not np.ndarray:
        return none
    if target.ndim == 1:
        if not (plan.labels_ok and target.dtype == np.intp and target.shape[0] == n
                and target.flags.c_contiguous and target.flags.aligned):
            return none
        ts = (target, _EMPTY_TARGET[plan.dtype])
    elif (target.dtype == plan.dtype and target.shape == (n, plan.k)
          and target.flags.c_contiguous and target.flags.aligned):
        ts = (_NO_LABELS, target)
    else:
        return none
    if sample_weight is None:
        ws = _NO_WEIGHTS
    elif (type(sample_weight) is np.ndarray and sample_weight.dtype == np.float64
          and sample_weight.shape == (n,) and sample_weight.flags.c_contiguous
          and sample_weight.flags.aligned):
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
