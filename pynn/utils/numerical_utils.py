"""``to_categorical`` and ``normalize`` (Keras's ``keras.utils`` helpers on NumPy arrays)."""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["to_categorical", "normalize"]


def to_categorical(x, num_classes=None):
    """Class labels -> one-hot rows, as ``keras.utils.to_categorical``.

    Parameters
    ----------
    x : array-like of ints
        Class labels in ``[0, num_classes)``, of any shape; a trailing axis of size 1 is
        dropped (``(n, 1)`` labels give ``(n, num_classes)``). Float labels must hold
        whole numbers.
    num_classes : int, optional
        Default (``None`` or 0, as in Keras): ``max(x) + 1``.

    Returns
    -------
    numpy.ndarray of float64, shape ``x.shape + (num_classes,)`` (Keras's dtype for
    NumPy input). Unlike Keras, a negative label (which Keras's NumPy indexing counts
    from the end) or one ``>= num_classes`` is a ``ValueError`` naming it.
    """
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"to_categorical: expected integer class labels, got dtype {a.dtype}")
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        whole = finite & (np.floor(np.where(finite, a, 0.0)) == a)
        if not whole.all():
            bad = float(a[~whole][0])
            raise ValueError(f"to_categorical: class labels must be whole numbers, got {bad!r} "
                             f"in labels of shape {a.shape}")
    labels = a.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = labels.reshape(-1)
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(
            num_classes, numbers.Integral) or num_classes < 0):
        raise ValueError(f"to_categorical: num_classes must be a non-negative int or None, "
                         f"got {num_classes!r}")
    if not num_classes:
        if labels.size == 0:
            raise ValueError("to_categorical: cannot infer num_classes from empty labels; "
                             "pass num_classes")
        num_classes = int(labels.max()) + 1
    num_classes = int(num_classes)
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"to_categorical: class labels must lie in [0, {num_classes}) "
                             f"for num_classes={num_classes}; labels of shape {a.shape} hold "
                             f"{bad}")
    out = np.zeros((labels.size, num_classes))
    out[np.arange(labels.size), labels] = 1.0
    return out.reshape(shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis``, as ``keras.utils.normalize``
    on a NumPy array: ``np.linalg.norm(x, order, axis)``, where a norm of 0 is taken as 1
    (a zero vector stays zero).

    Returns a new float array of ``x``'s shape. ``axis=0`` normalises along axis 0 (Keras
    3.15 replaces ``axis=0`` by -1 when re-inserting the norm's axis, which only works
    for square inputs).
    """
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"normalize: expected a numeric array, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError("normalize: expected an array with at least one axis, got a scalar")
    if axis is None or isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"normalize: axis must be an int, got {axis!r}")
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(f"normalize: axis {axis} is out of bounds for an array of shape "
                         f"{a.shape}")
    norm = np.atleast_1d(np.linalg.norm(a, order, axis))
    norm[norm == 0] = 1
    return a / np.expand_dims(norm, axis)
