"""The ``cuda`` backend's in-place updates: the fused optimizer steps and the small
vector helpers layers and optimizers call (sum of squares, scale, clip, axpy, copy,
regularizer loss and gradient, finiteness check).

:class:`CudaUpdateOps` is mixed into :class:`~pynn.backends.cuda_backend.CudaBackend`.
Parameters and optimizer state are updated in place, so they must be device arrays.
"""
from __future__ import annotations

import numpy as np

from .cuda_memory import flat as _flat
from .validation import adam_step_size, op_hyper, work_dtype

__all__ = ["CudaUpdateOps"]

_TINY32 = float(np.finfo(np.float32).tiny)


class CudaUpdateOps:
    """Optimizer steps and in-place vector helpers of the cuda backend."""

    # ------------------------------------------------------------------
    # optimizers (fused, in place)
    # ------------------------------------------------------------------
    def _opt_args(self, param, grad, *state_names_and_arrays):
        if not self._is_device(param):
            raise ValueError(f"param: expected a device array (from backend.asarray), got "
                             f"{type(param).__name__}")
        dt = np.dtype(param.dtype)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"param: expected float32 or float64, got {dt}")
        self._out(param, param.shape, dt, "param")
        grad = self._to_device(grad, dt, "grad")
        if tuple(grad.shape) != tuple(param.shape):
            raise ValueError(f"grad: expected shape {tuple(param.shape)}, got "
                             f"{tuple(grad.shape)}")
        for nm, arr in state_names_and_arrays:
            if not self._is_device(arr):
                raise ValueError(f"{nm}: expected a device array (from backend.zeros), got "
                                 f"{type(arr).__name__}")
            self._out(arr, param.shape, dt, nm)
        tiny = _TINY32 if dt == np.float32 else 0.0
        return grad, tiny

    def sgd_update(self, param, grad, velocity=None, learning_rate=0.01, momentum=0.0,
                   nesterov=False, weight_decay=0.0):
        lr, momentum, weight_decay = op_hyper("sgd_update", learning_rate=learning_rate,
                                              momentum=momentum, weight_decay=weight_decay)
        if momentum and velocity is None:
            raise ValueError("sgd_update: momentum > 0 needs a velocity array")
        grad, tiny = self._opt_args(
            param, grad, *([("velocity", velocity)] if velocity is not None else []))
        vel = velocity if momentum else param
        self._launch(self._K.sgd_kernel, param.size, _flat(param), _flat(grad), _flat(vel),
                     lr, momentum, bool(nesterov), weight_decay, tiny)
        return param

    def adam_update(self, param, grad, m, v, step, learning_rate=0.001, beta_1=0.9,
                    beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
        step, lr, beta_1, beta_2, epsilon, weight_decay = op_hyper(
            "adam_update", step=step, learning_rate=learning_rate, beta_1=beta_1,
            beta_2=beta_2, epsilon=epsilon, weight_decay=weight_decay)
        grad, tiny = self._opt_args(param, grad, ("m", m), ("v", v))
        alpha = adam_step_size(lr, beta_1, beta_2, step)
        self._launch(self._K.adam_kernel, param.size, _flat(param), _flat(grad), _flat(m),
                     _flat(v), alpha, beta_1, beta_2, epsilon, lr, weight_decay, tiny)
        return param

    def rmsprop_update(self, param, grad, ms, learning_rate=0.001, rho=0.9, epsilon=1e-7,
                       weight_decay=0.0):
        lr, rho, epsilon, weight_decay = op_hyper(
            "rmsprop_update", learning_rate=learning_rate, rho=rho, epsilon=epsilon,
            weight_decay=weight_decay)
        grad, tiny = self._opt_args(param, grad, ("ms", ms))
        self._launch(self._K.rmsprop_kernel, param.size, _flat(param), _flat(grad), _flat(ms),
                     lr, rho, epsilon, weight_decay, tiny)
        return param

    def adagrad_update(self, param, grad, acc, learning_rate=0.001, epsilon=1e-7,
                       weight_decay=0.0):
        lr, epsilon, weight_decay = op_hyper("adagrad_update", learning_rate=learning_rate,
                                             epsilon=epsilon, weight_decay=weight_decay)
        grad, tiny = self._opt_args(param, grad, ("acc", acc))
        self._launch(self._K.adagrad_kernel, param.size, _flat(param), _flat(grad),
                     _flat(acc), lr, epsilon, weight_decay, tiny)
        return param

    # ------------------------------------------------------------------
    # small helpers used by layers and optimizers
    # ------------------------------------------------------------------
    def _inplace(self, x, name):
        if not self._is_device(x):
            raise ValueError(f"{name}: expected a device array, got {type(x).__name__}")
        if not x.is_c_contiguous():
            raise ValueError(f"{name}: must be C-contiguous")
        return x

    def sum_squares(self, x):
        x = self._to_device(x, work_dtype(x), "x")
        return self._reduce(_flat(x), self._K.RED_SUMSQ)

    def scale_(self, x, factor):
        x = self._inplace(x, "x")
        self._launch(self._K.misc_ew, x.size, _flat(x), _flat(x), self._K.OP_SCALE,
                     float(factor), 0.0)
        return x

    def clip_(self, x, lo, hi):
        x = self._inplace(x, "x")
        self._launch(self._K.misc_ew, x.size, _flat(x), _flat(x), self._K.OP_CLIP,
                     float(lo), float(hi))
        return x

    def axpy_(self, alpha, x, y):
        y = self._inplace(y, "y")
        x = self._to_device(x, y.dtype, "x")
        if tuple(x.shape) != tuple(y.shape):
            raise ValueError(f"axpy_: x {tuple(x.shape)} and y {tuple(y.shape)} differ")
        self._launch(self._K.misc_ew, y.size, _flat(x), _flat(y), self._K.OP_AXPY,
                     float(alpha), 0.0)
        return y

    def copy_(self, src, dst):
        dst = self._inplace(dst, "dst")
        if not self._is_device(src):
            host = np.broadcast_to(np.asarray(src, dtype=dst.dtype), tuple(dst.shape))
            dst.copy_to_device(np.ascontiguousarray(host))
            return dst
        src = self._to_device(src, dst.dtype, "src")
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(f"copy_: src {tuple(src.shape)} and dst {tuple(dst.shape)} differ")
        self._launch(self._K.copy_ew, dst.size, _flat(src), _flat(dst))
        return dst

    def regularizer_loss(self, w, l1=0.0, l2=0.0):
        l1, l2 = op_hyper("regularizer_loss", l1=l1, l2=l2)
        w = self._to_device(w, work_dtype(w, "w"), "w")
        r = 0.0
        if l1:
            r += l1 * self._reduce(_flat(w), self._K.RED_SUMABS)
        if l2:
            r += l2 * self._reduce(_flat(w), self._K.RED_SUMSQ)
        return r

    def regularizer_grad_(self, w, grad, l1=0.0, l2=0.0):
        l1, l2 = op_hyper("regularizer_grad_", l1=l1, l2=l2)
        grad = self._inplace(grad, "grad")
        w = self._to_device(w, grad.dtype, "w")
        if tuple(w.shape) != tuple(grad.shape):
            raise ValueError(f"regularizer_grad_: w {tuple(w.shape)} and grad "
                             f"{tuple(grad.shape)} differ")
        if l1 or l2:
            self._launch(self._K.misc_ew, grad.size, _flat(w), _flat(grad),
                         self._K.OP_REG_GRAD, l1, l2)
        return grad

    def all_finite(self, x):
        x = self._to_device(x, work_dtype(x), "x")
        return self._reduce(_flat(x), self._K.RED_NONFINITE) == 0.0
