"""The ``--custom`` table's contestants (issue 21): the tutorial MLP written three ways,
each trained by ``fit`` on one pynn backend, and the op path's per-op overhead.

* built-in layers: ``Sequential`` of ``Dense`` layers (the ``--train`` table's model);
* a subclassed ``pynn.Model`` whose ``call()`` wires the same built-in layers;
* custom layers from ``pynn.ops``: a ``Layer`` subclass with ``add_weight`` and a
  ``call()`` of ``ops.matmul``, ``+``, ``ops.relu``/``ops.softmax``, its gradients
  derived on the tape (:mod:`pynn.autodiff`).

Only the public API is used.
"""
from __future__ import annotations

import time

import numpy as np

from .. import backends as _backends
from .constants import ARCH
from .contestants import Contestant, tutorial_model

#: the three ways, in table order (the first is the baseline of the ratios)
WAYS = ("built-in layers", "subclassed Model of built-in layers",
        "custom layers from pynn.ops")
#: their column names
WAY_COLUMNS = ("built-in", "subclassed", "custom ops")


def _classes():
    """The subclassed model and the op-built layer (defined on first use, so importing
    the benchmark package builds no pynn classes)."""
    from .. import Model, layers, ops

    class OpsDense(layers.Layer):
        """``Dense`` as a Keras user writes it: ``add_weight`` and a ``call()`` of ops."""

        def __init__(self, units, activation, **kwargs):
            super().__init__(**kwargs)
            self.units, self.activation = units, activation

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                          initializer="glorot_uniform", name="kernel")
            self.bias = self.add_weight(shape=(self.units,), initializer="zeros",
                                        name="bias")

        def call(self, x):
            y = ops.matmul(x, self.kernel) + self.bias
            return ops.relu(y) if self.activation == "relu" else ops.softmax(y)

    class TutorialMLP(Model):
        """The tutorial's network as a class: Dense layers as attributes, ``call()``."""

        def __init__(self, arch=ARCH, **kwargs):
            super().__init__(**kwargs)
            self.hidden = [layers.Dense(n, activation="relu") for n in arch[1:-1]]
            for i, layer in enumerate(self.hidden):
                setattr(self, f"dense_{i}", layer)
            self.out = layers.Dense(arch[-1], activation="softmax")

        def call(self, x):
            for layer in self.hidden:
                x = layer(x)
            return self.out(x)

    return OpsDense, TutorialMLP


def custom_model(way, optimizer, arch=ARCH, seed=0):
    """The tutorial MLP written ``way`` (one of :data:`WAYS`), compiled on the active
    backend like :func:`~.contestants.tutorial_model`, with the same initial weights."""
    from .. import layers, set_seed
    from ..models import Sequential

    base = tutorial_model(optimizer, arch, seed)
    if way == WAYS[0]:
        return base
    ops_dense, tutorial_mlp = _classes()
    set_seed(seed)
    if way == WAYS[1]:
        model = tutorial_mlp(arch)
    elif way == WAYS[2]:
        model = Sequential([layers.Input(shape=(arch[0],)),
                            *[ops_dense(n, "relu") for n in arch[1:-1]],
                            ops_dense(arch[-1], "softmax")])
    else:
        raise ValueError(f"unknown way {way!r}; expected one of {WAYS}")
    model.build((None, arch[0]))
    model.set_weights(base.get_weights())
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


class CustomWay(Contestant):
    """One way of writing the MLP, trained by ``fit`` on one backend."""

    predicts = False

    def __init__(self, way, backend_name):
        self.way, self.backend = way, backend_name
        self.name = f"{way} [{backend_name}]"
        self.model = None

    def build(self, optimizer, batch_size, seed):
        self.batch_size = batch_size
        with _backends.use_backend(self.backend):
            self.model = custom_model(self.way, optimizer, seed=seed)

    def epoch(self, x, y):
        with _backends.use_backend(self.backend):
            self.model.fit(x, y, batch_size=self.batch_size, epochs=1, verbose=0,
                           shuffle=True)


def op_overhead(n=2000, size=32):
    """The op path's cost per op on ``size x size`` float32 arrays, in seconds:
    ``{"numpy_s"``: ``np.add`` alone, ``"forward_s"``: ``ops.add`` recorded on a tape,
    ``"backward_s"``: its share of the backward pass over a chain of ``n`` of them,
    ``"overhead_s"``: forward + backward minus the NumPy work they do (one add each)}."""
    from .. import GradientTape, ops
    from ..autodiff import gradients

    a = np.ones((size, size), np.float32)
    with GradientTape() as tape:  # warm-up
        x = tape.leaf(a)
        gradients([ops.add(x, x)], [a], [x])
    t0 = time.perf_counter()
    for _ in range(n):
        np.add(a, a)
    plain = (time.perf_counter() - t0) / n
    with GradientTape() as tape:
        x = tape.leaf(a)
        t0 = time.perf_counter()
        y = x
        for _ in range(n):
            y = ops.add(y, x)
        forward = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    gradients([y], [np.ones_like(a)], [x])
    backward = (time.perf_counter() - t0) / n
    return {"numpy_s": plain, "forward_s": forward, "backward_s": backward,
            "overhead_s": forward + backward - 2 * plain, "size": size, "ops": n}
