"""Embedding ops of the reference backend: the gather and its scatter-add gradient.

:class:`EmbeddingOps` is mixed into :class:`~pynn.backends.base.Backend`; ``prep_*``
are the argument checks every backend's versions start with. Token ids are an integer
array of any shape (``(n, T)`` for a batch of sequences); the table is
``(num_embeddings, dim)`` (Keras's ``embeddings`` layout).
"""
from __future__ import annotations

import numpy as np

from .validation import ALIASING, _aligned, as_float, check_aliasing, check_out, work_dtype

__all__ = ["EmbeddingOps", "prep_embedding_ids", "prep_embedding_forward",
           "prep_embedding_backward"]

ALIASING.update({
    "embedding_forward": {"out": ()},
    "embedding_backward": {"out": ()},
})


def prep_embedding_ids(op, ids, num_embeddings, name="ids"):
    """``ids`` as a C-contiguous ``intp`` array, every id checked to lie in
    ``[0, num_embeddings)``: a float or other non-integer array is a ``TypeError``,
    an id outside the range a ``ValueError`` naming the shapes and the offending id."""
    a = np.asarray(ids)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer array (token ids), got dtype "
                        f"{a.dtype} with shape {a.shape}")
    if a.ndim < 1:
        raise ValueError(f"{op}: {name} must have at least one axis, got a scalar")
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= num_embeddings:
            bad = lo if lo < 0 else hi
            where = tuple(int(i) for i in np.argwhere(a == bad)[0])
            raise ValueError(f"{op}: {name} of shape {a.shape} must lie in [0, "
                             f"{num_embeddings}) for a table of {num_embeddings} rows; "
                             f"found {bad} at index {where}")
    return _aligned(np.ascontiguousarray(a, dtype=np.intp))


def prep_embedding_forward(ids, table, out):
    op = "embedding_forward"
    dt = work_dtype(table, "table")
    t = as_float(table, dt, "table", 2)
    idx = prep_embedding_ids(op, ids, t.shape[0])
    out = check_out(out, idx.shape + (t.shape[1],), dt)
    check_aliasing(op, [("out", out)], [("ids", ids), ("table", table)])
    return idx, t, out


def prep_embedding_backward(ids, dy, num_embeddings, out):
    op = "embedding_backward"
    if (isinstance(num_embeddings, bool) or not isinstance(num_embeddings, (int, np.integer))
            or num_embeddings < 1):
        raise ValueError(f"{op}: num_embeddings must be a positive int, got "
                         f"{num_embeddings!r}")
    num_embeddings = int(num_embeddings)
    dt = work_dtype(dy, "dy")
    idx = prep_embedding_ids(op, ids, num_embeddings)
    g = as_float(dy, dt, "dy")
    if g.shape[:-1] != idx.shape or g.ndim != idx.ndim + 1:
        raise ValueError(f"{op}: dy must have shape ids.shape + (dim,) = {idx.shape} + "
                         f"(dim,), got {g.shape}")
    out = check_out(out, (num_embeddings, g.shape[-1]), dt)
    check_aliasing(op, [("out", out)], [("ids", ids), ("dy", dy)])
    return idx, g, out


class EmbeddingOps:
    """The embedding gather and scatter-add (mixed into the reference backend)."""

    def embedding_forward(self, ids, table, out=None):
        """``out[...] = table[ids]``: ``out`` has shape ``ids.shape + (dim,)``.

        ``ids`` must be integers in ``[0, num_embeddings)`` (no negative indexing)."""
        idx, table, out = prep_embedding_forward(ids, table, out)
        np.take(table, idx.reshape(-1), axis=0, out=out.reshape(-1, table.shape[1]))
        return out

    def embedding_backward(self, ids, dy, num_embeddings, out=None):
        """The table's gradient: ``out = zeros; out[ids[k]] += dy[k]`` for every position
        ``k`` (repeated ids accumulate), ``out`` of shape ``(num_embeddings, dim)``."""
        idx, dy, out = prep_embedding_backward(ids, dy, num_embeddings, out)
        acc = np.zeros(out.shape, np.float64)
        np.add.at(acc, idx.reshape(-1), dy.reshape(-1, out.shape[1]))
        out[...] = acc
        return out
