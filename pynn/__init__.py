"""pynn: fast CPU neural networks with a Keras-style API.

Compiled kernels (Cython in ``csrc/``, Numba JIT) sit behind one backend
interface whose plain-NumPy implementation is the reference and fallback::

    import pynn
    from pynn.models import Sequential
    from pynn.layers import Dense

``import pynn`` compiles nothing and imports neither Numba nor matplotlib.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import (activations, backends, callbacks, datasets, distribution, export, initializers,
               layers, losses, metrics, models, ops, optimizers, preprocessing, regularizers, saving,
               trainers, utils)
from ._config import floatx, set_floatx, set_seed
from .backends import get_backend, set_backend, use_backend
from .layers import Input, clear_session
from .autodiff import GradientTape
from .models import Model, Sequential, load_model

__all__ = [
    "__version__", "activations", "backends", "callbacks", "datasets", "initializers",
    "layers", "losses", "metrics", "models", "ops", "optimizers", "regularizers", "saving",
    "plot", "floatx", "set_floatx", "set_seed", "get_backend", "set_backend", "use_backend",
    "clear_session", "Input", "Model", "Sequential", "load_model", "trainers", "utils",
    "preprocessing", "export", "GradientTape", "distribution",
]


def __getattr__(name):
    # pynn.plot needs matplotlib (the `plot` extra): import it only when asked for.
    if name == "plot":
        import importlib
        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'pynn' has no attribute {name!r}")
