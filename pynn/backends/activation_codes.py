"""Activation names and their integer codes, shared by every backend and kernel.

Formulas and defaults are Keras 3's (``keras/src/activations/activations.py`` and the
backends' ``nn.py``). Three kinds:

* elementwise ones (codes 0-7 and 9-19): every backend has compiled kernels, and
  ``gemm``, the convolutions and the fused Dense stack take them as an epilogue;
* ``softmax`` (8): row-wise along the last axis, compiled everywhere too;
* :data:`REFERENCE_ONLY` (``log_softmax``, ``sparsemax``, ``glu``): row-wise along
  the last axis, computed by the reference backend's NumPy code on every backend
  (``log_softmax``'s forward uses the backend's compiled ``log_softmax``). They are
  never a kernel epilogue: a layer runs its op ``'linear'`` and then
  ``activation_forward``.
"""
from __future__ import annotations

__all__ = ["ACTIVATIONS", "ALIASES", "ACTIVATION_DEFAULT_ALPHA", "NEEDS_INPUT_FOR_BACKWARD",
           "REFERENCE_ONLY", "UNFUSED", "EPILOGUE_ACTIVATIONS", "ELEMENTWISE", "SELU_ALPHA",
           "SELU_SCALE", "activation_code",
           "activation_output_width"]

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
    "selu": 9,
    "silu": 10,
    "exponential": 11,
    "hard_sigmoid": 12,
    "hard_silu": 13,
    "softsign": 14,
    "relu6": 15,
    "mish": 16,
    "celu": 17,
    "squareplus": 18,
    "tanh_shrink": 19,
    "log_softmax": 20,
    "sparsemax": 21,
    "glu": 22,
}

#: Keras's other spellings (``keras.activations.ALL_OBJECTS_DICT``) -> canonical name.
#: Keras serializes an alias under the function's own name (``swish`` -> ``'silu'``).
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}

#: Default extra parameter per activation: leaky ReLU's negative slope, ELU's and
#: CELU's alpha, Squareplus's ``b`` (Keras's defaults).
ACTIVATION_DEFAULT_ALPHA = {"leaky_relu": 0.2, "elu": 1.0, "celu": 1.0, "squareplus": 4.0}

#: SELU's constants (Keras's ``selu``: ``scale * elu(x, alpha)``).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

#: Activations whose derivative cannot be written from the forward output alone:
#: their backward reads the pre-activation ``x``.
NEEDS_INPUT_FOR_BACKWARD = frozenset({"gelu", "silu", "hard_silu", "mish", "tanh_shrink",
                                      "glu"})

#: Row-wise activations with no compiled kernels (see the module docstring).
REFERENCE_ONLY = frozenset({"log_softmax", "sparsemax", "glu"})

#: Activations ``gemm`` and the fused Dense stack take as an epilogue (all but
#: :data:`REFERENCE_ONLY`), in code order; :data:`ELEMENTWISE`: those without softmax.
EPILOGUE_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name not in REFERENCE_ONLY)
ELEMENTWISE = tuple(name for name in EPILOGUE_ACTIVATIONS if name != "softmax")

#: Activations that are never a kernel epilogue of a convolution (the convolution ops
#: refuse them): a layer runs the op ``'linear'`` and the activation ops after it.
UNFUSED = NEEDS_INPUT_FOR_BACKWARD | REFERENCE_ONLY


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


def activation_output_width(name, width, where="activation"):
    """The last-axis width of ``name``'s output for an input of last-axis ``width``:
    ``width`` itself, except ``glu``, which halves it (an odd width raises, naming
    ``where``)."""
    if name != "glu":
        return width
    if width is None:
        return None
    if width % 2:
        raise ValueError(f"{where}: glu splits the last axis into two halves, so its size "
                         f"must be even; got {width}")
    return width // 2
