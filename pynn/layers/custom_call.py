"""Layers written as Keras writes them: a ``call()`` built from ``pynn.ops`` and other
layers, differentiated automatically (:mod:`pynn.autodiff`).

A layer that overrides :meth:`Layer.call` and not ``forward``/``backward`` runs its
``call`` on a :class:`~pynn.autodiff.Tape`: its inputs and weights are the tape's
leaves, and ``backward`` runs the tape backwards, writing every trainable weight's
gradient. A built-in layer called inside such code (``self.dense(x)``) runs its own
compiled forward and backward as one tape entry, in a sub-context of the caller's
call site, so a warm step reuses its workspaces.
"""
from __future__ import annotations

import contextvars
import inspect

import numpy as np

from ..autodiff.tape import Tape, Tensor, gradients, record, unwrap
from . import added_losses
from .node import flatten_structure, pack_structure

__all__ = ["uses_call", "call_forward", "call_backward", "call_on_tensors",
           "infer_output_shape", "add_loss", "NoGradientPath"]

#: [the CallContext of the custom call running now, a counter of its sub-calls, its
#: tape, the tracked losses its call() added]; a context of None: shapes being inferred
_FRAME = contextvars.ContextVar("pynn_call_frame", default=None)


class NoGradientPath(ValueError):
    """A graph node's ``call()`` output does not depend on its inputs, so the layers
    before it get no gradient (the model's engine names their weights)."""

    def __init__(self, layer):
        self.layer = layer
        super().__init__(f"Layer {layer.name!r}: the output of call() does not depend on "
                         f"its inputs (no gradient path), so the trainable weights before "
                         f"it get no gradient")


def uses_call(layer):
    """Whether ``layer`` is defined by ``call()`` (its class overrides ``call`` but not
    ``forward``)."""
    from .layer import Layer
    cls = type(layer)
    return cls.call is not Layer.call and cls.forward is Layer.forward


def _call_kwargs(layer, training, mask):
    params = inspect.signature(layer.call).parameters
    kw = {}
    if "training" in params:
        kw["training"] = training
    if "mask" in params and mask is not None:
        kw["mask"] = mask
    return kw


def _values(out, layer):
    flat, structure = flatten_structure(out)
    vals = []
    for o in flat:
        v = np.asarray(unwrap(o))
        if v.dtype != np.dtype(layer.dtype):  # ints, or float64 from NumPy promotion
            v = v.astype(layer.dtype)
        vals.append(np.ascontiguousarray(v))
    return flat, structure, vals


def call_forward(layer, ctx, x, training=False, mask=None):
    """Run ``layer.call`` on a tape; returns the outputs as arrays. Losses the call adds
    (:func:`add_loss`) are kept for the backward pass."""
    with Tape() as tape, added_losses.collecting():
        added_losses.enter_call(layer)
        flat_in, structure = flatten_structure(x)
        ins = [tape.leaf(np.asarray(a)) for a in flat_in]
        frame = [ctx, 0, tape, []]
        token = _FRAME.set(frame)
        try:
            out = layer.call(pack_structure(ins, structure), **_call_kwargs(layer, training,
                                                                             mask))
        finally:
            _FRAME.reset(token)
    flat, out_structure, vals = _values(out, layer)
    ctx.saved = (tape, ins, flat, frame[3])
    return vals[0] if out_structure is None else vals


def add_loss(layer, loss):
    """``layer.add_loss(loss)`` (see :mod:`pynn.layers.added_losses`): inside a running
    ``call()``, a loss computed on its tape gets its gradient in that call's backward
    pass. Ignored while output shapes are inferred (``call`` on zeros)."""
    frame = _FRAME.get()
    if frame is not None and frame[0] is None:
        return
    mine = frame is not None and isinstance(loss, Tensor) and loss.tape is frame[2]
    added_losses.add(layer, loss, frame[3] if mine else None)


def call_backward(layer, ctx, dy, input_grad=True):
    """Backpropagate ``dy`` through the recorded ``call``: weight gradients into
    ``ctx.grad_out``; returns the input gradient(s)."""
    tape, ins, outs, losses = ctx.saved
    dys = list(dy) if isinstance(dy, (list, tuple)) else [dy]
    if losses:  # each added loss enters the total as its sum: seed it with ones
        outs = list(outs) + losses
        dys = dys + [np.ones(t.shape, t.dtype) for t in losses]
    weights = [w for w in layer._weights if w.trainable]
    leaves = [tape.leaves.get(w) for w in weights]
    wrt = list(ins) + [leaf for leaf in leaves if leaf is not None]
    token = _FRAME.set([ctx, 0, tape, None])
    try:
        grads = gradients(outs, dys, wrt)
    finally:
        _FRAME.reset(token)
    dxs, wgrads = grads[:len(ins)], grads[len(ins):]
    missing = [w.path for w, leaf in zip(weights, leaves) if leaf is None]
    it = iter(wgrads)
    for w, leaf in zip(weights, leaves):
        if leaf is None:
            continue
        g = next(it)
        if g is None:
            missing.append(w.path)
            continue
        target = ctx.grad_out(w)
        if target is not None:
            np.copyto(target, np.asarray(g, dtype=target.dtype).reshape(target.shape))
    if missing:
        raise ValueError(f"Layer {layer.name!r}: the output of call() does not depend on the "
                         f"trainable weights {missing} (no gradient path); use them in "
                         f"call(), or create them with trainable=False")
    if not input_grad:
        return None
    if ins and all(g is None for g in dxs) and _FRAME.get() is None:
        raise NoGradientPath(layer)  # a graph node whose inputs need a gradient
    out = [np.zeros(x.shape, x.dtype) if g is None else np.asarray(g, dtype=x.dtype)
           for x, g in zip(ins, dxs)]
    return out[0] if len(out) == 1 else out


def call_on_tensors(layer, flat, structure, training):
    """A layer called on tape Tensors inside a custom ``call``: its own forward (and
    backward, as the tape entry's VJP) in a sub-context of the running call site."""
    frame = _FRAME.get()
    values = [np.ascontiguousarray(unwrap(t)) for t in flat]
    for i, v in enumerate(values):
        if v.dtype.kind == "f" and v.dtype != np.dtype(layer.dtype):
            values[i] = v.astype(layer.dtype)
    shapes = [tuple(v.shape) for v in values]
    layer._build_for(shapes[0] if structure is None else shapes)
    if frame is None or frame[0] is None:  # outside any layer (a manual loop)
        ctx = layer.__dict__.setdefault("_loop_ctx", layer.context())
    else:
        ctx = frame[0].child_for(layer, ("sub", frame[1]))
        frame[1] += 1
    arg = values[0] if structure is None else pack_structure(values, structure)
    out = layer.forward(ctx, arg, training=training)
    outs = out if isinstance(out, list) else [out]

    def vjp(g):
        parent = _FRAME.get()
        if parent is not None:
            ctx.pass_id = parent[0].pass_id
        else:  # a hand-written loop: the GradientTape's pass
            ctx.pass_id = getattr(flat[0].tape, "pass_id", None)
        dx = layer.backward(ctx, g if len(outs) == 1 else g, input_grad=True)
        ctx.end_backward()
        return dx if isinstance(dx, list) else [dx]

    if len(outs) == 1:
        return record(layer.name, np.array(outs[0], copy=True), list(flat), vjp)
    raise NotImplementedError(f"Layer {layer.name!r}: a layer with several outputs cannot be "
                              f"called inside a custom call() yet")


def infer_output_shape(layer, input_shape):
    """The output shape of a ``call``-defined layer, found by running ``call`` on zeros
    (one sample per unknown size), as Keras traces ``call`` symbolically."""
    def run(size):
        def concrete(shape):
            return tuple(size if d is None else d for d in shape)
        if isinstance(input_shape, list):
            x = [np.zeros(concrete(s), layer.dtype) for s in input_shape]
        else:
            x = np.zeros(concrete(input_shape), layer.dtype)
        flat, structure = flatten_structure(layer.call(x, **_call_kwargs(layer, False, None)))
        return [tuple(np.shape(unwrap(o))) for o in flat], structure

    token = _FRAME.set([None, 0, None, None])
    try:
        (one, structure), (two, _) = run(1), run(2)
    finally:
        _FRAME.reset(token)
    batch = (input_shape[0] if isinstance(input_shape, list) else input_shape)[0]
    shapes = [(batch,) + tuple(a if a == b else None for a, b in zip(s1[1:], s2[1:]))
              for s1, s2 in zip(one, two)]
    return shapes[0] if structure is None else shapes

