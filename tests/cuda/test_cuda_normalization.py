"""The cuda backend's layer-normalisation and L2-normalisation kernels against the NumPy
reference (small odd shapes, tiny blocks, grid-stride loops wrapping), and the layers
that use them and the Gaussian noise layers in a model trained on the cuda backend."""
import numpy as np
import pytest

import pynn
import pynn.backends as B
from pynn import layers as L

from helpers import REFERENCE, assert_close
from test_cuda_ops import check, randn

pytestmark = pytest.mark.cudasim


@pytest.mark.parametrize("rms,affine", [(False, "gamma_beta"), (False, "none"), (True, "gamma")])
@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (0, 3)])
def test_layernorm(cuda_be, dtype, rng, rms, affine, shape):
    x = randn(rng, shape, dtype, 2.0) + 1.0
    k = shape[1]
    gamma = randn(rng, k, dtype) if affine != "none" else None
    beta = randn(rng, k, dtype) if affine == "gamma_beta" else None
    dy = randn(rng, shape, dtype)
    _, (_, mean, inv_std) = check(cuda_be, "layernorm_forward", [x, gamma, beta],
                                  dict(epsilon=1e-3, rms_scaling=rms), dtype)
    check(cuda_be, "layernorm_backward", [dy, x, gamma, mean, inv_std],
          dict(rms_scaling=rms), dtype)
    # the statistics the cuda forward returns feed its backward; dx may be dy
    be = cuda_be
    _, dmean, dinv = be.layernorm_forward(be.asarray(x), gamma, beta, 1e-3, rms)
    ddy = be.asarray(dy)
    got = be.layernorm_backward(ddy, be.asarray(x), gamma, dmean, dinv, rms, dx=ddy)
    assert got[0] is ddy
    want = REFERENCE.layernorm_backward(dy, x, gamma, mean, inv_std, rms)
    assert_close(be.to_numpy(got[0]), want[0], dtype)
    assert_close(be.to_numpy(got[2]), want[2], dtype)


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (0, 3)])
def test_l2_normalize(cuda_be, dtype, rng, shape):
    x = randn(rng, shape, dtype)
    if shape[0] > 2:
        x[2] = 0.0  # clamped row
    dy = randn(rng, shape, dtype)
    _, (y, inv) = check(cuda_be, "l2_normalize_forward", [x], dict(epsilon=1e-12), dtype)
    check(cuda_be, "l2_normalize_backward", [dy, y, inv], dict(epsilon=1e-12), dtype)


def test_errors_match_the_reference(cuda_be):
    for call in (lambda be: be.layernorm_forward(np.zeros((2, 4)), np.ones(3)),
                 lambda be: be.layernorm_forward(np.zeros((2, 0))),
                 lambda be: be.layernorm_forward(np.zeros((2, 4)), epsilon=0.0),
                 lambda be: be.l2_normalize_backward(np.zeros((2, 4)), np.zeros((2, 3)),
                                                     np.ones(2))):
        with pytest.raises(ValueError) as want:
            call(REFERENCE)
        with pytest.raises(ValueError) as got:
            call(cuda_be)
        assert str(got.value) == str(want.value)


def test_model_with_the_new_layers_matches_numpy(cuda_be):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 4)).astype(np.float32)
    y = (x[:, :1] - x[:, 1:2]).astype(np.float32)

    def fit(be):
        pynn.set_seed(3)
        with pynn.use_backend(be):
            m = pynn.Sequential([L.Input((4,)), L.Dense(6), L.LayerNormalization(),
                                 L.GaussianNoise(0.1), L.Dense(5), L.UnitNormalization(),
                                 L.GaussianDropout(0.2), L.Dense(1)])
            m.compile(pynn.optimizers.SGD(0.05), "mse")
            hist = m.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
            return m.get_weights(), hist.history["loss"], m.predict(x[:6], verbose=0)

    w_np, loss_np, p_np = fit(B.get("numpy"))
    w_cu, loss_cu, p_cu = fit(cuda_be)
    for a, b in zip(w_np, w_cu):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss_cu, loss_np, rtol=1e-5)
    np.testing.assert_allclose(p_cu, p_np, rtol=1e-4, atol=1e-5)
