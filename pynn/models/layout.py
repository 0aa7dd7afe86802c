"""The flat parameter layout of a model: every weight a view into one buffer.

All trainable weights of a built model live in ONE flat parameter buffer with one
matching flat gradient buffer (non-trainable ones, such as batch-norm moving
statistics, in a second flat buffer), so the optimizer updates everything in one
backend call and a distributed step can all-reduce one array. Weights shared
between models move into the flat buffers of the model that last laid them out;
:meth:`ParameterLayout.sync` notices (the weight's storage is part of the
signature) and lays them out again.
"""
from __future__ import annotations

import numpy as np

from ..layers import layer as layer_mod

__all__ = ["ParameterLayout"]


class ParameterLayout:
    """Flat buffers ``params``, ``grads``, ``frozen`` over a list of weights."""

    def __init__(self):
        self.weights = []
        self.train = []
        self.regularized = []
        self.params = self.grads = self.frozen = None
        self.signature = None
        self.generation = -1
        self.id = 0

    @staticmethod
    def _signature(weights):
        # the value's identity too: a layer shared with another model may have been moved
        return tuple((id(w), w.trainable, id(w.value)) for w in weights)

    def relayout(self, weights, backend, dtype):
        """Move ``weights`` into fresh flat buffers (trainable first), keeping values."""
        be, dt = backend, np.dtype(dtype)
        train = [w for w in weights if w.trainable]
        frozen = [w for w in weights if not w.trainable]
        flat_p = be.zeros((sum(w.size for w in train),), dt)
        flat_g = be.zeros((flat_p.shape[0],), dt)
        flat_f = be.zeros((sum(w.size for w in frozen),), dt)
        for group, flat, grads in ((train, flat_p, flat_g), (frozen, flat_f, None)):
            off = 0
            for w in group:
                if w.dtype != dt:
                    raise ValueError(f"Weight {w.path!r} has dtype {w.dtype}, the model "
                                     f"computes in {dt}")
                view = flat[off:off + w.size].reshape(w.shape)
                be.copy_(w.value, view)
                w.value = view
                w.grad = None if grads is None else grads[off:off + w.size].reshape(w.shape)
                off += w.size
        self.weights = list(weights)
        self.train = train
        self.regularized = [w for w in train if w.regularizer is not None]
        self.params, self.grads, self.frozen = flat_p, flat_g, flat_f
        self.signature = self._signature(weights)
        self.id += 1
        layer_mod.weights_changed()  # other models sharing these weights must look again
        self.generation = layer_mod.weights_generation()

    def sync(self, weights_fn, backend, dtype):
        """Lay out again if any weight list, trainable flag or storage changed."""
        gen = layer_mod.weights_generation()
        if self.generation != gen:
            weights = weights_fn()
            if self._signature(weights) != self.signature:
                self.relayout(weights, backend, dtype)
            self.generation = layer_mod.weights_generation()
