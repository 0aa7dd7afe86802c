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
from .backends.activation_codes import ACTIVATION_DEFAULT_ALPHA, ACTIVATIONS

__all__ = ["get", "serialize", "deserialize", "canonical_name", "linear", "relu", "leaky_relu",
           "elu", "sigmoid", "tanh", "gelu", "softplus", "softmax"]

#: Keras spellings accepted besides the canonical names.
ALIASES = {None: "linear", "None": "linear"}


def _apply(name, x, alpha=None):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    be = get_backend()
    if name == "softmax" and x.ndim != 2:
        flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1))
        return be.to_numpy(be.activation_forward(flat, name)).reshape(x.shape)
    return be.to_numpy(be.activation_forward(np.ascontiguousarray(x), name, alpha=alpha))


def linear(x):
    """Identity: ``linear(x) = x``."""
    return np.asarray(x)


def relu(x):
    """Rectified linear unit ``max(x, 0)``."""
    return _apply("relu", x)


def leaky_relu(x, negative_slope=ACTIVATION_DEFAULT_ALPHA["leaky_relu"]):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (Keras default 0.2)."""
    return _apply("leaky_relu", x, negative_slope)


def elu(x, alpha=ACTIVATION_DEFAULT_ALPHA["elu"]):
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    return _apply("elu", x, alpha)


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``."""
    return _apply("sigmoid", x)


def tanh(x):
    """Hyperbolic tangent."""
    return _apply("tanh", x)


def gelu(x, approximate=False):
    """Gaussian error linear unit ``x * Phi(x)`` (exact erf form)."""
    if approximate:
        raise ValueError("gelu: only approximate=False (the exact erf form) is supported")
    return _apply("gelu", x)


def softplus(x):
    """``log(1 + exp(x))``, stable for large magnitudes."""
    return _apply("softplus", x)


def softmax(x, axis=-1):
    """Softmax along the last axis."""
    if axis not in (-1, np.ndim(x) - 1):
        raise ValueError(f"softmax: only axis=-1 is supported, got axis={axis}")
    return _apply("softmax", x)


_FUNCTIONS = {f.__name__: f for f in (linear, relu, leaky_relu, elu, sigmoid, tanh, gelu,
                                      softplus, softmax)}
assert set(_FUNCTIONS) == set(ACTIVATIONS)


def _valid_names():
    return sorted(ACTIVATIONS)


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
