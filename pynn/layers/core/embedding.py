"""``Embedding``: token ids -> rows of a trainable table (Keras's layer)."""
from __future__ import annotations

import warnings

import numpy as np

from ... import initializers, regularizers
from ..layer import Layer

__all__ = ["Embedding"]


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{what}` must be a positive integer. Received: {what}={value!r} "
                         f"(of type {type(value).__name__}).")
    return int(value)


class Embedding(Layer):
    """Turns token ids ``(batch, ...)`` into vectors ``(batch, ..., output_dim)``.

    The weight ``embeddings`` has shape ``(input_dim, output_dim)`` (Keras's layout);
    forward is the backend's ``embedding_forward`` gather, backward its
    ``embedding_backward`` scatter-add (repeated ids accumulate). Ids must be integers
    in ``[0, input_dim)``; a float input (a model whose input is float) is accepted when
    every value is a whole number, as Keras casts it. The ids get no gradient.

    ``mask_zero=True`` declares id 0 as padding: :meth:`compute_mask` gives
    ``ids != 0`` (Keras's rule) for the layers after it.
    """

    _free_axes = (1,)  # any sequence length

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, mask_zero=False, **kwargs):
        if kwargs.pop("input_length", None) is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.",
                          stacklevel=2)
        super().__init__(**kwargs)
        self.input_dim = _positive_int(input_dim, "input_dim")
        self.output_dim = _positive_int(output_dim, "output_dim")
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.embeddings = None

    def build(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"Embedding layer {self.name!r} takes one tensor of token ids, "
                             f"got {len(input_shape)} inputs")
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          self.embeddings_regularizer)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs, mask=None):
        """``inputs != 0`` with ``mask_zero``, else ``None`` (Keras's rule)."""
        if not self.mask_zero:
            return None
        return np.not_equal(np.asarray(inputs), 0)

    def _ids(self, ctx, x):
        """``x`` as an ``intp`` workspace of ids, checked: whole numbers (when float) in
        ``[0, input_dim)``, judged on the values as given (before any cast)."""
        a = np.asarray(x)
        if a.ndim < 1:
            raise ValueError(f"Embedding layer {self.name!r}: expected a batch of token ids, "
                             f"got a scalar")
        if a.dtype.kind not in "biuf":
            raise TypeError(f"Embedding layer {self.name!r} takes integer token ids; got "
                            f"dtype {a.dtype} with shape {a.shape}")
        if a.dtype.kind == "f":
            whole = ctx.buffer("whole", a.shape, a.dtype)
            np.floor(a, out=whole)
            if not np.array_equal(whole, a):
                raise TypeError(f"Embedding layer {self.name!r} takes integer token ids; got "
                                f"non-integer {a.dtype} values in its input of shape "
                                f"{a.shape}")
        if a.size:
            lo, hi = a.min(), a.max()
            if lo < 0 or hi >= self.input_dim:
                bad = lo if lo < 0 else hi
                raise ValueError(self._range_message(a.shape, bad.item()))
        ids = ctx.buffer("ids", a.shape, np.intp)
        np.copyto(ids, a, casting="unsafe")
        return ids

    def _range_message(self, shape, bad):
        return (f"Embedding layer {self.name!r} (input_dim={self.input_dim}): token ids must "
                f"lie in [0, {self.input_dim}); its input of shape {shape} holds {bad!r}")

    def forward(self, ctx, x, training=False):
        ids = self._ids(ctx, x)
        out = ctx.buffer("y", ids.shape + (self.output_dim,))
        self.backend.embedding_forward(ids, self.embeddings.value, out=out)
        ctx.saved = ids
        return out

    def backward(self, ctx, dy, input_grad=True):
        ids = ctx.saved
        dtable = ctx.grad_out(self.embeddings)
        if dtable is not None:
            self.backend.embedding_backward(ids, dy, self.input_dim, out=dtable)
        return None

    def _eager_call(self, flat, structure, training):
        """Called on arrays: the ids stay integers (the base class would cast them to
        floats)."""
        if structure is not None:
            raise ValueError(f"Embedding layer {self.name!r} takes one array of token ids")
        x = np.asarray(flat[0])
        self._build_for(x.shape)
        out = self.forward(self.context(), x, training=training)
        return np.array(self.backend.to_numpy(out), copy=True)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(input_dim=self.input_dim, output_dim=self.output_dim,
                   embeddings_initializer=initializers.serialize(self.embeddings_initializer),
                   embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
                   mask_zero=self.mask_zero)
        return cfg
