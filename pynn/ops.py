"""``pynn.ops``: the fast kernels as plain functions over NumPy arrays, and
``keras.ops``'s NumPy-like functions, differentiable inside custom ``call()`` code.

A drop-in for from-scratch NumPy networks: every function runs on the active
backend (:func:`pynn.set_backend`), takes and returns ``numpy.ndarray``, and
accepts ``out=`` buffers so a training loop can reuse memory. Replace lines one
at a time::

    z = np.dot(X, W) + b; a = np.maximum(0, z)     # NumPy
    a = ops.dense(X, W, b, activation="relu")       # pynn, one fused call

    dz = np.dot(dz, W.T) * (a > 0)                  # NumPy
    dz = ops.gemm(dz, W, trans_b=True); ops.activation_backward(dz, a, "relu", out=dz)

    dW = a_prev.T @ dz; db = dz.sum(0)              # NumPy
    dW = ops.gemm(a_prev, dz, trans_a=True); db = ops.bias_grad(dz)

    W -= lr * dW                                    # NumPy
    ops.sgd_update(W, dW, learning_rate=lr)         # in place

Besides the fused kernels, every ``keras.ops`` function custom layers, losses and
metrics use is here with Keras's name and arguments (``matmul``, ``mean``, ``square``,
``one_hot``, ``where``, ``reshape``, ``concatenate``...; :mod:`pynn.autodiff.numpy_ops`).
On arrays they return arrays; on the tensors a custom ``call()`` receives they record
gradients. The activations and ``softmax``/``log_softmax`` do both: fused kernels on
arrays, recorded ops on tensors (``softmax`` and ``log_softmax`` also take Keras's
``axis``).

The fused functions below carry the docstrings of :class:`pynn.backends.Backend`,
where shapes, dtypes and conventions are documented. An ``out=`` buffer may be an
input itself only where the op says so (``relu(x, out=x)``, ``softmax(x, out=x)``);
one that overlaps an input otherwise raises ``ValueError`` naming both, as does a
hyper-parameter that is not finite or out of range.
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from .autodiff import numpy_ops as _np_ops
from .autodiff.tape import Tensor as _Tensor
from .autodiff.tape import as_input as _as_input
from .backends import get_backend
from .backends.base import REFERENCE_ONLY, Backend

_OPS = [
    "gemm", "activation_forward", "activation_backward", "softmax", "log_softmax",
    "softmax_cross_entropy", "categorical_cross_entropy", "sigmoid_binary_cross_entropy",
    "binary_cross_entropy", "mean_squared_error", "mean_absolute_error", "bias_grad",
    "dropout_forward", "dropout_backward", "batchnorm_forward", "batchnorm_backward",
    "sgd_update", "adam_update", "rmsprop_update", "adagrad_update",
]

__all__ = list(_OPS) + ["dense", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu",
                        "softplus"] + [n for n in _np_ops.__all__ if n not in _OPS]

#: Keras's keywords that fused ops shared with keras.ops take after their own
KERAS_EXTRA_KEYWORDS = {"softmax": ["axis"], "log_softmax": ["axis"]}


def _tracked(x):
    """A tape tensor or a model's symbolic tensor: the op is recorded, not run fused."""
    return isinstance(_as_input(x), _Tensor) or _np_ops._is_symbolic(x)


def _make(name):
    method = getattr(Backend, name)

    @functools.wraps(method)
    def op(*args, **kwargs):
        return getattr(get_backend(), name)(*args, **kwargs)

    sig = inspect.signature(method)
    op.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
    op.__qualname__ = name
    op.__module__ = __name__
    return op


for _name in _np_ops.__all__:  # keras.ops's names (the fused ones are replaced below)
    globals()[_name] = getattr(_np_ops, _name)
for _name in _OPS:
    globals()[_name] = _make(_name)
del _name


def dense(x, kernel, bias=None, activation="linear", out=None, alpha=None):
    """``activation(x @ kernel + bias)`` in one fused call; kernel is ``(n_in, n_out)``.
    The row-wise reference-only activations (``log_softmax``, ``sparsemax``, ``glu``)
    have no GEMM epilogue: they run after the product (``glu`` halves the width)."""
    be = get_backend()
    if activation in REFERENCE_ONLY:
        z = be.gemm(x, kernel, bias=bias)
        return be.activation_forward(z, activation, out=out, alpha=alpha)
    return be.gemm(x, kernel, out=out, bias=bias, activation=activation, act_alpha=alpha)


def _act(act_name, keras_kw=None):
    def f(x, out=None, alpha=None, **kwargs):
        if keras_kw is not None and keras_kw in kwargs:
            alpha = kwargs.pop(keras_kw)
        approximate = kwargs.pop("approximate", False) if act_name == "gelu" else False
        if kwargs:
            raise TypeError(f"ops.{act_name}() got unexpected arguments {sorted(kwargs)}")
        if _tracked(x) or approximate:
            fn = getattr(_np_ops, act_name)
            if act_name == "gelu":
                return fn(x, approximate=approximate)
            return fn(x) if alpha is None else fn(x, alpha)
        return get_backend().activation_forward(x, act_name, out=out, alpha=alpha)
    f.__name__ = f.__qualname__ = act_name
    f.__doc__ = (f"``{act_name}(x)`` elementwise: a fused kernel on arrays (``out`` may be "
                 f"``x``), a recorded op on a custom call()'s tensors.")
    return f


relu = _act("relu")
sigmoid = _act("sigmoid")
tanh = _act("tanh")
leaky_relu = _act("leaky_relu", "negative_slope")
elu = _act("elu")
gelu = _act("gelu")
softplus = _act("softplus")


def softmax(x, out=None, axis=-1):
    """Softmax along ``axis`` (Keras's default: the last): the fused kernel on a 2-D
    array over its last axis, else NumPy; a recorded op on a custom call()'s tensors."""
    if not _tracked(x) and np.ndim(x) == 2 and axis in (-1, 1):
        return get_backend().softmax(x, out=out)
    y = _np_ops.softmax(x, axis=axis)
    if out is not None:
        out[...] = y
        return out
    return y


def log_softmax(x, out=None, axis=-1):
    """Log-softmax along ``axis``, as :func:`softmax` chooses its path."""
    if not _tracked(x) and np.ndim(x) == 2 and axis in (-1, 1):
        return get_backend().log_softmax(x, out=out)
    y = _np_ops.log_softmax(x, axis=axis)
    if out is not None:
        out[...] = y
        return out
    return y


softmax.__module__ = log_softmax.__module__ = __name__
