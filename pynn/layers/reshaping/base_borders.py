"""``BaseZeroPadding`` and ``BaseCropping``: add or remove rows/columns at the borders of
1-D or 2-D data (a copy on the host; each is the other's backward pass)."""
from __future__ import annotations

from ..convolutional.conv_utils import (check_rank, require_host, spatial_axes,
                                        standardize_data_format, standardize_tuple)
from ..layer import Layer

__all__ = ["BaseZeroPadding", "BaseCropping", "pairs"]


def pairs(value, rank, name, where):
    """Keras's ``padding``/``cropping`` argument as ``rank`` ``(before, after)`` pairs:
    an int (the same everywhere), ``rank`` ints (symmetric per axis; for rank 1 the
    pair itself), or ``rank`` pairs."""
    if rank == 1:
        return (standardize_tuple(value, 2, name, where, allow_zero=True),)
    if isinstance(value, (list, tuple)) and len(value) == rank:
        return tuple(standardize_tuple(v, 2, f"{name}[{i}]", where, allow_zero=True)
                     for i, v in enumerate(value))
    v = standardize_tuple(value, 1, name, where, allow_zero=True) \
        if not isinstance(value, (list, tuple)) else None
    if v is None:
        raise ValueError(f"{where}: `{name}` should be an int, a tuple of {rank} ints or a "
                         f"tuple of {rank} tuples of 2 ints. Received: {name}={value!r}")
    return ((v[0], v[0]),) * rank


class _Borders(Layer):
    """Shared by padding and cropping: ``amounts`` ``(before, after)`` per spatial axis."""

    rank = None
    #: +1: the output is larger (padding); -1: smaller (cropping)
    sign = 0
    _arg = None

    def __init__(self, amounts, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format, self._where)
        setattr(self, self._arg, pairs(amounts, self.rank, self._arg, self._where))

    @property
    def _where(self):
        return f"{type(self).__name__} {self.name!r}"

    @property
    def _amounts(self):
        return getattr(self, self._arg)

    def compute_output_shape(self, input_shape):
        check_rank(self._where, input_shape, self.rank)
        shape = list(input_shape)
        for a, (b, e) in zip(spatial_axes(self.rank, self.data_format), self._amounts):
            if shape[a] is None:
                continue
            shape[a] += self.sign * (b + e)
            if shape[a] <= 0:
                raise ValueError(f"{self._where}: `{self._arg}` {self._amounts} must be smaller "
                                 f"than the input's spatial sizes; got input shape "
                                 f"{tuple(input_shape)}")
        return tuple(shape)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def _interior(self, small_shape):
        """Slices of the larger array holding the smaller one (of ``small_shape``)."""
        idx = [slice(None)] * len(small_shape)
        for a, (b, _) in zip(spatial_axes(self.rank, self.data_format), self._amounts):
            idx[a] = slice(b, b + small_shape[a])
        return tuple(idx)

    def _out_shape(self, shape):
        shape = list(shape)
        for a, (b, e) in zip(spatial_axes(self.rank, self.data_format), self._amounts):
            shape[a] += self.sign * (b + e)
        return tuple(shape)

    def _embed(self, ctx, key, small, big_shape):
        """``small`` placed inside zeros of ``big_shape`` (the workspace ``key``)."""
        out = ctx.buffer(key, big_shape)
        out.fill(0)
        out[self._interior(small.shape)] = small
        return out

    def _extract(self, ctx, key, big, small_shape):
        """The part of ``big`` at the interior, copied into the workspace ``key``."""
        out = ctx.buffer(key, small_shape)
        out[...] = big[self._interior(small_shape)]
        return out

    def forward(self, ctx, x, training=False):
        require_host(self, "padding and cropping")
        out_shape = self._out_shape(x.shape)
        ctx.saved = tuple(x.shape)
        if self.sign > 0:
            return self._embed(ctx, "y", x, out_shape)
        return self._extract(ctx, "y", x, out_shape)

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        x_shape = ctx.saved
        if self.sign > 0:
            return self._extract(ctx, "dx", dy, x_shape)
        return self._embed(ctx, "dx", dy, x_shape)

    def get_config(self):
        cfg = super().get_config()
        amounts = [list(p) for p in self._amounts]
        cfg[self._arg] = amounts[0] if self.rank == 1 else amounts
        cfg["data_format"] = self.data_format
        return cfg


class BaseZeroPadding(_Borders):
    """Zeros added before and after each spatial axis (``padding``)."""

    sign = 1
    _arg = "padding"


class BaseCropping(_Borders):
    """Rows/columns removed before and after each spatial axis (``cropping``)."""

    sign = -1
    _arg = "cropping"
