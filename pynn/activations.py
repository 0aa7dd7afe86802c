"""Activation functions by name, as in ``keras.activations``.

Layers store an activation as its canonical name (a key of
:data:`pynn.backends.base.ACTIVATIONS`) so compiled kernels can pick it by integer
code. :func:`get` accepts what Keras accepts: ``None`` (linear), a name, one of
the functions below, or a serialized config.

The functions themselves run on the active backend and take/return NumPy
arrays, so ``pynn.activations.relu(x)`` works on its own like
``keras.activations.relu``.
"""
from __future__ import annotations

import numpy as np

from .backends import get_backend
from .backends.activation_codes import (ACTIVATION_DEFAULT_ALPHA, ACTIVATIONS,
                                        ALIASES as _KERAS_ALIASES)

__all__ = ["get", "serialize", "deserialize", "canonical_name", "linear", "relu", "leaky_relu",
           "elu", "sigmoid", "tanh", "gelu", "softplus", "softmax", "selu", "silu", "swish",
           "exponential", "hard_sigmoid", "hard_silu", "hard_swish", "softsign", "relu6",
           "mish", "celu", "squareplus", "tanh_shrink", "log_softmax", "sparsemax", "glu"]

#: Keras spellings accepted besides the canonical names.
ALIASES = {None: "linear", "None": "linear", **_KERAS_ALIASES}


def _float_array(x):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x


def _apply(name, x, alpha=None):
    x = _float_array(x)
    be = get_backend()
    return be.to_numpy(be.activation_forward(np.ascontiguousarray(x), name, alpha=alpha))


def _along_axis(name, x, axis):
    """Row-wise activation ``name`` along ``axis`` (any int, as Keras)."""
    x = _float_array(x)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected an array of rank >= 1, got a scalar")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
            or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{name}: axis must be an integer in [{-x.ndim}, {x.ndim}) for an "
                         f"input of shape {x.shape}, got axis={axis!r}")
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    flat = moved.reshape(-1, moved.shape[-1])
    be = get_backend()
    y = be.to_numpy(be.activation_forward(flat, name))
    return np.moveaxis(y.reshape(moved.shape[:-1] + (y.shape[-1],)), -1, axis)


def linear(x):
    """Identity: ``linear(x) = x``."""
    return np.asarray(x)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit ``max(x, 0)``; with Keras's arguments, ``x`` above
    ``threshold`` (clipped at ``max_value``), ``negative_slope * (x - threshold)`` below
    it (Keras's ``ReLU.static_call``, operation for operation)."""
    if negative_slope == 0 and threshold == 0 and max_value is None:
        return _apply("relu", x)
    if negative_slope == 0 and threshold == 0 and max_value == 6:
        return _apply("relu6", x)
    x = _float_array(x)
    dt = x.dtype.type
    negative_part = 1
    if negative_slope != 0:
        if max_value is None and threshold == 0:
            return _apply("leaky_relu", x, negative_slope)
        negative_part = np.maximum(-x + dt(threshold), 0) if threshold != 0 \
            else np.maximum(-x, 0)
    clip_max = max_value is not None
    if threshold != 0:
        y = np.where(x > dt(threshold), x, dt(0))
    elif max_value == 6:
        y = np.minimum(np.maximum(x, 0), dt(6))
        clip_max = False
    else:
        y = np.maximum(x, dt(0))
    if clip_max:
        y = np.clip(y, dt(0), dt(max_value))
    if negative_slope != 0:
        y = y - dt(negative_slope) * negative_part
    return y.astype(x.dtype, copy=False)


def leaky_relu(x, negative_slope=ACTIVATION_DEFAULT_ALPHA["leaky_relu"]):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (Keras default 0.2)."""
    return _apply("leaky_relu", x, negative_slope)


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return _apply("relu6", x)


def elu(x, alpha=ACTIVATION_DEFAULT_ALPHA["elu"]):
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    return _apply("elu", x, alpha)


def selu(x):
    """Scaled ELU: ``scale * elu(x, alpha)`` with Keras's ``alpha = 1.67326324...`` and
    ``scale = 1.05070098...``."""
    return _apply("selu", x)


def celu(x, alpha=ACTIVATION_DEFAULT_ALPHA["celu"]):
    """Continuously differentiable ELU: ``x`` for ``x >= 0``, ``alpha * (exp(x / alpha) -
    1)`` otherwise (``alpha != 0``, default 1)."""
    return _apply("celu", x, alpha)


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``."""
    return _apply("sigmoid", x)


def hard_sigmoid(x):
    """``clip(x / 6 + 0.5, 0, 1)``."""
    return _apply("hard_sigmoid", x)


def silu(x):
    """Swish / SiLU: ``x * sigmoid(x)``."""
    return _apply("silu", x)


def hard_silu(x):
    """Hard SiLU / hard swish: ``x * hard_sigmoid(x)``."""
    return _apply("hard_silu", x)


swish = silu
hard_swish = hard_silu


def tanh(x):
    """Hyperbolic tangent."""
    return _apply("tanh", x)


def tanh_shrink(x):
    """``x - tanh(x)``."""
    return _apply("tanh_shrink", x)


def gelu(x, approximate=False):
    """Gaussian error linear unit ``x * Phi(x)``: the exact erf form, or with
    ``approximate=True`` Keras's tanh form ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715
    x^3)))`` (computed in NumPy: a layer's ``'gelu'`` is the exact form, as Keras's)."""
    if not approximate:
        return _apply("gelu", x)
    x = _float_array(x)
    dt = x.dtype.type
    with np.errstate(over="ignore"):
        inner = dt(np.sqrt(2 / np.pi)) * (x + dt(0.044715) * (x * x * x))
        return x * (dt(0.5) * (dt(1) + np.tanh(inner)))


def softplus(x):
    """``log(1 + exp(x))``, stable for large magnitudes."""
    return _apply("softplus", x)


def softsign(x):
    """``x / (1 + |x|)``."""
    return _apply("softsign", x)


def exponential(x):
    """``exp(x)``."""
    return _apply("exponential", x)


def mish(x):
    """``x * tanh(softplus(x))``."""
    return _apply("mish", x)


def squareplus(x, b=ACTIVATION_DEFAULT_ALPHA["squareplus"]):
    """``(x + sqrt(x^2 + b)) / 2`` (``b >= 0``, default 4)."""
    return _apply("squareplus", x, b)


def softmax(x, axis=-1):
    """Softmax along ``axis`` (default the last)."""
    return _along_axis("softmax", x, axis)


def log_softmax(x, axis=-1):
    """Log-softmax along ``axis``: ``x - max - log(sum(exp(x - max)))``."""
    return _along_axis("log_softmax", x, axis)


def sparsemax(x, axis=-1):
    """Sparsemax along ``axis``: the Euclidean projection onto the probability simplex,
    ``max(x - tau, 0)``."""
    return _along_axis("sparsemax", x, axis)


def glu(x, axis=-1):
    """Gated linear unit: ``a * sigmoid(b)`` with ``a, b`` the two halves of ``x`` along
    ``axis`` (its size must be even; the output is half as wide)."""
    return _along_axis("glu", x, axis)


_FUNCTIONS = {f.__name__: f for f in (
    linear, relu, leaky_relu, elu, sigmoid, tanh, gelu, softplus, softmax, selu, silu,
    exponential, hard_sigmoid, hard_silu, softsign, relu6, mish, log_softmax, celu, glu,
    sparsemax, squareplus, tanh_shrink)}
assert set(_FUNCTIONS) == set(ACTIVATIONS)


def _valid_names():
    return sorted(set(ACTIVATIONS) | set(_KERAS_ALIASES))


def canonical_name(identifier):
    """The canonical activation name for any identifier :func:`get` accepts."""
    if isinstance(identifier, dict):
        identifier = identifier.get("config", identifier.get("name"))
        if isinstance(identifier, dict):
            identifier = identifier.get("name")
    if callable(identifier):
        name = getattr(identifier, "__name__", None)
        if _FUNCTIONS.get(name) is identifier:
            return name
        raise ValueError(
            f"Unsupported activation function {identifier!r}: pynn layers take one of "
            f"{_valid_names()} (by name or as pynn.activations.<name>)")
    if isinstance(identifier, str) or identifier is None:
        name = ALIASES.get(identifier, identifier)
        if name in ACTIVATIONS:
            return name
    raise ValueError(
        f"Unknown activation {identifier!r}; expected None or one of {_valid_names()}")


def get(identifier):
    """The activation function for ``identifier`` (``None`` -> :func:`linear`).

    Raises ``ValueError`` listing the valid names for anything unknown.
    """
    return _FUNCTIONS[canonical_name(identifier)]


def serialize(activation):
    """The name of ``activation`` (what layer configs store)."""
    return canonical_name(activation)


def deserialize(config):
    """Inverse of :func:`serialize`."""
    return get(config)
