"""``LayerNormalization`` (Ba et al., 2016), as Keras 3's."""
from __future__ import annotations

import warnings

from ... import initializers, regularizers
from ..layer import Layer
from .axis_rows import AxisRows, canonical_axes, standardize_axis

__all__ = ["LayerNormalization"]


class LayerNormalization(Layer):
    """Normalise each sample over ``axis`` (the last axis by default), independently of
    the batch: ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``, the mean and the
    biased variance taken over ``axis``.

    ``gamma`` (if ``scale``) and ``beta`` (if ``center``) have the shape of the
    normalised axes (Keras's weights, in Keras's order). ``rms_scaling=True`` is Keras's
    deprecated option (it warns, as Keras does): ``y = x / sqrt(var + epsilon) * gamma``,
    no centring and no ``beta``. Constraints are not supported by pynn: only ``None`` is
    accepted for ``beta_constraint``/``gamma_constraint``.

    The normalised axes may be any non-batch axes; when they are not the trailing ones
    the input is transposed in a workspace (host-memory backends only).
    """

    _supports_masking = True  # masks pass through (Keras)

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        what = f"LayerNormalization {self.name!r}"
        self.axis = standardize_axis(axis, what)
        try:
            self.epsilon = float(epsilon)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: epsilon must be a positive float, got {epsilon!r}") \
                from None
        if not self.epsilon > 0.0 or self.epsilon == float("inf"):
            raise ValueError(f"{what}: epsilon must be a positive float, got {epsilon!r}")
        self.center, self.scale = bool(center), bool(scale)
        self.rms_scaling = bool(rms_scaling)
        if self.rms_scaling:
            warnings.warn("You passed `rms_scaling=True`, which is deprecated (as in Keras). "
                          "This argument scales the input by the variance, not the root mean "
                          "square.", stacklevel=2)
        for name, c in (("beta_constraint", beta_constraint),
                        ("gamma_constraint", gamma_constraint)):
            if c is not None:
                raise ValueError(f"{what}: {name}={c!r} is not supported (pynn has no weight "
                                 f"constraints); pass None")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma = self.beta = None
        self._rows = None

    def _what(self):
        return f"LayerNormalization {self.name!r}"

    def _axes(self, input_shape):
        axes = canonical_axes(self.axis, input_shape, self._what())
        if 0 in axes:
            raise ValueError(f"{self._what()}: axis={self.axis} includes the batch axis 0 of "
                             f"inputs of shape {tuple(input_shape)}; normalise over non-batch "
                             f"axes (the default -1: the features)")
        unknown = [a for a in axes if input_shape[a] is None]
        if unknown:
            raise ValueError(f"{self._what()}: the sizes of the normalised axes must be known, "
                             f"got inputs of shape {tuple(input_shape)} (axis {unknown[0]} "
                             f"is None)")
        return axes

    def build(self, input_shape):
        axes = self._axes(input_shape)
        # Keras keeps the axis as a sorted list once built
        self.axis = sorted([self.axis] if isinstance(self.axis, int) else self.axis)
        shape = tuple(input_shape[a] for a in axes)
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer,
                                         self.gamma_regularizer)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight("beta", shape, self.beta_initializer,
                                        self.beta_regularizer)
        self._rows = AxisRows(axes, len(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        self._axes(input_shape)
        return tuple(input_shape)

    def forward(self, ctx, x, training=False):
        be = self.backend
        shape = tuple(x.shape)
        x2 = self._rows.to_rows(ctx, "x_rows", x, be, self._what())
        gamma = None if self.gamma is None else self.gamma.value.reshape(-1)
        beta = None if self.beta is None else self.beta.value.reshape(-1)
        y2, mean, inv_std = be.layernorm_forward(x2, gamma, beta, epsilon=self.epsilon,
                                                 rms_scaling=self.rms_scaling,
                                                 out=ctx.buffer("y_rows", x2.shape))
        ctx.saved = (shape, x2, gamma, mean, inv_std)
        return self._rows.from_rows(ctx, "y", y2, shape)

    def _grad_target(self, ctx, weight, key, k):
        """Where the op writes ``weight``'s gradient: the weight's own gradient, or a
        scratch buffer for a frozen or absent weight."""
        g = ctx.grad_out(weight) if weight is not None else None
        return g.reshape(-1) if g is not None else ctx.buffer(key, (k,))

    def backward(self, ctx, dy, input_grad=True):
        be = self.backend
        shape, x2, gamma, mean, inv_std = ctx.saved
        k = x2.shape[1]
        dy2 = self._rows.to_rows(ctx, "dy_rows", dy, be, self._what())
        dgamma = None if gamma is None else self._grad_target(ctx, self.gamma, "dgamma", k)
        dbeta = self._grad_target(ctx, self.beta, "dbeta", k)
        dx2 = ctx.buffer("dx_rows", x2.shape)
        be.layernorm_backward(dy2, x2, gamma, mean, inv_std, rms_scaling=self.rms_scaling,
                              dx=dx2, dgamma=dgamma, dbeta=dbeta)
        if not input_grad:
            return None
        return self._rows.from_rows(ctx, "dx", dx2, shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axis=self.axis, epsilon=self.epsilon, center=self.center, scale=self.scale,
                   rms_scaling=self.rms_scaling,
                   beta_initializer=initializers.serialize(self.beta_initializer),
                   gamma_initializer=initializers.serialize(self.gamma_initializer),
                   beta_regularizer=regularizers.serialize(self.beta_regularizer),
                   gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
                   beta_constraint=None, gamma_constraint=None)
        return cfg
