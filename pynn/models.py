"""The Keras-style ``Sequential`` model: compile, fit, evaluate, predict, summary, save.

All parameters of a built model live in ONE flat parameter buffer (trainable
ones first, then a separate flat buffer for non-trainable ones such as batch-norm
moving statistics) with one matching flat gradient buffer; every layer weight is
a view into them, so the optimizer updates everything in one backend call.

A training step::

    forward (each layer's backend ops, into per-batch-shape workspaces)
    loss.loss_and_grad        (fused softmax/sigmoid + cross-entropy from logits
                               when the last layer ends in the loss's activation)
    backward (layers in reverse; the first layer skips its input gradient)
    regularizer gradients added, optimizer.apply over the flat buffers

Randomness (initialisers, shuffling, dropout, nothing else) comes from the
model's ``numpy.random.Generator``, created from :func:`pynn.set_seed`'s seed, so
one seed gives bit-identical runs.
"""
from __future__ import annotations

import math
import numbers
import signal
import sys
import threading
import warnings

import numpy as np

from . import _config
from . import layers as layers_mod
from .backends import get_backend
from .backends.base import StackUpdate
from .layers import InputLayer, Layer, auto_name, clear_session

__all__ = ["Sequential", "load_model", "clear_session"]


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model written by :meth:`Sequential.save` (see :mod:`pynn.saving`)."""
    from .saving import load_model as _load
    return _load(filepath, custom_objects=custom_objects, compile=compile)


def _resolve_verbose(verbose):
    if verbose == "auto":
        return 1 if getattr(sys.stdout, "isatty", lambda: False)() else 2
    if verbose in (0, 1, 2) and not isinstance(verbose, bool):
        return int(verbose)
    if isinstance(verbose, bool):
        return int(verbose)
    raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, got {verbose!r}")


def _check_batch_size(batch_size):
    if type(batch_size) is int and batch_size > 0:
        return batch_size
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    return int(batch_size)


def _n_samples(a):
    return int(np.shape(a)[0]) if np.ndim(a) else 0


def _as_array(value, what):
    """``np.asarray(value)`` with an error naming the argument for ragged/odd input."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: cannot be converted to a numeric array (ragged nested "
                         f"sequences or mixed types?): {exc}") from None


#: guards the lazy creation of each model's forward-pass lock
_LOCK_CREATION = threading.Lock()


class _StepGuard:
    """Defers a Ctrl-C (SIGINT) that arrives during a training step to the step's end.

    ``fit`` wraps every step in ``in_step = True`` ... :meth:`end_step`; a SIGINT in
    between is remembered and raised as ``KeyboardInterrupt`` once the step (forward,
    backward, optimizer update) has finished, so an interrupted model holds the
    weights of its last finished step, never a half-applied update. A second Ctrl-C
    during the same step interrupts at once. Installed only in the main thread and only
    over Python's default handler (a user's own SIGINT handler is left alone).
    """

    def __init__(self):
        self.in_step = False
        self.pending = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self._previous = signal.signal(signal.SIGINT, self._handler)
            except (ValueError, OSError):  # pragma: no cover - no signals here
                self._previous = None
        return self

    def _handler(self, signum, frame):
        if self.in_step and not self.pending:
            self.pending = True
            return
        raise KeyboardInterrupt

    def end_step(self):
        self.in_step = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False


class Sequential(layers_mod.WeightViews):
    """A linear stack of layers (Keras's ``Sequential``).

    Parameters
    ----------
    layers : list of Layer, optional
        Added in order with :meth:`add`. An :class:`~pynn.layers.InputLayer`
        (``Input(shape=...)``) may come first.
    trainable : bool
    name : str, optional
        Default ``'sequential'``, ``'sequential_1'``...
    seed : int, optional
        Seed of the model's own Generator (default: derived from
        :func:`pynn.set_seed`'s global seed).
    """

    def __init__(self, layers=None, trainable=True, name=None, *, seed=None):
        self.name = name if name is not None else auto_name("Sequential")
        self._layers = []
        self._input_layer = None
        self._rng = _config.make_rng(seed)
        self._trainable = bool(trainable)
        self._dtype = None           # fixed at build (or by from_config)
        self._backend = None
        self.built = False
        self._build_input_shape = None
        # weights layout
        self._all_weights = []
        self._train_weights = []
        self._reg_weights = []
        self._flat_params = self._flat_grads = self._flat_frozen = None
        self._layout_sig = None
        self._layout_gen = -1
        self._layout_id = 0
        # compile state
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self._loss_weight = 1.0
        self._metrics = []
        self._weighted_metrics = []
        self._compile_config = None
        self._opt_layout_id = None
        # training state
        self.stop_training = False
        self.history = None
        self._buffers = {}
        self._loss_sum = 0.0
        self._loss_count = 0
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_build()

    # ------------------------------------------------------------------------------------
    # structure
    # ------------------------------------------------------------------------------------
    @property
    def layers(self):
        """The layers (the input layer excluded, as in Keras)."""
        return list(self._layers)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = value

    @property
    def dtype(self):
        return self._dtype or _config.floatx()

    def add(self, layer, rebuild=True):
        """Append ``layer`` (an InputLayer only as the very first item)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Only instances of `pynn.layers.Layer` can be added to a "
                            f"Sequential model. Received: {layer!r} "
                            f"(of type {type(layer).__name__})")
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._layers:
                raise ValueError(f"Sequential model {self.name!r}: an InputLayer can only be "
                                 "the first layer (and there can be only one)")
            self._input_layer = layer
        else:
            names = {l.name for l in self._layers}
            if self._input_layer is not None:
                names.add(self._input_layer.name)
            if layer.name in names:
                raise ValueError(f"All layers added to a Sequential model should have unique "
                                 f"names. Name {layer.name!r} is already the name of a layer "
                                 f"in this model. Update the `name` argument to pass a "
                                 f"unique name.")
            self._layers.append(layer)
        if rebuild:
            self._maybe_build()

    def pop(self, rebuild=True):
        """Remove and return the last layer."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        layer._release_workspaces()
        if self.built:
            self.built = False
            if rebuild:
                self._maybe_build()
        return layer

    def _known_input_shape(self):
        """One sample's shape if known (InputLayer, or the first layer's input_shape)."""
        if self._input_layer is not None:
            return self._input_layer.shape
        if self._build_input_shape is not None:
            return tuple(self._build_input_shape)[1:]
        if self._layers and self._layers[0]._input_shape_arg is not None:
            return self._layers[0]._input_shape_arg
        return None

    def _maybe_build(self):
        shape = self._known_input_shape()
        if shape is not None and self._layers:
            self.build((None,) + tuple(shape))
        elif not self._layers:
            self.built = False

    def build(self, input_shape=None):
        """Create every layer's weights for inputs of ``input_shape`` (batch axis included)."""
        if input_shape is None:
            shape = self._known_input_shape()
            if shape is None:
                raise ValueError(f"Sequential model {self.name!r}: build() needs an input "
                                 "shape, e.g. model.build((None, 784))")
            input_shape = (None,) + tuple(shape)
        input_shape = tuple(None if s is None else int(s) for s in input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"Sequential model {self.name!r}: input_shape must include the "
                             f"batch axis, e.g. (None, 784); got {input_shape}")
        if not self._layers:
            raise ValueError(f"Sequential model {self.name!r} has no layers to build")
        known = self._known_input_shape()
        if self._input_layer is not None and tuple(known) != input_shape[1:]:
            raise ValueError(f"Sequential model {self.name!r} has input shape "
                             f"{(None,) + tuple(known)}; cannot build it for {input_shape}")
        be = self._backend if self._backend is not None else get_backend()
        dtype = self._dtype or self._layer_dtype() or _config.floatx()
        shape = (None,) + input_shape[1:]
        for layer in self._layers:
            layer._attach(be, self._rng, dtype)
            try:
                shape = layer._build_for(shape)
            except ValueError as exc:
                raise ValueError(f"Sequential model {self.name!r}, layer {layer.name!r}: "
                                 f"{exc}") from exc
        self._backend = be
        self._dtype = np.dtype(dtype).name
        self._build_input_shape = (None,) + input_shape[1:]
        self.built = True
        self._relayout()

    def _layer_dtype(self):
        dts = {l._dtype_arg for l in self._layers if l._dtype_arg is not None}
        if self._input_layer is not None and self._input_layer._dtype_arg is not None:
            dts.add(self._input_layer._dtype_arg)
        if len(dts) > 1:
            raise ValueError(f"Sequential model {self.name!r}: layers ask for different dtypes "
                             f"{sorted(dts)}; all parameters share one buffer")
        return dts.pop() if dts else None

    @property
    def input_shape(self):
        return self._build_input_shape

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"Sequential model {self.name!r} is not built yet")
        return self._layers[-1].output_shape

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"This model has not yet been built. Build the model first by "
                             f"calling `build()` or by calling the model on a batch of data "
                             f"(needed for {what}).")

    # ------------------------------------------------------------------------------------
    # flat parameter layout
    # ------------------------------------------------------------------------------------
    def _weight_signature(self):
        # the value's identity too: a layer shared with another model may have been moved
        return tuple((id(w), w.trainable, id(w.value)) for l in self._layers for w in l._weights)

    def _relayout(self):
        """Move every weight into the flat buffers (trainable first), keeping values."""
        be, dt = self._backend, np.dtype(self._dtype)
        weights = [w for l in self._layers for w in l._weights]
        train = [w for w in weights if w.trainable]
        frozen = [w for w in weights if not w.trainable]
        flat_p = be.zeros((sum(w.size for w in train),), dt)
        flat_g = be.zeros((flat_p.shape[0],), dt)
        flat_f = be.zeros((sum(w.size for w in frozen),), dt)
        for group, flat, grads in ((train, flat_p, flat_g), (frozen, flat_f, None)):
            off = 0
            for w in group:
                if w.dtype != dt:
                    raise ValueError(f"Weight {w.path!r} has dtype {w.dtype}, the model "
                                     f"computes in {dt}")
                view = flat[off:off + w.size].reshape(w.shape)
                be.copy_(w.value, view)
                w.value = view
                w.grad = None if grads is None else grads[off:off + w.size].reshape(w.shape)
                off += w.size
        self._all_weights = weights
        self._train_weights = train
        self._reg_weights = [w for w in train if w.regularizer is not None]
        self._flat_params, self._flat_grads, self._flat_frozen = flat_p, flat_g, flat_f
        self._layout_sig = self._weight_signature()
        self._layout_id += 1
        layers_mod.weights_changed()  # other models sharing these layers must look again
        self._layout_gen = layers_mod._WEIGHTS_GENERATION[0]
        first = None
        for i, layer in enumerate(self._layers):
            if any(w.grad is not None for w in layer._weights):
                first = i
                break
        self._first_trainable = first

    def _sync(self):
        """Before each call: follow a backend switch and re-lay out if trainable flags changed."""
        be = get_backend()
        if self._backend is not None and be is not self._backend:
            if not (be.host_memory and self._backend.host_memory):
                raise ValueError(f"Sequential model {self.name!r} was built on backend "
                                 f"{self._backend.name!r}; it cannot run on {be.name!r}")
            self._backend = be
            for layer in self._layers:
                layer._backend = be
            if self.optimizer is not None and getattr(self.optimizer, "built", False):
                self.optimizer._backend = be
        if self.built and self._layout_gen != layers_mod._WEIGHTS_GENERATION[0]:
            if self._weight_signature() != self._layout_sig:
                self._relayout()
            self._layout_gen = layers_mod._WEIGHTS_GENERATION[0]

    # ------------------------------------------------------------------------------------
    # compile
    # ------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None):
        """Configure training: optimizer, loss and metrics (Keras 3 arguments)."""
        from . import losses as losses_mod
        from . import metrics as metrics_mod
        from . import optimizers as optimizers_mod
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = None if loss is None else losses_mod.get(loss)
        self._loss_weight = self._parse_loss_weights(loss_weights)

        def _metric_list(arg, what):
            if arg is None:
                return []
            if isinstance(arg, dict):
                raise ValueError(f"{what}: a Sequential model has one output; pass a list, "
                                 f"got a dict")
            if isinstance(arg, (str, bytes)) or not isinstance(arg, (list, tuple)):
                arg = [arg]
            return [metrics_mod.get(m, loss=self.loss) for m in arg]

        self._metrics = _metric_list(metrics, "metrics")
        self._weighted_metrics = _metric_list(weighted_metrics, "weighted_metrics")
        names = {"loss"} | {m.name for m in self._metrics}
        for m in self._weighted_metrics:
            if m.name in names:
                m.name = "weighted_" + m.name
            names.add(m.name)
        self._opt_layout_id = None
        self.compiled = True
        self.reset_metrics()  # Keras 3: a new compile starts fresh trackers
        self._compile_config = {"optimizer": optimizer, "loss": loss,
                                "loss_weights": loss_weights, "metrics": metrics,
                                "weighted_metrics": weighted_metrics}

    @staticmethod
    def _parse_loss_weights(loss_weights):
        if loss_weights is None:
            return 1.0
        w = loss_weights
        if isinstance(w, dict):
            if len(w) != 1:
                raise ValueError(f"loss_weights: a Sequential model has one output, got "
                                 f"{len(w)} weights")
            w = next(iter(w.values()))
        elif isinstance(w, (list, tuple)):
            if len(w) != 1:
                raise ValueError(f"loss_weights: a Sequential model has one output, got "
                                 f"{len(w)} weights")
            w = w[0]
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise ValueError(f"loss_weights: expected a number, got {loss_weights!r}") from None
        if not math.isfinite(w):
            raise ValueError(f"loss_weights: must be finite, got {loss_weights!r}")
        return w

    def get_compile_config(self):
        """What :meth:`compile` was given, serialised (for saving)."""
        if not self.compiled:
            return None
        from . import losses as losses_mod
        from . import metrics as metrics_mod
        from . import optimizers as optimizers_mod

        def metric_cfg(arg, objs):
            if arg is None:
                return None
            items = [arg] if isinstance(arg, str) or not isinstance(arg, (list, tuple)) else arg
            out = []
            for item, obj in zip(items, objs):
                out.append(item if isinstance(item, str) else metrics_mod.serialize(obj))
            return out

        cc = self._compile_config
        return {
            "optimizer": optimizers_mod.serialize(self.optimizer),
            "loss": None if self.loss is None else losses_mod.serialize(self.loss),
            "loss_weights": cc["loss_weights"],
            "metrics": metric_cfg(cc["metrics"], self._metrics),
            "weighted_metrics": metric_cfg(cc["weighted_metrics"], self._weighted_metrics),
        }

    def compile_from_config(self, config):
        self.compile(**config)

    @property
    def metrics(self):
        """The compiled metric objects (Keras also lists the loss tracker first)."""
        return list(self._metrics) + list(self._weighted_metrics)

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for m in self.metrics]

    def reset_metrics(self):
        self._loss_sum, self._loss_count = 0.0, 0
        for m in self.metrics:
            m.reset_state()

    # ------------------------------------------------------------------------------------
    # data preparation
    # ------------------------------------------------------------------------------------
    def _prepare_x(self, x, what="x"):
        """``x`` as a C-contiguous array of the model dtype, checked; builds the model."""
        if x is None:
            raise ValueError(f"{what} is required")
        if not self._layers:
            raise ValueError(f"Sequential model {self.name!r} has no layers")
        a = _as_array(x, what)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{what}: expected numeric data, got dtype {a.dtype}")
        if a.ndim < 2:
            raise ValueError(
                f"{what}: expected an array of shape (samples, features...), got shape "
                f"{a.shape}. Use x.reshape(-1, 1) for one feature or x.reshape(1, -1) for "
                f"one sample.")
        if not self.built:
            self.build((None,) + a.shape[1:])
        self._sync()
        layers_mod._check_input(self._layers[0], a.shape)
        a = np.ascontiguousarray(a, dtype=np.dtype(self._dtype))
        be = self._backend
        if not (be.all_finite(a) if be.host_memory else bool(np.isfinite(a).all())):
            raise ValueError(f"{what} contains NaN or infinite values")
        return a

    def _prepare_xy(self, x, y, sample_weight=None, class_weight=None, what=""):
        """Validated ``(x, targets, sample_weight)`` for fit/evaluate."""
        if not self.compiled:
            raise RuntimeError("You must call `compile()` before using the model for "
                               "training or evaluation.")
        if self.loss is None:
            raise ValueError("The model was compiled without a loss; pass loss=... to "
                             "compile() before fit/evaluate")
        if y is None:
            raise ValueError(f"{what}y is required (a Sequential model trains on (x, y) pairs)")
        xa = self._prepare_x(x, what + "x")
        ya = _as_array(y, what + "y")
        n = xa.shape[0]
        if ya.ndim == 0 or ya.shape[0] != n:
            raise ValueError(f"Data cardinality is ambiguous. Make sure all arrays contain "
                             f"the same number of samples. '{what}x' sizes: {n}, '{what}y' "
                             f"sizes: {_n_samples(ya)}")
        yp = self.loss.prepare_targets(ya, self.output_shape)
        if yp.dtype.kind == "f" and not np.isfinite(yp).all():
            bad = np.argwhere(~np.isfinite(yp))[0]
            raise ValueError(f"{what}y contains NaN or infinite values (first at index "
                             f"{tuple(int(i) for i in bad)}, value {yp[tuple(bad)]}); "
                             f"targets of shape {ya.shape}")
        sw = None
        if sample_weight is not None and class_weight is not None:
            raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            if sw.ndim == 2 and sw.shape[1] == 1:
                sw = sw[:, 0]
            if sw.shape != (n,):
                raise ValueError(f"{what}sample_weight: expected shape ({n},) to match "
                                 f"{what}x, got {np.shape(sample_weight)}")
            if not np.all(np.isfinite(sw)):
                raise ValueError(f"{what}sample_weight contains NaN or infinite values")
            sw = np.ascontiguousarray(sw)
        elif class_weight is not None:
            sw = self._class_weights_to_sample_weights(yp, class_weight)
        return xa, yp, sw

    @staticmethod
    def _class_weights_to_sample_weights(y, class_weight):
        """Keras's rule: labels, arg-max of one-hot rows, or rounded single outputs."""
        if not isinstance(class_weight, dict):
            raise ValueError(f"class_weight: expected a dict {{class index: weight}}, got "
                             f"{type(class_weight).__name__}")
        labels = np.asarray(y)
        if labels.ndim > 1:
            labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
        labels = np.round(labels).astype(np.int64)
        sw = np.ones(labels.shape[0], dtype=np.float64)
        for cls, weight in class_weight.items():
            sw[labels == int(cls)] = float(weight)
        return sw

    def _take(self, arr, idx, key):
        """Rows ``idx`` of host array ``arr`` (a slice view, or gathered into a buffer)."""
        if isinstance(idx, slice):
            part = arr[idx]
            return part if self._backend.host_memory else self._backend.asarray(part)
        if not self._backend.host_memory:
            return self._backend.asarray(np.take(arr, idx, axis=0))
        shape = (len(idx),) + arr.shape[1:]
        bkey = (key, shape, arr.dtype.str)
        buf = self._buffers.get(bkey)
        if buf is None:
            if len(self._buffers) > 16:
                self._buffers.clear()
            buf = self._buffers[bkey] = np.empty(shape, dtype=arr.dtype)
        return self._backend.take_rows(arr, idx, buf)

    def _buffer(self, key, shape):
        bkey = (key, tuple(shape))
        buf = self._buffers.get(bkey)
        if buf is None:
            if len(self._buffers) > 16:
                self._buffers.clear()
            buf = self._buffers[bkey] = self._backend.empty(tuple(shape),
                                                             np.dtype(self._dtype))
        return buf

    # ------------------------------------------------------------------------------------
    # one step
    # ------------------------------------------------------------------------------------
    def _fused(self):
        """True when the loss takes the last layer's pre-activation logits."""
        fa = getattr(self.loss, "fused_activation", None)
        return (fa is not None and not getattr(self.loss, "from_logits", False)
                and getattr(self._layers[-1], "output_activation", None) == fa)

    def _forward(self, x, training, logits=False):
        out = x
        last = len(self._layers) - 1
        for i, layer in enumerate(self._layers):
            if logits and i == last:
                out = layer.forward(out, training=training, logits=True)
            else:
                out = layer.forward(out, training=training)
        return out

    def _backward(self, grad):
        start = self._first_trainable
        if start is None:
            return
        for i in range(len(self._layers) - 1, start - 1, -1):
            grad = self._layers[i].backward(grad, input_grad=i > start)

    def _regularization(self, with_grad):
        total = 0.0
        be = self._backend
        for w in self._reg_weights:
            total += w.regularizer.loss(be, w.value)
            if with_grad:
                w.regularizer.add_grad_(be, w.value, w.grad)
        return total

    def _loss_and_grad(self, out, yb, swb, fused):
        be = self._backend
        grad = self._buffer("loss_grad", out.shape)
        loss, grad = self.loss.loss_and_grad(be, be.asarray(yb) if not be.host_memory else yb,
                                             out, sample_weight=swb, grad=grad, logits=fused)
        if self._loss_weight != 1.0:
            loss *= self._loss_weight
            be.scale_(grad, self._loss_weight)
        return float(loss), grad

    def _compute_gradients(self, xb, yb, swb, fused):
        """Forward, loss and backward: fills the flat gradient buffer; returns (loss, out).

        A stack of plain Dense layers with a loss the backend can fuse runs as ONE
        backend call (:meth:`~pynn.backends.base.Backend.dense_stack_forward_backward`);
        anything else goes layer by layer.
        """
        spec = self._dense_stack_spec(xb)
        if spec is not None:
            loss, out = self._dense_stack_step(spec, xb, yb, swb)
        else:
            out = self._forward(xb, training=True, logits=fused)
            loss, grad = self._loss_and_grad(out, yb, swb, fused)
            self._backward(grad)
        loss += self._regularization(with_grad=True)
        return loss, out

    #: Loss class name -> the loss of the fused Dense-stack step
    _STACK_LOSSES = {
        "SparseCategoricalCrossentropy": "softmax_cross_entropy",
        "CategoricalCrossentropy": "softmax_cross_entropy",
        "BinaryCrossentropy": "sigmoid_binary_cross_entropy",
        "MeanSquaredError": "mean_squared_error",
        "MeanAbsoluteError": "mean_absolute_error",
    }

    def _dense_stack_spec(self, xb):
        """The fused-step plan ``(loss name, activations, label_smoothing, weights)`` when
        every layer is a trainable Dense and the loss is one the step computes, else None.
        Cached per layout, loss object and backend."""
        be = self._backend
        key = (self._layout_id, self.loss, be, self._dtype)  # objects: compared by identity
        cached = getattr(self, "_stack_spec_cache", None)
        if cached is None or cached[0] != key:
            cached = self._stack_spec_cache = (key, self._make_dense_stack_spec())
            self._stack_workspaces = {}
        spec = cached[1]
        if spec is None or xb.ndim != 2:
            return None
        return spec

    def _make_dense_stack_spec(self):
        from . import losses as losses_mod
        be, loss = self._backend, self.loss
        if not be.host_memory or not self._layers or self._dtype not in ("float32", "float64"):
            return None
        if type(loss) not in (losses_mod.SparseCategoricalCrossentropy,
                              losses_mod.CategoricalCrossentropy, losses_mod.BinaryCrossentropy,
                              losses_mod.MeanSquaredError, losses_mod.MeanAbsoluteError):
            return None
        if loss.reduction not in ("sum_over_batch_size", "mean", "sum",
                                  "mean_with_sample_weight"):
            return None
        dense = self._dense_layers(skip_dropout=False)
        if dense is None:
            return None
        if any(l.kernel.grad is None or (l.bias is not None and l.bias.grad is None)
               for l in dense):
            return None  # frozen weights: the layered path skips their gradients
        kernels, biases, acts = self._stack_arrays(dense)
        dkernels = [l.kernel.grad for l in dense]
        dbiases = [None if l.bias is None else l.bias.grad for l in dense]
        name = self._STACK_LOSSES[type(loss).__name__]
        ls = 0.0
        fa = loss.fused_activation
        if fa is not None:
            from_logits = loss.from_logits
            if not from_logits and acts[-1] != fa:
                return None  # cross-entropy from probabilities: not fused
            if from_logits and acts[-1] == fa:
                return None  # the step would fold the activation into the loss
            ls = getattr(loss, "label_smoothing", 0.0)
            if ls and name != "softmax_cross_entropy":
                return None  # smoothed binary targets: layered path
        return dict(loss=name, activations=acts, label_smoothing=float(ls), kernels=kernels,
                    biases=biases, dkernels=dkernels, dbiases=dbiases,
                    units=[k.shape[1] for k in kernels])

    def _stack_update(self, spec):
        """The optimizer step as a :class:`~pynn.backends.base.StackUpdate` for the fused
        Dense-stack step, or None when it must run on its own (regularized weights add
        to the gradients first; clipping and custom rules: see
        ``Optimizer._stack_rule``)."""
        if self._reg_weights:
            return None
        opt = self.optimizer
        rule = opt._stack_rule()
        if rule is None:
            return None
        cached = getattr(self, "_stack_states", None)
        if cached is None or cached[0] is not spec or cached[1] is not opt \
                or cached[2] is not opt._params:
            cached = self._stack_states = (spec, opt, opt._params,
                                           self._make_stack_states(spec, opt))
        states = cached[3]
        if states is None:
            return None
        return StackUpdate(kernel_states=states[0], bias_states=states[1], **rule)

    def _make_stack_states(self, spec, opt):
        """Per-layer optimizer state views, or None when the optimizer was not built on
        exactly these weights."""
        index = {id(p): i for i, p in enumerate(opt._params)}  # ids of live arrays
        ks, bs = [], []
        for kernel, bias in zip(spec["kernels"], spec["biases"]):
            i = index.get(id(kernel))
            j = None if bias is None else index.get(id(bias))
            if i is None or (bias is not None and j is None):
                return None
            ks.append(opt._param_state(i))
            bs.append(() if bias is None else opt._param_state(j))
        return tuple(ks), tuple(bs)

    def _dense_stack_step(self, spec, xb, yb, swb, update=None):
        """Forward + loss + backward (and with ``update`` the optimizer step) in one
        backend call, into per-batch-size workspaces."""
        be, dt = self._backend, np.dtype(self._dtype)
        n = xb.shape[0]
        ws = self._stack_workspaces.get(n)
        if ws is None:
            if len(self._stack_workspaces) >= 4:
                self._stack_workspaces.clear()
            units = spec["units"]
            ws = self._stack_workspaces[n] = dict(
                outs=[be.empty((n, u), dt) for u in units],
                deltas=[be.empty((n, u), dt) for u in units],
                preacts=[be.empty((n, u), dt) if a == "gelu" else None
                         for u, a in zip(units, spec["activations"])],
                target=None)
        if yb.ndim == 2 and yb.dtype != dt:
            tbuf = ws["target"]
            if tbuf is None or tbuf.shape != yb.shape:
                tbuf = ws["target"] = be.empty(yb.shape, dt)
            np.copyto(tbuf, yb, casting="unsafe")
            yb = tbuf
        scale = self._loss_weight
        red = self.loss.reduction
        if red == "sum":
            scale *= n
        elif red == "mean_with_sample_weight" and swb is not None:
            s = float(np.sum(swb))
            scale *= n / s if s else 0.0
        loss = be.dense_stack_forward_backward(
            xb, yb, spec["kernels"], spec["biases"], spec["activations"], spec["loss"],
            ws["outs"], ws["deltas"], spec["dkernels"], spec["dbiases"], sample_weight=swb,
            preacts=ws["preacts"], label_smoothing=spec["label_smoothing"], loss_scale=scale,
            update=update)
        return float(loss), ws["outs"][-1]

    def _ensure_optimizer(self):
        if self._opt_layout_id != self._layout_id:
            params = [w.value for w in self._train_weights]
            names = [w.path for w in self._train_weights]
            self.optimizer.build(params, self._backend, flat_param=self._flat_params,
                                 names=names)
            self._opt_layout_id = self._layout_id

    def _train_step(self, xb, yb, swb, fused):
        spec = self._dense_stack_spec(xb)
        update = self._stack_update(spec) if spec is not None else None
        if update is not None:
            # the optimizer step runs inside the backend's fused step, layer by layer
            # while each gradient is in cache; it is skipped there on a non-finite loss
            loss, out = self._dense_stack_step(spec, xb, yb, swb, update)
            if not math.isfinite(loss):
                return loss
            self.optimizer._finish_step()
        else:
            loss, out = self._compute_gradients(xb, yb, swb, fused)
            if not math.isfinite(loss):
                # checked BEFORE the update: the weights stay those of the last good
                # step, nothing is accumulated; the caller (fit / train_on_batch)
                # reports it
                return loss
            if self._train_weights:
                self.optimizer.apply([w.grad for w in self._train_weights],
                                     [w.value for w in self._train_weights],
                                     flat_grad=self._flat_grads)
        self._update_metrics(yb, out, swb, fused)
        self._loss_sum += loss * xb.shape[0]
        self._loss_count += xb.shape[0]
        return loss

    def _test_step(self, xb, yb, swb, fused):
        out = self._inference(xb, logits=fused)
        loss, _ = self._loss_and_grad(out, yb, swb, fused)
        loss += self._regularization(with_grad=False)
        self._update_metrics(yb, out, swb, fused)
        self._loss_sum += loss * xb.shape[0]
        self._loss_count += xb.shape[0]
        return loss

    def _update_metrics(self, yb, out, swb, fused):
        if not (self._metrics or self._weighted_metrics):
            return
        be = self._backend
        if fused:
            probs = be.activation_forward(out, self._layers[-1].output_activation,
                                          out=self._buffer("probs", out.shape))
        else:
            probs = out
        y_pred = be.to_numpy(probs)
        for m in self._metrics:
            m.update_state(yb, y_pred)
        for m in self._weighted_metrics:
            m.update_state(yb, y_pred, sample_weight=swb)

    def _logs(self):
        logs = {"loss": self._loss_sum / self._loss_count if self._loss_count else 0.0}
        for m in self.metrics:
            logs[m.name] = float(m.result())
        return logs

    # ------------------------------------------------------------------------------------
    # fit / evaluate / predict
    # ------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, validation_batch_size=None,
            validation_freq=1):
        """Train for ``epochs`` epochs; returns the :class:`~pynn.callbacks.History`.

        ``validation_split`` holds out the LAST fraction of ``x``/``y`` (before
        shuffling), as Keras does; ``validation_data`` (``(x, y)`` or
        ``(x, y, sample_weight)``) takes precedence. ``class_weight`` maps class
        indices to sample weights. Epoch logs hold ``loss``, the metrics, their
        ``val_`` counterparts and ``learning_rate``.
        """
        from .callbacks import CallbackList
        batch_size = _check_batch_size(batch_size)
        for nm, v in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise ValueError(f"{nm}: expected a non-negative integer, got {v!r}")
        try:
            validation_split = float(validation_split)
        except (TypeError, ValueError):
            raise ValueError(f"validation_split: expected a float in [0, 1), got "
                             f"{validation_split!r}") from None
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split: expected a float in [0, 1), got "
                             f"{validation_split!r}")
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"shuffle: expected True, False or 'batch', got {shuffle!r}")
        verbose = _resolve_verbose(verbose)

        xa, ya, sw = self._prepare_xy(x, y, sample_weight, class_weight)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data: expected a tuple (x_val, y_val) or "
                                 "(x_val, y_val, val_sample_weight)")
            val = self._prepare_xy(validation_data[0], validation_data[1],
                                   validation_data[2] if len(validation_data) == 3 else None,
                                   what="val_")
        elif validation_split:
            n = xa.shape[0]
            split_at = int(math.floor(n * (1.0 - validation_split)))
            if split_at == 0 or split_at == n:
                raise ValueError(f"Training data contains {n} samples, which is not sufficient "
                                 f"to split it into a validation and training set as specified "
                                 f"by `validation_split={validation_split}`. Either provide "
                                 f"more data, or a different value for the `validation_split` "
                                 f"argument.")
            val = (xa[split_at:], ya[split_at:], None if sw is None else sw[split_at:])
            xa, ya = xa[:split_at], ya[:split_at]
            sw = None if sw is None else sw[:split_at]
        n = xa.shape[0]
        if n == 0:
            raise ValueError("fit: x is empty (0 samples)")
        steps = -(-n // batch_size)
        val_bs = _check_batch_size(validation_batch_size) if validation_batch_size else batch_size
        fused = self._fused()

        if not isinstance(callbacks, CallbackList):
            callbacks = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                     model=self, verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        self._ensure_optimizer()
        lock = self._forward_lock()
        callbacks.on_train_begin()
        logs = {}
        epoch_logs = {}
        try:
            with _StepGuard() as guard:
                for epoch in range(initial_epoch, epochs):
                    self.reset_metrics()
                    callbacks.on_epoch_begin(epoch)
                    order = self._epoch_order(n, batch_size, shuffle)
                    for step in range(steps):
                        start = step * batch_size
                        stop = min(n, start + batch_size)
                        idx = slice(start, stop) if order is None else order[start:stop]
                        callbacks.on_train_batch_begin(step)
                        xb = self._take(xa, idx, "x")
                        yb = np.take(ya, idx, axis=0) if order is not None else ya[idx]
                        swb = None if sw is None else (sw[idx] if order is None
                                                       else np.take(sw, idx))
                        with lock:
                            guard.in_step = True
                            loss = self._train_step(xb, yb, swb, fused)
                            guard.end_step()
                        if not math.isfinite(loss):
                            self._stop_on_nonfinite_loss(loss, epoch, epochs, step, steps)
                            logs = self._logs()
                            logs["loss"] = loss
                            callbacks.on_train_batch_end(step, logs)
                            break
                        logs = self._logs()
                        callbacks.on_train_batch_end(step, logs)
                        if self.stop_training:
                            break
                    epoch_logs = dict(logs)
                    if val is not None and self._should_validate(epoch, validation_freq):
                        with lock:
                            val_logs = self._test_loop(val[0], val[1], val[2], val_bs,
                                                       callbacks, fused)
                        epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                    epoch_logs["learning_rate"] = float(self.optimizer.learning_rate)
                    callbacks.on_epoch_end(epoch, epoch_logs)
                    if self.stop_training:
                        break
        except KeyboardInterrupt:
            # Ctrl-C: the weights are those of the last finished step (a SIGINT during a
            # step is deferred to its end by _StepGuard); the History holds every
            # finished epoch. Keras semantics: on_train_end is not called; re-raise.
            if callbacks.history is not None:
                self.history = callbacks.history
            raise
        callbacks.on_train_end(epoch_logs)
        if callbacks.history is not None:
            self.history = callbacks.history
        return self.history

    def _forward_lock(self):
        """The model's re-entrant lock around forward passes (layers share workspaces)."""
        lock = self.__dict__.get("_fwd_lock")
        if lock is None:
            with _LOCK_CREATION:
                lock = self.__dict__.get("_fwd_lock")
                if lock is None:
                    lock = self._fwd_lock = threading.RLock()
        return lock

    def _stop_on_nonfinite_loss(self, loss, epoch, epochs, step, steps):
        """A NaN/Inf training loss: stop like Keras's TerminateOnNaN, with a warning.

        Keras semantics (``stop_training``, no exception): the batch and epoch logs of
        the aborted epoch carry the non-finite ``loss`` (so the History shows it) and
        ``on_epoch_end``/``on_train_end`` run as after any stop. Unlike Keras, the
        offending step's optimizer update is NOT applied (``_train_step`` checks the
        loss first), so the weights are those of the last finished step, not NaN.
        """
        self.stop_training = True
        state = ("so the weights are those of the previous step")
        be = self._backend
        if self._flat_params is not None and not be.all_finite(self._flat_params):
            # a previous update overflowed (finite loss, non-finite gradient): say so
            state = ("but the weights already hold NaN/Inf from an earlier update whose "
                     "gradient overflowed; restore them from a checkpoint")
        warnings.warn(f"fit: the training loss became {loss} at epoch {epoch + 1}/{epochs}, "
                      f"step {step + 1}/{steps} (1-based); training stopped and that step's "
                      f"update was not applied, {state}. Lower the learning rate or check "
                      f"the data.", RuntimeWarning, stacklevel=3)

    @staticmethod
    def _should_validate(epoch, freq):
        if isinstance(freq, numbers.Integral) and not isinstance(freq, bool):
            if freq <= 0:
                raise ValueError(f"validation_freq: expected a positive integer, got {freq}")
            return (epoch + 1) % freq == 0
        try:
            return (epoch + 1) in freq
        except TypeError:
            raise ValueError(f"validation_freq: expected an int or a list of epochs, got "
                             f"{freq!r}") from None

    def _epoch_order(self, n, batch_size, shuffle):
        if not shuffle:
            return None
        if shuffle == "batch":
            starts = self._rng.permutation(-(-n // batch_size)) * batch_size
            return np.concatenate([np.arange(s, min(n, s + batch_size)) for s in starts])
        return self._rng.permutation(n)

    def _test_loop(self, xa, ya, sw, batch_size, callbacks, fused):
        self.reset_metrics()
        callbacks.on_test_begin()
        n = xa.shape[0]
        logs = {}
        for step, start in enumerate(range(0, n, batch_size)):
            idx = slice(start, min(n, start + batch_size))
            callbacks.on_test_batch_begin(step)
            self._test_step(self._take(xa, idx, "x"), ya[idx],
                            None if sw is None else sw[idx], fused)
            logs = self._logs()
            callbacks.on_test_batch_end(step, logs)
        logs = self._logs()
        callbacks.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", sample_weight=None,
                 callbacks=None, return_dict=False):
        """Loss (and metrics) on ``(x, y)``: a float, ``[loss, *metrics]`` or a dict."""
        from .callbacks import CallbackList
        batch_size = _check_batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        xa, ya, sw = self._prepare_xy(x, y, sample_weight)
        if xa.shape[0] == 0:
            raise ValueError("evaluate: x is empty (0 samples)")
        if not isinstance(callbacks, CallbackList):
            callbacks = CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                     verbose=verbose, epochs=1,
                                     steps=-(-xa.shape[0] // batch_size))
        with self._forward_lock():
            logs = self._test_loop(xa, ya, sw, batch_size, callbacks, self._fused())
        return self._format_result(logs, return_dict)

    def _format_result(self, logs, return_dict):
        if return_dict:
            return dict(logs)
        if not self.metrics:
            return logs["loss"]
        return [logs["loss"]] + [logs[m.name] for m in self.metrics]

    def predict(self, x, batch_size=32, verbose="auto", callbacks=None):
        """Model outputs for ``x``, computed in batches; a NumPy array of the model dtype."""
        batch_size = _check_batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        lock = self._forward_lock()  # thread-safe: layers reuse their workspaces
        with lock:
            xa = self._prepare_x(x)
            n = xa.shape[0]
            result = np.empty((n,) + tuple(self.output_shape[1:]), dtype=np.dtype(self._dtype))
        # with nothing listening (no callbacks, verbose=0) no callback machinery is built,
        # and one batch is one call: single-sample predict stays cheap
        if callbacks is None and verbose == 0 and 0 < n <= batch_size:
            with lock:
                self._sync()
                return self._predict_into(xa, result)
        if callbacks is not None or verbose != 0:
            from .callbacks import CallbackList
            if not isinstance(callbacks, CallbackList):
                callbacks = CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                         verbose=verbose, epochs=1,
                                         steps=-(-n // batch_size))
        if callbacks is not None:
            callbacks.on_predict_begin()
        for step, start in enumerate(range(0, n, batch_size)):
            stop = min(n, start + batch_size)
            if callbacks is not None:
                callbacks.on_predict_batch_begin(step)
            with lock:
                self._sync()  # a callback may have switched backends or frozen layers
                self._predict_into(xa[start:stop], result[start:stop])
            if callbacks is not None:
                callbacks.on_predict_batch_end(step, {"outputs": result[start:stop]})
        if callbacks is not None:
            callbacks.on_predict_end()
        return result

    def _predict_into(self, xb, dst):
        """Inference on one batch into ``dst`` (host array of the output's shape).

        A model whose inference is a plain Dense stack runs as ONE backend call
        (:meth:`~pynn.backends.base.Backend.dense_stack_forward`) that writes the
        last layer's output straight into ``dst``; anything else goes layer by layer.
        """
        plan = self._inference_plan()
        if plan is None or xb.ndim != 2 or dst.ndim != 2 or not dst.flags.c_contiguous:
            be = self._backend
            xin = xb if be.host_memory else be.asarray(xb)
            dst[...] = be.to_numpy(self._forward(xin, training=False))
            return dst
        return self._stack_forward_into(plan, xb, dst)

    def _inference(self, xb, logits):
        """The outputs of one batch at inference (the last layer's logits with
        ``logits``): one fused call for a plain Dense stack, else layer by layer."""
        plan = self._inference_plan()
        if plan is None or xb.ndim != 2:
            return self._forward(xb, training=False, logits=logits)
        dst = self._buffer("inference", (xb.shape[0], plan[0][-1].shape[1]))
        return self._stack_forward_into(plan, xb, dst, logits)

    def _stack_forward_into(self, plan, xb, dst, logits=False):
        kernels, biases, acts, ws = plan
        if logits:
            acts = acts[:-1] + ["linear"]
        n = xb.shape[0]
        outs = ws.get(n)
        if outs is None:
            if len(ws) >= 4:
                ws.clear()
            dt = np.dtype(self._dtype)
            outs = ws[n] = [self._backend.empty((n, k.shape[1]), dt) for k in kernels[:-1]]
            outs.append(None)
        outs[-1] = dst
        try:
            self._backend.dense_stack_forward(xb, kernels, biases, acts, outs)
        finally:
            outs[-1] = None  # the caller owns dst
        return dst

    def _inference_plan(self):
        """``(kernels, biases, activations, workspaces)`` when inference is a stack of
        Dense layers (Dropout is the identity there) on a host backend, else None;
        cached per layout and backend."""
        be = self._backend
        key = (self._layout_id, be, self._dtype)  # objects compared by identity
        cached = self.__dict__.get("_infer_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = None
        if be.host_memory and self._dtype in ("float32", "float64"):
            dense = self._dense_layers(skip_dropout=True)
            if dense:
                plan = (*self._stack_arrays(dense), {})
        self._infer_cache = (key, plan)
        return plan

    def _dense_layers(self, skip_dropout):
        """The model's layers when all are built Dense layers (Dropout left out when
        ``skip_dropout``: the identity at inference), else None."""
        dense = []
        for layer in self._layers:
            if skip_dropout and type(layer) is layers_mod.Dropout:
                continue
            if type(layer) is not layers_mod.Dense or layer.kernel is None:
                return None
            dense.append(layer)
        return dense or None

    @staticmethod
    def _stack_arrays(dense):
        """``(kernels, biases, activations)`` of Dense layers, as the fused ops take them."""
        return ([l.kernel.value for l in dense],
                [None if l.bias is None else l.bias.value for l in dense],
                [l.output_activation for l in dense])

    def __call__(self, x, training=False):
        """All of ``x`` as one batch (``training=True`` uses batch statistics and dropout)."""
        with self._forward_lock():
            xa = self._prepare_x(x)
            if not training:
                return self._predict_into(xa, np.empty((xa.shape[0],) + tuple(
                    self.output_shape[1:]), dtype=np.dtype(self._dtype)))
            return np.array(self._backend.to_numpy(self._forward(xa, training=True)),
                            copy=True)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One gradient step on one batch. Metrics accumulate across calls (Keras 3);
        :meth:`reset_metrics` restarts them."""
        xa, ya, sw = self._prepare_xy(x, y, sample_weight, class_weight)
        if xa.shape[0] == 0:
            raise ValueError("train_on_batch: x is empty (0 samples)")
        self._ensure_optimizer()
        with self._forward_lock():
            loss = self._train_step(xa, ya, sw, self._fused())
        if not math.isfinite(loss):
            warnings.warn(f"train_on_batch: the loss is {loss}; the weights were not updated",
                          RuntimeWarning, stacklevel=2)
            logs = self._logs()
            logs["loss"] = loss
            return self._format_result(logs, return_dict)
        return self._format_result(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics on one batch (metrics are reset first)."""
        xa, ya, sw = self._prepare_xy(x, y, sample_weight)
        if xa.shape[0] == 0:
            raise ValueError("test_on_batch: x is empty (0 samples)")
        self.reset_metrics()
        self._test_step(xa, ya, sw, self._fused())
        return self._format_result(self._logs(), return_dict)

    def predict_on_batch(self, x):
        """Outputs for one batch, as a NumPy array."""
        return self(x, training=False)

    # ------------------------------------------------------------------------------------
    # weights
    # ------------------------------------------------------------------------------------
    @property
    def weights(self):
        return [w for l in self._layers for w in l._weights]

    @property
    def losses(self):
        """Current regularisation penalties (floats)."""
        return [p for l in self._layers for p in l.losses]

    def get_weights(self):
        """Copies of every weight, layer by layer in Keras's order."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        """Set every weight from a list like :meth:`get_weights` returns."""
        mine = self.weights
        weights = list(weights)
        if len(weights) != len(mine):
            raise ValueError(f"You called `set_weights(weights)` on model {self.name!r} with a "
                             f"weight list of length {len(weights)}, but the model was "
                             f"expecting {len(mine)} weights.")
        for w, v in zip(mine, weights):
            if tuple(np.shape(v)) != w.shape:
                raise ValueError(f"set_weights: weight {w.path!r} has shape {w.shape}, but "
                                 f"the provided array has shape {tuple(np.shape(v))}")
            if np.asarray(v).dtype.kind not in "biuf":
                raise TypeError(f"set_weights: weight {w.path!r} needs numeric values, got "
                                f"dtype {np.asarray(v).dtype}")
        for w, v in zip(mine, weights):
            w.assign(v)

    def count_params(self):
        self._require_built("count_params()")
        return sum(w.size for w in self.weights)

    def save(self, filepath, overwrite=True):
        """Write the model to a ``.pynn``/``.keras`` zip (see :mod:`pynn.saving`)."""
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Write only the weights (see :func:`pynn.saving.save_weights`)."""
        from .saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Read weights written by :meth:`save_weights` (or a full model file)."""
        from .saving import load_weights
        load_weights(self, filepath)

    # ------------------------------------------------------------------------------------
    # config
    # ------------------------------------------------------------------------------------
    def get_config(self):
        layer_cfgs = []
        shape = self._known_input_shape()
        if shape is not None:
            inp = self._input_layer
            layer_cfgs.append({"module": "pynn.layers", "class_name": "InputLayer",
                               "config": {"batch_shape": [None, *shape],
                                          "name": inp.name if inp is not None
                                          else f"{self.name}_input"}})
        layer_cfgs.extend(layers_mod.serialize(l) for l in self._layers)
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype,
                "layers": layer_cfgs}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("Sequential.from_config: expected a dict with a 'layers' list")
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        if config.get("dtype") is not None:
            dt = np.dtype(config["dtype"]).name
            if dt not in ("float32", "float64"):
                raise ValueError(f"Sequential.from_config: unsupported dtype {dt!r}")
            model._dtype = dt
        for lc in config["layers"]:
            model.add(layers_mod.deserialize(lc, custom_objects), rebuild=False)
        model._maybe_build()
        if not config.get("trainable", True):
            model.trainable = False
        return model

    # ------------------------------------------------------------------------------------
    # summary
    # ------------------------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, show_trainable=False):
        """Print Keras's table: layer (type), output shape, parameter count, totals."""
        self._require_built("summary()")
        print_fn = print_fn or print
        line_length = line_length or 65
        positions = positions or [0.45, 0.85, 1.0]
        if positions[-1] <= 1:
            positions = [int(line_length * p) for p in positions]
        header = ["Layer (type)", "Output Shape", "Param #"]
        if show_trainable:
            line_length += 11
            positions = list(positions) + [line_length]
            header.append("Trainable")

        def row(fields):
            # Keras 2's print_row: fixed columns, long fields wrap onto more lines
            left = [str(f) for f in fields]
            while any(left):
                line = ""
                for col in range(len(left)):
                    start = positions[col - 1] if col > 0 else 0
                    space = 2 if col != len(positions) - 1 else 0
                    cutoff = positions[col] - start - space - (1 if col != 0 else 0)
                    if cutoff <= 0:
                        continue
                    fit = left[col][:cutoff]
                    breaks = [fit.find(b) + len(b) for b in ("),", "},", "],", "',")
                              if fit.find(b) >= 0]
                    if breaks:
                        cutoff = min(breaks)
                        fit = fit[:cutoff]
                    if col == 0:
                        line += " "
                    line += fit + " " * space
                    left[col] = left[col][cutoff:]
                    line += " " * (positions[col] - len(line))
                print_fn(line)

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        row(header)
        print_fn("=" * line_length)
        for layer in self._layers:
            shape = "(" + ", ".join("None" if s is None else str(s)
                                    for s in layer.output_shape) + ")"
            if len(layer.output_shape) == 1:
                shape = shape[:-1] + ",)"
            fields = [f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}"]
            if show_trainable:
                fields.append("Y" if layer.trainable else "N")
            row(fields)
            print_fn(" " * line_length)
        print_fn("=" * line_length)
        itemsize = np.dtype(self._dtype).itemsize
        n_train = sum(w.size for w in self.trainable_weights)
        n_frozen = sum(w.size for w in self.non_trainable_weights)
        print_fn(f"Total params: {n_train + n_frozen:,} "
                 f"({_readable_size((n_train + n_frozen) * itemsize)})")
        print_fn(f"Trainable params: {n_train:,} ({_readable_size(n_train * itemsize)})")
        print_fn(f"Non-trainable params: {n_frozen:,} ({_readable_size(n_frozen * itemsize)})")
        print_fn("_" * line_length)

    def __repr__(self):
        return f"<Sequential name={self.name}, built={self.built}, layers={len(self._layers)}>"


def _readable_size(nbytes):
    """``'68.00 B'``, ``'1.03 MB'``... (Keras's units, base 1024)."""
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.2f} {unit}"
        size /= 1024
