"""pynn: fast CPU neural networks with a Keras-style API.

Compiled kernels (Cython in ``csrc/``, Numba JIT) sit behind one backend
interface whose plain-NumPy implementation is the reference and fallback.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import backends
from ._config import floatx, set_floatx, set_seed
from .backends import get_backend, set_backend, use_backend

__all__ = ["backends", "floatx", "set_floatx", "set_seed", "get_backend", "set_backend",
           "use_backend", "__version__"]
