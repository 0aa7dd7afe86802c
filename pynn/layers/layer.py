"""The layer contract: :class:`Layer`, its :class:`Weight` objects, names and shapes.

A built-in layer owns its weights and a hand-written, fused ``forward``/``backward``
pair. Both take the :class:`~pynn.layers.context.CallContext` of the call being
run, which holds what the backward pass needs and the workspaces, so one layer may
be called many times (shared layers, fan-out, recurrence) without one call
overwriting another's state::

    y = layer.forward(ctx, x, training=False)     # x: one array, or a list for
    dx = layer.backward(ctx, dy, input_grad=True) #    layers called on a list

``backward`` writes each weight's gradient into ``ctx.grad_out(weight)`` and
returns the gradient with respect to the input (a list for list inputs; ``None``
without ``input_grad``). All numeric work is a backend op. Calling a layer on
:func:`pynn.Input` tensors records a graph node (:mod:`pynn.layers.node`); calling
it on arrays runs it once and returns a NumPy array.

Layer names are numbered per class like Keras's (``dense``, ``dense_1``...);
:func:`clear_session` restarts the numbering.
"""
from __future__ import annotations

import collections
import contextlib
import contextvars
import math
import re

import numpy as np

from .. import _config, initializers, regularizers
from ..backends import get_backend
from .context import CallContext
from .node import KerasTensor, Node, flatten_structure, pack_structure
from . import added_losses, custom_call
from ..autodiff.tape import Tensor, install_operators

__all__ = ["Layer", "Weight", "WeightViews", "clear_session", "auto_name", "weights_changed",
           "check_input", "rows", "assign_all"]

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


def shape_tuple(shape, what):
    """``shape`` as a tuple of ints/None (an int is one dimension); checked."""
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


def _batchless(shape, free=()):
    """``shape`` (a tuple, or a list of tuples) with the batch axis, and the axes in
    ``free`` (of the first tensor of a list), set to ``None``."""
    if isinstance(shape, list):
        return [_batchless(s, free if i == 0 else ()) for i, s in enumerate(shape)]
    return tuple(None if a == 0 or a in free else d for a, d in enumerate(shape))


# ---------------------------------------------------------------------------------------------
# shapes-only builds
# ---------------------------------------------------------------------------------------------
_SHAPES_ONLY = contextvars.ContextVar("pynn_shapes_only", default=False)


@contextlib.contextmanager
def shapes_only():
    """Build layers and models without allocating or initialising their weights.

    Inside, :meth:`Layer.add_weight` gives each weight a read-only zero-memory value of
    its shape (``numpy.broadcast_to``) and models lay out no parameter buffers, so the
    weights an architecture declares can be listed (``model.weights``: paths, shapes)
    before anything is allocated: the loader checks them against the file first.
    Nothing random is drawn, so the seeded sequence of Generators is unchanged.
    """
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def building_shapes_only():
    return _SHAPES_ONLY.get()


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------
class Weight:
    """One layer variable: ``value`` (backend array), ``grad`` (or ``None``), flags.

    Keras-like helpers: ``shape``, ``dtype``, ``numpy()``, ``assign(value)``,
    ``path`` (``'dense/kernel'``), ``trainable``, ``regularizer``.
    """

    __slots__ = ("layer", "name", "value", "grad", "regularizer", "_trainable", "_grad_pass")

    def __init__(self, layer, name, value, trainable=True, regularizer=None):
        self.layer = layer
        self.name = name
        self.value = value
        self.grad = None
        self.regularizer = regularizer
        self._trainable = bool(trainable)
        self._grad_pass = None

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

    def __pynn_tensor__(self):
        """The active tape's leaf for this weight (its value when nothing is recorded):
        how custom ``call()`` code gets gradients into weights."""
        from ..autodiff.tape import active_tape
        tape = active_tape()
        if tape is None:
            return self.value
        return tape.leaf(self.value, key=self)

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        return (f"<Weight path={self.path} shape={self.shape} dtype={self.dtype.name} "
                f"trainable={self.trainable}>")


#: Bumped whenever any layer's weight list, a trainable flag or a weight's storage
#: changes, so a model can skip re-checking its flat layout when nothing did.
_WEIGHTS_GENERATION = [0]


def weights_changed():
    """Tell every model that weight lists, trainable flags or storage may have changed."""
    _WEIGHTS_GENERATION[0] += 1


def weights_generation():
    return _WEIGHTS_GENERATION[0]


def assign_all(weights, values, owner):
    """Set ``weights`` from ``values`` as one transaction: every value is checked and
    copied out BEFORE any weight is written (so values that are views of these very
    weights, in any order, are read intact), and a value that does not fit the weight's
    dtype (a float64 too large for float32 becoming inf) is refused by name."""
    values = list(values)
    if len(values) != len(weights):
        raise ValueError(f"You called `set_weights(weights)` on {owner} with a weight list of "
                         f"length {len(values)}, but it was expecting {len(weights)} weights.")
    staged = []
    for w, v in zip(weights, values):
        a = np.asarray(v)
        if tuple(a.shape) != w.shape:
            raise ValueError(f"set_weights: weight {w.path!r} has shape {w.shape}, but the "
                             f"provided array has shape {tuple(a.shape)}")
        if a.dtype.kind not in "biuf":
            raise TypeError(f"set_weights: weight {w.path!r} needs numeric values, got dtype "
                            f"{a.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            cast = np.array(a, dtype=w.dtype, copy=True)
        if a.dtype.kind == "f" and a.size:
            overflow = np.isinf(cast) & np.isfinite(a)
            if overflow.any():
                i = tuple(int(j) for j in np.argwhere(overflow)[0])
                raise ValueError(f"set_weights: weight {w.path!r} is {w.dtype.name}, but the "
                                 f"value at index {i} ({a[i]!r}) does not fit it (it would "
                                 f"become inf)")
        staged.append(cast)
    for w, v in zip(weights, staged):
        w.assign(v)


install_operators(Weight)


def _pynn_weight_args(name, shape, initializer="glorot_uniform", regularizer=None,
                      trainable=True):
    return name, shape, initializer, regularizer, trainable


def _keras_weight_args(layer, shape=None, initializer=None, dtype=None, trainable=True,
                       autocast=True, regularizer=None, constraint=None, aggregation=None,
                       overwrite_with_gradient=False, name=None):
    if constraint is not None:
        raise ValueError(f"Layer {layer.name!r}: weight constraints are not supported "
                         f"(add_weight(constraint={constraint!r}))")
    if dtype is not None and np.dtype(dtype).name != np.dtype(layer.dtype).name:
        raise ValueError(f"Layer {layer.name!r}: add_weight(dtype={dtype!r}) differs from the "
                         f"layer's dtype {layer.dtype!r}; pynn keeps one dtype per model")
    if name is None:
        taken = {w.name for w in layer._weights}
        name, k = "variable", 0
        while name in taken:
            k += 1
            name = f"variable_{k}"
    return (name, () if shape is None else shape,
            "glorot_uniform" if initializer is None else initializer, regularizer, trainable)


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


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------
def check_input(layer, shape, want=None, index=0):
    """Raise a Keras-like error when inputs of ``shape`` don't fit ``want`` (default: the
    shape ``layer`` was built for)."""
    want = layer.input_shape if want is None else want
    if want is None or isinstance(want, list):
        return
    got = tuple(shape)
    if len(got) != len(want):
        raise ValueError(f"Input {index} of layer {layer.name!r} is incompatible with the "
                         f"layer: expected shape={want}, found shape={got}")
    for axis, (w, g) in enumerate(zip(want, got)):
        if w is not None and w != g:
            raise ValueError(f"Input {index} of layer {layer.name!r} is incompatible with the "
                             f"layer: expected axis {axis - len(want)} of input shape to have "
                             f"value {w}, but received input with shape {got} (the layer "
                             f"expects shape {want}){_channels_first_hint(want, got)}")


def _channels_first_hint(want, got):
    """A hint when ``got`` is images or sequences of the expected ``want`` (channels last)
    with the channel axis moved to axis 1: channels_first data."""
    if (not isinstance(want, tuple) or not isinstance(got, tuple) or len(want) not in (3, 4)
            or tuple(got[1:]) != (want[-1],) + tuple(want[1:-1])):
        return ""
    return (". The input looks like channels_first data (channels on axis 1); the layer "
            "expects channels_last data: transpose it to (batch, *spatial, channels)")


def rows(x, k):
    """``x`` as a 2-D ``(-1, k)`` view (a no-op for 2-D inputs)."""
    return x if len(x.shape) == 2 else x.reshape(-1, k)


# ---------------------------------------------------------------------------------------------
# base layer
# ---------------------------------------------------------------------------------------------
class Layer(WeightViews):
    """Base class of layers.

    Subclasses implement ``build(input_shape)`` (create weights with
    :meth:`add_weight`), ``forward(ctx, x, training=False)``, ``backward(ctx, dy,
    input_grad=True)``, ``compute_output_shape(input_shape)`` and ``get_config()``.
    Shapes passed to ``build``/``compute_output_shape`` include the batch axis
    (``None``), as in Keras; a layer called on a list gets a list of shapes.

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
    #: Axes whose size may change from call to call (a sequence layer's time axis): the
    #: recorded input shape has ``None`` there.
    _free_axes = ()
    #: Whether the layer passes masks on (see :mod:`pynn.layers.masking_rules`); as in
    #: Keras, True by default for layers that override :meth:`compute_mask`.
    _supports_masking = None

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
        self._input_shape_arg = shape_tuple(input_shape, f"{type(self).__name__}: input_shape")
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
        #: layers this layer runs inside its own call (a wrapper's wrapped layer): their
        #: weights are this layer's too, and they follow its backend, dtype and flags
        self._sublayers = ()
        self._backend = None
        self._rng = None
        self._inbound_nodes = []

    def __setattr__(self, name, value):
        """Keras tracks the layers a layer keeps as attributes: their weights are its
        weights (a custom layer or model wiring layers in ``call``)."""
        if isinstance(value, Layer) and value is not self and not name.startswith("_") \
                and "_sublayers" in self.__dict__ and value not in self._sublayers:
            object.__setattr__(self, "_sublayers", self._sublayers + (value,))
        object.__setattr__(self, name, value)

    # -- properties ----------------------------------------------------------------------
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for sub in self._sublayers:
            sub.trainable = value
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
        """All weights, in creation order (Keras's ``get_weights`` order), then those of
        the sublayers in order."""
        out = list(self._weights)
        for sub in self._sublayers:
            out.extend(sub.weights)
        return out

    @property
    def losses(self):
        """Keras's ``losses``: what this layer and its sublayers added with
        :meth:`add_loss` during their latest call (NumPy values), then the current
        regularisation penalties of the trainable weights (floats)."""
        out = added_losses.own_losses(self)
        for sub in self._sublayers:
            out.extend(added_losses.own_losses(sub))
        be = self.backend
        return out + [w.regularizer.loss(be, w.value) for w in self.trainable_weights
                      if w.regularizer is not None]

    def add_loss(self, loss):
        """Add ``loss`` (a tensor computed in :meth:`call` with ``pynn.ops``; summed over
        its elements) to the training objective, as Keras's ``add_loss``: ``fit`` and
        ``evaluate`` add it to the loss they minimise and log, its gradient flows
        through the tape of the call that computed it, and :attr:`losses` lists it
        until the layer's next forward pass (:mod:`pynn.layers.added_losses`)."""
        custom_call.add_loss(self, loss)

    @property
    def input(self):
        """The symbolic input of the layer's first call (Keras's ``layer.input``)."""
        return self._node_attribute("input")

    @property
    def output(self):
        """The symbolic output of the layer's first call (Keras's ``layer.output``)."""
        return self._node_attribute("output")

    def _node_attribute(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name!r} has never been called on a symbolic "
                                 f"tensor and thus has no defined {what}.")
        node = self._inbound_nodes[0]
        if what == "output":
            return node.pack_outputs()
        return node.pack_inputs(node.inputs)

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
            if self.built and self._weights and self._dtype != np.dtype(dtype).name:
                raise ValueError(f"Layer {self.name!r} is built with dtype {self._dtype!r}; "
                                 f"it cannot join a {np.dtype(dtype).name!r} model")
            self._dtype = np.dtype(dtype).name
        for sub in self._sublayers:
            sub._attach(backend, rng, dtype)

    def add_weight(self, *args, **kwargs):
        """Create, initialise and register a weight; returns the :class:`Weight`.

        Takes Keras 3's arguments (``add_weight(shape=None, initializer=None,
        dtype=None, trainable=True, autocast=True, regularizer=None, constraint=None,
        aggregation=..., name=None)``; the default initializer is ``glorot_uniform``,
        the default name ``variable``, ``variable_1``...) or pynn's positional order
        ``add_weight(name, shape, initializer, regularizer, trainable)``."""
        if args and isinstance(args[0], str):
            name, shape, initializer, regularizer, trainable = _pynn_weight_args(*args,
                                                                                 **kwargs)
        else:
            name, shape, initializer, regularizer, trainable = _keras_weight_args(
                self, *args, **kwargs)
        shape = tuple(int(s) for s in shape)
        if any(w.name == name for w in self._weights):
            raise ValueError(f"Layer {self.name!r} already has a weight named {name!r}")
        init = initializers.get(initializer)
        dt = np.dtype(self.dtype)
        if _SHAPES_ONLY.get():
            w = Weight(self, name, np.broadcast_to(np.zeros((), dt), shape), trainable,
                       regularizers.get(regularizer))
            self._weights.append(w)
            return w
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
        input_shape = _batchless(input_shape, self._free_axes)
        if self.built:
            if self.input_shape is not None and self.input_shape != input_shape:
                raise ValueError(
                    f"Layer {self.name!r} was built for inputs of shape {self.input_shape}, "
                    f"but now receives inputs of shape {input_shape}"
                    f"{_channels_first_hint(self.input_shape, input_shape)}")
        else:
            if self._dtype is None:
                self._dtype = self.dtype
            for sub in self._sublayers:
                sub._dtype = sub._dtype or self._dtype
            self.build(input_shape)
            self.built = True
        out = self.compute_output_shape(input_shape)  # may refuse: record nothing then
        self.input_shape = input_shape
        self.output_shape = [tuple(s) for s in out] if isinstance(out, list) else tuple(out)
        return self.output_shape

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape``; by default the input's, or for a layer
        defined by :meth:`call`, what ``call`` gives (as Keras traces it)."""
        if custom_call.uses_call(self):
            return custom_call.infer_output_shape(self, input_shape)
        return input_shape if isinstance(input_shape, list) else tuple(input_shape)

    # -- computation -----------------------------------------------------------------------
    def call(self, inputs, *args, **kwargs):
        """Keras's way to define a layer: compute the output from ``inputs`` with
        ``pynn.ops`` and other layers; gradients are derived automatically
        (:mod:`pynn.layers.custom_call`). Built-in layers implement ``forward`` and
        ``backward`` instead."""
        raise NotImplementedError(f"{type(self).__name__} must implement call() (or "
                                  f"forward() and backward())")

    def forward(self, ctx, x, training=False):
        """Output for input ``x`` (a backend array of the layer's dtype, or a list)."""
        if custom_call.uses_call(self):
            return custom_call.call_forward(self, ctx, x, training)
        raise NotImplementedError(f"{type(self).__name__} must implement forward() (or "
                                  f"call())")

    def backward(self, ctx, dy, input_grad=True):
        """Write weight gradients (``ctx.grad_out``); return d loss / d input."""
        if custom_call.uses_call(self):
            return custom_call.call_backward(self, ctx, dy, input_grad)
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    @property
    def supports_masking(self):
        """Whether the output gets a mask from :meth:`compute_mask` (else masks stop
        here); settable."""
        if self._supports_masking is None:
            return type(self).compute_mask is not Layer.compute_mask
        return self._supports_masking

    @supports_masking.setter
    def supports_masking(self, value):
        self._supports_masking = bool(value)

    def compute_mask(self, inputs, previous_mask):
        """The output's mask (a boolean array, or None) given the input(s) and their
        mask: by default the previous mask passes through (Keras's rule)."""
        return previous_mask

    def context(self):
        """A fresh :class:`~pynn.layers.context.CallContext` for running this layer alone."""
        return CallContext(self)

    def __call__(self, inputs, training=False):
        """On :func:`pynn.Input` tensors: record a graph node, return symbolic outputs.
        On arrays: build for them if needed, run forward once, return NumPy output."""
        flat, structure = flatten_structure(inputs)
        if any(isinstance(t, Tensor) for t in flat):  # inside a custom call()
            return custom_call.call_on_tensors(self, flat, structure, training)
        symbolic = [isinstance(t, KerasTensor) for t in flat]
        if any(symbolic):
            if not all(symbolic):
                raise ValueError(f"Layer {self.name!r}: all inputs must be symbolic tensors "
                                 f"(from pynn.Input) or all arrays, not a mix")
            return self._symbolic_call(flat, structure)
        return self._eager_call(flat, structure, training)

    def _input_shapes(self, flat, structure):
        shapes = [tuple(t.shape) for t in flat]
        return shapes[0] if structure is None else shapes

    def _symbolic_call(self, flat, structure):
        if isinstance(structure, tuple):
            raise ValueError(f"Layer {self.name!r} takes one tensor or a list of tensors, "
                             f"not a dict")
        shape = self._input_shapes(flat, structure)
        try:
            out = self._build_for(shape)
        except ValueError as exc:
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) called on inputs "
                             f"of shape {shape}: {exc}") from exc
        multi = isinstance(out, list)
        node = Node(self, flat, structure, out if multi else [out], self.dtype, multi)
        self._inbound_nodes.append(node)
        return node.pack_outputs()

    def _eager_call(self, flat, structure, training):
        be = self.backend
        arrays = []
        for i, x in enumerate(flat):
            x = np.asarray(x)
            if x.ndim < 1:
                raise ValueError(f"Layer {self.name!r}: expected a batch of inputs, got a "
                                 f"scalar (input {i})")
            arrays.append(be.asarray(x, dtype=np.dtype(self.dtype)))
        self._build_for(self._input_shapes(arrays, structure))
        if structure is None:
            check_input(self, arrays[0].shape)
        out = self.forward(self.context(), pack_structure(arrays, structure), training=training)
        if isinstance(out, list):
            return [np.array(be.to_numpy(o), copy=True) for o in out]
        return np.array(be.to_numpy(out), copy=True)

    # -- weights and config ----------------------------------------------------------------
    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer {self.name!r}, but "
                             "the layer isn't built. Build it first (call it on data, or add "
                             "it to a model with a known input shape).")
        return sum(w.size for w in self.weights)

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        assign_all(self.weights, weights, f"layer {self.name!r}")

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
        shape = self.input_shape
        return {"input_shape": [list(s) for s in shape] if isinstance(shape, list)
                else list(shape)}

    def build_from_config(self, config):
        """Build from :meth:`get_build_config`'s dict (used when loading)."""
        if config and config.get("input_shape") is not None:
            shape = config["input_shape"]
            if shape and isinstance(shape[0], (list, tuple)):
                shape = [tuple(s) for s in shape]
            else:
                shape = tuple(shape)
            self._build_for(shape)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
