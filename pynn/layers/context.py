"""The per-call state of a layer: :class:`CallContext`.

A layer may be called many times (shared layers, a model used twice, a recurrent
cell unrolled over time), so what one call needs for its backward pass belongs to
that call, not to the layer object (Keras's ``ops/node.py``: a node is one call
event; thinc's ``forward`` returns ``(Y, backprop)``). The engine keeps one
context per call site (a graph node) and hands it to both ``forward`` and
``backward``; the context outlives the step, so the workspaces it holds are reused
step after step and a warm training step allocates no arrays.

A context holds

* ``saved``: whatever ``forward`` keeps for ``backward`` (set freely by the layer);
* workspaces: :meth:`buffer` returns one array per ``(key, shape)``, created on
  first use and reused;
* the gradient targets: :meth:`grad_out` says where ``backward`` writes a weight's
  gradient. The first call of a backward pass that reaches a weight writes its
  gradient in place; any later call of the same pass (a shared layer) writes into a
  scratch buffer that :meth:`end_backward` adds on, so a shared weight's gradient is
  the sum over its uses;
* children: :meth:`child` gives a sub-context per key, for layers that run other
  layers (a model inside a model, a cell over time steps).
"""
from __future__ import annotations

import numpy as np

__all__ = ["CallContext"]

#: workspaces kept per context before the oldest are dropped (batch shapes vary rarely)
_MAX_BUFFERS = 64


class CallContext:
    """The state of one call site of ``layer`` (see the module docstring)."""

    __slots__ = ("layer", "saved", "pass_id", "output_mask", "_buffers", "_pending",
                 "_children")

    def __init__(self, layer):
        self.layer = layer
        self.saved = None
        #: the mask of the call's output(s), when ``forward`` sets one (see
        #: :mod:`pynn.layers.masking_rules`)
        self.output_mask = None
        #: the backward pass being run (set by the engine); ``None``: gradients overwrite
        self.pass_id = None
        self._buffers = {}
        self._pending = []
        self._children = None

    # -- workspaces -------------------------------------------------------------------
    def buffer(self, key, shape, dtype=None):
        """The workspace ``key`` of ``shape`` (the layer's dtype unless given)."""
        shape = tuple(shape)
        dt = np.dtype(dtype if dtype is not None else self.layer.dtype)
        bkey = (key, shape, dt.char)
        buf = self._buffers.get(bkey)
        if buf is None:
            if len(self._buffers) >= _MAX_BUFFERS:
                self._buffers.clear()
            buf = self._buffers[bkey] = self.layer.backend.empty(shape, dt)
        return buf

    def child_for(self, layer, key):
        """The sub-context of ``layer`` at call site ``key`` (created on first use)."""
        children = self._children
        if children is None:
            children = self._children = {}
        ctx = children.get(key)
        if ctx is None or ctx.layer is not layer:
            ctx = children[key] = CallContext(layer)
        return ctx

    def release(self):
        """Drop every workspace and saved value (and the children's)."""
        self._buffers.clear()
        self.saved = None
        self._pending.clear()
        self._children = None

    # -- gradients --------------------------------------------------------------------
    def grad_out(self, weight):
        """Where ``backward`` writes ``weight``'s gradient; ``None`` for a frozen weight."""
        g = weight.grad
        if g is None:
            return None
        p = self.pass_id
        if p is None or weight._grad_pass != p:
            weight._grad_pass = p
            return g
        buf = self.buffer(("grad", id(weight)), g.shape, g.dtype)
        self._pending.append((buf, g))
        return buf

    def end_backward(self):
        """Add the gradients of a shared weight's later uses onto its gradient."""
        if self._pending:
            be = self.layer.backend
            for buf, g in self._pending:
                be.axpy_(1.0, buf, g)
            self._pending.clear()
