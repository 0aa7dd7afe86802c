"""``BatchNormalization``."""
from __future__ import annotations

import numpy as np

from ... import initializers, regularizers
from ...distribution.distribution_lib import active as active_distribution
from ..layer import Layer, rows
from . import synchronized_stats

__all__ = ["BatchNormalization"]


class BatchNormalization(Layer):
    """Normalise one feature axis with batch statistics (training) or moving ones
    (inference), the statistics taken over every other axis.

    ``axis`` is the last axis by default (features; channels of channels_last images);
    any other non-batch axis (``axis=1``: the channels of channels_first data) is moved
    to the end in a workspace and back, around the same backend ops.

    Weights, in Keras's order: ``gamma`` (if ``scale``), ``beta`` (if ``center``),
    ``moving_mean`` and ``moving_variance`` (non-trainable, updated in training as
    ``moving = momentum * moving + (1 - momentum) * batch``). A layer with
    ``trainable = False`` runs in inference mode even while the model trains (Keras 3).

    ``synchronized=True`` (Keras's argument): in a data-parallel job
    (:mod:`pynn.distribution`) the training statistics are those of the global batch,
    reduced across ranks (:mod:`.synchronized_stats`), so the result is one process's
    on the global batch; in one process it changes nothing. The default takes each
    rank's statistics over its own rows (and the moving statistics then differ by rank;
    rank 0's are the ones saved).
    """

    _supports_masking = True  # masks pass through (Keras)

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, synchronized=False,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(synchronized, bool):
            raise ValueError(f"BatchNormalization {self.name!r}: synchronized must be a bool, "
                             f"got {synchronized!r}")
        self.synchronized = synchronized
        if not isinstance(axis, (int, np.integer)):
            raise ValueError(f"BatchNormalization {self.name!r}: axis must be an int (a "
                             f"feature axis: the last axis, or 1 for channels_first data), "
                             f"got {axis!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"BatchNormalization {self.name!r}: momentum must be in [0, 1], "
                             f"got {momentum!r}")
        if not self.epsilon > 0.0:
            raise ValueError(f"BatchNormalization {self.name!r}: epsilon must be > 0, "
                             f"got {epsilon!r}")
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self._moved_axis = None  # the axis moved to the end (None: the last axis)

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"BatchNormalization {self.name!r}: axis={self.axis} is not a "
                             f"feature axis of inputs of shape {tuple(input_shape)}: use the "
                             f"last axis (-1) or one of 1..{max(rank - 1, 1)} (1: the channels "
                             f"of channels_first data); the batch axis 0 cannot be normalised")
        axis = self.axis % rank
        self._moved_axis = None if axis == rank - 1 else axis
        k = input_shape[axis]
        if k is None:
            raise ValueError(f"BatchNormalization {self.name!r}: the size of axis {self.axis} "
                             f"must be known, got input shape {tuple(input_shape)}")
        if self.scale:
            self.gamma = self.add_weight("gamma", (k,), self.gamma_initializer,
                                         self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight("beta", (k,), self.beta_initializer,
                                        self.beta_regularizer)
        self.moving_mean = self.add_weight("moving_mean", (k,), self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (k,),
                                               self.moving_variance_initializer,
                                               trainable=False)
        self.built = True

    @staticmethod
    def _constant(ctx, key, k, value):
        """A ones/zeros vector standing in for gamma/beta when scale/center is off."""
        c = ctx.buffer(key, (k,))
        c.fill(value)
        return c

    def _to_last(self, ctx, key, a):
        """``a`` with the normalised axis moved to the end (a copy in workspace ``key``)."""
        if self._moved_axis is None:
            return a
        if not self.backend.host_memory:
            raise NotImplementedError(f"BatchNormalization {self.name!r}: axis={self.axis} "
                                      f"needs a host-memory backend (not "
                                      f"{self.backend.name!r})")
        moved = np.moveaxis(np.asarray(a), self._moved_axis, -1)
        out = ctx.buffer(key, moved.shape)
        np.copyto(out, moved)
        return out

    def _from_last(self, ctx, key, a):
        """Inverse of :meth:`_to_last`."""
        if self._moved_axis is None:
            return a
        moved = np.moveaxis(a, -1, self._moved_axis)
        out = ctx.buffer(key, moved.shape)
        np.copyto(out, moved)
        return out

    def forward(self, ctx, x, training=False):
        y = self._forward_last(ctx, self._to_last(ctx, "x_moved", x), training)
        return self._from_last(ctx, "y_moved", y)

    def backward(self, ctx, dy, input_grad=True):
        dx = self._backward_last(ctx, self._to_last(ctx, "dy_moved", dy), input_grad)
        return None if dx is None else self._from_last(ctx, "dx_moved", dx)

    def _forward_last(self, ctx, x, training):
        be = self.backend
        xs = tuple(x.shape)
        k = xs[-1]
        x2 = rows(x, k)
        train_mode = bool(training) and self.trainable
        gamma = self.gamma.value if self.gamma is not None else self._constant(ctx, "ones", k, 1.0)
        beta = self.beta.value if self.beta is not None else self._constant(ctx, "zeros", k, 0.0)
        dp = active_distribution() if train_mode and self.synchronized else None
        if dp is not None:
            if not be.host_memory:
                raise NotImplementedError(f"BatchNormalization {self.name!r}: synchronized "
                                          f"statistics need a host-memory backend (not "
                                          f"{be.name!r})")
            y, mean, inv_std, weight = synchronized_stats.forward(
                dp, x2, gamma, beta, self.moving_mean.value, self.moving_variance.value,
                self.momentum, self.epsilon, ctx.buffer("y", x2.shape))
            ctx.saved = (xs, x2, gamma, mean, inv_std, train_mode, (dp, weight))
            return y if len(xs) == 2 else y.reshape(xs)
        y, mean, inv_std = be.batchnorm_forward(
            x2, gamma, beta, self.moving_mean.value, self.moving_variance.value, train_mode,
            momentum=self.momentum, epsilon=self.epsilon, out=ctx.buffer("y", x2.shape))
        ctx.saved = (xs, x2, gamma, mean, inv_std, train_mode, None)
        return y if len(xs) == 2 else y.reshape(xs)

    def _backward_last(self, ctx, dy, input_grad):
        be = self.backend
        x_shape, x2, gamma, mean, inv_std, train_mode, sync = ctx.saved
        k = x2.shape[1]
        dy = rows(dy, k)
        dx = ctx.buffer("dx", x2.shape)
        if train_mode:
            dg = ctx.grad_out(self.gamma) if self.gamma is not None else None
            db = ctx.grad_out(self.beta) if self.beta is not None else None
            dg = dg if dg is not None else ctx.buffer("dgamma_scratch", (k,))
            db = db if db is not None else ctx.buffer("dbeta_scratch", (k,))
            if sync is not None:
                synchronized_stats.backward(sync[0], dy, x2, gamma, mean, inv_std, sync[1],
                                            dx, dg, db)
            else:
                be.batchnorm_backward(dy, x2, gamma, mean, inv_std, dx=dx, dgamma=dg,
                                      dbeta=db)
        else:
            # inference-mode normalisation is a per-column scale: dx = dy * gamma * inv_std
            if not be.host_memory:
                raise NotImplementedError(f"BatchNormalization {self.name!r}: backward through "
                                          f"a frozen layer needs a host-memory backend")
            scale = (np.asarray(be.to_numpy(gamma), dtype=np.float64) * inv_std)
            np.multiply(dy, scale.astype(dx.dtype), out=dx)
        if not input_grad:
            return None
        return dx if len(x_shape) == 2 else dx.reshape(x_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
                   synchronized=self.synchronized,
                   center=self.center, scale=self.scale,
                   beta_initializer=initializers.serialize(self.beta_initializer),
                   gamma_initializer=initializers.serialize(self.gamma_initializer),
                   moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
                   moving_variance_initializer=initializers.serialize(
                       self.moving_variance_initializer),
                   beta_regularizer=regularizers.serialize(self.beta_regularizer),
                   gamma_regularizer=regularizers.serialize(self.gamma_regularizer))
        return cfg
