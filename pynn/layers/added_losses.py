"""Losses a layer adds in its ``call()`` with :meth:`Layer.add_loss` (Keras 3's
``add_loss``, ``losses`` and ``_clear_losses``).

One forward pass of a model (a training or test step, a ``predict`` batch, an eager
call) is one *scope*: the losses added during it are collected there, and each
layer's own list (``layer.losses``) holds what it added during the latest scope it
ran in (cleared when a layer first runs in a new scope, so a layer shared by two
call sites keeps both calls' losses, as Keras clears only at the outermost call).

The trainer sums a scope's losses into the training loss (Keras's ``compute_loss``
adds ``sum(self.losses)``); their gradients come from the tape of the ``call()``
that added them (:mod:`pynn.layers.custom_call` seeds each with ones in its
backward pass), so a model of built-in layers records nothing and pays for nothing.
"""
from __future__ import annotations

import contextvars

import numpy as np

from ..autodiff.tape import Tensor, unwrap

__all__ = ["Scope", "collecting", "add", "own_losses", "enter_call", "total"]

_SCOPE = contextvars.ContextVar("pynn_loss_scope", default=None)
_MISSING = object()


class Scope:
    """The losses added during one forward pass, as NumPy values."""

    __slots__ = ("values",)

    def __init__(self):
        self.values = []

    def total(self):
        """Their sum, as :func:`total`."""
        return total(self.values)


def total(values):
    """The sum of added losses, each summed over its elements (Keras's
    ``_aggregate_additional_loss``), accumulated in float64; a float."""
    return float(sum(float(np.sum(v, dtype=np.float64)) for v in values))


class collecting:
    """``with collecting() as scope``: the active scope, or a new one for the duration
    (the outermost forward pass opens it). A class, not a generator: it wraps every
    forward pass, so it must cost next to nothing."""

    __slots__ = ("scope", "token")

    def __enter__(self):
        scope = _SCOPE.get()
        if scope is None:
            scope = Scope()
            self.token = _SCOPE.set(scope)
        else:
            self.token = None
        self.scope = scope
        return scope

    def __exit__(self, *exc):
        if self.token is not None:
            _SCOPE.reset(self.token)
            self.token = None


def enter_call(layer):
    """A call of ``layer`` starts: a layer running for the first time in the active
    scope forgets the losses of an earlier one."""
    scope = _SCOPE.get()
    d = layer.__dict__
    if d.get("_added_loss_scope", _MISSING) is not scope:
        d["_added_loss_scope"] = scope
        d["_added_loss_values"] = []


def add(layer, loss, frame_losses=None):
    """Record ``loss`` (a tensor or array from ``layer``'s ``call()``) for the active
    scope and ``layer.losses``; a tracked Tensor also goes to ``frame_losses`` (the
    running ``call()``'s list, whose backward pass seeds it)."""
    from .node import KerasTensor
    if isinstance(loss, KerasTensor):
        raise TypeError(f"Layer {layer.name!r}: add_loss() on a symbolic tensor; call it "
                        f"from call() on the values being computed")
    value = np.asarray(unwrap(loss))
    if value.dtype.kind not in "biuf":
        raise ValueError(f"Layer {layer.name!r}: add_loss() takes a numeric tensor, got "
                         f"{type(loss).__name__} of dtype {value.dtype}")
    enter_call(layer)
    layer.__dict__["_added_loss_values"].append(value)
    scope = _SCOPE.get()
    if scope is not None:
        scope.values.append(value)
    if frame_losses is not None and isinstance(loss, Tensor) and loss.tape is not None:
        frame_losses.append(loss)


def own_losses(layer):
    """What ``layer`` itself added during its latest scope (NumPy values)."""
    return list(layer.__dict__.get("_added_loss_values", ()))
