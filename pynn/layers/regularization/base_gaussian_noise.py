"""What ``GaussianNoise`` and ``GaussianDropout`` share: a ``seed``, the Generator the
noise is drawn from, and standard-normal noise in a workspace."""
from __future__ import annotations

import numbers

import numpy as np

from ... import _config
from ..layer import Layer

__all__ = ["BaseGaussianNoise", "unit_argument"]


def unit_argument(layer_cls, name, arg, value, high_open=False):
    """``value`` as a float in [0, 1] (``[0, 1)`` with ``high_open``), or Keras's
    ``ValueError`` naming the argument."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    v = float(value) if ok else None
    if not ok or not (0.0 <= v < 1.0 if high_open else 0.0 <= v <= 1.0):
        rng = "[0, 1)" if high_open else "between 0 and 1"
        raise ValueError(f"Invalid value received for argument `{arg}` of {layer_cls} "
                         f"{name!r}. Expected a float value {rng}. Received: {arg}={value!r}")
    return v


class BaseGaussianNoise(Layer):
    """A layer that is the identity at inference and draws Gaussian noise in training.

    The noise comes from this layer's own ``numpy.random.Generator`` when ``seed`` is
    given, else from the model's Generator (so :func:`pynn.set_seed` makes runs
    repeatable), a fresh array of draws each training call.
    """

    _supports_masking = True  # masks pass through (Keras)

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"{type(self).__name__} {self.name!r}: seed must be an int, got "
                             f"{seed!r}")
        self.seed = None if seed is None else int(seed)
        self._seed_rng = None if seed is None else np.random.default_rng(self.seed)

    def _generator(self):
        rng = self._seed_rng or self._rng
        if rng is None:
            rng = self._rng = _config.make_rng()
        return rng

    def _standard_normal(self, ctx, shape):
        """Standard-normal draws of ``shape`` in the layer's dtype (a host workspace)."""
        z = ctx.buffer("noise_host", shape, np.dtype(self.dtype)) \
            if self.backend.host_memory else np.empty(shape, np.dtype(self.dtype))
        self._generator().standard_normal(out=z, dtype=z.dtype)
        return z

    def _on_backend(self, ctx, a):
        """Host array ``a`` as an array of the layer's backend."""
        be = self.backend
        return a if be.host_memory else be.asarray(a)

    def get_config(self):
        cfg = super().get_config()
        cfg["seed"] = self.seed
        return cfg
