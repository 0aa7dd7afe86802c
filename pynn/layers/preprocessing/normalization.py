"""``Normalization``: shift and scale features by a mean and variance given or learned
with :meth:`Normalization.adapt`, as Keras 3's preprocessing layer."""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..layer import Layer

__all__ = ["Normalization"]

#: Keras's ``backend.epsilon()``: the floor of the standard deviation divided by
EPSILON = 1e-7


def _batch_input(batch):
    """The inputs of a batch: ``x`` of ``(x, y)`` / ``(x, y, sample_weight)``."""
    return batch[0] if isinstance(batch, tuple) else batch


class Normalization(Layer):
    """``y = (x - mean) / max(sqrt(variance), 1e-7)`` (``invert=True``: the inverse,
    ``y = mean + x * max(sqrt(variance), 1e-7)``).

    ``axis`` (an int, a tuple of ints, or ``None``) names the axes that keep a mean and
    variance per index; the statistics are shared over every other axis (``None``: one
    scalar mean and variance). ``mean`` and ``variance`` are given together, or learned
    with :meth:`adapt` and then held in the non-trainable weights ``mean``, ``variance``
    and ``count`` (Keras's three; ``count`` stays 0, as in Keras 3, and is kept in the
    model's float dtype), which are saved with the model.
    """

    _supports_masking = True  # masks pass through (Keras)

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        what = f"Normalization {self.name!r}"
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axis = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise TypeError(f"{what}: axis must be an int, a tuple of ints or None, got "
                            f"{axis!r}")
        self.axis = axis
        if (mean is None) != (variance is None):
            raise ValueError(f"{what}: when setting values directly, both `mean` and "
                             f"`variance` must be set. Received: mean={mean} and "
                             f"variance={variance}")
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError(f"{what}: when setting values directly, `mean` and "
                                 f"`variance` must have the same shape. Received: mean shape "
                                 f"{np.shape(mean)} and variance shape {np.shape(variance)}")
            if len(np.shape(mean)) > len(self.axis):
                raise ValueError(f"{what}: the rank of `mean` must be less than or equal to "
                                 f"the number of axes ({len(self.axis)}). Received: mean shape "
                                 f"{np.shape(mean)} for axis {self.axis}")
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self.adapt_mean = self.adapt_variance = self.count = None
        self._keep_axis = self._reduce_axis = self._broadcast_shape = None
        self._mean_and_var_shape = None
        self._build_input_shape = None
        self._constants = None  # (mean, variance) broadcast, for given mean/variance

    def _what(self):
        return f"Normalization {self.name!r}"

    # -- build -----------------------------------------------------------------------------
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"{self._what()}: all `axis` values must be in the range [-ndim, "
                             f"ndim). Received inputs of shape {input_shape} (ndim={ndim}), "
                             f"while axis={self.axis}")
        keep = tuple(sorted(a % ndim for a in self.axis))
        unknown = [d for d in keep if input_shape[d] is None]
        if unknown:
            hint = (" (axis 0 is the batch axis: to normalise every element by one mean and "
                    "variance pass axis=None)" if 0 in unknown else "")
            raise ValueError(f"{self._what()}: all `axis` values to be kept must have a known "
                             f"shape. Received axis={self.axis}, inputs of shape "
                             f"{input_shape}, with unknown axis at index {unknown[0]}{hint}")
        self._build_input_shape = input_shape
        self._keep_axis = keep
        self._reduce_axis = tuple(d for d in range(ndim) if d not in keep)
        self._broadcast_shape = tuple(input_shape[d] if d in keep else 1 for d in range(ndim))
        self._mean_and_var_shape = tuple(input_shape[d] for d in keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight("mean", self._mean_and_var_shape, "zeros",
                                              trainable=False)
            self.adapt_variance = self.add_weight("variance", self._mean_and_var_shape,
                                                  "ones", trainable=False)
            # Keras keeps it "for backwards compatibility with older saved models"
            self.count = self.add_weight("count", (), "zeros", trainable=False)
        else:
            self._constants = tuple(self._broadcast_given(v)
                                    for v in (self.input_mean, self.input_variance))
        self.built = True

    def _broadcast_given(self, value):
        """A given mean/variance aligned right to left with the kept axes and broadcast to
        the broadcast shape (Keras's rule)."""
        v = np.asarray(value, dtype=np.float64)
        expanded = [1] * len(self._broadcast_shape)
        for i in range(1, v.ndim + 1):
            expanded[self._keep_axis[-i]] = v.shape[-i]
        try:
            return np.broadcast_to(v.reshape(expanded), self._broadcast_shape).astype(
                self.dtype)
        except ValueError:
            raise ValueError(f"{self._what()}: the given mean/variance of shape {v.shape} "
                             f"cannot be broadcast to the kept axes {self._keep_axis} of "
                             f"inputs of shape {self._build_input_shape} (shape "
                             f"{self._mean_and_var_shape})") from None

    # -- adapt -----------------------------------------------------------------------------
    def adapt(self, data):
        """Compute the mean and variance of ``data`` over every axis not in ``axis``.

        ``data``: a NumPy array (its statistics taken at once), or an iterable of
        batches (a list of arrays, a generator, a :class:`pynn.utils.PyDataset`; a batch
        may be ``(x, y[, sample_weight])``, whose ``x`` is used). Batches are combined
        as Keras combines them: each weighted by its share of the elements seen so far,
        the variance by the lack-of-fit sum of squares, which gives the mean and
        (biased) variance of all the data. Statistics accumulate in float64.
        """
        if self.input_mean is not None:
            raise ValueError(f"{self._what()}: adapt() cannot be used on a layer created with "
                             f"a given `mean` and `variance`")
        if isinstance(data, np.ndarray):
            batches = None
            input_shape = data.shape
        elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
            it = iter(data)
            first = next(it, None)
            if first is None:
                raise ValueError(f"{self._what()}: adapt() received an empty iterable (no "
                                 f"batches). Expected at least one batch.")
            first = np.asarray(_batch_input(first))
            input_shape = first.shape
            batches = itertools.chain([first], it)
        else:
            raise TypeError(f"{self._what()}: adapt() supports a NumPy array or an iterable "
                            f"of batches (list, generator, PyDataset); got "
                            f"{type(data).__name__}")
        if not self.built:
            # built for the data's own shape, batch size included (as Keras builds it):
            # _build_for would make axis 0 unknown, which a kept axis 0 needs
            if self._dtype is None:
                self._dtype = self.dtype
            self.build(input_shape)
        else:
            self._check_adapt_shape(input_shape, "the data")
        if batches is None:
            x = self._numeric(data)
            if self._count(x) == 0:
                raise ValueError(f"{self._what()}: adapt() data of shape {x.shape} holds no "
                                 f"values to take statistics over")
            total_mean = x.mean(axis=self._reduce_axis, dtype=np.float64)
            total_var = x.var(axis=self._reduce_axis, dtype=np.float64)
        else:
            total_mean = np.zeros(self._mean_and_var_shape)
            total_var = np.zeros(self._mean_and_var_shape)
            total_count = 0
            for batch in batches:
                x = self._numeric(np.asarray(_batch_input(batch)))
                self._check_adapt_shape(x.shape, "a batch")
                batch_count = self._count(x)
                if batch_count == 0:
                    continue
                batch_mean = x.mean(axis=self._reduce_axis, dtype=np.float64)
                batch_var = x.var(axis=self._reduce_axis, dtype=np.float64)
                total_count += batch_count
                batch_weight = batch_count / total_count
                existing_weight = 1.0 - batch_weight
                new_mean = total_mean * existing_weight + batch_mean * batch_weight
                total_var = ((total_var + (total_mean - new_mean) ** 2) * existing_weight
                             + (batch_var + (batch_mean - new_mean) ** 2) * batch_weight)
                total_mean = new_mean
            if total_count == 0:
                raise ValueError(f"{self._what()}: adapt() received only empty batches (first "
                                 f"of shape {input_shape})")
        self.adapt_mean.assign(np.asarray(total_mean, dtype=self.adapt_mean.dtype))
        self.adapt_variance.assign(np.asarray(total_var, dtype=self.adapt_variance.dtype))

    def _count(self, x):
        """How many values of ``x`` each mean/variance entry is taken over."""
        return math.prod(x.shape[d] for d in self._reduce_axis)

    def _numeric(self, x):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{self._what()}: adapt() needs numeric data, got dtype {x.dtype} "
                            f"with shape {x.shape}")
        if x.size and x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise ValueError(f"{self._what()}: adapt() data of shape {x.shape} holds NaN or "
                             f"inf values")
        return x

    def _check_adapt_shape(self, shape, what):
        built = self._build_input_shape
        if len(shape) != len(built) or any(shape[d] != built[d] for d in self._keep_axis
                                           if built[d] is not None):
            raise ValueError(f"{self._what()}: the layer was built with input_shape={built}, "
                             f"but adapt() received {what} with an incompatible shape, "
                             f"data.shape={tuple(shape)} (the kept axes {self._keep_axis} "
                             f"must match)")

    # -- computation -----------------------------------------------------------------------
    def _statistics(self):
        if self._constants is not None:
            return self._constants
        be = self.backend
        mean = np.asarray(be.to_numpy(self.adapt_mean.value)).reshape(self._broadcast_shape)
        var = np.asarray(be.to_numpy(self.adapt_variance.value)).reshape(
            self._broadcast_shape)
        return mean, var

    def _denominator(self, ctx, var, dtype):
        d = ctx.buffer("denominator", var.shape, dtype)
        np.sqrt(var, out=d, dtype=dtype)
        np.maximum(d, EPSILON, out=d)
        return d

    def _check_shape(self, shape):
        """Inputs of ``shape`` must take the statistics by broadcasting and keep their
        shape (an unknown dimension, ``None``, is taken to fit)."""
        b = self._broadcast_shape
        ok = len(b) <= len(shape) and all(
            d == 1 or s is None or s == d for s, d in zip(tuple(shape)[len(shape) - len(b):], b))
        if not ok:
            raise ValueError(f"{self._what()}: inputs of shape {tuple(shape)} do not match its "
                             f"mean and variance of shape {self._mean_and_var_shape} (axis="
                             f"{self.axis}, built for inputs of shape "
                             f"{self._build_input_shape})")

    def forward(self, ctx, x, training=False):
        be = self.backend
        if not be.host_memory:
            raise NotImplementedError(f"{self._what()}: needs a host-memory backend (not "
                                      f"{be.name!r})")
        self._check_shape(x.shape)
        mean, var = self._statistics()
        d = self._denominator(ctx, var, x.dtype)
        y = ctx.buffer("y", x.shape)
        if self.invert:
            np.multiply(x, d, out=y)
            np.add(y, mean, out=y, casting="unsafe")
        else:
            np.subtract(x, mean, out=y, casting="unsafe")
            np.divide(y, d, out=y)
        ctx.saved = d
        return y

    def backward(self, ctx, dy, input_grad=True):
        if not input_grad:
            return None
        d = ctx.saved
        dx = ctx.buffer("dx", dy.shape)
        if self.invert:
            np.multiply(dy, d, out=dx)
        else:
            np.divide(dy, d, out=dx)
        return dx

    def compute_output_shape(self, input_shape):
        if self.built and self._broadcast_shape is not None:
            self._check_shape(input_shape)
        return tuple(input_shape)

    # -- config ----------------------------------------------------------------------------
    def get_config(self):
        cfg = super().get_config()
        cfg.update(axis=self.axis, invert=self.invert,
                   mean=np.array(self.input_mean).tolist(),
                   variance=np.array(self.input_variance).tolist())
        return cfg
