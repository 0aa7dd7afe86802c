"""``pynn.ops``: the fast kernels as plain functions over NumPy arrays.

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

The functions below carry the docstrings of :class:`pynn.backends.Backend`,
where shapes, dtypes and conventions are documented. An ``out=`` buffer may be an
input itself only where the op says so (``relu(x, out=x)``, ``softmax(x, out=x)``);
one that overlaps an input otherwise raises ``ValueError`` naming both, as does a
hyper-parameter that is not finite or out of range.
"""
from __future__ import annotations

import functools
import inspect

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
                        "softplus"]


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


def _act(act_name):
    def f(x, out=None, alpha=None):
        return get_backend().activation_forward(x, act_name, out=out, alpha=alpha)
    f.__name__ = f.__qualname__ = act_name
    f.__doc__ = f"``{act_name}(x)`` elementwise on the active backend (``out`` may be ``x``)."
    return f


relu = _act("relu")
sigmoid = _act("sigmoid")
tanh = _act("tanh")
leaky_relu = _act("leaky_relu")
elu = _act("elu")
gelu = _act("gelu")
softplus = _act("softplus")
