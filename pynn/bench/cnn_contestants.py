"""The contestants of the ``--cnn`` table: pynn on each backend, PyTorch eager in NCHW
and in channels-last, Keras 3 on its torch backend (in a process of its own), and the
products-only floor of the epoch."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from .. import backends as _backends
from .cnn import CNN_CLASSES, CNN_OPTIMIZER, cnn_gemm_floor, cnn_model, one_hot
from .constants import (CNN_FILTERS, CNN_IMAGE, CNN_KERNEL, CNN_POOL, LEARNING_RATES,
                        NOT_INSTALLED)
from .contestants import Contestant, GemmFloor, Pynn, Torch
from .environment import child_env

#: Peers of the ``--cnn`` table.
CNN_PEERS = ("torch", "keras")
#: Name of the products-only floor row.
FLOOR_NAME = "products only"
#: Name of the PyTorch row every ratio is taken against.
TORCH_NCHW = "PyTorch NCHW"


class _OneHotTargets:
    """Caches the one-hot targets of the training set the epochs are given."""

    _y = None

    def targets(self, y):
        if self._y is None or self._y[0] is not y:
            self._y = (y, one_hot(y))
        return self._y[1]


class PynnCNN(_OneHotTargets, Pynn):
    """pynn's :class:`~pynn.models.Sequential` convnet (:func:`cnn_model`) on one
    backend."""

    def build(self, optimizer, batch_size, seed):
        self.batch_size = batch_size
        with _backends.use_backend(self.backend):
            self.model = cnn_model(seed=seed)

    def epoch(self, x, y):
        with _backends.use_backend(self.backend):
            self.model.fit(x, self.targets(y), batch_size=self.batch_size, epochs=1,
                           verbose=0, shuffle=True)


class TorchCNN(Torch):
    """The convnet in PyTorch eager on the CPU (threads set as for the MLP), Adam with
    Keras's epsilon, in NCHW or, with ``channels_last``, with the model and each input
    batch in ``torch.channels_last`` memory format."""

    def __init__(self, threads=2, channels_last=False):
        super().__init__(threads)
        self.channels_last = channels_last
        self.name = "PyTorch channels-last" if channels_last else TORCH_NCHW

    def build(self, optimizer, batch_size, seed):
        torch, nn = self.torch, self.torch.nn
        torch.manual_seed(seed)
        (f1, f2), k, p = CNN_FILTERS, CNN_KERNEL, CNN_POOL
        h, w, c = CNN_IMAGE
        for _ in CNN_FILTERS:
            h, w = (h - k + 1) // p, (w - k + 1) // p
        self.model = nn.Sequential(
            nn.Conv2d(c, f1, k), nn.ReLU(), nn.MaxPool2d(p),
            nn.Conv2d(f1, f2, k), nn.ReLU(), nn.MaxPool2d(p),
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(h * w * f2, CNN_CLASSES))
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(),
                                    lr=LEARNING_RATES[CNN_OPTIMIZER], eps=1e-7)
        self.loss = nn.CrossEntropyLoss()
        self.batch_size = batch_size
        self._data = None

    def _images(self, x):
        # NHWC -> NCHW view, then the memory format this contestant trains in
        t = self.torch.from_numpy(x).permute(0, 3, 1, 2)
        fmt = (self.torch.channels_last if self.channels_last
               else self.torch.contiguous_format)
        return t.contiguous(memory_format=fmt)

    def epoch(self, x, y):
        torch = self.torch
        if self._data is None or self._data[0] is not x:
            self._data = (x, self._images(x), torch.from_numpy(y.astype(np.int64)))
        _, xt, yt = self._data
        self.model.train()
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        perm = torch.randperm(len(x))
        for s in range(0, len(x), self.batch_size):
            j = perm[s:s + self.batch_size]
            xb = xt[j].contiguous(memory_format=fmt)
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(xb), yt[j]).backward()
            self.opt.step()

    def predict(self, x):
        torch = self.torch
        self.model.eval()
        try:
            with torch.inference_mode():
                return torch.softmax(self.model(self._images(x)), dim=1).numpy()
        finally:
            self.model.train()


#: The Keras process: builds the convnet on the torch backend, and trains one epoch on
#: the first rows of its data set, on request, answering one JSON line each.
_KERAS_SCRIPT = r"""
import json, sys, time
threads, n, data_dir, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def answer(**kw):
    print(json.dumps(kw), flush=True)

try:
    import torch
    torch.set_num_threads(threads)
    import keras
    from pynn.bench.cnn import cnn_data, one_hot
    from pynn.bench.cnn_contestants import keras_cnn
    x, y = cnn_data(n, data_dir or None, seed)
    y = one_hot(y)
except ImportError as exc:
    answer(status="missing", error=f"{type(exc).__name__}: {exc}")
    sys.exit(0)
answer(status="ok", keras=keras.__version__, backend=keras.backend.backend())
for line in sys.stdin:
    cmd = line.split()
    try:
        if cmd[0] == "build":
            batch, seed = int(cmd[1]), int(cmd[2])
            model = keras_cnn(keras, seed)
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


def keras_cnn(keras, seed):
    """The convnet in Keras (the keras-io example's code), compiled like pynn's."""
    from keras import layers

    keras.utils.set_random_seed(seed)
    (f1, f2), k, p = CNN_FILTERS, CNN_KERNEL, CNN_POOL
    model = keras.Sequential([
        keras.Input(shape=CNN_IMAGE),
        layers.Conv2D(f1, kernel_size=(k, k), activation="relu"),
        layers.MaxPooling2D(pool_size=(p, p)),
        layers.Conv2D(f2, kernel_size=(k, k), activation="relu"),
        layers.MaxPooling2D(pool_size=(p, p)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(CNN_CLASSES, activation="softmax")])
    model.compile(loss="categorical_crossentropy",
                  optimizer=keras.optimizers.Adam(LEARNING_RATES[CNN_OPTIMIZER]))
    return model


class KerasCNN(Contestant):
    """Keras 3 with ``KERAS_BACKEND=torch``, in a process of its own (the backend is
    chosen at Keras's import, once per process), which makes the same data set as
    :func:`cnn_data` from ``n_samples``, ``data_dir`` and ``seed``. Each ``epoch`` asks
    it for one epoch on as many of its first rows as ``x`` has (the warm-up epoch is
    such an epoch); the time is taken here, so it includes one round trip through a
    pipe (well under a millisecond). Call :meth:`close` when done."""

    name = "Keras 3 (torch)"
    predicts = False  # the --cnn table times predict for pynn and PyTorch only
    #: the program the process runs (a subclass trains another model)
    script = _KERAS_SCRIPT

    def __init__(self, n_samples, data_dir=None, seed=0, threads=2):
        self.proc = None
        if (importlib.util.find_spec("keras") is None
                or importlib.util.find_spec("torch") is None):
            self.status = NOT_INSTALLED
            return
        self.n_samples = n_samples
        workdir = tempfile.mkdtemp(prefix="pynn-bench-keras-")
        self.stderr = open(os.path.join(workdir, "stderr"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.script, str(threads),
             *self.script_args(n_samples, data_dir, seed)],
            env=child_env(KERAS_BACKEND="torch"), cwd=workdir, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        hello = self._answer()
        self.status = NOT_INSTALLED if hello["status"] == "missing" else hello["status"]
        self.version = hello.get("keras")
        if self.status != "ok":
            self.close()

    def script_args(self, n_samples, data_dir, seed):
        """The command-line arguments of :attr:`script` after the thread count."""
        return [str(n_samples), data_dir or "", str(seed)]

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.seek(0)
            err = self.stderr.read().strip().splitlines()
            return {"status": "error: the Keras process ended"
                              + (f": {err[-1]}" if err else "")}
        return json.loads(line)

    def _ask(self, *cmd):
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("the Keras process is not running")
        self.proc.stdin.write(" ".join(map(str, cmd)) + "\n")
        self.proc.stdin.flush()
        reply = self._answer()
        if reply["status"] != "ok":
            raise RuntimeError(reply["status"])
        return reply

    def build(self, optimizer, batch_size, seed):
        self._ask("build", batch_size, seed)

    def epoch(self, x, y):
        if len(x) > self.n_samples:
            raise ValueError(f"the Keras process holds {self.n_samples} samples, "
                             f"asked for an epoch of {len(x)}")
        self._ask("epoch", len(x))

    def close(self):
        """End the Keras process (it exits at the end of its input)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.stdin.close()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            self.stderr.close()


def cnn_floor():
    """The products-only floor: :func:`cnn_gemm_floor` for every step of the epoch."""
    return GemmFloor(cnn_gemm_floor, name=FLOOR_NAME)


def cnn_contestants(backends, peers, n_samples, data_dir=None, torch_threads=2):
    """pynn's convnet on each of ``backends``, then the ``peers`` of :data:`CNN_PEERS`
    asked for: ``torch`` gives the NCHW and the channels-last rows, ``keras`` starts
    the Keras process (call ``close`` on it when done)."""
    cs = [PynnCNN(n) for n in backends]
    if "torch" in peers:
        cs += [TorchCNN(torch_threads), TorchCNN(torch_threads, channels_last=True)]
    if "keras" in peers:
        cs.append(KerasCNN(n_samples, data_dir, threads=torch_threads))
    return cs
