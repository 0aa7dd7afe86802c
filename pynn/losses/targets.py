"""Target checks shared by the losses: the function forms' ``(y_true, y_pred)`` pairing
(:func:`pair`) and the training path's conversion of targets (:func:`labels` for integer
class labels, :func:`dense` for float targets), with errors that name the loss and the
shapes."""
from __future__ import annotations

import numpy as np

from .._config import floatx
from ..backends.validation import label_range


def pair(y_true, y_pred):
    """``y_true`` and ``y_pred`` as float64 arrays of the same rank (Keras's
    ``squeeze_or_expand_to_same_rank``)."""
    yp = np.asarray(y_pred, dtype=np.float64)
    yt = np.asarray(y_true, dtype=np.float64)
    if yt.ndim == yp.ndim - 1 and yp.shape[-1] == 1:
        yt = yt[..., None]
    elif yp.ndim == yt.ndim - 1 and yt.shape[-1] == 1:
        yp = yp[..., None]
    if yp.ndim == 0:
        yp, yt = yp.reshape(1), yt.reshape(1)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true shape {np.shape(y_true)} does not match y_pred shape "
                         f"{np.shape(y_pred)}")
    return yt, yp


def check_axis(axis):
    """Only the last axis is supported (``axis=-1``, Keras's default)."""
    if axis != -1:
        raise ValueError(f"axis: only axis=-1 is supported, got {axis}")


def labels(loss_name, y, output_shape):
    """Integer labels (n,) checked against the output width; clear errors otherwise."""
    k = int(output_shape[-1])
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        hint = ""
        if a.ndim == 2 and a.shape[1] == k and k > 1:
            hint = (" - these look like one-hot targets: use 'categorical_crossentropy' "
                    "or pass y.argmax(axis=1)")
        raise ValueError(f"{loss_name} expects integer class labels of shape (n,), got targets "
                         f"of shape {np.shape(y)} for a model output of shape "
                         f"{tuple(output_shape)}{hint}")
    if a.dtype.kind == "f":
        if a.size and not np.all(np.isfinite(a) & (np.floor(a) == a)):
            raise ValueError(f"{loss_name} expects integer class labels, got non-integer "
                             f"floats (targets of shape {a.shape}); for probability targets "
                             "use 'categorical_crossentropy'")
    elif a.dtype.kind not in "biu":
        raise TypeError(f"{loss_name} expects integer class labels, got dtype {a.dtype}")
    lo_hi = label_range(a, k)  # on the values as given: 2**40 is not wrapped
    if lo_hi is not None:
        raise ValueError(f"{loss_name}: class labels must be in [0, {k}) for a model output of "
                         f"shape {tuple(output_shape)}, got labels in [{lo_hi[0]}, {lo_hi[1]}]")
    return np.ascontiguousarray(a, dtype=np.intp)


def dense(loss_name, y, output_shape, sparse_hint=False):
    """Float targets (n, k) matching the output width; (n,) accepted when k == 1."""
    k = int(output_shape[-1])
    a = np.asarray(y)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{loss_name} expects numeric targets, got dtype {a.dtype}")
    if a.ndim == 1 and k == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != k:
        hint = ""
        if sparse_hint and a.ndim == 1:
            hint = (" - these look like integer class labels: use "
                    "'sparse_categorical_crossentropy' or one-hot encode them")
        elif a.ndim == 1:
            hint = " - targets of shape (n,) are accepted only for a single output unit"
        raise ValueError(f"{loss_name}: targets of shape {np.shape(y)} do not match the model "
                         f"output shape {tuple(output_shape)}; expected (n, {k}){hint}")
    dt = a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(floatx())
    return np.ascontiguousarray(a, dtype=dt)
