"""The axes a normalisation layer works over, and the 2-D row view its ops take.

Keras's per-sample normalisation layers (``LayerNormalization``, ``UnitNormalization``)
take an ``axis`` that is an int or a list of ints; the backend's row ops normalise each
row of a 2-D array. :class:`AxisRows` moves the normalised axes to the end (a copy in a
workspace, or a free reshape when they already are the trailing axes) and flattens them.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["standardize_axis", "canonical_axes", "AxisRows"]


def standardize_axis(axis, what):
    """``axis`` as an int or a list of ints (Keras's accepted forms); else ``TypeError``."""
    if isinstance(axis, (list, tuple)):
        if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                   for a in axis) or not axis:
            raise TypeError(f"{what}: expected an int or a non-empty list/tuple of ints for "
                            f"the argument 'axis', but received: {axis!r}")
        return [int(a) for a in axis]
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    raise TypeError(f"{what}: expected an int or a list/tuple of ints for the argument "
                    f"'axis', but received: {axis!r}")


def canonical_axes(axis, shape, what):
    """The sorted non-negative axes of ``axis`` for inputs of ``shape``; out-of-range and
    repeated axes are a ``ValueError`` naming ``what`` and the shape."""
    rank = len(shape)
    axes = [axis] if isinstance(axis, int) else list(axis)
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(f"{what}: axis {a} is out of bounds for inputs of shape "
                             f"{tuple(shape)} (rank {rank}). Received: axis={axis}")
    canon = sorted(a % rank for a in axes)
    if len(set(canon)) != len(canon):
        raise ValueError(f"{what}: duplicate axes are not allowed. Received: axis={axis} for "
                         f"inputs of shape {tuple(shape)}")
    return tuple(canon)


class AxisRows:
    """Inputs of rank ``rank`` as 2-D ``(rows, k)`` arrays, ``k`` the product of the sizes
    of ``axes`` (sorted, non-negative), and back."""

    def __init__(self, axes, rank):
        self.axes = tuple(axes)
        rest = tuple(a for a in range(rank) if a not in self.axes)
        self.perm = rest + self.axes
        self.trailing = self.perm == tuple(range(rank))
        self.inverse = tuple(int(i) for i in np.argsort(self.perm))

    def k(self, shape):
        return math.prod(shape[a] for a in self.axes)

    def to_rows(self, ctx, key, a, backend, what):
        """``a`` with the axes moved last and flattened (a copy in workspace ``key``
        unless they are already the trailing axes)."""
        k = self.k(a.shape)
        if self.trailing:
            return a.reshape(-1, k)
        if not backend.host_memory:
            raise NotImplementedError(f"{what}: normalising over axes {self.axes} that are "
                                      f"not the trailing axes needs a host-memory backend "
                                      f"(not {backend.name!r})")
        moved = np.transpose(a, self.perm)
        buf = ctx.buffer(key, moved.shape)
        np.copyto(buf, moved)
        return buf.reshape(-1, k)

    def from_rows(self, ctx, key, a2, shape):
        """Inverse of :meth:`to_rows` for inputs of ``shape``."""
        if self.trailing:
            return a2.reshape(shape)
        moved = a2.reshape(tuple(shape[p] for p in self.perm))
        buf = ctx.buffer(key, shape)
        np.copyto(buf, np.transpose(moved, self.inverse))
        return buf
