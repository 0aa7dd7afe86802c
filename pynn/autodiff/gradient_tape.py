"""``GradientTape``: gradients for a hand-written training loop.

::

    with pynn.GradientTape() as tape:
        logits = model(x, training=True)
        loss = loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_weights)
    optimizer.apply(grads, model.trainable_weights)

Inside the ``with`` block, models and layers called on arrays become tape entries
that run their own compiled forward and backward passes, and ``pynn.ops`` and the
losses record theirs; :meth:`gradient` runs the recording backwards once.
"""
from __future__ import annotations

import itertools

import numpy as np

from .tape import Tape, Tensor, gradients

__all__ = ["GradientTape"]

_PASSES = itertools.count(10**9)  # distinct from the trainer's pass ids


class GradientTape(Tape):
    """A :class:`~.tape.Tape` with TensorFlow's ``gradient(target, sources)``."""

    def __init__(self):
        super().__init__()
        #: the backward pass id weights written by layer backward passes carry
        self.pass_id = next(_PASSES)
        self._used = False

    def gradient(self, target, sources):
        """d ``target`` (a scalar Tensor, or a list summed) / d each of ``sources``
        (weights or Tensors): a list of arrays, None for a source ``target`` does not
        depend on (as in Keras; ``optimizer.apply`` skips those)."""
        if self._used:
            raise RuntimeError("GradientTape.gradient can be called once per tape (record "
                               "again for new gradients)")
        self._used = True
        targets = list(target) if isinstance(target, (list, tuple)) else [target]
        for t in targets:
            if not isinstance(t, Tensor) or t.tape is not self:
                raise ValueError("GradientTape.gradient: the target was not computed inside "
                                 "this tape's `with` block from recorded values")
        seeds = [np.ones(t.shape, t.dtype) for t in targets]
        single = not isinstance(sources, (list, tuple))
        srcs = [sources] if single else list(sources)
        leaves = [self.leaves.get(s, s if isinstance(s, Tensor) else None) for s in srcs]
        got = gradients(targets, seeds, [lf for lf in leaves if lf is not None])
        it = iter(got)
        out = []
        for s, leaf in zip(srcs, leaves):
            g = next(it) if leaf is not None else None
            written = getattr(s, "_grad_pass", None) == self.pass_id and s.grad is not None
            if written:  # a layer's own backward wrote it
                wg = np.array(s.layer.backend.to_numpy(s.grad), copy=True)
                g = wg if g is None else g + wg
            out.append(g)  # None: no path from the source (Keras)
        return out[0] if single else out
