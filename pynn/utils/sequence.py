"""``pad_sequences``: a list of sequences as one ``(num_samples, maxlen)`` array (Keras's)."""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["pad_sequences"]

_SIDES = ("pre", "post")


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pad (or truncate) ``sequences`` to one length, as ``keras.utils.pad_sequences``.

    Parameters
    ----------
    sequences : list of sequences
        Each a list or array of values (or of equal-shaped arrays: the sample shape is
        taken from the first non-empty sequence).
    maxlen : int, optional
        Length of the result; default: the longest sequence.
    dtype : dtype
        Of the result (default ``'int32'``; ``object`` for strings).
    padding, truncating : ``'pre'`` or ``'post'``
        Pad / cut at the start (``'pre'``) or the end (``'post'``) of each sequence.
    value : number or str
        The padding value.

    Returns
    -------
    numpy.ndarray of shape ``(len(sequences), maxlen) + sample_shape``.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    if padding not in _SIDES:
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in _SIDES:
        raise ValueError(f'Truncating type "{truncating}" not understood')
    lengths = []
    sample_shape = None
    for x in sequences:
        try:
            lengths.append(len(x))
        except TypeError as exc:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: "
                             f"{x!s}") from exc
        if sample_shape is None and len(x):
            sample_shape = np.asarray(x).shape[1:]
    sample_shape = sample_shape or ()
    if maxlen is None:
        maxlen = max(lengths, default=0)
    elif (isinstance(maxlen, bool) or not isinstance(maxlen, numbers.Integral)
          or maxlen < 0):
        raise ValueError(f"`maxlen` must be a non-negative integer or None, got {maxlen!r}")
    maxlen = int(maxlen)
    is_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_str:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: "
                         f"{type(value)}\nYou should set `dtype=object` for variable length "
                         f"strings.")
    out = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        kept = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        kept = np.asarray(kept, dtype=dtype)
        if kept.shape[1:] != sample_shape:
            raise ValueError(f"Shape of sample {kept.shape[1:]} of sequence at position {i} "
                             f"is different from expected shape {sample_shape}")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, -len(kept):] = kept
    return out
