"""The loss base classes (Keras 3's ``losses/loss.py``): :class:`Loss` (reductions,
standalone ``__call__``, the training-path contract, config), :class:`BuiltinLoss`
(Keras's constructor order for the built-in losses) and :class:`HostLoss` (a loss with
no backend op, computed in float64 NumPy on the host)."""
from __future__ import annotations

import numpy as np

from .targets import dense, pair

#: Keras's ``backend.epsilon()``: probabilities are clipped to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7

_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def _snake(name):
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i:
            out.append("_")
        out.append(c.lower())
    return "".join(out)


class Loss:
    """Base class of losses.

    Subclasses implement :meth:`call` (per-sample values, NumPy) and
    :meth:`loss_and_grad` (the training path through backend ops).

    Parameters
    ----------
    name : str, optional
    reduction : str
        ``'sum_over_batch_size'`` (default: ``sum(w_i * l_i) / n``), ``'sum'``,
        ``'mean'`` (the same as the default), ``'mean_with_sample_weight'``
        (``sum(w_i * l_i) / sum(w_i)``) or ``'none'``/``None`` (per-sample
        values; standalone use only).
    dtype : ignored, accepted for Keras compatibility.
    """

    #: Output activation whose logits this loss can consume directly.
    fused_activation = None
    #: The name when none is given (else the class name in snake case).
    _default_name = None
    #: The loss's own arguments (attributes) that :meth:`get_config` saves.
    _CONFIG = ()
    #: Whether targets of shape (n,) get the hint "use the sparse loss" (one-hot losses).
    _sparse_hint = False

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction: expected one of {list(_REDUCTIONS)}, got {reduction!r}")
        if name is None:
            name = self._default_name or _snake(type(self).__name__)
        self.name = name
        self.reduction = reduction
        self.dtype = dtype

    # -- standalone use ---------------------------------------------------
    def call(self, y_true, y_pred):
        """Per-sample loss values, shape ``(n,)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def __call__(self, y_true, y_pred, sample_weight=None):
        if _recorded(y_pred):  # inside a GradientTape / custom train step: differentiable
            if type(self).loss_and_grad is not Loss.loss_and_grad:
                return self._recorded_builtin(y_true, y_pred, sample_weight)
            return self._reduce_recorded(self.call(y_true, y_pred), sample_weight)
        values = np.asarray(self.call(y_true, y_pred), dtype=np.float64)
        n = values.shape[0] if values.ndim else 1
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.ndim == 2 and w.shape[1] == 1:
                w = w[:, 0]
            if w.ndim and w.shape != values.shape:
                raise ValueError(f"{self.name}: sample_weight of shape {np.shape(sample_weight)} "
                                 f"does not match {n} samples")
            values = values * w
        else:
            w = None
        if self.reduction in ("none", None):
            return values
        total = float(values.sum())
        if self.reduction == "sum":
            return total
        if self.reduction == "mean_with_sample_weight" and w is not None:
            denom = float(np.broadcast_to(w, values.shape).sum())
            return total / denom if denom else 0.0
        return total / values.size if values.size else 0.0

    # -- training path ------------------------------------------------------
    def prepare_targets(self, y, output_shape):
        """Validate and convert targets once per ``fit``/``evaluate`` call.

        Parameters
        ----------
        y : array-like
        output_shape : tuple
            The model output shape; only its last entry (the width) is used.

        Returns
        -------
        numpy.ndarray: float (n, k) for dense losses, integer (n,) for sparse ones.
        """
        return dense(type(self).__name__, y, output_shape, sparse_hint=self._sparse_hint)

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        """One batch: ``(mean loss as a float, d loss / d output)``.

        Parameters
        ----------
        backend : Backend
        y_true : numpy.ndarray
            Targets as returned by :meth:`prepare_targets`.
        output : array (n, k)
            Model output, or logits of :attr:`fused_activation` when ``logits``.
        sample_weight : array (n,), optional
        grad : array (n, k), optional
            Reusable gradient buffer (same dtype as ``output``).
        logits : bool
            ``output`` holds pre-activation logits.
        """
        if type(self).call is Loss.call:
            raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, "
                                      f"y_pred) (or loss_and_grad)")
        # a loss defined by call() alone: its gradient comes from the tape (pynn.autodiff)
        self._check_not_logits(logits)
        from ..autodiff.tape import Tape, gradients
        with Tape() as tape:
            out = tape.leaf(np.asarray(backend.to_numpy(output)))
            loss = self._reduce_recorded(self.call(y_true, out), sample_weight)
        (g,) = gradients([loss], [np.ones((), out.dtype)], [out])
        if g is None:
            raise ValueError(f"loss {self.name!r}: its value does not depend on y_pred (no "
                             f"gradient path)")
        g = np.asarray(g, dtype=out.dtype).reshape(out.shape)
        if grad is None:
            grad = backend.asarray(g)
        else:
            backend.copy_(backend.asarray(g), grad)
        return float(np.asarray(loss.value)), grad

    def _recorded_builtin(self, y_true, y_pred, sample_weight):
        """A built-in loss on the tape: its own fused value and gradient, one entry."""
        from ..autodiff.tape import record
        from ..backends import get_backend
        be = get_backend()
        out = np.ascontiguousarray(y_pred.value)
        yt = self.prepare_targets(np.asarray(getattr(y_true, "value", y_true)), out.shape)
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=out.dtype)
        value, grad = self.loss_and_grad(be, yt, out, sample_weight=sw)
        grad = np.array(be.to_numpy(grad), copy=True)
        return record(self.name, np.asarray(value, dtype=out.dtype), [y_pred],
                      lambda g: (grad * g,))

    def _reduce_recorded(self, values, sample_weight):
        """Keras's reduction of per-sample ``values`` (recorded ops: differentiable)."""
        from .. import ops
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.asarray(ops.convert_to_numpy(values)).dtype)
            nd = np.ndim(ops.convert_to_numpy(values))
            while w.ndim > nd and w.shape[-1] == 1:
                w = w[..., 0]
            while w.ndim < nd:
                w = w[..., None]
            values = ops.multiply(values, w)
        r = self.reduction
        if r in ("none", None):
            return values
        total = ops.sum(values)
        if r == "sum":
            return total
        if r == "mean_with_sample_weight" and sample_weight is not None:
            denom = float(np.sum(np.broadcast_to(w, np.shape(ops.convert_to_numpy(values)))))
            return ops.divide(total, denom if denom else 1.0)
        size = max(int(np.size(ops.convert_to_numpy(values))), 1)
        return ops.divide(total, float(size))

    def _check_not_logits(self, logits):
        """A loss without :attr:`fused_activation` takes the model's output, never logits."""
        if logits:
            raise ValueError(f"{self.name} has no fused activation; the model must pass its "
                             "output, not logits")

    def _reduce(self, backend, loss, grad, sample_weight, n):
        """Turn the backend's ``sum_over_batch_size`` result into ``self.reduction``."""
        r = self.reduction
        if r in ("sum_over_batch_size", "mean"):
            return loss, grad
        if r == "sum":
            factor = float(n)
        elif r == "mean_with_sample_weight":
            if sample_weight is None:
                return loss, grad
            s = float(np.sum(sample_weight))
            factor = n / s if s else 0.0
        else:
            raise ValueError(f"{self.name}: reduction={r!r} cannot be used for training; use "
                             "'sum_over_batch_size' or 'sum'")
        if factor != 1.0:
            backend.scale_(grad, factor)
        return loss * factor, grad

    # -- config ------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype,
                **{key: getattr(self, key) for key in self._CONFIG}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if k not in ("name", "reduction", "dtype"))
        return f"{type(self).__name__}({args})"


def _recorded(x):
    from ..autodiff.tape import Tensor
    return isinstance(x, Tensor) and x.tape is not None


class LossFunctionWrapper(Loss):
    """A loss given as a function ``fn(y_true, y_pred, **kwargs)`` of per-sample values
    (Keras's ``LossFunctionWrapper``): written with ``pynn.ops``, it trains with the
    gradient the tape derives. Targets are passed as given (numeric, one row per sample).
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None,
                 **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction,
                         dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def prepare_targets(self, y, output_shape):
        a = np.asarray(y)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"loss {self.name!r} expects numeric targets, got dtype {a.dtype}")
        return a.astype(np.float64) if a.dtype.kind == "b" else a

    def get_config(self):
        raise NotImplementedError(f"loss {self.name!r} wraps the function {self.fn!r}; save "
                                  f"the model with save_weights(), or compile it again after "
                                  f"loading")


class BuiltinLoss(Loss):
    """A built-in loss without arguments of its own: Keras's constructor order
    ``(reduction, name, dtype)``, ``name`` defaulting to :attr:`Loss._default_name`."""

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class HostLoss(BuiltinLoss):
    """A loss computed in float64 NumPy on the host by ``_fn(yt, yp, **kw, grad=...)``.

    ``_fn`` takes float64 arrays of the same shape (n, k) and returns ``(values (n,),
    d values / d yp (n, k) or None)``, the derivative of each sample's loss with respect to
    its own predictions, following Keras's formula (clips included: the gradient is 0
    where Keras's clip is active).

    These losses have no backend op: one batch costs a copy of the output to the host (free
    on the CPU backends), one NumPy pass for the values and the gradient, and a copy of the
    gradient back into the backend's buffer. ``_kwargs`` names the constructor arguments
    passed to ``_fn`` (they are also the config).
    """

    _fn = None
    _kwargs = ()

    @property
    def _default_name(self):
        """Keras's name of the loss: the name of its function form (``_fn``'s without
        the underscore)."""
        return type(self)._fn.__name__.lstrip("_")

    @property
    def _CONFIG(self):
        return self._kwargs

    def _compute(self, yt, yp, grad=False):
        return type(self)._fn(yt, yp, **{k: getattr(self, k) for k in self._kwargs}, grad=grad)

    def call(self, y_true, y_pred):
        return self._compute(*pair(y_true, y_pred))[0]

    def loss_and_grad(self, backend, y_true, output, sample_weight=None, grad=None,
                      logits=False):
        self._check_not_logits(logits)
        yp = np.asarray(backend.to_numpy(output), dtype=np.float64)
        yt = np.asarray(backend.to_numpy(y_true), dtype=np.float64)
        if yt.shape != yp.shape:
            raise ValueError(f"{self.name}: targets of shape {yt.shape} do not match the "
                             f"model output shape {yp.shape}")
        n = yp.shape[0]
        values, g = self._compute(yt, yp, grad=True)
        if sample_weight is not None:
            w = np.asarray(backend.to_numpy(sample_weight), dtype=np.float64).reshape(n)
            values, g = values * w, g * w[:, None]
        loss = float(values.sum() / n) if n else 0.0
        g = backend.asarray(g / n if n else g, dtype=output.dtype)
        if grad is None:
            grad = g
        else:
            backend.copy_(g, grad)
        return self._reduce(backend, loss, grad, sample_weight, n)
