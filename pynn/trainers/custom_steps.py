"""Overridden ``train_step``/``test_step`` (Keras 3's customisation point) and the
helpers they call, ``compute_loss`` and ``compute_metrics``.

The documented pattern (Keras 3's, with pynn's ``GradientTape``)::

    class MyModel(pynn.Model):
        def train_step(self, data):
            x, y = data
            with pynn.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(y=y, y_pred=y_pred)
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply(grads, self.trainable_weights)
            return self.compute_metrics(x, y, y_pred)

``fit`` calls an overridden ``train_step`` for every batch with ``data`` = ``(x, y)``
(``(x, y, sample_weight)`` when there are sample weights), each an array (a list for
several inputs or outputs), and logs what it returns; ``evaluate`` does the same with
``test_step``. The data are the checked batches ``fit`` prepared.
"""
from __future__ import annotations

import math

import numpy as np

from ..layers import added_losses

__all__ = ["overrides", "run_step", "compute_loss", "compute_metrics"]


def overrides(model, name):
    """Whether ``model``'s class overrides the trainer's ``name`` step."""
    from .trainer import Trainer
    return getattr(type(model), name) is not getattr(Trainer, name)


def _pack(items):
    return items[0] if len(items) == 1 else list(items)


def run_step(model, name, xbs, ybs, swb):
    """Call the overridden ``name`` step on one batch: ``(loss, logs)``."""
    data = (_pack(xbs), _pack(ybs)) + (() if swb is None else (swb,))
    model.__dict__["_step_loss"] = None
    logs = getattr(model, name)(data)
    if not isinstance(logs, dict):
        raise TypeError(f"{type(model).__name__}.{name} must return a dict of logs, got "
                        f"{type(logs).__name__}")
    out = {}
    for k, v in logs.items():
        v = np.asarray(getattr(v, "value", v))
        out[k] = float(v) if v.ndim == 0 else v.astype(np.float64)
    loss = out.get("loss", model.__dict__.get("_step_loss"))
    return (float(loss) if loss is not None else 0.0), out


def _list(v, n, what):
    if n == 1:
        return [v]
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise ValueError(f"compute_loss: {what} must be a list of {n} (one per output)")
    return list(v)


def compute_loss(model, x=None, y=None, y_pred=None, sample_weight=None, training=True):
    """The compiled loss of ``y_pred`` against ``y`` (weighted over outputs) plus the
    weights' regularization penalties and the losses layers added in the latest
    forward pass (``add_loss``); differentiable inside a ``GradientTape``."""
    from .. import ops
    cl = model._compiled_loss
    if cl is None:
        raise ValueError("compute_loss: the model is not compiled with a loss")
    n = len(cl.losses)
    total = None
    for loss, w, yt, yp in zip(cl.losses, cl.weights, _list(y, n, "y"),
                               _list(y_pred, n, "y_pred")):
        if loss is None:
            continue
        v = loss(yt, yp, sample_weight)
        v = ops.multiply(v, float(w)) if w != 1.0 else v
        total = v if total is None else ops.add(total, v)
    for w in model.trainable_weights:
        reg = w.regularizer
        if reg is None:
            continue
        l1, l2 = getattr(reg, "l1", 0.0), getattr(reg, "l2", 0.0)
        if not (hasattr(reg, "l1") or hasattr(reg, "l2")):
            raise ValueError(f"compute_loss: the regularizer of {w.path!r} ({reg!r}) has no "
                             f"l1/l2 form")
        pen = ops.add(ops.multiply(float(l1), ops.sum(ops.absolute(w))),
                      ops.multiply(float(l2), ops.sum(ops.square(w))))
        total = pen if total is None else ops.add(total, pen)
    added = model._added_losses()
    if added:  # values: their gradients flow in the backward pass of the layers' calls
        extra = added_losses.total(added)
        total = extra if total is None else ops.add(total, extra)
    model.__dict__["_step_loss"] = float(np.asarray(getattr(total, "value", total)))
    return total


def compute_metrics(model, x, y, y_pred, sample_weight=None):
    """Update the loss tracker (with the last :func:`compute_loss`) and the compiled
    metrics; returns the current logs (Keras 3's ``compute_metrics``)."""
    preds = [np.asarray(getattr(p, "value", p)) for p in _list(
        y_pred, len(model._compiled_loss.losses), "y_pred")]
    ys = _list(y, len(preds), "y")
    loss = model.__dict__.get("_step_loss")
    loss = 0.0 if loss is None or not math.isfinite(loss) else loss
    model._track(loss, [loss], ys, preds, sample_weight, [False] * len(preds),
                 preds[0].shape[0])
    return model._logs()
