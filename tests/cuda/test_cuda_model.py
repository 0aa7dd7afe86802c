"""The Keras-style model trained on the cuda backend (issue 6), under the CUDA simulator.

Every fit on ``cuda`` is compared with the same fit on ``numpy``: same initial weights
(``set_weights``), same data order (``shuffle=False``), same seed (so the same dropout
masks: they are drawn on the host from the model's generator). The simulator interprets
every kernel thread in Python, so the data and the networks are small; the tutorial
MNIST network (784-256-128-10) runs end to end on a slice of 4 images (about 2 minutes).
"""
import os

import numpy as np
import pytest

import pynn
import pynn.backends as B
from pynn import layers as L
from pynn import optimizers

pytestmark = pytest.mark.cudasim

# float32 tolerance: the cuda kernels sum in a different order than numpy/BLAS (tiled GEMM,
# tree reductions), so each op differs from the reference by a few ulps (~1e-7 relative).
# A handful of steps of Adam/SGD on O(1) weights amplify that by at most a few times
# (observed max difference ~2e-7); 1e-5 absolute + 1e-4 relative leaves a wide margin
# while still catching any wrong update (a wrong step changes weights by ~lr = 1e-2).
ATOL, RTOL = 1e-5, 1e-4


def _is_device(x):
    return bool(getattr(x, "__cuda_ndarray__", False))


def _data(n=64, d=2, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, k, n)
    return x, y


def _small_model(bn):
    ls = [L.Input((2,)), L.Dense(8, activation="relu")]
    if bn:
        ls += [L.BatchNormalization(), L.Dropout(0.3)]
    ls += [L.Dense(3, activation="softmax")]
    return pynn.Sequential(ls)


def _fit_on(be, make_opt, bn, w0, x, y, epochs=2, batch_size=32):
    pynn.set_seed(7)
    with pynn.use_backend(be):
        m = _small_model(bn)
        m.compile(optimizer=make_opt(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        m.build((None, x.shape[1]))
        if w0 is not None:
            m.set_weights(w0)
        w_init = m.get_weights()
        hist = m.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
        return m, w_init, hist.history


@pytest.mark.parametrize("opt, bn", [
    ("adam", False),
    ("sgd_momentum", False),
    ("adam", True),
])
def test_small_model_matches_numpy(cuda_be, opt, bn):
    make_opt = {"adam": lambda: optimizers.Adam(0.01),
                "sgd_momentum": lambda: optimizers.SGD(0.05, momentum=0.9)}[opt]
    x, y = _data()
    m_np, w0, h_np = _fit_on(B.get("numpy"), make_opt, bn, None, x, y)
    m_cu, w0_cu, h_cu = _fit_on(cuda_be, make_opt, bn, w0, x, y)
    for a, b in zip(w0, w0_cu):
        np.testing.assert_array_equal(a, b)
    w_np, w_cu = m_np.get_weights(), m_cu.get_weights()
    assert len(w_np) == len(w_cu)
    moved = False
    for i, (a, b, a0) in enumerate(zip(w_np, w_cu, w0)):
        assert isinstance(b, np.ndarray) and b.dtype == np.float32 and b.shape == a.shape
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL, err_msg=f"weight {i}")
        moved |= not np.allclose(a, a0)
    assert moved, "training changed no weight: the comparison would be vacuous"
    np.testing.assert_allclose(h_cu["loss"], h_np["loss"], rtol=1e-5)
    assert h_cu["accuracy"] == h_np["accuracy"]
    # inference on cuda agrees too (batch-norm moving statistics included)
    with pynn.use_backend(cuda_be):
        p_cu = m_cu.predict(x[:8], verbose=0)
    with pynn.use_backend(B.get("numpy")):
        p_np = m_np.predict(x[:8], verbose=0)
    assert isinstance(p_cu, np.ndarray)
    np.testing.assert_allclose(p_cu, p_np, rtol=RTOL, atol=ATOL)


class _Residency(pynn.callbacks.Callback):
    """Records the array types of the model's parameters and optimizer state mid-fit."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        m = self.model
        opt = m.optimizer
        arrays = {"flat_params": m._layout.params, "flat_grads": m._layout.grads,
                  "flat_frozen": m._layout.frozen}
        for w in m.weights:
            arrays["weight " + w.path] = w.value
        for slot, arr in opt._flat_state.items():
            arrays["opt flat " + slot] = arr
        for slot, arrs in opt._state.items():
            for i, arr in enumerate(arrs):
                arrays[f"opt {slot}[{i}]"] = arr
        self.seen.append({k: (_is_device(v), isinstance(v, np.ndarray))
                          for k, v in arrays.items()})


def test_parameters_and_optimizer_state_stay_on_device(cuda_be):
    x, y = _data(n=32)
    cb = _Residency()
    pynn.set_seed(1)
    with pynn.use_backend(cuda_be):
        m = _small_model(bn=True)
        m.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
        assert len(cb.seen) == 2
        assert any(k.startswith("opt flat ") for k in cb.seen[0])
        assert any("moving_mean" in k for k in cb.seen[0])
        for snap in cb.seen:
            for name, (dev, host) in snap.items():
                assert dev and not host, f"{name} is not a device array during fit"
        # get_weights copies back to the host
        for w in m.get_weights():
            assert isinstance(w, np.ndarray)


_TUTORIAL = (256, 128)
_NARROW = (8, 4)   # same layers, loss, optimizer and 784-pixel input; smaller GEMMs
_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


@pytest.mark.parametrize("hidden", [pytest.param(_NARROW, id="narrow"),
                                    pytest.param(_TUTORIAL, id="tutorial")])
def test_mnist_tutorial_network_end_to_end(cuda_be, hidden, tmp_path):
    from pynn.datasets import mnist
    try:
        (x_train, y_train), _ = mnist.load_data(download=False)
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"MNIST not available: {exc}")
    # The simulator interprets every thread: a 2-image batch of the tutorial network takes
    # about 15 s per pass there, so it gets 4 images in 2 batches (the narrow one 8 in 2);
    # a GPU takes 64 images in 2 batches.
    n, bs = ((4, 2) if hidden == _TUTORIAL else (8, 4)) if _SIM else (64, 32)
    x = (x_train[:n].reshape(n, 784).astype(np.float32) / 255.0)
    y = y_train[:n]
    h1, h2 = hidden
    pynn.set_seed(0)
    with pynn.use_backend(cuda_be):
        m = pynn.Sequential([L.Input((784,)), L.Dense(h1, activation="relu"),
                             L.Dense(h2, activation="relu"),
                             L.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        w0 = m.get_weights()
        hist = m.fit(x, y, batch_size=bs, epochs=1, verbose=0, shuffle=False)
        assert set(hist.history) >= {"loss", "accuracy"}
        assert np.isfinite(hist.history["loss"][0])
        assert any(not np.array_equal(a, b) for a, b in zip(w0, m.get_weights()))
        p = m.predict(x, batch_size=bs, verbose=0)
        assert isinstance(p, np.ndarray) and p.shape == (n, 10)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
        loss, acc = m.evaluate(x, y, batch_size=bs, verbose=0)
        assert np.isfinite(loss) and 0.0 <= acc <= 1.0
        path = str(tmp_path / "mnist.pynn")
        m.save(path)
        m2 = pynn.models.load_model(path)
        for a, b in zip(m.get_weights(), m2.get_weights()):
            np.testing.assert_array_equal(a, b)
        # the reloaded model predicts the same (first image only: the simulator is slow)
        np.testing.assert_array_equal(m2.predict(x[:1], verbose=0), p[:1])
    # the same step on numpy from the same weights gives the same loss
    with pynn.use_backend(B.get("numpy")):
        ref = pynn.Sequential([L.Input((784,)), L.Dense(h1, activation="relu"),
                               L.Dense(h2, activation="relu"),
                               L.Dense(10, activation="softmax")])
        ref.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        ref.build((None, 784))
        ref.set_weights(w0)
        h_ref = ref.fit(x, y, batch_size=bs, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(hist.history["loss"][0], h_ref.history["loss"][0], rtol=1e-5)


@pytest.mark.parametrize("loss", ["huber", "categorical_focal_crossentropy"])
def test_host_computed_loss_trains_like_numpy(cuda_be, loss):
    """A loss without a backend op (computed on the host, pynn.losses.loss.HostLoss) takes the
    device output to the host and copies its gradient back into the device buffer."""
    x, labels = _data(n=32)
    y = np.eye(3, dtype=np.float32)[labels]
    results = []
    for be in ("numpy", cuda_be):
        pynn.set_seed(3)
        with pynn.use_backend(be):
            m = pynn.Sequential([L.Input((2,)), L.Dense(3, activation="softmax")])
            m.compile(optimizer=optimizers.SGD(0.1), loss=loss)
            m.build((None, 2))
            if results:
                m.set_weights(results[0][0])
            w0 = m.get_weights()
            hist = m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
            results.append((w0, m.get_weights(), hist["loss"]))
    np.testing.assert_allclose(results[1][2], results[0][2], rtol=RTOL, atol=ATOL)
    for a, b in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
