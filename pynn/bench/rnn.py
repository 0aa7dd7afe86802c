"""The keras-io "Bidirectional LSTM on IMDB" classifier of the ``--rnn`` table: its pynn
model (LSTM or GRU cells), random data of its shapes, the one-layer model of the layer-step
rows, and the matrix products their training steps perform (the floor).

``Input((None,), int) -> Embedding(20000, 128) -> Bidirectional(LSTM(64,
return_sequences=True)) -> Bidirectional(LSTM(64)) -> Dense(1, sigmoid)``, Adam, binary
cross-entropy, sequences of 200 tokens, float32.
"""
from __future__ import annotations

import numpy as np

from .constants import LEARNING_RATES, RNN_EMBED, RNN_UNITS, RNN_VOCAB
from .data import normal
from .pynn_api import rnn_products_kernel

#: The optimizer of the ``--rnn`` table.
RNN_OPTIMIZER = "adam"
#: Cells of the table: name -> kernel columns per unit (Keras's gate layout).
RNN_CELLS = {"lstm": 4, "gru": 3}


def rnn_model(cell="lstm", seed=0):
    """The classifier with ``cell`` ("lstm" or "gru") layers, compiled on the active
    backend (Adam, binary cross-entropy)."""
    from .. import Input, Model, layers, set_seed
    from ..optimizers import Adam

    set_seed(seed)
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[cell]
    inputs = Input(shape=(None,), dtype="int32")
    x = layers.Embedding(RNN_VOCAB, RNN_EMBED)(inputs)
    x = layers.Bidirectional(rnn(RNN_UNITS, return_sequences=True))(x)
    x = layers.Bidirectional(rnn(RNN_UNITS))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = Model(inputs, outputs)
    model.compile(optimizer=Adam(LEARNING_RATES[RNN_OPTIMIZER]), loss="binary_crossentropy")
    return model


def rnn_layer_model(cell="lstm", seed=0):
    """One ``cell`` layer of the classifier alone, on float32 input ``(T, 128)``: its
    final state against zero targets (mean squared error), Adam."""
    from .. import Input, Model, layers, set_seed
    from ..optimizers import Adam

    set_seed(seed)
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[cell]
    inputs = Input(shape=(None, RNN_EMBED))
    model = Model(inputs, rnn(RNN_UNITS)(inputs))
    model.compile(optimizer=Adam(LEARNING_RATES[RNN_OPTIMIZER]), loss="mse")
    return model


def rnn_data(n_samples, length, seed=0):
    """``(x, y)``: ``x`` int32 token ids ``(n, length)`` drawn uniformly from
    ``[1, 20000)`` (no padding), ``y`` float32 labels ``(n, 1)`` in {0, 1}."""
    rng = np.random.default_rng([seed, 17])
    x = rng.integers(1, RNN_VOCAB, (n_samples, length)).astype(np.int32)
    return x, rng.integers(0, 2, (n_samples, 1)).astype(np.float32)


def rnn_layer_data(batch, length, seed=0):
    """One batch for :func:`rnn_layer_model`: float32 ``(batch, length, 128)`` and zero
    targets ``(batch, 64)``."""
    rng = np.random.default_rng([seed, 19, batch])
    return normal(rng, (batch, length, RNN_EMBED), np.float32), \
        np.zeros((batch, RNN_UNITS), np.float32)


def rnn_layer_flops(cell, batch, length, input_grad=True):
    """Floating-point operations of one direction's products in one training step
    (forward projection and recurrent products, the state gradients, the kernel,
    recurrent-kernel and, with ``input_grad``, input gradients): 2·m·k·n each."""
    g = RNN_CELLS[cell] * RNN_UNITS
    rows, d, u = batch * length, RNN_EMBED, RNN_UNITS
    per = 2 * rows * g * (d + u) + 2 * rows * u * g + 2 * rows * d * g + 2 * rows * u * g
    return per + (2 * rows * g * d if input_grad else 0)


def rnn_flops_per_sample(cell, length):
    """Products of one training sample of the classifier: four directions, each with
    its input gradient (the first layer's feeds the embedding's gradient). The Dense(1)
    head (2·128 per sample and pass) is left out."""
    return 4 * rnn_layer_flops(cell, 1, length)


def rnn_products(cell, batch, length, directions=4, input_grad=True, seed=0):
    """A zero-argument callable: the matrix products of ``directions`` recurrent layer
    directions of one training step at ``batch`` (both layers of the classifier take
    128 inputs, so one set of arrays serves all four), exactly as the compiled kernels
    issue them (the same calls, shapes, strides and BLAS: the ``cython`` backend's
    ``rnn_products``), nothing else. ``None`` when the Cython extension is missing."""
    kernel = rnn_products_kernel()
    if kernel is None:
        return None
    rng = np.random.default_rng([seed, 23, batch])
    u, d = RNN_UNITS, RNN_EMBED
    g = RNN_CELLS[cell] * u
    w = 4 * u  # the gates workspace holds 4 blocks for both cells
    f32 = np.float32
    x = normal(rng, (batch, length, d), f32)
    kern, rk = normal(rng, (d, g), f32, 0.1), normal(rng, (u, g), f32, 0.1)
    hprev = normal(rng, (batch, length, u), f32)
    gates, dgates = normal(rng, (batch, length, w), f32), normal(rng, (batch, length, w), f32)
    dx = np.empty((batch, length, d) if input_grad else (0, 0, 0), f32)
    dk, drk = np.empty((d, g), f32), np.empty((u, g), f32)
    scratch = np.empty(batch * (g + 3 * u) + g * u, f32)
    code = {"lstm": 1, "gru": 2}[cell]

    def step():
        for _ in range(directions):
            kernel(code, True, x, kern, rk, hprev, gates, dgates, dx, input_grad, dk, drk,
                   scratch, True, True)
    return step
