"""Keras-style layers: each owns its weights and a ``forward`` / ``backward`` pair.

There is no autograd graph. A layer's :meth:`Layer.forward` keeps what its
:meth:`Layer.backward` needs; ``backward(dy)`` writes the weight gradients into
each weight's ``grad`` array and returns the gradient with respect to the input.
All numeric work per step is a backend op (``pynn.get_backend()``), into
workspaces the layer allocates once per batch shape and reuses step after step.

Weights are :class:`Weight` objects (``layer.kernel``, ``layer.bias``...). A
:class:`~pynn.models.Sequential` model moves every weight into one flat
parameter buffer (and every gradient into one flat gradient buffer), so its
optimizer updates all parameters in one op call; ``Weight.value`` is then a view.

Layer names are numbered per class like Keras's (``dense``, ``dense_1``...);
:func:`clear_session` restarts the numbering.
"""
from __future__ import annotations

import collections
import math
import re

import numpy as np

from . import _config, activations, initializers, regularizers
from .backends import get_backend
from .backends.base import NEEDS_INPUT_FOR_BACKWARD

__all__ = ["Layer", "Weight", "InputLayer", "Input", "Dense", "Activation", "Dropout",
           "BatchNormalization", "Flatten", "LeakyReLU", "Softmax", "clear_session", "get",
           "serialize", "deserialize"]

# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------
_UIDS: collections.Counter = collections.Counter()


def clear_session():
    """Restart automatic layer/model numbering (``dense``, ``dense_1``... start again)."""
    _UIDS.clear()


def to_snake_case(name):
    """Keras's class-name -> prefix rule (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def auto_name(prefix):
    """``prefix`` the first time, then ``prefix_1``, ``prefix_2``..."""
    prefix = to_snake_case(prefix)
    _UIDS[prefix] += 1
    uid = _UIDS[prefix]
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"


def _shape_tuple(shape, what):
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        out = tuple(None if s is None else int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a tuple of ints, got {shape!r}") from None
    if any(s is not None and s < 0 for s in out):
        raise ValueError(f"{what}: dimensions must be >= 0, got {out}")
    return out


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------
class Weight:
    """One layer variable: ``value`` (backend array), ``grad`` (or ``None``), flags.

    Keras-like helpers: ``shape``, ``dtype``, ``numpy()``, ``assign(value)``,
    ``path`` (``'dense/kernel'``), ``trainable``, ``regularizer``.
    """

    __slots__ = ("layer", "name", "value", "grad", "regularizer", "_trainable")

    def __init__(self, layer, name, value, trainable=True, regularizer=None):
        self.layer = layer
        self.name = name
        self.value = value
        self.grad = None
        self.regularizer = regularizer
        self._trainable = bool(trainable)

    @property
    def trainable(self):
        """Trainable when created so and its layer is trainable."""
        return self._trainable and self.layer.trainable

    @property
    def path(self):
        return f"{self.layer.name}/{self.name}"

    @property
    def shape(self):
        return tuple(self.value.shape)

    @property
    def dtype(self):
        return np.dtype(self.value.dtype)

    @property
    def size(self):
        return int(math.prod(self.value.shape))

    def numpy(self):
        """A host copy of the value."""
        return np.array(self.layer.backend.to_numpy(self.value), copy=True)

    def assign(self, value):
        """Copy ``value`` into the weight (shape must match)."""
        v = np.asarray(value)
        if tuple(v.shape) != self.shape:
            raise ValueError(f"Weight {self.path!r}: expected shape {self.shape}, "
                             f"got {tuple(v.shape)}")
        be = self.layer.backend
        be.copy_(be.asarray(v, dtype=self.dtype), self.value)

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        return (f"<Weight path={self.path} shape={self.shape} dtype={self.dtype.name} "
                f"trainable={self.trainable}>")


# ---------------------------------------------------------------------------------------------
# base layer
# ---------------------------------------------------------------------------------------------
class WeightViews:
    """Keras's weight views, derived from ``weights`` (shared by layers and models)."""

    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.trainable]

    @property
    def non_trainable_weights(self):
        return [w for w in self.weights if not w.trainable]

    @property
    def variables(self):
        return self.weights


class Layer(WeightViews):
    """Base class of layers.

    Subclasses implement ``build(input_shape)`` (create weights with
    :meth:`add_weight`), ``forward(x, training=False)``, ``backward(dy,
    input_grad=True)``, ``compute_output_shape(input_shape)`` and ``get_config()``.
    Shapes passed to ``build``/``compute_output_shape`` include the batch axis
    (``None``), as in Keras.

    Parameters
    ----------
    name : str, optional
        Default: the class name in snake case, numbered (``dense``, ``dense_1``...).
    trainable : bool
    dtype : 'float32' or 'float64', optional
        Default: the model's dtype, else :func:`pynn.floatx`.
    input_shape, input_dim : optional
        Shape of one sample; lets a :class:`~pynn.models.Sequential` build at once.
    """

    #: Activation the layer ends in (for the fused softmax/sigmoid + loss path).
    output_activation = None
    #: Number of cached workspace sets (one per batch shape).
    _MAX_WORKSPACES = 4

    def __init__(self, name=None, trainable=True, dtype=None, **kwargs):
        input_dim = kwargs.pop("input_dim", None)
        input_shape = kwargs.pop("input_shape", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to "
                             f"{type(self).__name__}: {kwargs}")
        if input_dim is not None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        self._input_shape_arg = _shape_tuple(input_shape, f"{type(self).__name__}: input_shape")
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string "
                             f"without '/', got {name!r}")
        self.name = name if name is not None else auto_name(type(self).__name__)
        self._trainable = bool(trainable)
        if dtype is not None:
            dtype = np.dtype(dtype).name
            if dtype not in ("float32", "float64"):
                raise ValueError(f"{self.name}: dtype must be 'float32' or 'float64', "
                                 f"got {dtype!r}")
        self._dtype_arg = dtype
        self._dtype = None
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []
        self._ws = collections.OrderedDict()
        self._cache = None
        self._backend = None
        self._rng = None

    # -- properties ----------------------------------------------------------------------
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        weights_changed()

    @property
    def dtype(self):
        """The layer's float dtype name."""
        return self._dtype or self._dtype_arg or _config.floatx()

    @property
    def backend(self):
        """The backend this layer runs on (the model's, else the active one)."""
        return self._backend if self._backend is not None else get_backend()

    @property
    def weights(self):
        """All weights, in creation order (Keras's ``get_weights`` order)."""
        return list(self._weights)

    @property
    def losses(self):
        """Current regularisation penalties of the trainable weights (floats)."""
        be = self.backend
        return [w.regularizer.loss(be, w.value) for w in self.trainable_weights
                if w.regularizer is not None]

    # -- setup -----------------------------------------------------------------------------
    def _attach(self, backend=None, rng=None, dtype=None):
        """Called by the model before ``build``: its backend, Generator and dtype."""
        if backend is not None:
            self._backend = backend
        if rng is not None:
            self._rng = rng
        if dtype is not None:
            if self._dtype_arg is not None and self._dtype_arg != np.dtype(dtype).name:
                raise ValueError(f"Layer {self.name!r} was created with dtype "
                                 f"{self._dtype_arg!r} but the model computes in "
                                 f"{np.dtype(dtype).name!r}")
            if self.built and self._dtype != np.dtype(dtype).name:
                raise ValueError(f"Layer {self.name!r} is built with dtype {self._dtype!r}; "
                                 f"it cannot join a {np.dtype(dtype).name!r} model")
            self._dtype = np.dtype(dtype).name

    def add_weight(self, name, shape, initializer="glorot_uniform", regularizer=None,
                   trainable=True):
        """Create, initialise and register a weight; returns the :class:`Weight`."""
        shape = tuple(int(s) for s in shape)
        if any(w.name == name for w in self._weights):
            raise ValueError(f"Layer {self.name!r} already has a weight named {name!r}")
        init = initializers.get(initializer)
        dt = np.dtype(self.dtype)
        if self._rng is None:
            self._rng = _config.make_rng()
        if isinstance(init, initializers.Initializer):
            values = init(shape, dtype=dt, rng=self._rng)
        else:
            values = np.asarray(init(shape, dtype=dt))
        if tuple(np.shape(values)) != shape:
            raise ValueError(f"Initializer for {self.name}/{name} returned shape "
                             f"{np.shape(values)}, expected {shape}")
        be = self.backend
        w = Weight(self, name, be.asarray(values, dtype=dt), trainable,
                   regularizers.get(regularizer))
        if trainable:
            w.grad = be.zeros(shape, dt)
        self._weights.append(w)
        weights_changed()
        return w

    def build(self, input_shape):
        """Create the weights for inputs of ``input_shape`` (batch axis included)."""
        self.built = True

    def _build_for(self, input_shape):
        """Build (once) and record input/output shapes; checks a rebuilt layer's shape."""
        input_shape = (None,) + tuple(input_shape)[1:]
        if self.built:
            if self.input_shape is not None and tuple(self.input_shape) != input_shape:
                raise ValueError(
                    f"Layer {self.name!r} was built for inputs of shape {self.input_shape}, "
                    f"but now receives inputs of shape {input_shape}")
        else:
            if self._dtype is None:
                self._dtype = self.dtype
            self.build(input_shape)
            self.built = True
        self.input_shape = input_shape
        self.output_shape = tuple(self.compute_output_shape(input_shape))
        return self.output_shape

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # -- computation -----------------------------------------------------------------------
    def forward(self, x, training=False):
        """Output for input ``x`` (a backend array of the layer's dtype)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, dy, input_grad=True):
        """Write weight gradients; return d loss / d input (``None`` if not ``input_grad``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def __call__(self, x, training=False):
        """Standalone use: build for ``x`` if needed, run forward, return a NumPy copy."""
        be = self.backend
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"Layer {self.name!r}: expected a batch of inputs, got a scalar")
        x = be.asarray(x, dtype=np.dtype(self.dtype))
        self._build_for(x.shape)
        _check_input(self, x.shape)
        return np.array(be.to_numpy(self.forward(x, training=training)), copy=True)

    def _workspace(self, shape):
        """The dict of buffers for inputs of ``shape`` (created on first use, LRU-capped)."""
        key = tuple(shape)
        ws = self._ws.get(key)
        if ws is None:
            ws = {}
            self._ws[key] = ws
            while len(self._ws) > self._MAX_WORKSPACES:
                self._ws.popitem(last=False)
        else:
            self._ws.move_to_end(key)
        return ws

    def _buf(self, ws, key, shape):
        b = ws.get(key)
        if b is None:
            b = ws[key] = self.backend.empty(tuple(shape), np.dtype(self.dtype))
        return b

    def _release_workspaces(self):
        self._ws.clear()
        self._cache = None

    # -- weights and config ----------------------------------------------------------------
    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer {self.name!r}, but "
                             "the layer isn't built. Build it first (call it on data, or add "
                             "it to a model with a known input shape).")
        return sum(w.size for w in self._weights)

    def get_weights(self):
        return [w.numpy() for w in self._weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(f"You called `set_weights(weights)` on layer {self.name!r} with "
                             f"a weight list of length {len(weights)}, but the layer was "
                             f"expecting {len(self._weights)} weights.")
        for w, v in zip(self._weights, weights):
            if tuple(np.shape(v)) != w.shape:
                raise ValueError(f"Layer {self.name!r} weight shape {w.shape} is not "
                                 f"compatible with provided weight shape {np.shape(v)} "
                                 f"({w.name}).")
        for w, v in zip(self._weights, weights):
            w.assign(v)

    def get_config(self):
        cfg = {"name": self.name, "trainable": self.trainable}
        if self._dtype_arg is not None:
            cfg["dtype"] = self._dtype_arg
        if self._input_shape_arg is not None:
            cfg["input_shape"] = list(self._input_shape_arg)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        if self.input_shape is None:
            return None
        return {"input_shape": list(self.input_shape)}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


#: Bumped whenever any layer's weight list, a trainable flag or a weight's storage
#: changes, so a model can skip re-checking its flat layout when nothing did.
_WEIGHTS_GENERATION = [0]


def weights_changed():
    """Tell every model that weight lists, trainable flags or storage may have changed."""
    _WEIGHTS_GENERATION[0] += 1


def _check_input(layer, shape):
    """Raise a Keras-like error when inputs of ``shape`` don't fit ``layer``."""
    want = layer.input_shape
    if want is None:
        return
    got = tuple(shape)
    if len(got) != len(want):
        raise ValueError(f"Input 0 of layer {layer.name!r} is incompatible with the layer: "
                         f"expected shape={want}, found shape={got}")
    for axis, (w, g) in enumerate(zip(want, got)):
        if w is not None and w != g:
            raise ValueError(f"Input 0 of layer {layer.name!r} is incompatible with the layer: "
                             f"expected axis {axis - len(want)} of input shape to have value "
                             f"{w}, but received input with shape {got}")


def _rows(x, k):
    """``x`` as a 2-D ``(-1, k)`` view (a no-op for 2-D inputs)."""
    return x if len(x.shape) == 2 else x.reshape(-1, k)


# ---------------------------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------------------------
class InputLayer(Layer):
    """Declares the input shape of a :class:`~pynn.models.Sequential` model (no computation).

    ``shape`` is one sample's shape (no batch axis); ``batch_shape`` includes it.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 **kwargs):
        if shape is None and batch_shape is None:
            shape = kwargs.pop("input_shape", None)
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is not None and batch_shape is not None:
            raise ValueError("InputLayer: give `shape` or `batch_shape`, not both")
        if batch_shape is not None:
            batch_shape = _shape_tuple(batch_shape, "InputLayer: batch_shape")
            shape, batch_size = batch_shape[1:], batch_shape[0]
        if shape is None:
            raise ValueError("InputLayer: `shape` is required, e.g. Input(shape=(784,))")
        shape = _shape_tuple(shape, "InputLayer: shape")
        if any(s is None for s in shape):
            raise ValueError(f"InputLayer: every dimension of one sample must be known, "
                             f"got shape={shape}")
        self.shape = shape
        self.batch_size = batch_size
        self._input_shape_arg = shape
        self.input_shape = self.output_shape = (batch_size,) + shape
        self.built = True

    def forward(self, x, training=False):
        return x

    def backward(self, dy, input_grad=True):
        return dy if input_grad else None

    def get_config(self):
        cfg = {"batch_shape": [self.batch_size, *self.shape], "name": self.name}
        if self._dtype_arg is not None:
            cfg["dtype"] = self._dtype_arg
        return cfg


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
    """``keras.Input``: an :class:`InputLayer` to put first in a ``Sequential`` model."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                      name=name)


# ---------------------------------------------------------------------------------------------
# dense
# ---------------------------------------------------------------------------------------------
class Dense(Layer):
    """Fully connected layer: ``y = activation(x @ kernel + bias)``.

    ``kernel`` has shape ``(n_in, units)`` (Keras's layout); the activation runs as
    the epilogue of the backend's ``gemm``. Inputs of rank > 2 are applied on the
    last axis.

    Backward: ``dz = dy * activation'``, ``dW = x^T dz`` and ``dx = dz W^T`` via
    ``gemm``'s transpose flags, ``db = column sums of dz`` via ``bias_grad``.
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Received an invalid value for `units` of layer {self.name!r}, "
                             f"expected a positive integer. Received: units={units!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self._act = activations.canonical_name(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = None
        self.bias = None

    @property
    def output_activation(self):
        return self._act

    def build(self, input_shape):
        n_in = input_shape[-1]
        if n_in is None or len(input_shape) < 2:
            raise ValueError(f"Dense layer {self.name!r} needs inputs with a known last "
                             f"dimension, got input shape {tuple(input_shape)}")
        self.kernel = self.add_weight("kernel", (n_in, self.units), self.kernel_initializer,
                                      self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        self.bias_regularizer)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)

    def forward(self, x, training=False, logits=False):
        be = self.backend
        xs = tuple(x.shape)
        x2 = _rows(x, xs[-1])
        n = x2.shape[0]
        ws = self._workspace(x2.shape)
        y = self._buf(ws, "y", (n, self.units))
        act = "linear" if logits else self._act
        b = self.bias.value if self.bias is not None else None
        z = None
        if act in NEEDS_INPUT_FOR_BACKWARD:
            z = self._buf(ws, "z", (n, self.units))
            be.gemm(x2, self.kernel.value, out=z, bias=b)
            be.activation_forward(z, act, out=y)
        else:
            be.gemm(x2, self.kernel.value, out=y, bias=b, activation=act)
        self._cache = (xs, x2, z, y, act, ws)
        return y if len(xs) == 2 else y.reshape(xs[:-1] + (self.units,))

    def backward(self, dy, input_grad=True):
        be = self.backend
        x_shape, x2, z, y, act, ws = self._cache
        dy = _rows(dy, self.units)
        if act != "linear":
            dz = be.activation_backward(dy, y, act, x=z, out=self._buf(ws, "dz", y.shape))
        else:
            dz = dy
        if self.kernel.grad is not None:
            be.gemm(x2, dz, out=self.kernel.grad, trans_a=True)
        if self.bias is not None and self.bias.grad is not None:
            be.bias_grad(dz, out=self.bias.grad)
        if not input_grad:
            return None
        dx = be.gemm(dz, self.kernel.value, out=self._buf(ws, "dx", x2.shape), trans_b=True)
        return dx if len(x_shape) == 2 else dx.reshape(x_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self._act, use_bias=self.use_bias,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------
class Activation(Layer):
    """Applies an activation function (any name :func:`pynn.activations.get` accepts)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self._act = activations.canonical_name(activation)
        self._alpha = None

    @property
    def output_activation(self):
        return self._act

    def forward(self, x, training=False, logits=False):
        if logits or self._act == "linear":
            self._cache = None
            return x
        be = self.backend
        xs = tuple(x.shape)
        x2 = _rows(x, xs[-1])
        ws = self._workspace(x2.shape)
        y = be.activation_forward(x2, self._act, out=self._buf(ws, "y", x2.shape),
                                  alpha=self._alpha)
        self._cache = (xs, x2, y, ws)
        return y if len(xs) == 2 else y.reshape(xs)

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        if self._cache is None:
            return dy
        be = self.backend
        x_shape, x2, y, ws = self._cache
        dx = be.activation_backward(_rows(dy, y.shape[1]), y, self._act, x=x2,
                                    out=self._buf(ws, "dx", y.shape), alpha=self._alpha)
        return dx if len(x_shape) == 2 else dx.reshape(x_shape)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self._act
        return cfg


class LeakyReLU(Activation):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (Keras default 0.3)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras 2 spelling
            negative_slope = kwargs.pop("alpha")
        super().__init__("leaky_relu", **kwargs)
        if negative_slope is None or not np.isfinite(negative_slope) or negative_slope < 0:
            raise ValueError(f"The negative_slope value of a Leaky ReLU layer cannot be None "
                             f"or negative, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self._alpha = self.negative_slope

    output_activation = None

    def get_config(self):
        cfg = Layer.get_config(self)
        cfg["negative_slope"] = self.negative_slope
        return cfg


class Softmax(Activation):
    """Softmax over the last axis."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__("softmax", **kwargs)
        if axis != -1:
            raise ValueError(f"Softmax layer {self.name!r}: only axis=-1 is supported, "
                             f"got axis={axis!r}")
        self.axis = axis

    def get_config(self):
        cfg = Layer.get_config(self)
        cfg["axis"] = self.axis
        return cfg


# ---------------------------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------------------------
class Dropout(Layer):
    """Inverted dropout: during training zero a fraction ``rate`` of the inputs and scale
    the rest by ``1 / (1 - rate)``; the identity at inference.

    Each training step draws a fresh seed for the backend's counter-based mask
    generator from the model's ``numpy.random.Generator`` (or from this layer's
    own Generator when ``seed`` is given), so runs under :func:`pynn.set_seed` are
    bit-identical on every backend.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise ValueError(f"Invalid value received for argument `rate` of Dropout "
                             f"{self.name!r}. Expected a float value in [0, 1). "
                             f"Received: rate={rate!r}") from None
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Invalid value received for argument `rate` of Dropout "
                             f"{self.name!r}. Expected a float value in [0, 1). "
                             f"Received: rate={rate!r}")
        self.rate = rate
        self.noise_shape = _shape_tuple(noise_shape, f"Dropout {self.name!r}: noise_shape")
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"Dropout {self.name!r}: seed must be an int, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._seed_rng = None if seed is None else np.random.default_rng(self.seed)

    def _next_seed(self):
        rng = self._seed_rng or self._rng
        if rng is None:
            rng = self._rng = _config.make_rng()
        return int(rng.integers(0, 2**63 - 1, dtype=np.int64))

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return tuple(shape)
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"Dropout {self.name!r}: noise_shape {self.noise_shape} must have "
                             f"the rank of the inputs {tuple(shape)}")
        ms = tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))
        for n, s in zip(ms, shape):
            if n not in (1, s):
                raise ValueError(f"Dropout {self.name!r}: noise_shape {self.noise_shape} does "
                                 f"not broadcast to the input shape {tuple(shape)}")
        return ms

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._cache = None
            return x
        be = self.backend
        ws = self._workspace(x.shape)
        ms = self._mask_shape(x.shape)
        y = self._buf(ws, "y", x.shape)
        if ms == tuple(x.shape):
            _, mask = be.dropout_forward(x, self.rate, self._next_seed(), out=y,
                                         mask=self._buf(ws, "mask", x.shape))
        else:
            # broadcast mask (noise_shape): draw the small mask, multiply on the host
            if not be.host_memory:
                raise NotImplementedError(f"Dropout {self.name!r}: noise_shape is supported "
                                          f"on host-memory backends only (not {be.name!r})")
            ones = ws.get("ones")
            if ones is None:
                ones = ws["ones"] = np.ones(ms, dtype=np.dtype(self.dtype))
            _, mask = be.dropout_forward(ones, self.rate, self._next_seed(),
                                         out=self._buf(ws, "small", ms),
                                         mask=self._buf(ws, "mask", ms))
            np.multiply(x, mask, out=y)
        self._cache = (mask, ws)
        return y

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        if self._cache is None:
            return dy
        mask, ws = self._cache
        dx = self._buf(ws, "dx", dy.shape)
        if mask.shape == dy.shape:
            return self.backend.dropout_backward(dy, mask, out=dx)
        np.multiply(dy, mask, out=dx)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate,
                   noise_shape=None if self.noise_shape is None else list(self.noise_shape),
                   seed=self.seed)
        return cfg


# ---------------------------------------------------------------------------------------------
# batch normalisation
# ---------------------------------------------------------------------------------------------
class BatchNormalization(Layer):
    """Normalise the last axis with batch statistics (training) or moving ones (inference).

    Weights, in Keras's order: ``gamma`` (if ``scale``), ``beta`` (if ``center``),
    ``moving_mean`` and ``moving_variance`` (non-trainable, updated in training as
    ``moving = momentum * moving + (1 - momentum) * batch``). A layer with
    ``trainable = False`` runs in inference mode even while the model trains (Keras 3).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)):
            raise ValueError(f"BatchNormalization {self.name!r}: axis must be an int (the last "
                             f"axis), got {axis!r}")
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

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or self.axis % rank != rank - 1 or not -rank <= self.axis < rank:
            raise ValueError(f"BatchNormalization {self.name!r} normalises the last axis only; "
                             f"got axis={self.axis} for input shape {tuple(input_shape)}")
        k = input_shape[-1]
        if k is None:
            raise ValueError(f"BatchNormalization {self.name!r}: the last input dimension "
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

    def _constant(self, key, k, value):
        """A ones/zeros vector standing in for gamma/beta when scale/center is off."""
        consts = self.__dict__.setdefault("_consts", {})
        c = consts.get(key)
        if c is None or c.shape != (k,):
            c = consts[key] = self.backend.asarray(np.full((k,), value, dtype=np.dtype(self.dtype)))
        return c

    def forward(self, x, training=False):
        be = self.backend
        xs = tuple(x.shape)
        k = xs[-1]
        x2 = _rows(x, k)
        train_mode = bool(training) and self.trainable
        gamma = self.gamma.value if self.gamma is not None else self._constant("ones", k, 1.0)
        beta = self.beta.value if self.beta is not None else self._constant("zeros", k, 0.0)
        ws = self._workspace(x2.shape)
        y, mean, inv_std = be.batchnorm_forward(
            x2, gamma, beta, self.moving_mean.value, self.moving_variance.value, train_mode,
            momentum=self.momentum, epsilon=self.epsilon, out=self._buf(ws, "y", x2.shape))
        self._cache = (xs, x2, gamma, mean, inv_std, train_mode, ws)
        return y if len(xs) == 2 else y.reshape(xs)

    def backward(self, dy, input_grad=True):
        be = self.backend
        x_shape, x2, gamma, mean, inv_std, train_mode, ws = self._cache
        k = x2.shape[1]
        dy = _rows(dy, k)
        dx = self._buf(ws, "dx", x2.shape)
        if train_mode:
            dg = self.gamma.grad if self.gamma is not None and self.gamma.grad is not None \
                else self._buf(ws, "dgamma_scratch", (k,))
            db = self.beta.grad if self.beta is not None and self.beta.grad is not None \
                else self._buf(ws, "dbeta_scratch", (k,))
            be.batchnorm_backward(dy, x2, gamma, mean, inv_std, dx=dx, dgamma=dg, dbeta=db)
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
                   center=self.center, scale=self.scale,
                   beta_initializer=initializers.serialize(self.beta_initializer),
                   gamma_initializer=initializers.serialize(self.gamma_initializer),
                   moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
                   moving_variance_initializer=initializers.serialize(
                       self.moving_variance_initializer),
                   beta_regularizer=regularizers.serialize(self.beta_regularizer),
                   gamma_regularizer=regularizers.serialize(self.gamma_regularizer))
        return cfg


# ---------------------------------------------------------------------------------------------
# reshaping
# ---------------------------------------------------------------------------------------------
class Flatten(Layer):
    """Flatten each sample: ``(n, d1, d2, ...) -> (n, d1 * d2 * ...)`` (a view)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten {self.name!r}: only data_format='channels_last' is "
                             f"supported, got {data_format!r}")
        self.data_format = "channels_last"

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape)[1:]
        size = None if any(s is None for s in rest) else int(math.prod(rest))
        return (input_shape[0], size)

    def forward(self, x, training=False):
        self._cache = x.shape
        return x.reshape(x.shape[0], -1) if len(x.shape) != 2 else x

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        return dy.reshape(self._cache)

    def get_config(self):
        cfg = super().get_config()
        cfg["data_format"] = self.data_format
        return cfg


# ---------------------------------------------------------------------------------------------
# lookup and (de)serialisation
# ---------------------------------------------------------------------------------------------
_CLASSES = {c.__name__: c for c in (InputLayer, Dense, Activation, Dropout, BatchNormalization,
                                     Flatten, LeakyReLU, Softmax)}


def serialize(layer):
    """Keras's layer dict: ``{'module', 'class_name', 'config', 'build_config'}``."""
    return {"module": "pynn.layers", "class_name": type(layer).__name__,
            "config": layer.get_config(), "build_config": layer.get_build_config()}


def get(class_name, custom_objects=None):
    """The layer class called ``class_name`` (built-ins or ``custom_objects``)."""
    cls = (custom_objects or {}).get(class_name) or _CLASSES.get(class_name)
    if cls is None:
        raise ValueError(f"Unknown layer class {class_name!r}; expected one of "
                         f"{sorted(_CLASSES)} or a class passed in custom_objects")
    return cls


def deserialize(config, custom_objects=None):
    """Inverse of :func:`serialize` (the layer is not built)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"layers.deserialize: expected a dict with 'class_name', got "
                         f"{type(config).__name__}")
    cls = get(config["class_name"], custom_objects)
    cfg = dict(config.get("config") or {})
    return cls.from_config(cfg)
