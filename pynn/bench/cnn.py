"""The keras-io "Simple MNIST convnet" of the ``--cnn`` table: its pynn model, its data,
and the matrix products one training step of it performs (the floor of a step).

``Input(28,28,1) -> Conv2D(32,3,relu) -> MaxPooling2D(2) -> Conv2D(64,3,relu) ->
MaxPooling2D(2) -> Flatten -> Dropout(0.5) -> Dense(10, softmax)``, Adam, categorical
cross-entropy, float32, channels_last.
"""
from __future__ import annotations

import numpy as np

from .constants import CNN_FILTERS, CNN_IMAGE, CNN_KERNEL, CNN_POOL, LEARNING_RATES
from .data import load_mnist, normal

#: The optimizer of the ``--cnn`` table (keras-io's, Keras's defaults otherwise).
CNN_OPTIMIZER = "adam"
#: Classes of the output layer.
CNN_CLASSES = 10


def cnn_backends(names, named):
    """The pynn backends of the ``--cnn`` table: every one in ``names`` when they were
    ``named`` on the command line, else all but the NumPy reference (minutes per epoch)."""
    return list(names) if named else [n for n in names if n != "numpy"]


def cnn_model(seed=0):
    """The convnet, compiled on the active backend (Adam, categorical cross-entropy on
    one-hot targets)."""
    from .. import layers, set_seed
    from ..models import Sequential
    from ..optimizers import Adam

    set_seed(seed)
    (f1, f2), k, p = CNN_FILTERS, CNN_KERNEL, CNN_POOL
    model = Sequential([layers.Input(shape=CNN_IMAGE),
                        layers.Conv2D(f1, k, activation="relu"),
                        layers.MaxPooling2D(p),
                        layers.Conv2D(f2, k, activation="relu"),
                        layers.MaxPooling2D(p),
                        layers.Flatten(),
                        layers.Dropout(0.5),
                        layers.Dense(CNN_CLASSES, activation="softmax")])
    model.compile(optimizer=Adam(LEARNING_RATES[CNN_OPTIMIZER]),
                  loss="categorical_crossentropy")
    return model


def cnn_data(n_samples, data_dir=None, seed=0):
    """``(x, y)``: ``x`` float32 images ``(n, 28, 28, 1)`` in [0, 1], ``y`` their class
    indices (int64): random, or the first ``n_samples`` of real MNIST from
    ``data_dir``. One-hot targets are :func:`one_hot` of ``y``."""
    if data_dir:
        x, y = load_mnist(data_dir, n_samples)
        return np.ascontiguousarray(x.reshape((len(x),) + CNN_IMAGE)), y
    rng = np.random.default_rng(seed)
    x = rng.random((n_samples,) + CNN_IMAGE, dtype=np.float32)
    return x, rng.integers(0, CNN_CLASSES, n_samples)


def one_hot(y, classes=CNN_CLASSES):
    """float32 one-hot rows of the class indices ``y``."""
    return np.eye(classes, dtype=np.float32)[np.asarray(y)]


def cnn_layer_shapes():
    """``[(name, h, w, cin, cout)]``: each convolution's input size and channels (valid
    padding, stride 1, each followed by a ``CNN_POOL`` max pooling), then the dense
    layer as ``("dense", 1, 1, n_in, classes)``."""
    h, w, c = CNN_IMAGE
    shapes = []
    for i, f in enumerate(CNN_FILTERS):
        shapes.append((f"conv{i + 1}", h, w, c, f))
        h, w, c = (h - CNN_KERNEL + 1) // CNN_POOL, (w - CNN_KERNEL + 1) // CNN_POOL, f
    shapes.append(("dense", 1, 1, h * w * c, CNN_CLASSES))
    return shapes


def cnn_gemm_shapes(batch):
    """The matrix products of one training step at ``batch``, as
    ``[(name, m, k, n)]`` for an ``(m, k) @ (k, n)`` product.

    Per convolution (NHWC im2col, ``cols`` of shape ``(batch*oh*ow, kh*kw*cin)``):
    forward ``cols @ kernel``, weight gradient ``cols.T @ dy``, input gradient
    ``dy @ kernel.T``; the same three for the dense layer. The first layer's input
    gradient is left out: nobody needs the gradient of the data (pynn skips it, as the
    MLP floor does).
    """
    out = []
    for i, (name, h, w, cin, cout) in enumerate(cnn_layer_shapes()):
        kk = 1 if name == "dense" else CNN_KERNEL
        m = batch * (h - kk + 1) * (w - kk + 1)
        k = kk * kk * cin
        out.append((f"{name} forward", m, k, cout))
        out.append((f"{name} weight gradient", k, m, cout))
        if i:
            out.append((f"{name} input gradient", m, cout, k))
    return out


def cnn_flops_per_sample():
    """Floating-point operations of one training sample's matrix products (2·m·k·n
    each): 14.26 MFLOP for this network."""
    return sum(2 * m * k * n for _, m, k, n in cnn_gemm_shapes(1))


def cnn_gemm_floor(batch, dtype=np.float32, seed=0):
    """A zero-argument callable: the products of :func:`cnn_gemm_shapes` at ``batch``
    through NumPy's BLAS (``np.matmul`` into preallocated arrays, transposes as views,
    so no copy is timed), nothing else: the floor under one training step."""
    rng = np.random.default_rng([seed, 11, batch])
    calls = []
    for name, m, k, n in cnn_gemm_shapes(batch):
        if name.endswith("weight gradient"):
            a = normal(rng, (k, m), dtype).T       # cols.T, cols (rows, kh*kw*cin)
        else:
            a = normal(rng, (m, k), dtype)         # cols, or dy
        if name.endswith("input gradient"):
            b = normal(rng, (n, k), dtype).T       # kernel.T, kernel (kh*kw*cin, cout)
        else:
            b = normal(rng, (k, n), dtype)         # kernel, or dy
        calls.append((a, b, np.empty((m, n), dtype)))

    def step():
        for a, b, out in calls:
            np.matmul(a, b, out=out)
    return step
