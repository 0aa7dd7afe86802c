"""The ``cython`` backend: compiled kernels from ``csrc/*.pyx`` (``pynn._ext``).

Each method validates and converts its arguments with the helpers of
:mod:`pynn.backends.validation` exactly as the reference does, then calls one kernel
that runs without the GIL and allocates nothing. GEMM goes to BLAS with the bias +
activation epilogue fused in: NumPy's own OpenBLAS when it is the wheels' ILP64 build,
else ``scipy.linalg.cython_blas`` (:mod:`pynn.backends._blas`; ``PYNN_BLAS=scipy``
forces the latter). Convolutions gather their column matrices into scratch buffers
kept per backend and thread, grown once and then reused (:func:`_conv_scratch`).

Importing this module raises ``ImportError`` when the extensions are not built
(``python setup.py build_ext --inplace``); the registry then reports the backend
as unavailable.
"""
from __future__ import annotations

import threading

import numpy as np

from pynn._ext import conv as _conv
from pynn._ext import dense as _dense
from pynn._ext import layers as _layers
from pynn._ext import losses as _losses
from pynn._ext import optim as _optim
from pynn._ext import step as _step

from . import _blas
from .activation_codes import ACTIVATIONS, REFERENCE_ONLY, activation_code
from .base import Backend
from .conv import (prep_conv_backward, prep_conv_backward_input,
                   prep_conv_backward_kernel, prep_conv_forward, prep_pool_backward,
                   prep_pool_forward)
from .cython_sequence import SEQUENCE_MODULE as _seq, CythonSequenceOps
from .conv_pool import prep_conv_pool, prep_conv_pool_backward
from .compiled_normalization import CompiledNormalizationOps
from .fused_stack import (STACK_FOLDED_ACTIVATION, STACK_LOSSES, check_dense_forward,
                          check_dense_stack, stack_update_hyper)
from .validation import (activation_alpha, adam_step_size, prep_activation_backward,
                         prep_activation_forward, prep_adagrad, prep_adam,
                         prep_batchnorm_backward, prep_batchnorm_forward, prep_bias_grad,
                         prep_class_loss, prep_dropout_backward, prep_dropout_forward,
                         prep_gemm, prep_pair_loss, prep_rmsprop, prep_rows, prep_sgd,
                         prep_take_rows, take_rows_error)

__all__ = ["CythonBackend"]

_SOFTMAX = ACTIVATIONS["softmax"]
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_NO_WEIGHTS = np.zeros(0, dtype=np.float64)
#: stand-in for "no bias" (the kernel reads it only when told it is a bias)
_NO_BIAS = {np.dtype(np.float32): np.zeros(0, np.float32),
            np.dtype(np.float64): np.zeros(0, np.float64)}
_MASK64 = 0xFFFFFFFFFFFFFFFF
#: elementwise loss -> the kernel's ``kind``
_LOSS_KIND = {"sigmoid_binary_cross_entropy": 0, "binary_cross_entropy": 1,
              "mean_squared_error": 2, "mean_absolute_error": 3}


def _flat(a):
    """A 1-D view of a C-contiguous array (no copy)."""
    return a.reshape(-1)


def _blas_operand(inp, out):
    """``inp``, or a copy when it is ``out`` itself (``gemm`` may work in place; BLAS
    must not write into an operand). Other overlaps the validator has refused."""
    return inp.copy() if np.may_share_memory(inp, out) else inp


def _weights(w):
    """A kernel's ``(weights, has_weights)`` from checked sample weights (or None)."""
    return (_NO_WEIGHTS, False) if w is None else (w, True)


#: The BLAS the kernels call (chosen once, at import).
BLAS = _blas.select([_dense, _step, _conv, _seq])
#: ``(get, set)`` of the kernels' BLAS thread count, or None (SciPy's BLAS)
_BLAS_THREADS = _blas.numpy_openblas_threads() if _seq._blas_in_use() == "ilp64" else None


class CythonBackend(CythonSequenceOps, CompiledNormalizationOps, Backend):
    """Compiled CPU backend (Cython + BLAS); float32 and float64 kernels from one source."""

    name = "cython"
    _normalization_kernels = _layers
    #: which BLAS library runs the matrix products
    blas = BLAS
    #: the kernels release the GIL and keep per-thread scratch; two may run at once
    #: when they call NumPy's OpenBLAS, whose thread count can be pinned
    pair_blas_threads = _BLAS_THREADS

    # ------------------------------------------------------------------
    # matrix product with fused epilogue
    # ------------------------------------------------------------------
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
             bias=None, activation="linear", act_alpha=None):
        a, b, trans_a, trans_b, out, bias, alpha, beta, code, act_a = prep_gemm(
            a, b, out, trans_a, trans_b, alpha, beta, bias, activation, act_alpha)
        if bias is not None:
            bias_arr, has_bias = bias, True
        else:
            bias_arr, has_bias = _NO_BIAS[out.dtype], False
        a = _blas_operand(a, out)
        b = _blas_operand(b, out)
        _dense.gemm(a, b, out, bool(trans_a), bool(trans_b), alpha, beta, bias_arr, has_bias,
                    code, act_a)
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
        _dense.activation_forward(_flat(x), _flat(out), code, a)
        return out

    def activation_backward(self, dy, y, activation, x=None, out=None, alpha=None):
        code, dy, y, x, out, a = prep_activation_backward(dy, y, activation, x, out, alpha)
        if code == _SOFTMAX:
            _dense.softmax_backward(dy, y, out)
            return out
        if activation in REFERENCE_ONLY:
            return self._row_activation_backward(dy, y, x, activation, out)
        if x is None:
            x = dy  # not read
        _dense.activation_backward(_flat(dy), _flat(y), _flat(x), _flat(out), code, a)
        return out

    def softmax(self, x, out=None):
        x, out = prep_rows("softmax", x, out)
        _dense.softmax(x, out)
        return out

    def log_softmax(self, x, out=None):
        x, out = prep_rows("log_softmax", x, out)
        _dense.log_softmax(x, out)
        return out

    # ------------------------------------------------------------------
    # losses
    # ------------------------------------------------------------------
    def softmax_cross_entropy(self, logits, target, grad=None, sample_weight=None,
                              label_smoothing=0.0):
        z, t, w, grad, (ls,) = prep_class_loss("softmax_cross_entropy", logits, target, grad,
                                               sample_weight, "logits",
                                               label_smoothing=label_smoothing)
        w, has_w = _weights(w)
        if z.size == 0:  # no samples, or no classes (dense (n, 0) targets)
            return 0.0, grad
        if t.ndim == 1:
            loss = _losses.softmax_cross_entropy_labels(z, t, w, has_w, grad, ls)
        else:
            loss = _losses.softmax_cross_entropy_dense(z, t, w, has_w, grad, ls)
        return float(loss), grad

    def categorical_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                                  epsilon=1e-7):
        p, t, w, grad, (eps,) = prep_class_loss("categorical_cross_entropy", probs, target,
                                                grad, sample_weight, "probs", epsilon=epsilon)
        w, has_w = _weights(w)
        if p.shape[0] == 0:
            return 0.0, grad
        if t.ndim == 1:
            loss = _losses.categorical_cross_entropy_labels(p, t, w, has_w, grad, eps)
        else:
            loss = _losses.categorical_cross_entropy_dense(p, t, w, has_w, grad, eps)
        return float(loss), grad

    def _elementwise_loss(self, op, pred, target, grad, sample_weight, name, **hyper):
        p, t, w, grad, hyper = prep_pair_loss(op, pred, target, grad, sample_weight, name,
                                              **hyper)
        w, has_w = _weights(w)
        if p.size == 0:
            return 0.0, grad
        eps = hyper[0] if hyper else 0.0  # binary_cross_entropy's clipping only
        loss = _losses.elementwise_loss(_LOSS_KIND[op], p, t, w, has_w, grad, eps)
        return float(loss), grad

    def sigmoid_binary_cross_entropy(self, logits, target, grad=None, sample_weight=None):
        return self._elementwise_loss("sigmoid_binary_cross_entropy", logits, target, grad,
                                      sample_weight, "logits")

    def binary_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                             epsilon=1e-7):
        return self._elementwise_loss("binary_cross_entropy", probs, target, grad,
                                      sample_weight, "probs", epsilon=epsilon)

    def mean_squared_error(self, pred, target, grad=None, sample_weight=None):
        return self._elementwise_loss("mean_squared_error", pred, target, grad, sample_weight,
                                      "pred")

    def mean_absolute_error(self, pred, target, grad=None, sample_weight=None):
        return self._elementwise_loss("mean_absolute_error", pred, target, grad, sample_weight,
                                      "pred")

    # ------------------------------------------------------------------
    # reductions, dropout, batch normalisation
    # ------------------------------------------------------------------
    def bias_grad(self, dy, out=None):
        dy, out = prep_bias_grad(dy, out)
        _layers.bias_grad(dy, out)
        return out

    def dropout_forward(self, x, rate, seed, out=None, mask=None):
        x, rate, out, mask = prep_dropout_forward(x, rate, out, mask)
        _layers.dropout_forward(_flat(x), rate, int(seed) & _MASK64, _flat(out), _flat(mask))
        return out, mask

    def dropout_backward(self, dy, mask, out=None):
        dy, mask, out = prep_dropout_backward(dy, mask, out)
        _layers.multiply(_flat(dy), _flat(mask), _flat(out))
        return out

    def batchnorm_forward(self, x, gamma, beta, moving_mean, moving_var, training,
                          momentum=0.99, epsilon=1e-3, out=None):
        x, gamma, beta, moving_mean, moving_var, momentum, epsilon, out = \
            prep_batchnorm_forward(x, gamma, beta, moving_mean, moving_var, training, momentum,
                                   epsilon, out)
        k = x.shape[1]
        mean = np.empty(k, dtype=np.float64)
        inv_std = np.empty(k, dtype=np.float64)
        _layers.batchnorm_forward(x, gamma, beta, moving_mean, moving_var, bool(training),
                                  momentum, epsilon, out, mean, inv_std)
        return out, mean, inv_std

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std, dx=None, dgamma=None,
                           dbeta=None):
        dy, x, gamma, mean, inv_std, dx, dgamma, dbeta = prep_batchnorm_backward(
            dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        _layers.batchnorm_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        return dx, dgamma, dbeta


    # ------------------------------------------------------------------
    # optimizer updates, in place over flat views
    # ------------------------------------------------------------------
    def sgd_update(self, param, grad, velocity=None, learning_rate=0.01, momentum=0.0,
                   nesterov=False, weight_decay=0.0):
        grad, lr, momentum, weight_decay = prep_sgd(param, grad, velocity, learning_rate,
                                                    momentum, weight_decay)
        vel = velocity if velocity is not None else param  # not read without momentum
        _optim.sgd_update(_flat(param), _flat(grad), _flat(vel), lr, momentum, bool(nesterov),
                          weight_decay)
        return param

    def adam_update(self, param, grad, m, v, step, learning_rate=0.001, beta_1=0.9,
                    beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
        grad, step, lr, beta_1, beta_2, epsilon, weight_decay = prep_adam(
            param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon, weight_decay)
        alpha = adam_step_size(lr, beta_1, beta_2, step)
        _optim.adam_update(_flat(param), _flat(grad), _flat(m), _flat(v), alpha, beta_1, beta_2,
                           epsilon, lr, weight_decay)
        return param

    def rmsprop_update(self, param, grad, ms, learning_rate=0.001, rho=0.9, epsilon=1e-7,
                       weight_decay=0.0):
        grad, lr, rho, epsilon, weight_decay = prep_rmsprop(param, grad, ms, learning_rate, rho,
                                                            epsilon, weight_decay)
        _optim.rmsprop_update(_flat(param), _flat(grad), _flat(ms), lr, rho, epsilon,
                              weight_decay)
        return param

    def adagrad_update(self, param, grad, acc, learning_rate=0.001, epsilon=1e-7,
                       weight_decay=0.0):
        grad, lr, epsilon, weight_decay = prep_adagrad(param, grad, acc, learning_rate, epsilon,
                                                       weight_decay)
        _optim.adagrad_update(_flat(param), _flat(grad), _flat(acc), lr, epsilon, weight_decay)
        return param

    def all_finite(self, x):
        """One pass over the exponent bits (no temporary array); other inputs (strided,
        integer, ...) go to the reference."""
        if type(x) is np.ndarray and x.dtype in _FLOATS and x.flags.c_contiguous \
                and x.flags.aligned:
            return _step._all_finite(x)
        return Backend.all_finite(self, x)

    def take_rows(self, x, indices, out=None):
        """One C pass: every index checked, then each row copied with the rows four
        ahead prefetched (random rows of a training set come from memory, not cache).
        Arrays it cannot take as they are (lists, strided rows, other dtypes, a
        missing ``out``) are checked and converted first; rows that are not
        contiguous go to the reference."""
        try:
            bad = _step.take_rows(x, indices, out)
        except _step.StepArgumentError:
            x, idx, out = prep_take_rows(x, indices, out)
            try:
                bad = _step.take_rows(x, idx, out)
            except _step.StepArgumentError:
                return Backend.take_rows(self, x, idx, out)
            indices = idx
        if bad >= 0:
            raise take_rows_error(x, np.asarray(indices), bad)
        return out

    # ------------------------------------------------------------------
    # fused Dense-stack inference and training step
    # ------------------------------------------------------------------
    def dense_stack_forward(self, x, kernels, biases, activations, outs, act_alphas=None):
        """One nogil call (``csrc/step.pyx``); a call the kernel rejects goes through
        the Python validator (its message, and conversions such as float64 ``x``)."""
        try:
            fast = _fast_forward_args(x, kernels, biases, activations, outs, act_alphas)
            if fast is not None:
                return _step.dense_forward(*fast)
        except _step.StepArgumentError:
            pass
        a = check_dense_forward(x, kernels, biases, activations, outs, act_alphas)
        return _step.dense_forward(a["x"], a["kernels"], a["biases"], list(outs), a["codes"],
                                   a["alphas"])

    def dense_stack_forward_backward(self, x, target, kernels, biases, activations, loss, outs,
                                     deltas, dkernels, dbiases, sample_weight=None,
                                     act_alphas=None, preacts=None, label_smoothing=0.0,
                                     loss_scale=1.0, update=None):
        """One nogil call (``csrc/step.pyx``); arguments are checked there at C speed,
        and only a rejected call goes through the Python validator (for its message
        and its conversions, e.g. float64 ``x`` for a float32 model). With ``update``
        each layer's optimizer step runs right after its gradient (plain SGD inside
        the weight-gradient GEMM)."""
        upd = _update_args(update)
        try:
            fast = _fast_stack_args(x, target, kernels, biases, activations, loss, outs,
                                    deltas, dkernels, dbiases, sample_weight, act_alphas,
                                    preacts, label_smoothing)
            if fast is not None and upd is not None:
                return _step.dense_stack(*fast, float(loss_scale), *upd)
        except _step.StepArgumentError:
            pass
        a = check_dense_stack(x, target, kernels, biases, activations, loss, outs, deltas,
                              dkernels, dbiases, sample_weight, act_alphas, preacts,
                              label_smoothing, loss_scale, update)
        if a["x"].shape[0] == 0:  # no samples: the reference gives zero gradients
            return Backend.dense_stack_forward_backward(
                self, x, target, kernels, biases, activations, loss, outs, deltas, dkernels,
                dbiases, sample_weight, act_alphas, preacts, label_smoothing, loss_scale,
                update)
        return _step.dense_stack(a["x"], a["labels"], a["target"], a["w"], list(kernels),
                                 a["biases"], list(outs), a["preacts"], list(deltas),
                                 list(dkernels), a["dbiases"], a["codes"], a["alphas"],
                                 a["loss_code"], a["label_smoothing"], a["loss_scale"],
                                 *_update_args(update))


    # ------------------------------------------------------------------
    # convolution and pooling (csrc/conv.pyx); the checks are the reference's
    # (pynn.backends.conv), in the same order, with the same errors
    # ------------------------------------------------------------------
    def conv2d_forward(self, x, kernel, bias=None, strides=1, padding=((0, 0), (0, 0)),
                       dilation=1, groups=1, activation="linear", out=None):
        """im2col and one BLAS GEMM per group and block of output pixels, with the bias
        + activation epilogue applied to each block while it is in cache."""
        x, kernel, bias, strides, padding, dilation, groups, out = prep_conv_forward(
            x, kernel, bias, strides, padding, dilation, groups, activation, out)
        dt = x.dtype
        scratch, rows = _conv_scratch(self, out.shape[0] * out.shape[1] * out.shape[2],
                                      kernel.shape, strides, padding, dt)
        has_bias = bias is not None
        _conv.conv2d_forward(x, kernel, bias if has_bias else _NO_BIAS[dt], has_bias, strides,
                             padding, dilation, groups, activation_code(activation),
                             activation_alpha(activation, None), out, scratch, rows)
        return out
    def conv2d_backward_input(self, dy, kernel, input_shape, strides=1,
                              padding=((0, 0), (0, 0)), dilation=1, groups=1, out=None):
        """Per group and block of output pixels, one BLAS GEMM ``dy @ kernel^T`` into
        the column-matrix gradient, then col2im (summed) into ``out``."""
        dy, kernel, _, strides, padding, dilation, groups, out = prep_conv_backward_input(
            dy, kernel, input_shape, strides, padding, dilation, groups, out)
        scratch, rows = _conv_scratch(self, dy.shape[0] * dy.shape[1] * dy.shape[2],
                                      kernel.shape, strides, padding, dy.dtype)
        _conv.conv2d_backward_input(dy, kernel, strides, padding, dilation, groups, out,
                                    scratch, rows)
        return out
    def conv2d_backward_kernel(self, x, dy, kernel_shape, strides=1,
                               padding=((0, 0), (0, 0)), dilation=1, groups=1, out=None):
        """Per group and block of output pixels, im2col then one BLAS GEMM
        ``cols^T @ dy`` accumulated into ``out`` (the reduction over the output pixels
        is split into the blocks)."""
        x, dy, kshape, strides, padding, dilation, groups, out = prep_conv_backward_kernel(
            x, dy, kernel_shape, strides, padding, dilation, groups, out)
        scratch, rows = _conv_scratch(self, dy.shape[0] * dy.shape[1] * dy.shape[2], kshape,
                                      strides, padding, x.dtype)
        _conv.conv2d_backward_kernel(x, dy, strides, padding, dilation, groups, out, scratch,
                                     rows)
        return out
    def conv2d_backward(self, dy, x, kernel, y=None, activation="linear", strides=1,
                        padding=((0, 0), (0, 0)), dilation=1, groups=1, input_grad=True,
                        kernel_grad=True, bias_grad=True, dx=None, dkernel=None, dbias=None):
        """One sweep over blocks of output pixels: per block the activation gradient,
        the bias sums, im2col + the kernel-gradient GEMM and the input-gradient GEMM +
        col2im, while the block is in cache (``csrc/conv.pyx``). A softmax activation
        (a row op) runs as the reference's sequence of ops."""
        if activation == "softmax":
            return Backend.conv2d_backward(
                self, dy, x, kernel, y=y, activation=activation, strides=strides,
                padding=padding, dilation=dilation, groups=groups, input_grad=input_grad,
                kernel_grad=kernel_grad, bias_grad=bias_grad, dx=dx, dkernel=dkernel,
                dbias=dbias)
        x, kernel, strides, padding, dilation, groups, dy, y, (dx, dkernel, dbias) = (
            prep_conv_backward(x, kernel, strides, padding, dilation, groups, dy, y,
                               activation, (input_grad, kernel_grad, bias_grad),
                               (dx, dkernel, dbias)))
        dt = x.dtype
        code = activation_code(activation)
        m = dy.shape[0] * dy.shape[1] * dy.shape[2]
        rows, size, acc_size = _conv.backward_plan(m, kernel.shape, strides, padding,
                                                   dt.itemsize, code == 0)
        scratch = _thread_scratch(self, "conv", size, dt)
        acc = _thread_scratch(self, "conv_acc", acc_size, np.dtype(np.float64))
        _conv.conv2d_backward(dy, dy if y is None else y, x, kernel, strides, padding,
                              dilation, groups, code, activation_alpha(activation, None), dx,
                              dkernel, dbias, scratch, acc, rows)
        return dx, dkernel, dbias

    def conv2d_pool_forward(self, x, kernel, bias=None, strides=1, padding=((0, 0), (0, 0)),
                            dilation=1, groups=1, activation="linear", pool_size=2,
                            out=None, index=None):
        """A tile of images at a time (``csrc/conv.pyx``): the convolution with its
        epilogue into the tile, then its max pooling; the whole convolution output is
        never written."""
        x, kernel, bias, strides, padding, dilation, groups, pool, conv_shape, out, index = (
            prep_conv_pool(x, kernel, bias, strides, padding, dilation, groups, activation,
                           pool_size, out, index))
        dt = x.dtype
        tile, tile_images, scratch, rows = _pool_tiles(self, conv_shape, kernel.shape, strides,
                                                      padding, dt, 0)
        has_bias = bias is not None
        _conv.conv2d_pool_forward(x, kernel, bias if has_bias else _NO_BIAS[dt], has_bias,
                                  strides, padding, dilation, groups,
                                  activation_code(activation),
                                  activation_alpha(activation, None), pool, out, index,
                                  scratch, rows, tile, tile_images)
        return out, index

    def conv2d_pool_backward(self, dy, x, kernel, out, index, activation="linear", strides=1,
                             padding=((0, 0), (0, 0)), dilation=1, groups=1, pool_size=2,
                             input_grad=True, kernel_grad=True, bias_grad=True, dx=None,
                             dkernel=None, dbias=None):
        """A tile of images at a time (``csrc/conv.pyx``): the tile's gradient is built
        from ``dy`` at the maxima, then one fused backward sweep over it."""
        (dy, x, kernel, out, index, strides, padding, dilation, groups, pool, conv_shape,
         (dx, dkernel, dbias)) = prep_conv_pool_backward(
            dy, x, kernel, out, index, activation, strides, padding, dilation, groups,
            pool_size, (input_grad, kernel_grad, bias_grad), (dx, dkernel, dbias),
            index_range=False)  # the kernel refuses an index outside its tile
        dt = x.dtype
        tile, tile_images, scratch, rows = _pool_tiles(self, conv_shape, kernel.shape, strides,
                                                      padding, dt, 1)
        acc = _thread_scratch(self, "conv_acc", kernel.shape[3], np.dtype(np.float64))
        _conv.conv2d_pool_backward(dy, x, kernel, out, index, strides, padding, dilation,
                                   groups, activation_code(activation),
                                   activation_alpha(activation, None), pool, dx, dkernel,
                                   dbias, scratch, acc, rows, tile, tile_images)
        return dx, dkernel, dbias

    def pool2d_forward(self, x, pool_size, strides=None, padding=((0, 0), (0, 0)), mode="max",
                       out=None, index=None):
        """Direct loops over the real elements of each window (``csrc/conv.pyx``)."""
        x, pool, strides, padding, out, index = prep_pool_forward(
            x, pool_size, strides, padding, mode, out, index)
        _conv.pool2d_forward(x, pool, strides, padding, mode == "max", out,
                             _NO_INDEX if index is None else index)
        return out, index
    def pool2d_backward(self, dy, input_shape, pool_size, strides=None,
                        padding=((0, 0), (0, 0)), mode="max", index=None, out=None):
        """Direct loops (``csrc/conv.pyx``). For ``'max'`` the kernel checks that every
        index lies in the input while it scatters (the reference's error, raised after
        ``out`` was written)."""
        dy, _, pool, strides, padding, index, out = prep_pool_backward(
            dy, input_shape, pool_size, strides, padding, mode, index, out, index_range=False)
        if index is not None:
            index = np.ascontiguousarray(index, dtype=np.int64)
        _conv.pool2d_backward(dy, pool, strides, padding, mode == "max",
                              _NO_INDEX if index is None else index, out)
        return out

#: stand-in for "no pooling index" (average pooling; the kernel does not read it)
_NO_INDEX = np.zeros((0, 0, 0, 0), np.int64)


def _thread_scratch(backend, key, size, dtype):
    """A scratch array of at least ``size`` elements of ``dtype``, this thread's own:
    one per backend, thread, ``key`` and dtype, grown to the largest size asked for and
    then reused, so a warm call allocates nothing. (An empty array when ``size`` is 0.)"""
    if size == 0:
        return _NO_BIAS[dtype] if dtype in _NO_BIAS else np.zeros(0, dtype)
    local = backend.__dict__.get("_conv_scratch")
    if local is None:
        local = backend.__dict__.setdefault("_conv_scratch", threading.local())
    name = f"{key}_{dtype.char}"
    buf = getattr(local, name, None)
    if buf is None or buf.shape[0] < size:
        buf = np.empty(size, dtype)
        setattr(local, name, buf)
    return buf


def _conv_scratch(backend, m, kernel_shape, strides, padding, dtype):
    """``(scratch, block_rows)`` for a convolution of ``m`` output pixels: the column
    block it gathers into (:func:`_thread_scratch`). A block is about
    ``pynn._ext.conv.COLS_BLOCK_BYTES`` (``plan``), so the buffer stays that size
    whatever the batch."""
    rows, size = _conv.plan(m, kernel_shape, strides, padding, dtype.itemsize)
    return _thread_scratch(backend, "conv", size, dtype), rows


def _pool_tiles(backend, conv_shape, kernel_shape, strides, padding, dtype, which):
    """``(tile, tile_images, scratch, block_rows)`` of a fused convolution + pooling
    (forward ``which=0``, backward ``1``: separate tiles, as both are live in a step)."""
    n, oh, ow, co = conv_shape
    tile_images = _conv.pool_tile_images(oh, ow, co, dtype.itemsize)
    per_tile = min(n, tile_images)
    tile = _thread_scratch(backend, f"conv_tile{which}", per_tile * oh * ow * co, dtype)
    scratch, rows = _conv_scratch(backend, per_tile * oh * ow, kernel_shape, strides, padding,
                                  dtype)
    return tile, tile_images, scratch, rows


_NO_UPDATE = (0, None, None, None)


def _update_args(update):
    """The kernel's update arguments ``(rule, hyper, kernel_states, bias_states)``
    (:func:`~pynn.backends.fused_stack.stack_update_hyper`, which raises on a bad rule or
    hyperparameter); ``None`` when the state lists are not plain sequences (the
    validator then names what is wrong)."""
    if update is None:
        return _NO_UPDATE
    code, hyper = stack_update_hyper(update)
    try:
        return (code, hyper, [tuple(s) for s in update.kernel_states],
                [() if s is None else tuple(s) for s in update.bias_states])
    except TypeError:
        return None


def _fast_stack_args(x, target, kernels, biases, activations, loss, outs, deltas, dkernels,
                     dbiases, sample_weight, act_alphas, preacts, label_smoothing):
    """The kernel's arguments without Python-level array checks (the kernel checks
    them), or ``None`` when a conversion may be needed (the slow path decides)."""
    loss_code = STACK_LOSSES.get(loss) if isinstance(loss, str) else None
    if loss_code is None or not isinstance(kernels, (list, tuple)):
        return None
    depth = len(kernels)
    for seq in (activations, biases, outs, deltas, dkernels, dbiases):
        if not isinstance(seq, (list, tuple)) or len(seq) != depth:
            return None
    for seq in (act_alphas, preacts):
        if seq is not None and (not isinstance(seq, (list, tuple)) or len(seq) != depth):
            return None
    codes_alphas = _act_codes(activations, act_alphas)
    if codes_alphas is None:
        return None
    codes, alphas = codes_alphas
    if depth and activations[-1] is not None and \
            activations[-1] == STACK_FOLDED_ACTIVATION.get(loss):
        codes[-1], alphas[-1] = 0, 0.0
    if preacts is None:
        preacts = [None] * depth
    labels = dense = None
    if isinstance(target, np.ndarray) and target.ndim == 1 and target.dtype == np.intp:
        labels = target
    else:
        dense = target
    return (x, labels, dense, sample_weight, _as_list(kernels), _as_list(biases),
            _as_list(outs), _as_list(preacts), _as_list(deltas), _as_list(dkernels),
            _as_list(dbiases), codes, alphas, loss_code, float(label_smoothing))


_CODES_CACHE = {}


def _act_codes(activations, act_alphas):
    """Per-layer activation codes and parameters (fresh lists), or ``None`` for an
    unknown name (the slow path raises its error). Memoised per name sequence."""
    try:
        key = (tuple(activations), None if act_alphas is None else tuple(act_alphas))
        hit = _CODES_CACHE.get(key)
    except TypeError:  # unhashable entries: the slow path reports them
        return None
    if hit is not None:
        return list(hit[0]), list(hit[1])
    codes, alphas = [], []
    for i, act in enumerate(activations):
        if act is not None and (act not in ACTIVATIONS or act in REFERENCE_ONLY):
            return None
        codes.append(ACTIVATIONS[act] if act is not None else 0)
        alphas.append(activation_alpha(act, None if act_alphas is None else act_alphas[i],
                                       f"act_alphas[{i}]"))
    if len(_CODES_CACHE) < 256:
        _CODES_CACHE[key] = (tuple(codes), tuple(alphas))
    return codes, alphas


def _fast_forward_args(x, kernels, biases, activations, outs, act_alphas):
    if not isinstance(kernels, (list, tuple)):
        return None
    depth = len(kernels)
    for seq in (activations, biases, outs):
        if not isinstance(seq, (list, tuple)) or len(seq) != depth:
            return None
    if act_alphas is not None and (not isinstance(act_alphas, (list, tuple))
                                   or len(act_alphas) != depth):
        return None
    codes_alphas = _act_codes(activations, act_alphas)
    if codes_alphas is None:
        return None
    return (x, _as_list(kernels), _as_list(biases), _as_list(outs), *codes_alphas)


def _as_list(seq):
    return seq if type(seq) is list else list(seq)
