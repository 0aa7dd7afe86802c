"""The only process-wide settings: the default float type and the global seed."""
from __future__ import annotations

import numpy as np

_floatx = np.dtype(np.float32)
_seed = None
_seed_counter = 0


def floatx():
    """The default float dtype name for new models (``'float32'``)."""
    return _floatx.name


def set_floatx(dtype):
    """Set the default float dtype: ``'float32'`` or ``'float64'``."""
    global _floatx
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"set_floatx: expected 'float32' or 'float64', got {dtype!r}")
    _floatx = dt


def set_seed(seed):
    """Seed everything pynn draws at random: initialisers, shuffling, dropout, splits.

    Models created afterwards derive their own ``numpy.random.Generator`` from
    this seed (and a counter, so two models built in a row differ), so one seed
    gives bit-identical training runs.
    """
    global _seed, _seed_counter
    _seed = None if seed is None else int(seed)
    _seed_counter = 0
    np.random.seed(None if seed is None else int(seed) % (2**32))


def make_rng(seed=None):
    """A new ``numpy.random.Generator``: from ``seed``, else from the global seed."""
    global _seed_counter
    if seed is not None:
        return np.random.default_rng(seed)
    if _seed is None:
        return np.random.default_rng()
    _seed_counter += 1
    return np.random.default_rng([_seed, _seed_counter])
