"""The only place where the benchmarks reach into a pynn model beyond its public API.

Timing one training step beside its matrix products, and measuring what a warm step
allocates, need two things ``fit`` does not expose: one optimizer step on a batch that
is already gathered, and whether the model trains through the fused Dense-stack step.
Both are here, so that switching them to the public engine API touches one file.
"""
from __future__ import annotations


def train_one_step(model, xb, yb):
    """One optimizer step of a compiled ``model`` on the batch ``(xb, yb)`` as it is
    (no shuffling, gathering, callbacks or sample weights), as ``fit`` runs it on each
    batch; returns the batch's loss (a float).

    ``xb`` is an array of the active backend, shape ``(batch, n_in)``, of the model's
    dtype; ``yb`` the targets of those rows. The model must have been fitted once
    (``fit`` builds the optimizer's state).
    """
    return model._train_step(xb, yb, None, model._fused())


def uses_fused_step(model, xb):
    """True when ``model`` trains on batches shaped like ``xb`` through the fused
    Dense-stack step (one backend call for forward, loss and backward) on the active
    backend, False when it goes layer by layer."""
    return model._dense_stack_spec(xb) is not None
