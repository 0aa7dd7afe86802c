"""Activation names and their integer codes, shared by every backend and kernel."""
from __future__ import annotations

__all__ = ["ACTIVATIONS", "ACTIVATION_DEFAULT_ALPHA", "NEEDS_INPUT_FOR_BACKWARD",
           "activation_code"]

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

#: Activations whose derivative cannot be written from the forward output alone.
NEEDS_INPUT_FOR_BACKWARD = frozenset({"gelu"})


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
