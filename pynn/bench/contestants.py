"""The contestants of the training table: pynn on each backend (through the public
model API), PyTorch (CPU and CUDA), a hand-written NumPy MLP, scikit-learn, and the
GEMM floor of the epoch."""
from __future__ import annotations

import numpy as np

from .. import backends as _backends
from .constants import ARCH, LEARNING_RATES, NOT_INSTALLED
from .dense import mlp_gemm_floor
from .pynn_api import train_one_step


def tutorial_model(optimizer, arch=ARCH, seed=0):
    """The benchmark network, compiled on the active backend: ReLU Dense layers of
    widths ``arch`` and a softmax output, sparse categorical cross-entropy."""
    from .. import layers, set_seed
    from ..models import Sequential

    set_seed(seed)
    model = Sequential([layers.Input(shape=(arch[0],)),
                        *[layers.Dense(n, activation="relu") for n in arch[1:-1]],
                        layers.Dense(arch[-1], activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


class Contestant:
    """One way of training the benchmark MLP. ``status`` is 'ok' or why it cannot run."""

    name = "?"
    backend = None
    status = "ok"
    #: Whether :meth:`predict` is timed for it.
    predicts = True

    def build(self, optimizer, batch_size, seed):
        raise NotImplementedError

    def epoch(self, x, y):
        raise NotImplementedError

    def predict(self, x):
        raise NotImplementedError

    def close(self):
        """Release what the contestant holds beyond memory (a process); nothing here."""


class Pynn(Contestant):
    """pynn's :class:`~pynn.models.Sequential` on one backend."""

    def __init__(self, backend_name):
        self.backend = backend_name
        self.name = f"pynn[{backend_name}]"
        self.model = None

    def build(self, optimizer, batch_size, seed):
        self.batch_size = batch_size
        with _backends.use_backend(self.backend):
            self.model = tutorial_model(optimizer, seed=seed)

    def epoch(self, x, y):
        with _backends.use_backend(self.backend):
            self.model.fit(x, y, batch_size=self.batch_size, epochs=1, verbose=0,
                           shuffle=True)

    def predict(self, x):
        with _backends.use_backend(self.backend):
            return self.model.predict(x, batch_size=len(x), verbose=0)

    def step(self, x, y):
        """A zero-argument callable: the step ``fit`` runs on one batch, on the rows
        ``x``, ``y`` as they are (no shuffled gather, no callbacks), so that it can be
        timed beside the matrix products it is made of."""
        model = self.model
        with _backends.use_backend(self.backend):
            be = _backends.get_backend()
            xb, yb = be.asarray(x, np.float32), np.asarray(y)

        def run():
            with _backends.use_backend(self.backend):
                train_one_step(model, xb, yb)
        return run


class NumpyMLP(Contestant):
    """The MLP as one would write it by hand in NumPy (no out= buffers, no fusion).

    Adam's moments are not flushed to zero, as in typical hand-written code, so its
    epochs slow down once they decay into float32 denormals (see PERF_NOTES).
    """

    name = "NumPy MLP"

    def build(self, optimizer, batch_size, seed):
        self.rng = np.random.default_rng(seed)
        self.optimizer, self.batch_size = optimizer, batch_size
        self.lr = LEARNING_RATES[optimizer]
        self.W, self.b = [], []
        for a, b in zip(ARCH[:-1], ARCH[1:]):
            lim = np.sqrt(6.0 / (a + b))
            self.W.append(self.rng.uniform(-lim, lim, (a, b)).astype(np.float32))
            self.b.append(np.zeros(b, np.float32))
        self.params = self.W + self.b
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def _forward(self, x):
        hs = [x]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = hs[-1] @ W + b
            if i < len(self.W) - 1:
                z = np.maximum(z, 0)
            hs.append(z)
        z = hs[-1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        hs[-1] = e / e.sum(axis=1, keepdims=True)
        return hs

    def _step(self, xb, yb):
        hs = self._forward(xb)
        n = len(xb)
        g = hs[-1].copy()
        g[np.arange(n), yb] -= 1
        g /= n
        dW, db = [None] * len(self.W), [None] * len(self.W)
        for i in reversed(range(len(self.W))):
            dW[i] = hs[i].T @ g
            db[i] = g.sum(axis=0)
            if i:
                g = (g @ self.W[i].T) * (hs[i] > 0)
        grads = dW + db
        if self.optimizer == "sgd":
            for p, gr in zip(self.params, grads):
                p -= self.lr * gr
        else:
            self.t += 1
            b1, b2, eps = 0.9, 0.999, 1e-7
            lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
            for p, gr, m, v in zip(self.params, grads, self.m, self.v):
                m *= b1
                m += (1 - b1) * gr
                v *= b2
                v += (1 - b2) * gr * gr
                p -= (lr_t * m / (np.sqrt(v) + eps)).astype(np.float32)

    def epoch(self, x, y):
        idx = self.rng.permutation(len(x))
        for s in range(0, len(x), self.batch_size):
            j = idx[s:s + self.batch_size]
            self._step(x[j], y[j])

    def predict(self, x):
        return self._forward(x)[-1]


class Torch(Contestant):
    name = "PyTorch"

    def __init__(self, threads=2):
        try:
            import torch
        except Exception:  # ImportError, or a broken install
            self.status = NOT_INSTALLED
            return
        self.torch = torch
        torch.set_num_threads(threads)

    def build(self, optimizer, batch_size, seed):
        torch, nn = self.torch, self.torch.nn
        torch.manual_seed(seed)
        mods = []
        for i, (a, b) in enumerate(zip(ARCH[:-1], ARCH[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(ARCH) - 2:
                mods.append(nn.ReLU())
        self.model = nn.Sequential(*mods)
        lr = LEARNING_RATES[optimizer]
        params = self.model.parameters()
        self.opt = (torch.optim.SGD(params, lr=lr) if optimizer == "sgd"
                    else torch.optim.Adam(params, lr=lr, eps=1e-7))
        self.loss = nn.CrossEntropyLoss()
        self.batch_size = batch_size
        self._data = None

    def epoch(self, x, y):
        torch = self.torch
        if self._data is None or self._data[0] is not x:
            self._data = (x, torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
        _, xt, yt = self._data
        perm = torch.randperm(len(x))
        for s in range(0, len(x), self.batch_size):
            j = perm[s:s + self.batch_size]
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(xt[j]), yt[j]).backward()
            self.opt.step()

    def predict(self, x):
        torch = self.torch
        with torch.inference_mode():
            return torch.softmax(self.model(torch.from_numpy(x)), dim=1).numpy()


class TorchCuda(Torch):
    """PyTorch on the GPU (eager): the data set is copied to the device once, every step
    runs there, and the epoch ends with a synchronize so its time is all counted."""

    name = "PyTorch CUDA"

    def __init__(self, threads=2):
        super().__init__(threads)
        if self.status == NOT_INSTALLED:
            return
        try:
            has_gpu = bool(self.torch.cuda.is_available())
        except Exception as exc:  # a broken CUDA runtime
            has_gpu, why = False, f"no GPU ({type(exc).__name__})"
        else:
            why = "no GPU"
        if not has_gpu:
            self.status = why

    def build(self, optimizer, batch_size, seed):
        super().build(optimizer, batch_size, seed)
        self.model = self.model.to("cuda")
        lr = LEARNING_RATES[optimizer]
        params = self.model.parameters()
        self.opt = (self.torch.optim.SGD(params, lr=lr) if optimizer == "sgd"
                    else self.torch.optim.Adam(params, lr=lr, eps=1e-7))

    def epoch(self, x, y):
        torch = self.torch
        if self._data is None or self._data[0] is not x:
            self._data = (x, torch.from_numpy(x).to("cuda"),
                          torch.from_numpy(y.astype(np.int64)).to("cuda"))
        _, xt, yt = self._data
        perm = torch.randperm(len(x), device="cuda")
        for s in range(0, len(x), self.batch_size):
            j = perm[s:s + self.batch_size]
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(xt[j]), yt[j]).backward()
            self.opt.step()
        torch.cuda.synchronize()

    def predict(self, x):
        torch = self.torch
        with torch.inference_mode():
            out = torch.softmax(self.model(torch.from_numpy(x).to("cuda")), dim=1)
            return out.cpu().numpy()


class Sklearn(Contestant):
    name = "scikit-learn"

    def __init__(self):
        try:
            from sklearn.neural_network import MLPClassifier
        except Exception:
            self.status = NOT_INSTALLED
            return
        self.cls = MLPClassifier

    def build(self, optimizer, batch_size, seed):
        kw = {"momentum": 0.0} if optimizer == "sgd" else {"epsilon": 1e-7}
        self.model = self.cls(hidden_layer_sizes=ARCH[1:-1], activation="relu",
                              solver=optimizer, alpha=0.0, batch_size=batch_size,
                              learning_rate_init=LEARNING_RATES[optimizer], shuffle=True,
                              random_state=seed, **kw)
        self.classes = np.arange(ARCH[-1])

    def epoch(self, x, y):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on random data
            self.model.partial_fit(x, y, classes=self.classes)

    def predict(self, x):
        return self.model.predict_proba(x)


#: Peers of the training table; ``torch-cuda`` joins the default ones when a GPU is there.
PEERS = ("torch", "torch-cuda", "numpy", "sklearn")


class GemmFloor(Contestant):
    """The matrix products of every training step alone (:func:`mlp_gemm_floor`, or
    the ``products`` given, through NumPy's OpenBLAS), the last partial batch at its
    own size: run as a contestant, interleaved with the others, so the floor is
    measured beside the epochs it bounds."""

    name = "GEMM floor"
    predicts = False

    def __init__(self, products=None, name=None):
        # products(n, seed=...) -> the callable of one step's products at batch n;
        # None: the MLP's (mlp_gemm_floor)
        self.products = products
        if name is not None:
            self.name = name

    def build(self, optimizer, batch_size, seed):
        self.batch_size, self.seed, self.steps = batch_size, seed, {}

    def _step(self, n):
        if n not in self.steps:
            products = self.products if self.products is not None else mlp_gemm_floor
            self.steps[n] = products(n, seed=self.seed)
        return self.steps[n]

    def epoch(self, x, y):
        full, rest = divmod(len(x), self.batch_size)
        step = self._step(self.batch_size)
        for _ in range(full):
            step()
        if rest:
            self._step(rest)()


def make_peers(names, torch_threads=2):
    """The peer contestants called ``names`` (each one of :data:`PEERS`)."""
    table = {"torch": lambda: Torch(torch_threads),
             "torch-cuda": lambda: TorchCuda(torch_threads),
             "numpy": NumpyMLP, "sklearn": Sklearn}
    return [table[n]() for n in names]


def default_peers():
    """torch, numpy, sklearn, and PyTorch on the GPU when torch sees one."""
    peers = ["torch", "numpy", "sklearn"]
    if TorchCuda().status == "ok":
        peers.insert(1, "torch-cuda")
    return tuple(peers)


def models_status():
    """``None`` when :class:`pynn.models.Sequential` can be used, else why not."""
    try:
        from .. import layers  # noqa: F401
        from ..models import Sequential  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def train_contestants(backends, peers, torch_threads=2):
    """pynn on each of ``backends``, then the ``peers``; the pynn ones say why they
    cannot run when :mod:`pynn.models` does not import."""
    why = models_status()
    pynn_cs = [Pynn(n) for n in backends]
    if why is not None:
        for c in pynn_cs:
            c.status = f"pynn.models unavailable: {why}"
    return pynn_cs + make_peers(peers, torch_threads)
