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
* Reductions (bias gradient, batch-norm statistics, loss sums) accumulate in
  ``float64``.
* Losses return the *mean* over the batch (``sum(w_i * l_i) / n``, Keras's
  ``sum_over_batch_size``) as a Python float, and write the gradient of that mean
  with respect to the predictions/logits.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["Backend", "ACTIVATIONS", "activation_code", "STACK_LOSSES", "StackUpdate"]

#: Activation name -> integer code. Compiled kernels choose by code, never by
#: passing functions around (that would defeat Numba's cache).
ACTIVATIONS = {
    "linear": 0,
    "relu": 1,
    "leaky_relu": 2,
    "elu": 3,
    "sigmoid": 4,
    "tanh": 5,
    "gelu": 6,
    "softplus": 7,
    "softmax": 8,
}

#: Default extra parameter per activation (negative slope, ELU alpha).
ACTIVATION_DEFAULT_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}

#: Elements :meth:`Backend.all_finite` checks per NumPy call (256 KiB of float32).
FINITE_BLOCK = 1 << 16

#: Activations whose derivative cannot be written from the forward output alone.
NEEDS_INPUT_FOR_BACKWARD = frozenset({"gelu"})

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def activation_code(name):
    """Return the integer code of activation ``name`` (``None`` means linear)."""
    if name is None:
        return 0
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None


def activation_alpha(name, alpha):
    """The activation's extra parameter, with its default filled in."""
    if alpha is None:
        return float(ACTIVATION_DEFAULT_ALPHA.get(name, 0.0))
    return float(alpha)


# --------------------------------------------------------------------------
# argument checking shared by every backend
# --------------------------------------------------------------------------
def work_dtype(x, name="x"):
    """The float dtype an op computes in, given its primary input ``x``."""
    dt = np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype
    if dt == np.float32 or dt == np.float64:
        return np.dtype(dt)
    if dt.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(f"{name}: expected a numeric array, got dtype {dt}")


def as_float(x, dtype, name, ndim=None):
    """``x`` as a C-contiguous array of ``dtype`` (copied only when needed)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    return np.asarray(a, dtype=dtype, order="C")


def as_labels(y, n, n_classes, name="labels"):
    """Integer class labels of shape ``(n,)`` checked against ``n_classes``."""
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {np.shape(y)}")
    if a.dtype.kind == "f":
        if a.size and not np.all(np.floor(a) == a):
            raise ValueError(f"{name}: integer class labels expected, got non-integer floats")
    elif a.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected integer labels, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.intp)
    if a.size and (a.min() < 0 or a.max() >= n_classes):
        raise ValueError(
            f"{name}: labels must be in [0, {n_classes}), got range "
            f"[{int(a.min())}, {int(a.max())}]"
        )
    return a


def check_out(out, shape, dtype, name="out"):
    """Validate a caller-supplied output buffer, or allocate one when ``None``."""
    shape = tuple(int(s) for s in shape)
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name}: must be writable")
    return out


def check_state(arr, shape, dtype, name):
    """Validate an array updated in place (parameters, optimizer state)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(arr).__name__}")
    return check_out(arr, shape, dtype, name)


def sample_weights(sample_weight, n, dtype=np.float64):
    """Per-sample weights of shape ``(n,)`` (float64) or ``None``."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected shape ({n},), got {np.shape(sample_weight)}")
    return np.ascontiguousarray(w, dtype=dtype)


def gemm_shapes(a, b, trans_a, trans_b):
    """``(m, k, n)`` of ``op(a) @ op(b)``, with a clear error when they don't fit."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: a and b must be 2-D, got shapes {a.shape} and {b.shape}")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) is ({m}, {k}) and op(b) is ({k2}, {n}) "
            f"(a {a.shape}, trans_a={trans_a}; b {b.shape}, trans_b={trans_b})"
        )
    return m, k, n


def check_bias(bias, n, dtype):
    """The bias vector of a product with ``n`` columns, as ``dtype``."""
    b = as_float(bias, dtype, "bias")
    if b.shape != (n,):
        raise ValueError(f"bias: expected shape ({n},), got {b.shape}")
    return b


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


# --------------------------------------------------------------------------
# per-op argument preparation: every backend's op starts with one of these, so
# an op's checks (and their error types and messages) are written once
# --------------------------------------------------------------------------
def class_targets(target, logits, dt, name="target"):
    """Integer labels (1-D) or a dense target array matching ``logits``."""
    t = np.asarray(target)
    n, k = logits.shape
    if t.ndim == 2 and t.shape == logits.shape:
        return as_float(t, dt, name)
    if t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1 and k != 1):
        return as_labels(t, n, k, name)
    raise ValueError(
        f"{name}: expected integer labels of shape ({n},) or probabilities of shape "
        f"{logits.shape}, got {t.shape}"
    )


def prep_gemm(a, b, out, trans_a, trans_b, beta, bias, operand=None):
    """Checked :meth:`Backend.gemm` arguments: ``(a, b, trans_a, trans_b, out, bias)``
    (``out`` has the working dtype and shape ``(m, n)``; ``bias`` may be None).

    ``operand(x, dt, name, trans) -> (array, trans)`` converts ``a`` and ``b``
    (default: :func:`as_float` to a 2-D C-contiguous array, ``trans`` unchanged).
    """
    dt = work_dtype(a, "a")
    if operand is None:
        a = as_float(a, dt, "a", 2)
        b = as_float(b, dt, "b", 2)
    else:
        a, trans_a = operand(a, dt, "a", trans_a)
        b, trans_b = operand(b, dt, "b", trans_b)
    m, _, n = gemm_shapes(a, b, trans_a, trans_b)
    if beta != 0.0 and out is None:
        raise ValueError("gemm: beta != 0 needs an out= array to accumulate into")
    out = check_out(out, (m, n), dt)
    if bias is not None:
        bias = check_bias(bias, n, dt)
    return a, b, trans_a, trans_b, out, bias


def prep_activation_forward(x, activation, out, alpha):
    """Checked ``activation_forward`` arguments: ``(code, x, out, alpha)``."""
    code = activation_code(activation)
    dt = work_dtype(x)
    x = as_float(x, dt, "x")
    out = check_out(out, x.shape, dt)
    return code, x, out, activation_alpha(activation, alpha)


def prep_activation_backward(dy, y, activation, x, out, alpha):
    """Checked ``activation_backward`` arguments: ``(code, dy, y, x, out, alpha)``;
    ``x`` is converted for ``gelu`` (which needs it) and ``None`` otherwise."""
    code = activation_code(activation)
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy")
    y = as_float(y, dt, "y")
    if y.shape != dy.shape:
        raise ValueError(f"activation_backward: dy {dy.shape} and y {y.shape} differ")
    out = check_out(out, dy.shape, dt)
    a = activation_alpha(activation, alpha)
    if code == ACTIVATIONS["softmax"] and dy.ndim != 2:
        raise ValueError(f"softmax backward expects 2-D arrays, got {dy.shape}")
    if code == ACTIVATIONS["gelu"]:
        if x is None:
            raise ValueError("activation_backward: gelu needs the forward input x")
        x = as_float(x, dt, "x")
        if x.shape != dy.shape:
            raise ValueError(f"activation_backward: dy {dy.shape} and x {x.shape} differ")
    else:
        x = None
    return code, dy, y, x, out, a


def prep_rows(x, out):
    """Checked arguments of a row-wise op of 2-D ``x`` (softmax, log-softmax)."""
    dt = work_dtype(x)
    x = as_float(x, dt, "x", 2)
    return x, check_out(out, x.shape, dt)


def prep_class_loss(x, target, grad, sample_weight, name):
    """Checked arguments of a loss over classes: ``(x, target, w, grad)``; ``target``
    is intp labels (1-D) or dense like ``x``, ``w`` float64 (n,) or None."""
    dt = work_dtype(x, name)
    x = as_float(x, dt, name, 2)
    t = class_targets(target, x, dt)
    w = sample_weights(sample_weight, x.shape[0])
    return x, t, w, check_out(grad, x.shape, dt, "grad")


def prep_pair_loss(pred, target, grad, sample_weight, name):
    """Checked arguments of an elementwise loss: ``(pred, target, w, grad)``."""
    dt = work_dtype(pred, name)
    p = as_float(pred, dt, name, 2)
    t = as_float(target, dt, "target")
    if t.shape != p.shape:
        raise ValueError(f"target: expected shape {p.shape}, got {t.shape}")
    w = sample_weights(sample_weight, p.shape[0])
    return p, t, w, check_out(grad, p.shape, dt, "grad")


def prep_take_rows(x, indices, out):
    """Checked ``take_rows`` arguments: ``(x, indices, out)``; the indices are a
    contiguous intp array, not yet checked against the rows of ``x``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"take_rows: x: expected a numpy.ndarray, got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError("take_rows: x: expected an array of rows (at least 1-D), got a "
                         "0-D array")
    idx = np.asarray(indices)
    if idx.ndim != 1 or not (idx.dtype.kind in "iu" or (idx.size == 0 and idx.dtype.kind
                                                          in "biuf")):
        raise TypeError(f"take_rows: indices: expected a 1-D array of integers, got shape "
                        f"{idx.shape} and dtype {idx.dtype}")
    if idx.dtype.kind == "u" and idx.size and int(idx.max()) > np.iinfo(np.intp).max:
        raise IndexError(f"take_rows: indices: {int(idx.max())} is out of range for x with "
                         f"{x.shape[0]} rows (x shape {x.shape})")
    idx = np.ascontiguousarray(idx, dtype=np.intp)
    out = check_out(out, (idx.shape[0],) + x.shape[1:], x.dtype)
    if np.may_share_memory(out, x) or np.may_share_memory(out, idx):
        raise ValueError(f"take_rows: out {out.shape} overlaps "
                         f"{'x' if np.may_share_memory(out, x) else 'indices'}; gather "
                         f"into a buffer of its own")
    return x, idx, out


def take_rows_error(x, idx, pos):
    """The IndexError for ``idx[pos]``, an index outside the rows of ``x``."""
    return IndexError(f"take_rows: indices[{pos}] = {int(idx[pos])} is out of range for x "
                      f"with {x.shape[0]} rows (x shape {x.shape}); valid indices are "
                      f"-{x.shape[0]} .. {x.shape[0] - 1}")


def prep_bias_grad(dy, out):
    """Checked ``bias_grad`` arguments: ``(dy, out)``."""
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy", 2)
    return dy, check_out(out, (dy.shape[1],), dt)


def prep_dropout_forward(x, rate, out, mask):
    """Checked ``dropout_forward`` arguments: ``(x, out, mask)``."""
    dt = work_dtype(x)
    x = as_float(x, dt, "x")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    out = check_out(out, x.shape, dt)
    return x, out, check_out(mask, x.shape, dt, "mask")


def prep_dropout_backward(dy, mask, out):
    """Checked ``dropout_backward`` arguments: ``(dy, mask, out)``."""
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy")
    mask = as_float(mask, dt, "mask")
    if mask.shape != dy.shape:
        raise ValueError(f"dropout_backward: dy {dy.shape} and mask {mask.shape} differ")
    return dy, mask, check_out(out, dy.shape, dt)


def prep_batchnorm_forward(x, gamma, beta, moving_mean, moving_var, training, out):
    """Checked ``batchnorm_forward`` arguments:
    ``(x, gamma, beta, moving_mean, moving_var, out)``."""
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
    return x, gamma, beta, moving_mean, moving_var, out


def prep_batchnorm_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta):
    """Checked ``batchnorm_backward`` arguments:
    ``(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)`` (``mean``/``inv_std`` float64)."""
    dt = work_dtype(dy, "dy")
    dy = as_float(dy, dt, "dy", 2)
    x = as_float(x, dt, "x", 2)
    if x.shape != dy.shape:
        raise ValueError(f"batchnorm_backward: dy {dy.shape} and x {x.shape} differ")
    k = x.shape[1]
    gamma = as_float(gamma, dt, "gamma", 1)
    mean = as_float(mean, np.float64, "mean")
    inv_std = as_float(inv_std, np.float64, "inv_std")
    for nm, v in (("gamma", gamma), ("mean", mean), ("inv_std", inv_std)):
        if v.shape != (k,):
            raise ValueError(f"{nm}: expected shape ({k},), got {v.shape}")
    dx = check_out(dx, x.shape, dt, "dx")
    dgamma = check_out(dgamma, (k,), dt, "dgamma")
    dbeta = check_out(dbeta, (k,), dt, "dbeta")
    return dy, x, gamma, mean, inv_std, dx, dgamma, dbeta


def prep_optimizer(param, grad, *state_names_and_arrays):
    """Check ``param`` (a writable C-contiguous float array), its state arrays
    (``(name, array)`` pairs) and ``grad``; return ``grad`` in ``param``'s dtype."""
    if not isinstance(param, np.ndarray):
        raise TypeError(f"param: expected a numpy.ndarray, got {type(param).__name__}")
    dt = param.dtype
    if dt not in (np.float32, np.float64):
        raise TypeError(f"param: expected float32 or float64, got {dt}")
    check_state(param, param.shape, dt, "param")
    grad = as_float(grad, dt, "grad")
    if grad.shape != param.shape:
        raise ValueError(f"grad: expected shape {param.shape}, got {grad.shape}")
    for nm, arr in state_names_and_arrays:
        check_state(arr, param.shape, dt, nm)
    return grad


def prep_sgd(param, grad, velocity, momentum):
    """Checked ``sgd_update`` arguments: ``grad`` in ``param``'s dtype."""
    grad = prep_optimizer(param, grad,
                          *([("velocity", velocity)] if velocity is not None else []))
    if momentum and velocity is None:
        raise ValueError("sgd_update: momentum > 0 needs a velocity array")
    return grad


def adam_step_size(learning_rate, beta_1, beta_2, step):
    """Keras's Adam step size with both bias corrections folded in:
    ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`` (``step`` = t counts from 1)."""
    return learning_rate * math.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)


def prep_adam(param, grad, m, v, step):
    """Checked ``adam_update`` arguments: ``grad`` in ``param``'s dtype."""
    grad = prep_optimizer(param, grad, ("m", m), ("v", v))
    if step < 1:
        raise ValueError(f"adam_update: step counts from 1, got {step}")
    return grad


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_erf = np.vectorize(math.erf, otypes=[np.float64])


class Backend:
    """Reference implementation of every op, in plain NumPy.

    Subclasses override hot ops and must keep each method's signature.
    """

    name = "numpy"
    #: True for backends whose arrays live in host memory as numpy arrays.
    host_memory = True

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
        """Host data -> backend array (C-contiguous, converted to ``dtype``)."""
        return np.ascontiguousarray(x, dtype=dtype)

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
            Output; with ``beta != 0`` its previous contents are accumulated.
        bias : array (n,), optional
            Added to every row before the activation.
        activation : str
            Name from :data:`ACTIVATIONS` applied as the epilogue.
        act_alpha : float, optional
            Negative slope for ``leaky_relu``, alpha for ``elu``.

        Returns
        -------
        out : array (m, n) of the working dtype of ``a``.
        """
        a, b, trans_a, trans_b, out, bias = prep_gemm(a, b, out, trans_a, trans_b, beta, bias)
        opa = a.T if trans_a else a
        opb = b.T if trans_b else b
        r = alpha * (opa @ opb) if alpha != 1.0 else opa @ opb
        if beta != 0.0:
            r = r + beta * out
        if bias is not None:
            r = r + bias
        out[...] = r
        if activation not in (None, "linear"):
            self.activation_forward(out, activation, out=out, alpha=act_alpha)
        return out

    # ------------------------------------------------------------------
    # activations
    # ------------------------------------------------------------------
    def activation_forward(self, x, activation, out=None, alpha=None):
        """``out = activation(x)`` elementwise (softmax: along the last axis of 2-D ``x``).

        ``alpha`` is the negative slope of ``leaky_relu`` (default 0.2) or the
        ``elu`` alpha (default 1.0). ``out`` may be ``x`` itself.
        """
        code, x, out, a = prep_activation_forward(x, activation, out, alpha)
        if code == ACTIVATIONS["softmax"]:
            return self.softmax(x, out=out)
        with np.errstate(over="ignore", under="ignore"):
            if code == 0:
                r = x
            elif code == 1:
                r = np.maximum(x, 0)
            elif code == 2:
                r = np.where(x > 0, x, a * x)
            elif code == 3:
                r = np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))
            elif code == 4:
                # stable logistic: exp of a non-positive number only
                e = np.exp(-np.abs(x))
                r = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
            elif code == 5:
                r = np.tanh(x)
            elif code == 6:
                r = 0.5 * x * (1.0 + _erf(x.astype(np.float64) * _SQRT_HALF))
            elif code == 7:
                r = np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
        out[...] = r
        return out

    def activation_backward(self, dy, y, activation, x=None, out=None, alpha=None):
        """``out = dy * activation'(x)``, written from the forward output ``y``.

        ``x`` (the forward input) is needed only for ``gelu``. For ``softmax``
        this is the full Jacobian-vector product along each row. ``out`` may be
        ``dy`` itself.
        """
        code, dy, y, x, out, a = prep_activation_backward(dy, y, activation, x, out, alpha)
        # np.where evaluates both branches: overflow in the unused one is harmless
        with np.errstate(over="ignore", under="ignore"):
            if code == 0:
                r = dy
            elif code == 1:
                r = np.where(y > 0, dy, 0)
            elif code == 2:
                r = np.where(y > 0, dy, a * dy)
            elif code == 3:
                r = np.where(y > 0, dy, dy * (y + a))
            elif code == 4:
                r = dy * y * (1 - y)
            elif code == 5:
                r = dy * (1 - y * y)
            elif code == 6:
                xd = x.astype(np.float64)
                cdf = 0.5 * (1.0 + _erf(xd * _SQRT_HALF))
                pdf = np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi)
                r = dy * (cdf + xd * pdf)
            elif code == 7:
                # softplus'(x) = sigmoid(x) = 1 - exp(-softplus(x))
                r = dy * -np.expm1(-y)
            elif code == 8:
                s = np.sum(dy.astype(np.float64) * y, axis=1, keepdims=True)
                r = y * (dy - s)
        out[...] = r
        return out

    def softmax(self, x, out=None):
        """Row-wise softmax of 2-D ``x``, stable for large magnitudes."""
        x, out = prep_rows(x, out)
        if x.size == 0:
            return out
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        out[...] = e / e.sum(axis=1, keepdims=True)
        return out

    def log_softmax(self, x, out=None):
        """Row-wise log-softmax of 2-D ``x``, stable for large magnitudes."""
        x, out = prep_rows(x, out)
        if x.size == 0:
            return out
        z = x - x.max(axis=1, keepdims=True)
        out[...] = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return out

    # ------------------------------------------------------------------
    # losses: (mean loss as a float, gradient of that mean)
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
        z, t, w, grad = prep_class_loss(logits, target, grad, sample_weight, "logits")
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
        p, t, w, grad = prep_class_loss(probs, target, grad, sample_weight, "probs")
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
        z, t, w, grad = prep_pair_loss(logits, target, grad, sample_weight, "logits")
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
        p, t, w, grad = prep_pair_loss(probs, target, grad, sample_weight, "probs")
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
        p, t, w, grad = prep_pair_loss(pred, target, grad, sample_weight, "pred")
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
        """
        x, out, mask = prep_dropout_forward(x, rate, out, mask)
        u = splitmix_uniform(int(seed), x.size).reshape(x.shape)
        mask[...] = np.where(u >= rate, 1.0 / (1.0 - rate), 0.0)
        out[...] = x * mask
        return out, mask

    def dropout_backward(self, dy, mask, out=None):
        """``out = dy * mask``."""
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
        x, gamma, beta, moving_mean, moving_var, out = prep_batchnorm_forward(
            x, gamma, beta, moving_mean, moving_var, training, out)
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
    def _opt_args(self, param, grad, *state_names_and_arrays):
        return prep_optimizer(param, grad, *state_names_and_arrays)

    @staticmethod
    def _decay(param, lr, weight_decay):
        if weight_decay:
            param -= param * (lr * weight_decay)

    def sgd_update(self, param, grad, velocity=None, learning_rate=0.01, momentum=0.0,
                   nesterov=False, weight_decay=0.0):
        """Keras SGD: ``v = momentum*v - lr*g``; ``p += v`` (Nesterov: ``p += momentum*v - lr*g``).

        ``velocity`` is required when ``momentum > 0``.
        """
        grad = prep_sgd(param, grad, velocity, momentum)
        lr = float(learning_rate)
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
        grad = prep_adam(param, grad, m, v, step)
        lr = float(learning_rate)
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
        """RMSprop: ``ms = rho*ms + (1-rho)*g^2``; ``p -= lr * g / (sqrt(ms) + eps)``."""
        grad = self._opt_args(param, grad, ("ms", ms))
        lr = float(learning_rate)
        self._decay(param, lr, weight_decay)
        ms[...] = rho * ms + (1.0 - rho) * grad * grad
        _flush_denormals(ms)
        param -= (lr * grad / (np.sqrt(ms) + epsilon)).astype(param.dtype)
        return param

    def adagrad_update(self, param, grad, acc, learning_rate=0.001, epsilon=1e-7,
                       weight_decay=0.0):
        """Adagrad: ``acc += g^2``; ``p -= lr * g / (sqrt(acc) + eps)``."""
        grad = self._opt_args(param, grad, ("acc", acc))
        lr = float(learning_rate)
        self._decay(param, lr, weight_decay)
        acc += grad * grad
        _flush_denormals(acc)
        param -= (lr * grad / (np.sqrt(acc) + epsilon)).astype(param.dtype)
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
        y += alpha * np.asarray(x, dtype=y.dtype)
        return y

    def copy_(self, src, dst):
        """``dst[...] = src``."""
        dst[...] = src
        return dst

    def regularizer_loss(self, w, l1=0.0, l2=0.0):
        """``l1 * sum|w| + l2 * sum w^2`` (Keras's L1L2), as a Python float."""
        w = np.asarray(w, dtype=np.float64)
        r = 0.0
        if l1:
            r += l1 * float(np.abs(w).sum())
        if l2:
            r += l2 * float((w * w).sum())
        return r

    def regularizer_grad_(self, w, grad, l1=0.0, l2=0.0):
        """``grad += l1 * sign(w) + 2 * l2 * w`` in place."""
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
            ``leaky_relu`` slope / ``elu`` alpha per layer (None: the default).
        preacts : list of L arrays (n, d_{i+1}) or None, optional
            Pre-activations; required (writable) only for ``gelu`` layers, whose
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


# --------------------------------------------------------------------------
# fused training step of a stack of Dense layers
# --------------------------------------------------------------------------
#: Losses :meth:`Backend.dense_stack_forward_backward` computes -> integer code.
STACK_LOSSES = {
    "softmax_cross_entropy": 0,
    "sigmoid_binary_cross_entropy": 1,
    "mean_squared_error": 2,
    "mean_absolute_error": 3,
}

#: Loss -> the output activation folded into it when it is the last layer's.
STACK_FOLDED_ACTIVATION = {"softmax_cross_entropy": "softmax",
                           "sigmoid_binary_cross_entropy": "sigmoid"}


def _stack_list(seq, depth, name):
    if isinstance(seq, np.ndarray) or not isinstance(seq, (list, tuple)):
        raise TypeError(f"{name}: expected a list or tuple of {depth} entries, got "
                        f"{type(seq).__name__}")
    if len(seq) != depth:
        raise ValueError(f"{name}: expected {depth} entries (one per layer), got {len(seq)}")
    return list(seq)


def _check_stack_layers(x, kernels, biases, activations, outs, act_alphas):
    """The checks every Dense-stack op shares: ``x`` converted to the kernels' dtype,
    the shape chain, biases and outputs; returns a dict with ``x``, ``dtype``,
    ``depth``, ``kernels``/``biases`` lists and per-layer activation ``codes`` and
    ``alphas`` (every activation as given)."""
    if isinstance(kernels, np.ndarray) or not isinstance(kernels, (list, tuple)):
        raise TypeError(f"kernels: expected a list or tuple of 2-D arrays, got "
                        f"{type(kernels).__name__}")
    depth = len(kernels)
    if depth == 0:
        raise ValueError("kernels: expected at least one layer")
    kernels = list(kernels)
    biases = _stack_list(biases, depth, "biases")
    activations = _stack_list(activations, depth, "activations")
    outs = _stack_list(outs, depth, "outs")
    act_alphas = ([None] * depth if act_alphas is None
                  else _stack_list(act_alphas, depth, "act_alphas"))
    for i, k in enumerate(kernels):
        if not isinstance(k, np.ndarray):
            raise TypeError(f"kernels[{i}]: expected a numpy.ndarray, got {type(k).__name__}")
    dt = kernels[0].dtype
    if dt not in (np.float32, np.float64):
        raise TypeError(f"kernels[0]: expected float32 or float64, got {dt}")
    xa = np.asarray(x)
    if xa.dtype.kind not in "biuf":
        raise TypeError(f"x: expected a numeric array, got dtype {xa.dtype}")
    if xa.ndim != 2:
        raise ValueError(f"x: expected a 2-D array (batch, features), got shape {xa.shape}")
    x = np.ascontiguousarray(xa, dtype=dt)
    n, width = x.shape
    codes, alphas = [], []
    for i in range(depth):
        k = kernels[i]
        if k.ndim != 2 or k.shape[0] != width:
            raise ValueError(f"kernels[{i}]: expected shape ({width}, units) to follow "
                             f"{'x' if i == 0 else f'kernels[{i - 1}]'} of width {width}, "
                             f"got {k.shape}")
        if k.dtype != dt:
            raise ValueError(f"kernels[{i}]: expected dtype {dt}, got {k.dtype}")
        if not k.flags.c_contiguous:
            raise ValueError(f"kernels[{i}]: must be C-contiguous")
        units = k.shape[1]
        codes.append(activation_code(activations[i]))
        alphas.append(activation_alpha(activations[i], act_alphas[i]))
        if biases[i] is not None:
            if not isinstance(biases[i], np.ndarray):
                raise TypeError(f"biases[{i}]: expected a numpy.ndarray or None, got "
                                f"{type(biases[i]).__name__}")
            if biases[i].shape != (units,) or biases[i].dtype != dt:
                raise ValueError(f"biases[{i}]: expected shape ({units},) and dtype {dt}, got "
                                 f"{biases[i].shape} {biases[i].dtype}")
            if not biases[i].flags.c_contiguous:
                raise ValueError(f"biases[{i}]: must be C-contiguous")
        check_state(outs[i], (n, units), dt, f"outs[{i}]")
        width = units
    return dict(x=x, dtype=dt, depth=depth, kernels=kernels, biases=biases, codes=codes,
                alphas=alphas)


def check_dense_forward(x, kernels, biases, activations, outs, act_alphas=None):
    """Validate the arguments of ``dense_stack_forward`` (see :func:`_check_stack_layers`)."""
    a = _check_stack_layers(x, kernels, biases, activations, outs, act_alphas)
    check_no_overlap(_named("outs", outs),
                     [("x", a["x"])] + _named("kernels", a["kernels"])
                     + _named("biases", a["biases"]))
    return a


def _named(name, arrays):
    return [(f"{name}[{i}]", arr) for i, arr in enumerate(arrays) if arr is not None]


def check_no_overlap(written, read):
    """Raise ValueError when a written buffer may share memory with another written
    buffer or with an input (bounds-based, like the compiled kernels' own check)."""
    for i, (wname, w) in enumerate(written):
        for oname, other in written[i + 1:] + read:
            if w.size and other.size and np.may_share_memory(w, other):
                raise ValueError(f"{wname} and {oname} overlap in memory: workspaces and "
                                 f"outputs must not share memory with each other or with "
                                 f"any input")


def check_dense_stack(x, target, kernels, biases, activations, loss, outs, deltas, dkernels,
                      dbiases, sample_weight=None, act_alphas=None, preacts=None,
                      label_smoothing=0.0, loss_scale=1.0, update=None):
    """Validate and normalise the arguments of ``dense_stack_forward_backward`` once.

    Returns a dict with ``x`` (converted to the kernels' dtype), ``labels`` (intp
    ``(n,)`` or ``None``), ``target`` (dense ``(n, k)`` or ``None``), ``w``
    (float64 ``(n,)`` or ``None``), ``codes`` and ``alphas`` (per layer, with the
    folded last activation replaced by linear), ``preacts`` (list, ``None``
    where unused), ``biases``/``dbiases`` lists, ``loss_code``, ``dtype``,
    ``label_smoothing`` and ``loss_scale`` as floats.
    """
    if loss not in STACK_LOSSES:
        raise ValueError(f"loss: expected one of {sorted(STACK_LOSSES)}, got {loss!r}")
    st = _check_stack_layers(x, kernels, biases, activations, outs, act_alphas)
    x, dt, depth, codes, alphas = st["x"], st["dtype"], st["depth"], st["codes"], st["alphas"]
    kernels, biases = st["kernels"], st["biases"]
    n, width = x.shape
    deltas = _stack_list(deltas, depth, "deltas")
    dkernels = _stack_list(dkernels, depth, "dkernels")
    dbiases = _stack_list(dbiases, depth, "dbiases")
    preacts = [None] * depth if preacts is None else _stack_list(preacts, depth, "preacts")
    folded = STACK_FOLDED_ACTIVATION.get(loss)
    if folded is not None and activations[-1] == folded:
        codes[-1], alphas[-1] = 0, 0.0
    for i in range(depth):
        units = kernels[i].shape[1]
        if biases[i] is not None:
            check_state(dbiases[i], (units,), dt, f"dbiases[{i}]")
        elif dbiases[i] is not None:
            raise ValueError(f"dbiases[{i}]: must be None when biases[{i}] is None")
        check_state(deltas[i], (n, units), dt, f"deltas[{i}]")
        check_state(dkernels[i], (width, units), dt, f"dkernels[{i}]")
        if codes[i] == ACTIVATIONS["gelu"]:
            check_state(preacts[i], (n, units), dt, f"preacts[{i}]")
        else:
            preacts[i] = None
        width = units
    k_out = width
    loss_code = STACK_LOSSES[loss]
    labels = dense = None
    t = np.asarray(target)
    if loss_code == 0:
        if t.ndim == 2 and t.shape == (n, k_out):
            dense = as_float(t, dt, "target")
        elif t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1 and k_out != 1):
            labels = as_labels(t, n, k_out, "target")
        else:
            raise ValueError(f"target: expected integer labels of shape ({n},) or "
                             f"probabilities of shape ({n}, {k_out}), got {t.shape}")
    else:
        if t.shape != (n, k_out):
            raise ValueError(f"target: expected shape ({n}, {k_out}), got {t.shape}")
        dense = as_float(t, dt, "target")
    w = sample_weights(sample_weight, n)
    ls = float(label_smoothing)
    if ls and loss_code != 0:
        raise ValueError(f"label_smoothing: only supported with softmax_cross_entropy, got "
                         f"{ls} with {loss!r}")
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"label_smoothing: expected a float in [0, 1], got {ls}")
    workspaces = (_named("outs", outs) + _named("deltas", deltas)
                  + _named("dkernels", dkernels) + _named("dbiases", dbiases)
                  + _named("preacts", preacts))
    inputs = ([("x", x)] + _named("target", [labels if labels is not None else dense])
              + ([("sample_weight", w)] if w is not None else []))
    if update is None:
        check_no_overlap(workspaces, inputs + _named("kernels", kernels)
                         + _named("biases", biases))
    else:  # the weights and the optimizer state are written too
        check_no_overlap(workspaces + check_stack_update(update, kernels, biases), inputs)
    return dict(x=x, labels=labels, target=dense, w=w, codes=codes, alphas=alphas,
                preacts=preacts, biases=biases, dbiases=dbiases, loss_code=loss_code,
                dtype=dt, label_smoothing=ls, loss_scale=float(loss_scale))


class StackUpdate(NamedTuple):
    """An optimizer step folded into :meth:`Backend.dense_stack_forward_backward`.

    ``rule`` is ``'sgd'`` (:meth:`Backend.sgd_update`) or ``'adam'``
    (:meth:`Backend.adam_update`), with the same hyperparameters; ``step`` (Adam)
    counts from 1. ``kernel_states[i]`` / ``bias_states[i]`` hold the state arrays
    of layer ``i``'s kernel and bias, shaped like them: ``()`` for plain SGD,
    ``(velocity,)`` for SGD with momentum, ``(m, v)`` for Adam (``()`` for a layer
    without bias).
    """
    rule: str
    learning_rate: float
    kernel_states: tuple
    bias_states: tuple
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    step: int = 1


#: Update rule -> the integer code the compiled kernels use.
STACK_UPDATE_RULES = {"sgd": 1, "adam": 2}


def stack_update_slots(update):
    """How many state arrays each weight carries under ``update``."""
    if update.rule == "adam":
        return 2
    return 1 if update.momentum else 0


def stack_update_hyper(update):
    """``(rule code, (lr, lr * weight_decay, momentum, nesterov, alpha, 1 - beta_1,
    1 - beta_2, epsilon))`` of a :class:`StackUpdate` as Python numbers, the form the
    compiled kernels take (``alpha``: :func:`adam_step_size`; unused entries 0).
    Raises ``TypeError``/``ValueError`` naming the field that is wrong."""
    if not isinstance(update, StackUpdate):
        raise TypeError(f"update: expected a StackUpdate, got {type(update).__name__}")
    if update.rule not in STACK_UPDATE_RULES:
        raise ValueError(f"update.rule: expected one of {sorted(STACK_UPDATE_RULES)}, got "
                         f"{update.rule!r}")
    lr = float(update.learning_rate)
    if not lr >= 0.0:
        raise ValueError(f"update.learning_rate: expected >= 0, got {update.learning_rate}")
    decay = lr * float(update.weight_decay) if update.weight_decay else 0.0
    if update.rule == "sgd":
        mom = float(update.momentum)
        if not 0.0 <= mom <= 1.0:
            raise ValueError(f"update.momentum: expected a float in [0, 1], got "
                             f"{update.momentum}")
        return STACK_UPDATE_RULES["sgd"], (lr, decay, mom, bool(update.nesterov), 0.0, 0.0,
                                           0.0, 0.0)
    step = int(update.step)
    if step < 1:
        raise ValueError(f"update.step: counts from 1, got {update.step}")
    b1, b2 = float(update.beta_1), float(update.beta_2)
    return STACK_UPDATE_RULES["adam"], (lr, decay, 0.0, False,
                                        adam_step_size(lr, b1, b2, step), 1.0 - b1, 1.0 - b2,
                                        float(update.epsilon))


def check_stack_update(update, kernels, biases):
    """Validate ``update`` against the (already checked) layers; returns the named
    list of arrays it writes (weights and states) for the overlap check."""
    stack_update_hyper(update)
    depth = len(kernels)
    ks = _stack_list(update.kernel_states, depth, "update.kernel_states")
    bs = _stack_list(update.bias_states, depth, "update.bias_states")
    slots = stack_update_slots(update)
    written = []
    for i in range(depth):
        for what, w, states in (("kernel", kernels[i], ks[i]), ("bias", biases[i], bs[i])):
            states = () if states is None else states
            if not isinstance(states, (list, tuple)):
                raise TypeError(f"update.{what}_states[{i}]: expected a tuple of arrays, got "
                                f"{type(states).__name__}")
            want = 0 if w is None else slots
            if len(states) != want:
                raise ValueError(f"update.{what}_states[{i}]: expected {want} state arrays "
                                 f"for rule {update.rule!r}, got {len(states)}")
            if w is None:
                continue
            check_state(w, w.shape, w.dtype, f"{what}s[{i}]")
            written.append((f"{what}s[{i}]", w))
            for j, st in enumerate(states):
                name = f"update.{what}_states[{i}][{j}]"
                check_state(st, w.shape, w.dtype, name)
                written.append((name, st))
    return written


def _apply_stack_update(be, update, kernels, biases, dkernels, dbiases):
    """The reference optimizer step of a Dense stack: the backend's own single ops."""
    for i in range(len(kernels)):
        for w, g, states in ((kernels[i], dkernels[i], update.kernel_states[i]),
                             (biases[i], dbiases[i], update.bias_states[i])):
            if w is None:
                continue
            if update.rule == "sgd":
                be.sgd_update(w, g, states[0] if states else None,
                              learning_rate=update.learning_rate, momentum=update.momentum,
                              nesterov=update.nesterov, weight_decay=update.weight_decay)
            else:
                be.adam_update(w, g, states[0], states[1], int(update.step),
                               learning_rate=update.learning_rate, beta_1=update.beta_1,
                               beta_2=update.beta_2, epsilon=update.epsilon,
                               weight_decay=update.weight_decay)


_STACK_LOSS_NAMES = {v: k for k, v in STACK_LOSSES.items()}
_ACTIVATION_NAMES = {v: k for k, v in ACTIVATIONS.items()}


def _dense_stack_reference(be, x, target, kernels, biases, activations, loss, outs, deltas,
                           dkernels, dbiases, sample_weight, act_alphas, preacts,
                           label_smoothing, loss_scale, update=None):
    """The fused step composed from ``be``'s single ops (the oracle)."""
    a = check_dense_stack(x, target, kernels, biases, activations, loss, outs, deltas,
                          dkernels, dbiases, sample_weight, act_alphas, preacts,
                          label_smoothing, loss_scale, update)
    x, codes, alphas, pre = a["x"], a["codes"], a["alphas"], a["preacts"]
    biases, dbiases = a["biases"], a["dbiases"]
    depth = len(kernels)
    names = [_ACTIVATION_NAMES[c] for c in codes]
    h = x
    for i in range(depth):
        if names[i] == "gelu":
            be.gemm(h, kernels[i], out=pre[i], bias=biases[i])
            be.activation_forward(pre[i], "gelu", out=outs[i])
        else:
            be.gemm(h, kernels[i], out=outs[i], bias=biases[i], activation=names[i],
                    act_alpha=alphas[i])
        h = outs[i]
    t = a["labels"] if a["labels"] is not None else a["target"]
    lossfn = getattr(be, loss)
    if a["loss_code"] == 0:
        value, _ = lossfn(outs[-1], t, grad=deltas[-1], sample_weight=a["w"],
                          label_smoothing=a["label_smoothing"])
    else:
        value, _ = lossfn(outs[-1], t, grad=deltas[-1], sample_weight=a["w"])
    if a["loss_scale"] != 1.0:
        value *= a["loss_scale"]
        be.scale_(deltas[-1], a["loss_scale"])
    for i in range(depth - 1, -1, -1):
        if names[i] != "linear":
            be.activation_backward(deltas[i], outs[i], names[i], x=pre[i], out=deltas[i],
                                   alpha=alphas[i])
        be.gemm(x if i == 0 else outs[i - 1], deltas[i], out=dkernels[i], trans_a=True)
        if biases[i] is not None:
            be.bias_grad(deltas[i], out=dbiases[i])
        if i > 0:
            be.gemm(deltas[i], kernels[i], out=deltas[i - 1], trans_b=True)
    if update is not None and math.isfinite(value):
        _apply_stack_update(be, update, kernels, biases, dkernels, a["dbiases"])
    return float(value)


def _dense_forward_reference(be, x, kernels, biases, activations, outs, act_alphas):
    """The inference pass composed from ``be``'s single ops (the oracle)."""
    a = check_dense_forward(x, kernels, biases, activations, outs, act_alphas)
    h = a["x"]
    for i, k in enumerate(a["kernels"]):
        be.gemm(h, k, out=outs[i], bias=a["biases"][i],
                activation=_ACTIVATION_NAMES[a["codes"][i]], act_alpha=a["alphas"][i])
        h = outs[i]
    return outs[-1]
