"""``Dropout``: inverted dropout."""
from __future__ import annotations

import numpy as np

from ... import _config
from ..layer import Layer, shape_tuple

__all__ = ["Dropout"]


class Dropout(Layer):
    """Inverted dropout: during training zero a fraction ``rate`` of the inputs and scale
    the rest by ``1 / (1 - rate)``; the identity at inference.

    Each training step draws a fresh seed for the backend's counter-based mask
    generator from the model's ``numpy.random.Generator`` (or from this layer's
    own Generator when ``seed`` is given), so runs under :func:`pynn.set_seed` are
    bit-identical on every backend.
    """

    _supports_masking = True  # masks pass through (Keras)

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise ValueError(f"Invalid value received for argument `rate` of Dropout "
                             f"{self.name!r}. Expected a float value in [0, 1). "
                             f"Received: rate={rate!r}") from None
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Invalid value received for argument `rate` of Dropout "
                             f"{self.name!r}. Expected a float value in [0, 1). "
                             f"Received: rate={rate!r}")
        self.rate = rate
        self.noise_shape = shape_tuple(noise_shape, f"Dropout {self.name!r}: noise_shape")
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"Dropout {self.name!r}: seed must be an int, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._seed_rng = None if seed is None else np.random.default_rng(self.seed)

    def _next_seed(self):
        rng = self._seed_rng or self._rng
        if rng is None:
            rng = self._rng = _config.make_rng()
        return int(rng.integers(0, 2**63 - 1, dtype=np.int64))

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return tuple(shape)
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"Dropout {self.name!r}: noise_shape {self.noise_shape} must have "
                             f"the rank of the inputs {tuple(shape)}")
        ms = tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))
        for n, s in zip(ms, shape):
            if n not in (1, s):
                raise ValueError(f"Dropout {self.name!r}: noise_shape {self.noise_shape} does "
                                 f"not broadcast to the input shape {tuple(shape)}")
        return ms

    def forward(self, ctx, x, training=False):
        if not training or self.rate == 0.0:
            ctx.saved = None
            return x
        be = self.backend
        ms = self._mask_shape(x.shape)
        y = ctx.buffer("y", x.shape)
        if ms == tuple(x.shape):
            _, mask = be.dropout_forward(x, self.rate, self._next_seed(), out=y,
                                         mask=ctx.buffer("mask", x.shape))
        else:
            # broadcast mask (noise_shape): draw the small mask, multiply on the host
            if not be.host_memory:
                raise NotImplementedError(f"Dropout {self.name!r}: noise_shape is supported "
                                          f"on host-memory backends only (not {be.name!r})")
            ones = ctx.buffer("ones", ms)
            ones.fill(1.0)
            _, mask = be.dropout_forward(ones, self.rate, self._next_seed(),
                                         out=ctx.buffer("small", ms),
                                         mask=ctx.buffer("mask", ms))
            np.multiply(x, mask, out=y)
        ctx.saved = mask
        return y

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        mask = ctx.saved
        if mask is None:
            return dy
        dx = ctx.buffer("dx", dy.shape)
        if mask.shape == dy.shape:
            return self.backend.dropout_backward(dy, mask, out=dx)
        np.multiply(dy, mask, out=dx)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate,
                   noise_shape=None if self.noise_shape is None else list(self.noise_shape),
                   seed=self.seed)
        return cfg
