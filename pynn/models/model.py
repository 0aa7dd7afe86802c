"""``Model``: a layer that owns layers, their flat parameters, and the trainer.

``pynn.Model(inputs, outputs)`` builds a functional model
(:class:`~pynn.models.functional.Functional`, a subclass, as in Keras 3);
:class:`~pynn.models.sequential.Sequential` builds the same kind of graph from a
list. A model is a :class:`~pynn.layers.Layer`: it can be called on symbolic
tensors inside another model, or be an element of a ``Sequential``.

This module holds what every model shares: the weights of its layers (deduplicated,
in Keras's order) laid out in one flat parameter buffer (:mod:`.layout`), the
backend and dtype it runs on, ``get_weights``/``set_weights``, saving, the summary
and eager calls. Training lives in :class:`~pynn.trainers.trainer.Trainer`.
"""
from __future__ import annotations

import numpy as np

from .. import _config
from ..backends import get_backend
from ..layers.context import CallContext
from ..layers import added_losses
from ..layers.layer import Layer, assign_all, auto_name, building_shapes_only
from ..autodiff.tape import Tensor
from ..layers.node import KerasTensor, flatten_structure
from ..trainers.planner import FastPath
from ..trainers.trainer import Trainer
from .layout import ParameterLayout

__all__ = ["Model"]


class Model(Trainer, Layer):
    """A model: ``Model(inputs, outputs, name=None)`` (the functional API).

    ``inputs`` and ``outputs`` are symbolic tensors (from :func:`pynn.Input` and layer
    calls): one tensor, a list, or a dict keyed by name.
    """

    _serial_module = "pynn.models"
    _from_config_takes_custom_objects = True

    #: the class ``Model(inputs, outputs)`` builds (set by :mod:`.functional`, which
    #: depends on this module, not the other way round)
    _graph_class = None

    #: makes the class of a subclassed model (set by :mod:`.subclassed`)
    _subclass_base = None

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            if args or "inputs" in kwargs or "outputs" in kwargs:
                return super().__new__(Model._graph_class)
            raise TypeError("pynn.Model(inputs, outputs): give the symbolic inputs and "
                            "outputs of a graph (the functional API), or subclass pynn.Model "
                            "and define call()")
        if not issubclass(cls, Model._graph_class):  # class MyModel(pynn.Model): call()
            return super().__new__(Model._subclass_base(cls))
        return super().__new__(cls)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A subclassed model from its ``get_config()``: ``cls(**config)`` (Keras's
        default), built afterwards from the saved build config. The graph classes
        override this."""
        return cls(**config)

    def _init_model(self, name, trainable, seed):
        Layer.__init__(self, name=name if name is not None else auto_name(type(self).__name__),
                       trainable=trainable)
        # a shapes-only build draws nothing: the seeded sequence of Generators is unchanged
        self._rng = np.random.default_rng(0) if building_shapes_only() else \
            _config.make_rng(seed)
        self._layout = ParameterLayout()
        self._fast_path = FastPath(self)
        self._root_ctx = CallContext(self)
        self._init_trainer()

    # ------------------------------------------------------------------------------------
    # structure (Functional implements the graph)
    # ------------------------------------------------------------------------------------
    @property
    def layers(self):
        raise NotImplementedError

    def _all_layers(self):
        """Every distinct layer, nested models' layers included (a model once)."""
        seen, out = set(), []

        def walk(layer):
            if id(layer) in seen:
                return
            seen.add(id(layer))
            out.append(layer)
            if isinstance(layer, Model):
                for sub in layer.layers:
                    walk(sub)
            for sub in layer._sublayers:
                walk(sub)

        for layer in self.layers:
            walk(layer)
        return out

    @Layer.trainable.setter
    def trainable(self, value):
        """Sets the flag on the model and on every layer in it (Keras)."""
        for layer in self.layers:
            layer.trainable = value
        Layer.trainable.fset(self, value)

    @property
    def dtype(self):
        return self._dtype or _config.floatx()

    @property
    def weights(self):
        """Every weight of every layer, each once, in Keras's order."""
        seen, out = set(), []
        for layer in self.layers:
            for w in layer.weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    @property
    def losses(self):
        """Keras's ``losses``: what the model and its layers added with ``add_loss``
        during the latest forward pass, then the weights' regularisation penalties."""
        be = self.backend
        return self._added_losses() + [w.regularizer.loss(be, w.value)
                                       for w in self.trainable_weights
                                       if w.regularizer is not None]

    def _added_losses(self):
        """The ``add_loss`` values of the latest forward pass (NumPy values)."""
        out = added_losses.own_losses(self)
        for layer in self._all_layers():
            out.extend(added_losses.own_losses(layer))
        return out

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"This model has not yet been built. Build the model first by "
                             f"calling `build()` or by calling the model on a batch of data "
                             f"(needed for {what}).")

    def _require_layers(self):
        pass

    def _attach(self, backend=None, rng=None, dtype=None):
        """Attach the model and all its layers to an outer model's backend and dtype (the
        model keeps its own Generator)."""
        Layer._attach(self, backend, None, dtype)
        for layer in self.layers:
            layer._attach(backend, None if isinstance(layer, Model) else rng, dtype)

    def _model_dtype(self, layers):
        dts = {l._dtype_arg for l in layers if l._dtype_arg is not None}
        dts |= {l._dtype for l in layers if l.built and l.weights and l._dtype is not None}
        if len(dts) > 1:
            raise ValueError(f"Model {self.name!r}: layers ask for different dtypes "
                             f"{sorted(dts)}; all parameters share one buffer")
        return dts.pop() if dts else None

    def _finish_build(self, backend=None, dtype=None):
        """Attach every layer to the model's backend, Generator and dtype; lay out weights."""
        be = backend or self._backend or get_backend()
        dtype = np.dtype(dtype or self._dtype or self._model_dtype(self._all_layers())
                         or _config.floatx()).name
        self._backend, self._dtype = be, dtype
        for layer in self.layers:
            layer._attach(be, None if isinstance(layer, Model) else self._rng, dtype)
        self.built = True
        if not building_shapes_only():
            self._layout.relayout(self.weights, be, dtype)

    def _sync(self):
        """Before each call: follow a backend switch and re-lay out if weights changed."""
        be = get_backend()
        if self._backend is not None and be is not self._backend:
            if not (be.host_memory and self._backend.host_memory):
                raise ValueError(f"Model {self.name!r} was built on backend "
                                 f"{self._backend.name!r}; it cannot run on {be.name!r}")
            self._backend = be
            for layer in self._all_layers():
                layer._backend = be
            if self.optimizer is not None and getattr(self.optimizer, "built", False):
                self.optimizer._backend = be
        if self.built:
            self._layout.sync(lambda: self.weights, self._backend, self._dtype)

    # ------------------------------------------------------------------------------------
    # calls
    # ------------------------------------------------------------------------------------
    def __call__(self, inputs, training=False):
        """On symbolic tensors: a graph node (the model used as a layer). On arrays: the
        outputs for all of ``inputs`` as one batch (``training=True`` uses batch
        statistics and dropout), as NumPy."""
        flat, _ = flatten_structure(inputs)
        if any(isinstance(t, KerasTensor) for t in flat):
            return Layer.__call__(self, inputs)
        from ..trainers import data as data_mod
        from ..autodiff.tape import active_tape
        tape = active_tape()
        if tape is not None and not any(isinstance(t, Tensor) for t in flat):
            # a hand-written loop under a GradientTape: the model is one tape entry
            flat = [tape.leaf(np.asarray(t)) for t in flat]
            inputs = flat[0] if len(flat) == 1 else flat
        if any(isinstance(t, Tensor) for t in flat):
            if not self.built:
                self.build((None,) + tuple(flat[0].shape[1:]))
            return Layer.__call__(self, inputs, training=training)
        with self._forward_lock():
            xs = data_mod.prepare_inputs(self, inputs)
            if not training:
                results = self._new_results(xs[0].shape[0], xs)
                self._predict_into(xs, results)
                return self._pack_outputs(results)
            be = self._backend
            outs = self._run_forward(self._root_ctx, xs, True, None)
            return self._pack_outputs([np.array(be.to_numpy(o), copy=True) for o in outs])

    # ------------------------------------------------------------------------------------
    # weights
    # ------------------------------------------------------------------------------------
    def get_weights(self):
        """Copies of every weight, layer by layer in Keras's order. Taken under the model's
        lock: a snapshot while another thread trains lies between two steps."""
        with self._forward_lock():
            return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        """Set every weight from a list like :meth:`get_weights` returns (all values read
        and checked before any is written; under the model's lock)."""
        with self._forward_lock():
            assign_all(self.weights, weights, f"model {self.name!r}")

    def count_params(self):
        self._require_built("count_params()")
        return sum(w.size for w in self.weights)

    def save(self, filepath, overwrite=True):
        """Write the model to a ``.pynn``/``.keras`` zip (see :mod:`pynn.saving`)."""
        from ..saving import save_model
        with self._forward_lock():  # between two training steps
            save_model(self, filepath, overwrite=overwrite)

    def export(self, filepath, format="onnx", verbose=True, **kwargs):
        """Write the model for inference in ``format`` (``"onnx"``; see
        :mod:`pynn.export`). Keras 3's default format, ``"tf_saved_model"``, needs
        TensorFlow; pynn writes ONNX."""
        from ..export import export_model
        return export_model(self, filepath, format=format, verbose=verbose, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """Write only the weights (see :func:`pynn.saving.save_weights`)."""
        from ..saving import save_weights
        with self._forward_lock():
            save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Read weights written by :meth:`save_weights` (or a full model file)."""
        from ..saving import load_weights
        with self._forward_lock():
            load_weights(self, filepath)

    def summary(self, line_length=None, positions=None, print_fn=None, show_trainable=False):
        """Print Keras's table: layer (type), output shape, parameter count (and, for a
        graph, what each layer is connected to), totals."""
        from .summary import print_summary
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      show_trainable=show_trainable)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
