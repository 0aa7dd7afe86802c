"""What the benchmarks need from pynn beyond ``fit``/``predict``.

Timing one training step beside its matrix products, and measuring what a warm step
allocates, need one optimizer step on a batch that is already gathered, and whether the
model trains through the fused Dense-stack step. Both are public API (Keras's
``Model.train_step`` and :func:`pynn.trainers.explain`); this module names them for the
benchmark code in one place. The ``--rnn`` floor needs one thing that is not public: the
recurrent kernels' matrix products alone, as the Cython extension issues them
(:func:`rnn_products_kernel`), so that "step / products" compares like with like.
"""
from __future__ import annotations

from ..trainers import explain


def train_one_step(model, xb, yb):
    """One optimizer step of a compiled ``model`` on the batch ``(xb, yb)`` as it is
    (no shuffling, gathering, callbacks or sample weights), as ``fit`` runs it on each
    batch (``model.train_step``); returns the logs.

    ``xb`` is an array of the active backend, shape ``(batch, n_in)``, of the model's
    dtype; ``yb`` the targets of those rows.
    """
    return model.train_step((xb, yb))


def uses_fused_step(model, xb):
    """True when ``model`` trains on batches shaped like ``xb`` through the fused
    Dense-stack step (one backend call for forward, loss and backward) on the active
    backend, False when it goes layer by layer."""
    return xb.ndim == 2 and explain(model)["train"]


def rnn_products_kernel():
    """The Cython extension's ``rnn_products`` (the matrix products of the recurrent
    kernels alone, see ``csrc/sequence.pyx``), or ``None`` when it is not built."""
    try:
        from .._ext.sequence import rnn_products
    except ImportError:
        return None
    from .. import backends
    backends.get("cython")  # selects the extension's BLAS, as the backend runs it
    return rnn_products
