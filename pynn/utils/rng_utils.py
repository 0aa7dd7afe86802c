"""``set_random_seed``: one seed for everything random (Keras's ``keras.utils``)."""
from __future__ import annotations

import random

import numpy as np

from .. import _config

__all__ = ["set_random_seed"]


def set_random_seed(seed):
    """Seed Python's ``random``, NumPy's global generator and pynn (as
    :func:`pynn.set_seed`: the Generators models and layers derive for initialisers,
    shuffling, dropout and noise), as ``keras.utils.set_random_seed`` does for Keras.

    ``seed`` must be an int (else ``ValueError``, as in Keras); NumPy's global seed is
    ``seed`` itself, so it must lie in ``[0, 2**32)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r} "
                         f"(of type {type(seed)})")
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"set_random_seed: seed must lie in [0, 2**32) (NumPy's global seed "
                         f"range), got {seed}")
    random.seed(seed)
    _config.set_seed(seed)
    np.random.seed(seed)
