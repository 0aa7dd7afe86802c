"""The contestants of the ``--rnn`` table: pynn on each backend, PyTorch eager
(``nn.LSTM``/``nn.GRU``, batch_first, bidirectional), Keras 3 on its torch backend (in a
process of its own), and the products-only floor of the epoch."""
from __future__ import annotations

import numpy as np

from .. import backends as _backends
from .cnn_contestants import KerasCNN
from .constants import LEARNING_RATES, RNN_EMBED, RNN_UNITS, RNN_VOCAB
from .contestants import Contestant, Pynn, Torch
from .rnn import RNN_OPTIMIZER, rnn_model, rnn_products

#: Peers of the ``--rnn`` table.
RNN_PEERS = ("torch", "keras")
#: Name of the products-only floor row.
RNN_FLOOR_NAME = "products only"
#: Name of the PyTorch row every ratio is taken against.
RNN_TORCH = "PyTorch"


class PynnRNN(Pynn):
    """pynn's classifier (:func:`rnn_model`) on one backend."""

    def __init__(self, backend_name, cell):
        super().__init__(backend_name)
        self.cell = cell

    def build(self, optimizer, batch_size, seed):
        self.batch_size = batch_size
        with _backends.use_backend(self.backend):
            self.model = rnn_model(self.cell, seed=seed)


def _torch_net(torch, cell):
    """The classifier as a ``torch.nn.Module`` returning logits (the sigmoid is in the
    loss, ``BCEWithLogitsLoss``, as one writes it in PyTorch)."""
    nn = torch.nn
    rnn = nn.LSTM if cell == "lstm" else nn.GRU

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(RNN_VOCAB, RNN_EMBED)
            self.rnn1 = rnn(RNN_EMBED, RNN_UNITS, batch_first=True, bidirectional=True)
            self.rnn2 = rnn(2 * RNN_UNITS, RNN_UNITS, batch_first=True, bidirectional=True)
            self.out = nn.Linear(2 * RNN_UNITS, 1)

        def forward(self, x):
            h, _ = self.rnn1(self.emb(x))
            _, last = self.rnn2(h)
            last = last[0] if isinstance(last, tuple) else last  # LSTM: (h, c)
            # the forward direction's final state and the backward one's (after its
            # pass over the whole sequence), concatenated as Keras's Bidirectional does
            return self.out(torch.cat([last[0], last[1]], dim=1))
    return Net()


class TorchRNN(Torch):
    """The classifier in PyTorch eager on the CPU (threads as for the MLP), Adam with
    Keras's epsilon."""

    name = RNN_TORCH

    def __init__(self, cell, threads=2):
        super().__init__(threads)
        self.cell = cell

    def build(self, optimizer, batch_size, seed):
        torch = self.torch
        torch.manual_seed(seed)
        self.model = _torch_net(torch, self.cell)
        self.opt = torch.optim.Adam(self.model.parameters(),
                                    lr=LEARNING_RATES[RNN_OPTIMIZER], eps=1e-7)
        self.loss = torch.nn.BCEWithLogitsLoss()
        self.batch_size = batch_size
        self._data = None

    def epoch(self, x, y):
        torch = self.torch
        if self._data is None or self._data[0] is not x:
            self._data = (x, torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y))
        _, xt, yt = self._data
        perm = torch.randperm(len(x))
        for s in range(0, len(x), self.batch_size):
            j = perm[s:s + self.batch_size]
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(xt[j]), yt[j]).backward()
            self.opt.step()


#: The Keras process of the ``--rnn`` table (the protocol of :class:`KerasCNN`'s).
_KERAS_RNN_SCRIPT = r"""
import json, sys, time
threads, n, cell, length, seed = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                  int(sys.argv[4]), int(sys.argv[5]))

def answer(**kw):
    print(json.dumps(kw), flush=True)

try:
    import torch
    torch.set_num_threads(threads)
    import keras
    from pynn.bench.rnn import rnn_data
    from pynn.bench.rnn_contestants import keras_rnn
    x, y = rnn_data(n, length, seed)
except ImportError as exc:
    answer(status="missing", error=f"{type(exc).__name__}: {exc}")
    sys.exit(0)
answer(status="ok", keras=keras.__version__, backend=keras.backend.backend())
for line in sys.stdin:
    cmd = line.split()
    try:
        if cmd[0] == "build":
            batch, seed = int(cmd[1]), int(cmd[2])
            model = keras_rnn(keras, cell, seed)
            answer(status="ok")
        elif cmd[0] == "epoch":
            rows = int(cmd[1])
            t0 = time.perf_counter()
            model.fit(x[:rows], y[:rows], batch_size=batch, epochs=1, verbose=0,
                      shuffle=True)
            answer(status="ok", seconds=time.perf_counter() - t0)
        else:
            break
    except Exception as exc:
        answer(status=f"error: {type(exc).__name__}: {exc}")
"""


def keras_rnn(keras, cell, seed):
    """The classifier in Keras (the keras-io example's code), compiled like pynn's."""
    from keras import layers

    keras.utils.set_random_seed(seed)
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[cell]
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(RNN_VOCAB, RNN_EMBED)(inputs)
    x = layers.Bidirectional(rnn(RNN_UNITS, return_sequences=True))(x)
    x = layers.Bidirectional(rnn(RNN_UNITS))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATES[RNN_OPTIMIZER]),
                  loss="binary_crossentropy")
    return model


class KerasRNN(KerasCNN):
    """Keras 3 on torch training the classifier, in a process of its own that makes the
    same data as :func:`rnn_data` (see :class:`KerasCNN`)."""

    script = _KERAS_RNN_SCRIPT

    def __init__(self, cell, n_samples, length, seed=0, threads=2):
        self.cell, self.length = cell, length
        super().__init__(n_samples, seed=seed, threads=threads)

    def script_args(self, n_samples, data_dir, seed):
        return [str(n_samples), self.cell, str(self.length), str(seed)]


class RNNFloor(Contestant):
    """The products-only floor: :func:`rnn_products` of all four directions for every
    step of the epoch (the last partial batch at its own size)."""

    name = RNN_FLOOR_NAME
    predicts = False

    def __init__(self, cell, length):
        self.cell, self.length = cell, length
        if rnn_products(cell, 1, 1) is None:
            self.status = "unavailable: needs the cython backend's extension"

    def build(self, optimizer, batch_size, seed):
        self.batch_size, self.seed, self.steps = batch_size, seed, {}

    def _step(self, n):
        if n not in self.steps:
            self.steps[n] = rnn_products(self.cell, n, self.length, seed=self.seed)
        return self.steps[n]

    def epoch(self, x, y):
        full, rest = divmod(len(x), self.batch_size)
        step = self._step(self.batch_size)
        for _ in range(full):
            step()
        if rest:
            self._step(rest)()


def rnn_contestants(backends, peers, cell, n_samples, length, torch_threads=2):
    """pynn's classifier with ``cell`` layers on each of ``backends``, then the
    ``peers`` of :data:`RNN_PEERS` asked for (``keras`` starts the Keras process: call
    ``close`` on it when done)."""
    cs = [PynnRNN(n, cell) for n in backends]
    if "torch" in peers:
        cs.append(TorchRNN(cell, torch_threads))
    if "keras" in peers:
        cs.append(KerasRNN(cell, n_samples, length, threads=torch_threads))
    return cs
