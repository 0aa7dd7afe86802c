"""The ``cuda`` backend: every hot op as a Numba CUDA kernel, data on the device.

Needs the ``numba-cuda`` package (``pip install numba-cuda``, or the ``cuda``
extra of pynn) and either an NVIDIA GPU or the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before Numba is first imported; slow, for
tests and debugging). ``CudaBackend()`` raises ``ImportError`` or
``RuntimeError`` with the reason otherwise, so ``pynn.backends.available()``
lists ``"cuda"`` only where it works.

Memory model
------------
Arrays live in device memory (``host_memory = False``). ``empty``/``zeros``/
``asarray`` return Numba device arrays; ``to_numpy`` copies back. Every op
also accepts host ``numpy`` arrays (copied to the device on each call) and
returns device arrays, except losses, which return ``(float, grad)`` with the
loss reduced on the device. Output buffers (``out=``, ``grad=``, ``mask=``...)
and arrays updated in place (parameters, optimizer state, moving statistics)
must be device arrays of the right shape and dtype: ``ValueError`` otherwise.

Where the ops live
------------------
This file: allocation and transfer, GEMM, activations, losses, dropout and
normalisation. Mixed in: convolution and pooling (:mod:`.cuda_conv_ops`), the
embedding and recurrent ops (:mod:`.cuda_sequence`), the optimizer steps and
in-place vector helpers (:mod:`.cuda_update_ops`); device-array helpers in
:mod:`.cuda_memory`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import warnings

import numpy as np

from .activation_codes import (ACTIVATIONS, NEEDS_INPUT_FOR_BACKWARD, REFERENCE_ONLY,
                               activation_code)
from .base import Backend
from .cuda_conv_ops import CudaConvOps
from .cuda_memory import flat as _flat
from .cuda_memory import is_simulator as _is_simulator
from .cuda_sequence import CudaSequenceOps
from .cuda_update_ops import CudaUpdateOps
from .validation import (activation_alpha, as_float, as_labels, epilogue_code, gemm_shapes,
                         op_hyper, sample_weights, work_dtype)

__all__ = ["CudaBackend"]

_MASK64 = 0xFFFFFFFFFFFFFFFF
#: the reference backend, for the activations without device kernels (``_on_host``)
_REFERENCE = Backend()


def _import_cuda():
    """``numba.cuda`` and the kernel module, or a clear error."""
    if importlib.util.find_spec("numba_cuda") is None:
        raise ImportError("the cuda backend needs the numba-cuda package: "
                          "pip install numba-cuda (or pip install 'pynn[cuda]')")
    from numba import cuda

    from . import _cuda_kernels as K
    return cuda, K


class CudaBackend(CudaConvOps, CudaSequenceOps, CudaUpdateOps, Backend):
    """Numba CUDA kernels over device arrays.

    Parameters
    ----------
    threads_per_block : int
        Threads per block of 1-D kernels (a power of two; default 256).
    gemm_tile : int
        Edge of the square GEMM tile and thread block (default 16, i.e. 16x16).
    max_blocks : int
        Cap on the blocks of a 1-D launch; grid-stride loops cover the rest.
    """

    name = "cuda"
    host_memory = False

    def __init__(self, threads_per_block=None, gemm_tile=None, max_blocks=None):
        cuda, K = _import_cuda()
        tpb = K.THREADS_PER_BLOCK if threads_per_block is None else int(threads_per_block)
        if tpb < 1 or tpb > 1024 or tpb & (tpb - 1):
            raise ValueError(f"threads_per_block: expected a power of two in [1, 1024], got {tpb}")
        tile = K.GEMM_TILE if gemm_tile is None else int(gemm_tile)
        if tile < 1 or tile * tile > 1024:
            raise ValueError(f"gemm_tile: expected 1 <= tile and tile**2 <= 1024, got {tile}")
        mb = K.MAX_BLOCKS if max_blocks is None else int(max_blocks)
        if mb < 1:
            raise ValueError(f"max_blocks: expected a positive integer, got {mb}")
        self.threads_per_block = tpb
        self.gemm_tile = tile
        self.max_blocks = mb
        self._simulator = _is_simulator()
        if not self._simulator and not cuda.is_available():
            raise RuntimeError("no usable CUDA GPU (numba.cuda.is_available() is False); "
                               "set NUMBA_ENABLE_CUDASIM=1 before importing numba to use "
                               "the CUDA simulator")
        self._cuda, self._K = cuda, K
        self._dummies = {}

    # ------------------------------------------------------------------
    # launch helpers
    # ------------------------------------------------------------------
    def _grid(self, n):
        return max(1, min(self.max_blocks, -(-int(n) // self.threads_per_block)))

    def _launch(self, kernel, n, *args, shared=0):
        """Launch a 1-D grid-stride ``kernel`` over ``n`` items (no-op when 0)."""
        if n <= 0:
            return
        cfg = (kernel[self._grid(n), self.threads_per_block, 0, shared] if shared
               else kernel[self._grid(n), self.threads_per_block])
        with self._quiet():
            cfg(*args)

    @contextlib.contextmanager
    def _quiet(self):
        """Silence the simulator's overflow warnings on the SplitMix64 hash.

        The simulator runs kernels as NumPy scalar code, which warns on the
        intended uint64 wrap-around; on a GPU this is a no-op.
        """
        if not self._simulator:
            yield
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
            yield

    def _dummy(self, dtype, ndim):
        """A tiny device array for kernel arguments that a branch never reads."""
        key = (np.dtype(dtype).str, ndim)
        if key not in self._dummies:
            self._dummies[key] = self._cuda.device_array((1,) * ndim, dtype=dtype)
        return self._dummies[key]

    @staticmethod
    def _is_device(x):
        return bool(getattr(x, "__cuda_ndarray__", False))

    def _to_device(self, x, dtype, name, ndim=None):
        """``x`` as a C-contiguous device array of ``dtype`` (copied only when needed)."""
        cuda = self._cuda
        if not self._is_device(x) and hasattr(x, "__cuda_array_interface__") \
                and not self._simulator:
            x = cuda.as_cuda_array(x)
        if self._is_device(x):
            if np.dtype(x.dtype).kind not in "biuf":
                raise TypeError(f"{name}: expected a numeric array, got dtype {x.dtype}")
            if ndim is not None and len(x.shape) != ndim:
                raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
            if not x.is_c_contiguous():
                x = cuda.to_device(np.ascontiguousarray(x.copy_to_host()))
            if np.dtype(x.dtype) != np.dtype(dtype):
                y = cuda.device_array(x.shape, dtype=dtype)
                self._launch(self._K.copy_ew, x.size, _flat(x), _flat(y))
                x = y
            return x
        return cuda.to_device(as_float(x, dtype, name, ndim))

    def _out(self, out, shape, dtype, name="out"):
        """Validate a caller's device output buffer, or allocate one."""
        shape = tuple(int(s) for s in shape)
        if out is None:
            return self._cuda.device_array(shape, dtype=dtype)
        if not self._is_device(out):
            raise ValueError(f"{name}: expected a device array of shape {shape} and dtype "
                             f"{np.dtype(dtype)} (from backend.empty/zeros/asarray), got "
                             f"{type(out).__name__}")
        if tuple(out.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {tuple(out.shape)}")
        if np.dtype(out.dtype) != np.dtype(dtype):
            raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {out.dtype}")
        if not out.is_c_contiguous():
            raise ValueError(f"{name}: must be C-contiguous")
        return out

    def _weights(self, sample_weight, n):
        """(device float64 weights, has_w)."""
        if sample_weight is None:
            return self._dummy(np.float64, 1), False
        if self._is_device(sample_weight):
            shp = tuple(sample_weight.shape)
            if len(shp) == 2 and shp[1] == 1:
                sample_weight = sample_weight.reshape(shp[0])
                shp = (shp[0],)
            if shp != (n,):
                raise ValueError(f"sample_weight: expected shape ({n},), got {shp}")
            return self._to_device(sample_weight, np.float64, "sample_weight"), True
        w = sample_weights(sample_weight, n)
        return self._cuda.to_device(w), True

    def _targets(self, target, logits, dt, name="target"):
        """(labels device array or dummy, dense device array or dummy, dense flag)."""
        n, k = logits.shape
        if self._is_device(target):
            shp = tuple(target.shape)
            if len(shp) == 2 and shp == (n, k):
                return self._dummy(np.int64, 1), self._to_device(target, dt, name), True
            if len(shp) == 2 and shp[1] == 1 and k != 1:
                target = target.reshape(shp[0])
                shp = (shp[0],)
            if len(shp) == 1:
                if shp[0] != n:
                    raise ValueError(f"{name}: expected shape ({n},), got {shp}")
                if np.dtype(target.dtype).kind not in "biuf":
                    raise TypeError(f"{name}: expected integer labels, got dtype "
                                    f"{target.dtype}")
                if not target.is_c_contiguous():
                    target = self._cuda.to_device(np.ascontiguousarray(target.copy_to_host()))
                return target, self._dummy(dt, 2), False
            raise ValueError(f"{name}: expected integer labels of shape ({n},) or "
                             f"probabilities of shape {(n, k)}, got {shp}")
        t = np.asarray(target)
        if t.ndim == 2 and t.shape == (n, k):
            return self._dummy(np.int64, 1), self._cuda.to_device(as_float(t, dt, name)), True
        if t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1 and k != 1):
            lab = as_labels(t, n, k, name).astype(np.int64)
            return self._cuda.to_device(lab), self._dummy(dt, 2), False
        raise ValueError(f"{name}: expected integer labels of shape ({n},) or probabilities "
                         f"of shape {(n, k)}, got {t.shape}")

    def _sum(self, x):
        """float64 sum of flat device array ``x`` on the device -> Python float."""
        return self._reduce(x, self._K.RED_SUM)

    def _reduce(self, x, mode):
        K = self._K
        n = x.size
        if n == 0:
            return 0.0
        tpb = self.threads_per_block
        g = self._grid(n)
        partial = self._cuda.device_array(g, dtype=np.float64)
        with self._quiet():
            K.reduce_partial[g, tpb, 0, tpb * 8](x, mode, partial)
            if g > 1:
                total = self._cuda.device_array(1, dtype=np.float64)
                K.reduce_partial[1, tpb, 0, tpb * 8](partial, K.RED_SUM, total)
                partial = total
        return float(partial.copy_to_host()[0])

    def _loss_result(self, per, n, bad=None, name="target"):
        total = self._sum(per)
        if bad is not None and int(bad.copy_to_host()[0]):
            raise ValueError(f"{name}: labels must be integers in [0, k)")
        return total / n

    # ------------------------------------------------------------------
    # allocation and transfer
    # ------------------------------------------------------------------
    def empty(self, shape, dtype=np.float32):
        """Uninitialised device array."""
        return self._cuda.device_array(shape, dtype=np.dtype(dtype))

    def zeros(self, shape, dtype=np.float32):
        """Zero-filled device array."""
        return self._cuda.to_device(np.zeros(shape, dtype=dtype))

    def asarray(self, x, dtype=None):
        """Host data -> device array (C-contiguous, ``dtype``); device arrays pass through
        (converted on the device when ``dtype`` differs)."""
        if self._is_device(x):
            if dtype is None or np.dtype(dtype) == np.dtype(x.dtype):
                if x.is_c_contiguous():
                    return x
                dtype = x.dtype
            return self._to_device(x, np.dtype(dtype), "x")
        return self._cuda.to_device(np.ascontiguousarray(x, dtype=dtype))

    def to_numpy(self, x):
        """Device array -> host ``numpy.ndarray`` (a copy); host arrays pass through."""
        if self._is_device(x):
            return x.copy_to_host()
        return np.asarray(x)

    def synchronize(self):
        """Wait for all queued kernels and copies."""
        self._cuda.synchronize()

    # ------------------------------------------------------------------
    # GEMM
    # ------------------------------------------------------------------
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
             bias=None, activation="linear", act_alpha=None):
        alpha, beta = op_hyper("gemm", alpha=alpha, beta=beta)
        code = epilogue_code(activation, "gemm")
        act_a = activation_alpha(activation, act_alpha, "act_alpha")
        dt = work_dtype(a, "a")
        a = self._to_device(a, dt, "a", 2)
        b = self._to_device(b, dt, "b", 2)
        m, k, n = gemm_shapes(a, b, trans_a, trans_b)
        if beta != 0.0 and out is None:
            raise ValueError("gemm: beta != 0 needs an out= array to accumulate into")
        out = self._out(out, (m, n), dt)
        has_bias = bias is not None
        bias = (self._to_device(bias, dt, "bias") if has_bias else self._dummy(dt, 1))
        if has_bias and tuple(bias.shape) != (n,):
            raise ValueError(f"bias: expected shape ({n},), got {tuple(bias.shape)}")
        softmax = code == ACTIVATIONS["softmax"]
        epi = 0 if softmax else code
        if m and n:
            T = self.gemm_tile
            gm = min(-(-m // T), self.max_blocks)
            gn = min(-(-n // T), self.max_blocks)
            kern = self._K.gemm_f32 if dt == np.float32 else self._K.gemm_f64
            with self._quiet():
                kern[(gn, gm), (T, T), 0, 2 * T * T * dt.itemsize](
                    a, b, out, bool(trans_a), bool(trans_b), alpha, beta, bias, has_bias, epi,
                    act_a)
        if softmax:
            self.softmax(out, out=out)
        return out

    # ------------------------------------------------------------------
    # activations
    # ------------------------------------------------------------------
    def activation_forward(self, x, activation, out=None, alpha=None):
        code = activation_code(activation)
        a = activation_alpha(activation, alpha)
        dt = work_dtype(x)
        if activation in REFERENCE_ONLY:
            return self._on_host("activation_forward", out, dt, x, activation, alpha=alpha)
        x = self._to_device(x, dt, "x")
        out = self._out(out, x.shape, dt)
        if code == ACTIVATIONS["softmax"]:
            return self.softmax(x, out=out)
        self._launch(self._K.act_forward, x.size, _flat(x), _flat(out), code, a)
        return out

    def activation_backward(self, dy, y, activation, x=None, out=None, alpha=None):
        code = activation_code(activation)
        a = activation_alpha(activation, alpha)
        dt = work_dtype(dy, "dy")
        if activation in REFERENCE_ONLY:
            return self._on_host("activation_backward", out, dt, dy, y, activation,
                                 x=None if x is None else self.to_numpy(x), alpha=alpha)
        dy = self._to_device(dy, dt, "dy")
        y = self._to_device(y, dt, "y")
        if tuple(y.shape) != tuple(dy.shape):
            raise ValueError(f"activation_backward: dy {dy.shape} and y {y.shape} differ")
        out = self._out(out, dy.shape, dt)
        if code == ACTIVATIONS["softmax"]:
            if len(dy.shape) != 2:
                raise ValueError(f"softmax backward expects 2-D arrays, got {dy.shape}")
            self._launch(self._K.softmax_backward_rows, dy.shape[0], dy, y, out)
            return out
        if activation in NEEDS_INPUT_FOR_BACKWARD:
            if x is None:
                raise ValueError(f"activation_backward: {activation} needs the forward "
                                 f"input x")
            x = self._to_device(x, dt, "x")
            if tuple(x.shape) != tuple(dy.shape):
                raise ValueError(f"activation_backward: dy {dy.shape} and x {x.shape} differ")
        else:
            x = y
        self._launch(self._K.act_backward, dy.size, _flat(dy), _flat(y), _flat(x), _flat(out),
                     code, a)
        return out

    def _on_host(self, op, out, dt, first, *args, **kwargs):
        """The reference backend's ``op`` on host copies (the activations of
        :data:`REFERENCE_ONLY` have no device kernels), its result copied into ``out``."""
        r = getattr(_REFERENCE, op)(self.to_numpy(first), *[
            self.to_numpy(a) if self._is_device(a) else a for a in args], **kwargs)
        out = self._out(out, r.shape, dt)
        if r.size:
            out.copy_to_device(np.ascontiguousarray(r, dtype=dt))
        return out

    def softmax(self, x, out=None):
        return self._softmax(x, out, False)

    def log_softmax(self, x, out=None):
        return self._softmax(x, out, True)

    def _softmax(self, x, out, log):
        dt = work_dtype(x)
        x = self._to_device(x, dt, "x", 2)
        out = self._out(out, x.shape, dt)
        if x.size:
            self._launch(self._K.softmax_rows, x.shape[0], x, out, log)
        return out

    # ------------------------------------------------------------------
    # losses
    # ------------------------------------------------------------------
    def softmax_cross_entropy(self, logits, target, grad=None, sample_weight=None,
                              label_smoothing=0.0):
        ls, = op_hyper("softmax_cross_entropy", label_smoothing=label_smoothing)
        return self._class_loss(self._K.xent_rows, logits, "logits", target, grad,
                                sample_weight, ls)

    def categorical_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                                  epsilon=1e-7):
        epsilon, = op_hyper("categorical_cross_entropy", epsilon=epsilon)
        return self._class_loss(self._K.cce_rows, probs, "probs", target, grad,
                                sample_weight, epsilon)

    def _class_loss(self, kernel, x, name, target, grad, sample_weight, hyper):
        """A loss over rows of class scores ``x`` (n, k) against labels or dense targets:
        one launch of ``kernel`` (``hyper`` its one hyper-parameter, checked)."""
        dt = work_dtype(x, name)
        x = self._to_device(x, dt, name, 2)
        n = x.shape[0]
        lab, t, dense = self._targets(target, x, dt)
        w, has_w = self._weights(sample_weight, n)
        grad = self._out(grad, x.shape, dt, "grad")
        if n == 0:
            return 0.0, grad
        per = self._cuda.device_array(n, dtype=np.float64)
        bad = self._cuda.to_device(np.zeros(1, dtype=np.int32))
        self._launch(kernel, n, x, lab, t, dense, w, has_w, hyper, grad, per, bad)
        return self._loss_result(per, n, bad), grad

    def _elementwise_loss(self, pred, target, grad, sample_weight, kind, eps, name):
        dt = work_dtype(pred, name)
        p = self._to_device(pred, dt, name, 2)
        t = self._to_device(target, dt, "target")
        if tuple(t.shape) != tuple(p.shape):
            raise ValueError(f"target: expected shape {tuple(p.shape)}, got {tuple(t.shape)}")
        n, k = p.shape
        w, has_w = self._weights(sample_weight, n)
        grad = self._out(grad, p.shape, dt, "grad")
        if p.size == 0:
            return 0.0, grad
        per = self._cuda.device_array(n, dtype=np.float64)
        self._launch(self._K.elementwise_loss_rows, n, p, t, w, has_w, kind, float(eps),
                     grad, per)
        return self._loss_result(per, n), grad

    def sigmoid_binary_cross_entropy(self, logits, target, grad=None, sample_weight=None):
        return self._elementwise_loss(logits, target, grad, sample_weight,
                                      self._K.SIGMOID_BCE, 0.0, "logits")

    def binary_cross_entropy(self, probs, target, grad=None, sample_weight=None,
                             epsilon=1e-7):
        epsilon, = op_hyper("binary_cross_entropy", epsilon=epsilon)
        return self._elementwise_loss(probs, target, grad, sample_weight, self._K.BCE,
                                      epsilon, "probs")

    def mean_squared_error(self, pred, target, grad=None, sample_weight=None):
        return self._elementwise_loss(pred, target, grad, sample_weight, self._K.MSE, 0.0,
                                      "pred")

    def mean_absolute_error(self, pred, target, grad=None, sample_weight=None):
        return self._elementwise_loss(pred, target, grad, sample_weight, self._K.MAE, 0.0,
                                      "pred")

    # ------------------------------------------------------------------
    # reductions, dropout, batch normalisation
    # ------------------------------------------------------------------
    def bias_grad(self, dy, out=None):
        dt = work_dtype(dy, "dy")
        dy = self._to_device(dy, dt, "dy", 2)
        out = self._out(out, (dy.shape[1],), dt)
        self._launch(self._K.col_sum, dy.shape[1], dy, out)
        return out

    def dropout_forward(self, x, rate, seed, out=None, mask=None):
        rate, = op_hyper("dropout_forward", rate=rate)
        dt = work_dtype(x)
        x = self._to_device(x, dt, "x")
        out = self._out(out, x.shape, dt)
        mask = self._out(mask, x.shape, dt, "mask")
        self._launch(self._K.dropout_fwd, x.size, _flat(x), np.uint64(int(seed) & _MASK64),
                     rate, 1.0 / (1.0 - rate), _flat(out), _flat(mask))
        return out, mask

    def dropout_backward(self, dy, mask, out=None):
        dt = work_dtype(dy, "dy")
        dy = self._to_device(dy, dt, "dy")
        mask = self._to_device(mask, dt, "mask")
        if tuple(mask.shape) != tuple(dy.shape):
            raise ValueError(f"dropout_backward: dy {dy.shape} and mask {mask.shape} differ")
        out = self._out(out, dy.shape, dt)
        self._launch(self._K.mul_ew, dy.size, _flat(dy), _flat(mask), _flat(out))
        return out

    def batchnorm_forward(self, x, gamma, beta, moving_mean, moving_var, training,
                          momentum=0.99, epsilon=1e-3, out=None):
        """As :meth:`Backend.batchnorm_forward`; ``mean``/``inv_std`` are float64
        device arrays."""
        momentum, epsilon = op_hyper("batchnorm_forward", momentum=momentum, epsilon=epsilon)
        dt = work_dtype(x)
        x = self._to_device(x, dt, "x", 2)
        n, k = x.shape
        gamma = self._to_device(gamma, dt, "gamma", 1)
        beta = self._to_device(beta, dt, "beta", 1)
        for nm, v in (("gamma", gamma), ("beta", beta)):
            if tuple(v.shape) != (k,):
                raise ValueError(f"{nm}: expected shape ({k},), got {tuple(v.shape)}")
        moving_mean = self._out(moving_mean, (k,), dt, "moving_mean")
        moving_var = self._out(moving_var, (k,), dt, "moving_var")
        out = self._out(out, x.shape, dt)
        if training and n == 0:
            raise ValueError("batchnorm_forward: training needs at least one sample")
        mean = self._cuda.device_array(k, dtype=np.float64)
        inv_std = self._cuda.device_array(k, dtype=np.float64)
        self._launch(self._K.bn_stats, k, x, bool(training), momentum, epsilon,
                     moving_mean, moving_var, mean, inv_std)
        self._launch(self._K.bn_apply, n * k, x, mean, inv_std, gamma, beta, out)
        return out, mean, inv_std

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std, dx=None, dgamma=None,
                           dbeta=None):
        dt = work_dtype(dy, "dy")
        dy = self._to_device(dy, dt, "dy", 2)
        x = self._to_device(x, dt, "x", 2)
        if tuple(x.shape) != tuple(dy.shape):
            raise ValueError(f"batchnorm_backward: dy {dy.shape} and x {x.shape} differ")
        n, k = x.shape
        gamma = self._to_device(gamma, dt, "gamma", 1)
        mean = self._to_device(mean, np.float64, "mean", 1)
        inv_std = self._to_device(inv_std, np.float64, "inv_std", 1)
        for nm, v in (("gamma", gamma), ("mean", mean), ("inv_std", inv_std)):
            if tuple(v.shape) != (k,):
                raise ValueError(f"{nm}: expected shape ({k},), got {tuple(v.shape)}")
        dx = self._out(dx, x.shape, dt, "dx")
        dgamma = self._out(dgamma, (k,), dt, "dgamma")
        dbeta = self._out(dbeta, (k,), dt, "dbeta")
        self._launch(self._K.bn_backward_cols, k, dy, x, gamma, mean, inv_std, dx, dgamma,
                     dbeta)
        return dx, dgamma, dbeta

    # ------------------------------------------------------------------
    # per-row normalisation: the reference's checks and messages, on device arrays
    # ------------------------------------------------------------------
    def _rows(self, op, x, dt, name):
        x = self._to_device(x, dt, name, 2)
        if x.shape[1] == 0:
            raise ValueError(f"{op}: {name} of shape {tuple(x.shape)} has no entries to "
                             f"normalise over (axis 1 has size 0)")
        return x

    def _row_vector(self, op, v, dt, name, k):
        if v is None:
            return None
        v = self._to_device(v, dt, name, 1)
        if tuple(v.shape) != (k,):
            raise ValueError(f"{op}: {name} must have shape ({k},) for x of shape (rows, "
                             f"{k}), got {tuple(v.shape)}")
        return v

    def _row_stats(self, op, n, **stats):
        out = []
        for name, v in stats.items():
            v = self._to_device(v, np.float64, name, 1)
            if tuple(v.shape) != (n,):
                raise ValueError(f"{op}: {name} must have shape ({n},) (one value per row), "
                                 f"got {tuple(v.shape)}")
            out.append(v)
        return out

    def layernorm_forward(self, x, gamma=None, beta=None, epsilon=1e-3, rms_scaling=False,
                          out=None):
        """As :meth:`Backend.layernorm_forward`; ``mean``/``inv_std`` are float64 device
        arrays."""
        op = "layernorm_forward"
        epsilon, = op_hyper(op, epsilon=epsilon)
        dt = work_dtype(x)
        x = self._rows(op, x, dt, "x")
        n, k = x.shape
        gamma = self._row_vector(op, gamma, dt, "gamma", k)
        beta = self._row_vector(op, beta, dt, "beta", k)
        if rms_scaling and beta is not None:
            raise ValueError(f"{op}: rms_scaling takes no beta (the output is not re-centred)")
        out = self._out(out, x.shape, dt)
        mean = self._cuda.device_array(n, dtype=np.float64)
        inv_std = self._cuda.device_array(n, dtype=np.float64)
        dummy = self._dummy(dt, 1)
        self._launch(self._K.ln_rows, n, x, dummy if gamma is None else gamma,
                     dummy if beta is None else beta, gamma is not None, beta is not None,
                     epsilon, bool(rms_scaling), out, mean, inv_std)
        return out, mean, inv_std

    def layernorm_backward(self, dy, x, gamma, mean, inv_std, rms_scaling=False, dx=None,
                           dgamma=None, dbeta=None):
        op = "layernorm_backward"
        dt = work_dtype(dy, "dy")
        dy = self._to_device(dy, dt, "dy", 2)
        x = self._rows(op, x, dt, "x")
        if tuple(x.shape) != tuple(dy.shape):
            raise ValueError(f"{op}: dy {tuple(dy.shape)} and x {tuple(x.shape)} differ")
        n, k = x.shape
        gamma = self._row_vector(op, gamma, dt, "gamma", k)
        mean, inv_std = self._row_stats(op, n, mean=mean, inv_std=inv_std)
        dx = self._out(dx, x.shape, dt, "dx")
        if gamma is None and dgamma is not None:
            raise ValueError(f"{op}: dgamma was given but gamma is None (no scale to "
                             f"differentiate)")
        dgamma = None if gamma is None else self._out(dgamma, (k,), dt, "dgamma")
        dbeta = self._out(dbeta, (k,), dt, "dbeta")
        dummy = self._dummy(dt, 1)
        # the column sums read dy before the rows write dx (which may be dy)
        self._launch(self._K.ln_backward_cols, k, dy, x, mean, inv_std, bool(rms_scaling),
                     dummy if dgamma is None else dgamma, dgamma is not None, dbeta)
        self._launch(self._K.ln_backward_rows, n, dy, x, dummy if gamma is None else gamma,
                     gamma is not None, mean, inv_std, bool(rms_scaling), dx)
        return dx, dgamma, dbeta

    def l2_normalize_forward(self, x, epsilon=1e-12, out=None):
        op = "l2_normalize_forward"
        epsilon, = op_hyper(op, epsilon=epsilon)
        dt = work_dtype(x)
        x = self._rows(op, x, dt, "x")
        out = self._out(out, x.shape, dt)
        inv_norm = self._cuda.device_array(x.shape[0], dtype=np.float64)
        self._launch(self._K.l2_rows, x.shape[0], x, epsilon, out, inv_norm)
        return out, inv_norm

    def l2_normalize_backward(self, dy, y, inv_norm, epsilon=1e-12, out=None):
        op = "l2_normalize_backward"
        epsilon, = op_hyper(op, epsilon=epsilon)
        dt = work_dtype(dy, "dy")
        dy = self._to_device(dy, dt, "dy", 2)
        y = self._rows(op, y, dt, "y")
        if tuple(y.shape) != tuple(dy.shape):
            raise ValueError(f"{op}: dy {tuple(dy.shape)} and y {tuple(y.shape)} differ")
        inv_norm, = self._row_stats(op, y.shape[0], inv_norm=inv_norm)
        out = self._out(out, y.shape, dt)
        self._launch(self._K.l2_backward_rows, y.shape[0], dy, y, inv_norm, epsilon, out)
        return out


    def __repr__(self):
        kind = "simulator" if self._simulator else "gpu"
        return (f"<pynn backend 'cuda' ({kind}, threads_per_block={self.threads_per_block}, "
                f"gemm_tile={self.gemm_tile})>")
