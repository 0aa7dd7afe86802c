"""Finite-difference checks (float64, central differences) of every backward op.

Each check runs on every available backend and uses only that backend: the
analytic gradient from its backward op against central differences of its own
forward op, so a backend whose forward and backward disagree is caught even if
it matched the reference on the shapes tried elsewhere.
"""
import numpy as np
import pytest

from pynn.backends.base import ACTIVATIONS, EPILOGUE_ACTIVATIONS

import helpers

F64 = np.float64
RTOL = 1e-6


def assert_grad(analytic, numeric, what):
    scale = max(1.0, float(np.abs(numeric).max(initial=0.0)))
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def away_from_kinks(rng, shape, scale=2.0):
    """Values with |x| >= 0.1, so x +- eps never crosses relu/leaky/elu kinks."""
    x = rng.uniform(0.1, scale, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x.astype(F64)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("alpha", [None, 0.3], ids=["default", "alpha0.3"])
def test_activation_gradient(backend, activation, alpha, rng):
    x = away_from_kinks(rng, (3, 6))  # an even width: glu halves it
    G = rng.standard_normal(backend.activation_forward(x, activation, alpha=alpha).shape)

    def f():
        return float(np.sum(G * backend.activation_forward(x, activation, alpha=alpha)))

    y = backend.activation_forward(x, activation, alpha=alpha)
    analytic = backend.activation_backward(G, y, activation, x=x, alpha=alpha)
    assert_grad(analytic, helpers.numerical_grad(f, x), f"{backend.name} {activation}'")


def test_softmax_gradient(backend, rng):
    """The softmax op and its Jacobian-vector product (activation_backward 'softmax')."""
    x = rng.standard_normal((4, 6)) * 2
    G = rng.standard_normal(x.shape)
    f = lambda: float(np.sum(G * backend.softmax(x)))  # noqa: E731
    analytic = backend.activation_backward(G, backend.softmax(x), "softmax")
    assert_grad(analytic, helpers.numerical_grad(f, x), f"{backend.name} softmax'")
    # log_softmax has no backward op: its gradient is G - softmax * sum(G)
    f = lambda: float(np.sum(G * backend.log_softmax(x)))  # noqa: E731
    s = backend.softmax(x)
    assert_grad(G - s * G.sum(axis=1, keepdims=True), helpers.numerical_grad(f, x),
                f"{backend.name} log_softmax'")


def _loss_case(name, rng, n=5, k=4):
    """(op, input to differentiate, the other positional args, kwargs)."""
    w = rng.uniform(0.2, 2.0, size=n)
    if name.startswith("softmax_ce"):
        z = rng.standard_normal((n, k)) * 2
        if "dense" in name:
            t = rng.dirichlet(np.ones(k), size=n)
        else:
            t = rng.integers(0, k, size=n)
        kw = {}
        if "weighted" in name:
            kw["sample_weight"] = w
        if "smooth" in name:
            kw["label_smoothing"] = 0.15
        return "softmax_cross_entropy", z, [t], kw
    if name.startswith("categorical"):
        p = rng.uniform(0.05, 1.0, size=(n, k))  # unnormalised, away from the clip region
        t = rng.integers(0, k, size=n) if "labels" in name else rng.dirichlet(np.ones(k), n)
        kw = {"sample_weight": w} if "weighted" in name else {}
        return "categorical_cross_entropy", p, [t], kw
    if name.startswith("sigmoid_bce"):
        z = rng.standard_normal((n, k)) * 3
        t = rng.uniform(size=(n, k))
        kw = {"sample_weight": w} if "weighted" in name else {}
        return "sigmoid_binary_cross_entropy", z, [t], kw
    if name.startswith("bce"):
        p = rng.uniform(0.02, 0.98, size=(n, k))
        t = (rng.uniform(size=(n, k)) < 0.5).astype(F64)
        kw = {"sample_weight": w} if "weighted" in name else {}
        return "binary_cross_entropy", p, [t], kw
    if name.startswith(("mse", "mae")):
        p = rng.standard_normal((n, k))
        t = p + away_from_kinks(rng, (n, k), 1.0)  # |p - t| >= 0.1: no MAE kink
        kw = {"sample_weight": w} if "weighted" in name else {}
        op = "mean_squared_error" if name.startswith("mse") else "mean_absolute_error"
        return op, p, [t], kw
    raise ValueError(name)


LOSSES = ["softmax_ce", "softmax_ce_weighted", "softmax_ce_smooth", "softmax_ce_dense",
          "softmax_ce_dense_weighted_smooth", "categorical_labels", "categorical_dense_weighted",
          "sigmoid_bce", "sigmoid_bce_weighted", "bce", "bce_weighted", "mse", "mse_weighted",
          "mae", "mae_weighted"]


@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradient(backend, name, rng):
    op, x, rest, kw = _loss_case(name, rng)
    fn = getattr(backend, op)
    f = lambda: fn(x, *rest, **kw)[0]  # noqa: E731
    _, analytic = fn(x, *rest, **kw)
    assert_grad(analytic, helpers.numerical_grad(f, x), f"{backend.name} {name}")


@pytest.mark.parametrize("activation", EPILOGUE_ACTIVATIONS)
def test_dense_layer_gradients(backend, activation, rng):
    """Y = act(X @ W + b); L = sum(G * Y). The products a layer uses for its
    gradients: dZ = act'(Z) * G, dX = dZ @ W.T, dW = X.T @ dZ, db = sum(dZ)."""
    X = rng.standard_normal((5, 4))
    W = rng.standard_normal((4, 3))
    b = rng.standard_normal(3)
    # keep pre-activations away from the relu/leaky/elu kink
    Z = X @ W + b
    b += np.where(np.abs(Z).min(axis=0) < 0.1, 0.3, 0.0)
    G = rng.standard_normal((5, 3))

    def f():
        return float(np.sum(G * backend.gemm(X, W, bias=b, activation=activation)))

    Y = backend.gemm(X, W, bias=b, activation=activation)
    Zc = backend.gemm(X, W, bias=b)
    dZ = backend.activation_backward(G, Y, activation, x=Zc)
    dX = backend.gemm(dZ, W, trans_b=True)
    dW = backend.gemm(X, dZ, trans_a=True)
    db = backend.bias_grad(dZ)
    name = f"{backend.name} dense/{activation}"
    assert_grad(dX, helpers.numerical_grad(f, X), name + " dX")
    assert_grad(dW, helpers.numerical_grad(f, W), name + " dW")
    assert_grad(db, helpers.numerical_grad(f, b), name + " db")


@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["N", "T"])
def test_gemm_gradient(backend, trans_a, trans_b, rng):
    """L = sum(G * alpha * op(A) @ op(B)): dA and dB are transposed products."""
    m, k, n, alpha = 4, 5, 3, 0.7
    A = rng.standard_normal((k, m) if trans_a else (m, k))
    Bm = rng.standard_normal((n, k) if trans_b else (k, n))
    G = rng.standard_normal((m, n))

    def f():
        return float(np.sum(G * backend.gemm(A, Bm, trans_a=trans_a, trans_b=trans_b,
                                             alpha=alpha)))

    opB = Bm.T if trans_b else Bm
    opA = A.T if trans_a else A
    # d op(A) = alpha * G @ op(B).T ; d op(B) = alpha * op(A).T @ G
    if trans_a:   # dA = alpha * op(B) @ G.T
        dA = backend.gemm(Bm, G, trans_a=trans_b, trans_b=True, alpha=alpha)
    else:         # dA = alpha * G @ op(B).T
        dA = backend.gemm(G, Bm, trans_b=not trans_b, alpha=alpha)
    if trans_b:   # dB = alpha * G.T @ op(A)
        dB = backend.gemm(G, A, trans_a=True, trans_b=trans_a, alpha=alpha)
    else:         # dB = alpha * op(A).T @ G
        dB = backend.gemm(A, G, trans_a=not trans_a, alpha=alpha)
    assert dA.shape == A.shape and dB.shape == Bm.shape
    np.testing.assert_allclose(dA if not trans_a else dA.T, alpha * G @ opB.T, rtol=1e-12)
    np.testing.assert_allclose(dB if not trans_b else dB.T, alpha * opA.T @ G, rtol=1e-12)
    name = f"{backend.name} gemm {trans_a},{trans_b}"
    assert_grad(dA, helpers.numerical_grad(f, A), name + " dA")
    assert_grad(dB, helpers.numerical_grad(f, Bm), name + " dB")


def test_bias_grad_is_gradient(backend, rng):
    X = rng.standard_normal((6, 4))
    b = rng.standard_normal(4)
    G = rng.standard_normal((6, 4))
    f = lambda: float(np.sum(G * backend.gemm(X, np.eye(4), bias=b)))  # noqa: E731
    assert_grad(backend.bias_grad(G), helpers.numerical_grad(f, b), f"{backend.name} bias_grad")


@pytest.mark.parametrize("n", [1, 2, 7])
def test_batchnorm_gradient(backend, n, rng):
    k = 3
    x = rng.standard_normal((n, k)) * 2 + 1
    gamma = rng.uniform(0.5, 2.0, size=k)
    beta = rng.standard_normal(k)
    G = rng.standard_normal((n, k))

    def f():
        mm, mv = np.zeros(k), np.ones(k)  # fresh: training mode updates them in place
        out, _, _ = backend.batchnorm_forward(x, gamma, beta, mm, mv, True, epsilon=1e-3)
        return float(np.sum(G * out))

    _, mean, inv_std = backend.batchnorm_forward(x, gamma, beta, np.zeros(k), np.ones(k), True,
                                                 epsilon=1e-3)
    dx, dgamma, dbeta = backend.batchnorm_backward(G, x, gamma, mean, inv_std)
    name = f"{backend.name} batchnorm n={n}"
    assert_grad(dx, helpers.numerical_grad(f, x), name + " dx")
    assert_grad(dgamma, helpers.numerical_grad(f, gamma), name + " dgamma")
    assert_grad(dbeta, helpers.numerical_grad(f, beta), name + " dbeta")


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.6])
def test_dropout_gradient(backend, rate, rng):
    x = rng.standard_normal((4, 5))
    G = rng.standard_normal((4, 5))
    f = lambda: float(np.sum(G * backend.dropout_forward(x, rate, 99)[0]))  # noqa: E731
    _, mask = backend.dropout_forward(x, rate, 99)
    assert_grad(backend.dropout_backward(G, mask), helpers.numerical_grad(f, x),
                f"{backend.name} dropout")


class _BatchnormNoCoupling(helpers.REFERENCE.__class__):
    """dx = gamma * inv_std * dy: forgets that the batch statistics depend on x."""
    name = "broken_bn_backward"

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std, dx=None, dgamma=None,
                           dbeta=None):
        r = super().batchnorm_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
        r[0][...] = np.asarray(dy) * (np.asarray(gamma) * inv_std)
        return r


def test_gradient_check_catches_broken_backends():
    """The checks above fail on backends whose backward is subtly wrong."""
    with pytest.raises(AssertionError):
        test_activation_gradient(helpers.BrokenGeluGrad(), "gelu", None,
                                 np.random.default_rng(0))
    with pytest.raises(AssertionError):
        test_batchnorm_gradient(_BatchnormNoCoupling(), 7, np.random.default_rng(0))
