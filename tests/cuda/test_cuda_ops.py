"""Every CUDA kernel against the NumPy reference, on small odd shapes.

Shapes never divide the 4x4 GEMM tile or the 4-thread blocks, and the grid is
capped at 2 blocks, so partial tiles and grid-stride loops are exercised.
Tolerances are those of tests/helpers.py; nothing here needs them loosened:
the kernels compute elementwise terms and reductions in float64 and round
once, which is at least as accurate as the float32 reference.
"""
import numpy as np
import pytest

from pynn.backends.base import ACTIVATIONS, EPILOGUE_ACTIVATIONS
from helpers import REFERENCE, assert_close, check_op

pytestmark = pytest.mark.cudasim

ACTS = list(ACTIVATIONS)


class HostView:
    """Runs a cuda op on host arguments and returns host results, for check_op.

    Arguments at the indices ``inplace`` are uploaded first and copied back
    into the caller's arrays afterwards (parameters, optimizer state).
    """

    name = "cuda"

    def __init__(self, be, inplace=()):
        self.be = be
        self.inplace = inplace

    def _host(self, r):
        if isinstance(r, tuple):
            return tuple(self._host(v) for v in r)
        if isinstance(r, float):
            return r
        assert not isinstance(r, np.ndarray), "cuda ops must return device arrays"
        return self.be.to_numpy(r)

    def __getattr__(self, op):
        fn = getattr(self.be, op)

        def call(*args, **kwargs):
            dev = list(args)
            for i in self.inplace:
                dev[i] = self.be.asarray(args[i])
            r = fn(*dev, **kwargs)
            for i in self.inplace:
                args[i][...] = self.be.to_numpy(dev[i])
            return self._host(r)

        return call


def check(be, op, args, kwargs=None, dtype=np.float64, loose=1.0, inplace=()):
    return check_op(HostView(be, inplace), op, args, kwargs, dtype, loose, inplace)


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ----------------------------------------------------------------------
# GEMM
# ----------------------------------------------------------------------
GEMM_SHAPES = [(5, 7, 3), (1, 1, 1), (0, 4, 3), (4, 0, 3), (9, 6, 10)]


@pytest.mark.parametrize("m,k,n", GEMM_SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_transposes(cuda_be, dtype, rng, m, k, n, ta, tb):
    a = randn(rng, (k, m) if ta else (m, k), dtype)
    b = randn(rng, (n, k) if tb else (k, n), dtype)
    check(cuda_be, "gemm", [a, b], dict(trans_a=ta, trans_b=tb), dtype)
    check(cuda_be, "gemm", [a, b],
          dict(trans_a=ta, trans_b=tb, alpha=-0.7, bias=randn(rng, n, dtype),
               activation="tanh"), dtype)


@pytest.mark.parametrize("act", EPILOGUE_ACTIVATIONS)
def test_gemm_epilogue(cuda_be, dtype, rng, act):
    a, b, bias = randn(rng, (5, 7), dtype), randn(rng, (7, 3), dtype), randn(rng, 3, dtype)
    check(cuda_be, "gemm", [a, b], dict(bias=bias, activation=act), dtype)


def test_gemm_beta_accumulates_into_out(cuda_be, dtype, rng):
    a, b = randn(rng, (7, 5), dtype), randn(rng, (3, 7), dtype)
    c = randn(rng, (5, 3), dtype)
    want = REFERENCE.gemm(a, b, out=c.copy(), trans_a=True, trans_b=True, alpha=0.5,
                          beta=-2.0, bias=np.ones(3, dtype), activation="leaky_relu",
                          act_alpha=0.1)
    out = cuda_be.asarray(c)
    got = cuda_be.gemm(cuda_be.asarray(a), cuda_be.asarray(b), out=out, trans_a=True,
                       trans_b=True, alpha=0.5, beta=-2.0, bias=np.ones(3, dtype),
                       activation="leaky_relu", act_alpha=0.1)
    assert got is out
    assert_close(cuda_be.to_numpy(out), want, dtype)


def test_gemm_errors(cuda_be, rng):
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((6, 3))
    with pytest.raises(ValueError, match="inner dimensions"):
        cuda_be.gemm(a, b)
    with pytest.raises(ValueError, match="beta"):
        cuda_be.gemm(a, a.T, beta=1.0)
    with pytest.raises(ValueError, match="bias"):
        cuda_be.gemm(a, a.T, bias=np.zeros(4))


# ----------------------------------------------------------------------
# activations and softmax
# ----------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTS)
def test_activation_forward_backward(cuda_be, dtype, rng, act):
    x = randn(rng, (5, 8), dtype, 3.0)  # an even width: glu halves it
    check(cuda_be, "activation_forward", [x, act], {}, dtype)
    y = REFERENCE.activation_forward(x, act)
    dy = randn(rng, y.shape, dtype)
    check(cuda_be, "activation_backward", [dy, y, act], dict(x=x), dtype)


@pytest.mark.parametrize("act,alpha", [("leaky_relu", 0.05), ("elu", 0.7), ("celu", 0.6),
                                       ("squareplus", 1.5)])
def test_activation_alpha_and_inplace(cuda_be, rng, act, alpha):
    x = randn(rng, (3, 5), np.float64)
    d = cuda_be.asarray(x)
    r = cuda_be.activation_forward(d, act, out=d, alpha=alpha)
    assert r is d
    assert_close(cuda_be.to_numpy(d), REFERENCE.activation_forward(x, act, alpha=alpha),
                 np.float64)


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (0, 3), (3, 0)])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(cuda_be, dtype, rng, shape, op):
    x = randn(rng, shape, dtype, 30.0)  # large magnitudes: must stay stable
    check(cuda_be, op, [x], {}, dtype)


# ----------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------
@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_softmax_cross_entropy(cuda_be, dtype, rng, dense, weighted, ls):
    z = randn(rng, (5, 7), dtype, 3.0)
    t = rng.integers(0, 7, 5)
    if dense:
        t = rng.dirichlet(np.ones(7), 5).astype(dtype)
    kw = dict(label_smoothing=ls)
    if weighted:
        kw["sample_weight"] = rng.uniform(0, 2, 5)
    check(cuda_be, "softmax_cross_entropy", [z, t], kw, dtype)


@pytest.mark.parametrize("dense", [False, True])
def test_categorical_cross_entropy(cuda_be, dtype, rng, dense):
    p = rng.dirichlet(np.ones(7), 5).astype(dtype)
    p[0, :] = [1.0, 0, 0, 0, 0, 0, 0]  # clipped entries: zero gradient there
    t = rng.dirichlet(np.ones(7), 5).astype(dtype) if dense else rng.integers(0, 7, 5)
    check(cuda_be, "categorical_cross_entropy", [p, t],
          dict(sample_weight=rng.uniform(0, 2, 5)), dtype)


@pytest.mark.parametrize("op", ["sigmoid_binary_cross_entropy", "binary_cross_entropy",
                                "mean_squared_error", "mean_absolute_error"])
@pytest.mark.parametrize("weighted", [False, True])
def test_elementwise_losses(cuda_be, dtype, rng, op, weighted):
    n, k = 5, 3
    if op == "binary_cross_entropy":
        p = rng.uniform(0, 1, (n, k)).astype(dtype)
        p[0, 0], p[1, 1] = 0.0, 1.0  # outside [eps, 1 - eps]
    else:
        p = randn(rng, (n, k), dtype, 4.0)
    t = rng.uniform(0, 1, (n, k)).astype(dtype)
    if op == "mean_absolute_error":
        t[2, 2] = p[2, 2]  # sign(0) = 0
    kw = dict(sample_weight=rng.uniform(0, 2, n)) if weighted else {}
    check(cuda_be, op, [p, t], kw, dtype)


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "mean_squared_error"])
def test_losses_on_empty_batch(cuda_be, op):
    z = np.zeros((0, 4))
    t = np.zeros(0, dtype=np.int64) if op == "softmax_cross_entropy" else z
    loss, grad = cuda_be.__getattribute__(op)(z, t)
    assert loss == 0.0 and tuple(grad.shape) == (0, 4)


def test_losses_accept_device_targets_and_grad(cuda_be, rng):
    be = cuda_be
    z = randn(rng, (5, 7), np.float32)
    lab = rng.integers(0, 7, 5)
    w = rng.uniform(0, 2, 5)
    want = REFERENCE.softmax_cross_entropy(z, lab, sample_weight=w)
    grad = be.empty((5, 7), np.float32)
    loss, g = be.softmax_cross_entropy(be.asarray(z), be.asarray(lab.astype(np.int32)),
                                       grad=grad, sample_weight=be.asarray(w))
    assert g is grad and isinstance(loss, float)
    assert_close((loss, be.to_numpy(g)), want, np.float32)
    # float labels holding integers are labels too
    loss2, _ = be.softmax_cross_entropy(z, be.asarray(lab.astype(np.float32)),
                                        sample_weight=w)
    assert_close(loss2, want[0], np.float32)


def test_loss_label_errors(cuda_be):
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match="labels"):
        cuda_be.softmax_cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="labels"):
        cuda_be.softmax_cross_entropy(z, cuda_be.asarray(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match="labels"):
        cuda_be.categorical_cross_entropy(z + 0.25, cuda_be.asarray(np.array([0.5, 1, 1])))
    with pytest.raises(ValueError, match="target"):
        cuda_be.mean_squared_error(z, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="sample_weight"):
        cuda_be.mean_squared_error(z, z, sample_weight=np.ones(4))


# ----------------------------------------------------------------------
# reductions, dropout, batch normalisation
# ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (0, 3)])
def test_bias_grad(cuda_be, dtype, rng, shape):
    check(cuda_be, "bias_grad", [randn(rng, shape, dtype)], {}, dtype)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.9])
def test_dropout_masks_are_bit_identical(cuda_be, dtype, rng, rate):
    x = randn(rng, (5, 7), dtype)
    seed = 2**63 + 12345  # exercises the full uint64 range of the seed
    out, mask = cuda_be.dropout_forward(x, rate, seed)
    ref_out, ref_mask = REFERENCE.dropout_forward(x, rate, seed)
    np.testing.assert_array_equal(cuda_be.to_numpy(mask), ref_mask)
    np.testing.assert_array_equal(cuda_be.to_numpy(out), ref_out)
    dy = randn(rng, x.shape, dtype)
    got = cuda_be.dropout_backward(dy, mask)
    np.testing.assert_array_equal(cuda_be.to_numpy(got), REFERENCE.dropout_backward(dy, ref_mask))
    with pytest.raises(ValueError, match="rate"):
        cuda_be.dropout_forward(x, 1.0, seed)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_forward(cuda_be, dtype, rng, training):
    x = randn(rng, (5, 3), dtype, 2.0)
    gamma, beta = randn(rng, 3, dtype), randn(rng, 3, dtype)
    mm, mv = randn(rng, 3, dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    check(cuda_be, "batchnorm_forward", [x, gamma, beta, mm, mv, training],
          dict(momentum=0.9, epsilon=1e-3), dtype, inplace=(3, 4))


def test_batchnorm_backward(cuda_be, dtype, rng):
    x, dy = randn(rng, (5, 3), dtype, 2.0), randn(rng, (5, 3), dtype)
    gamma = randn(rng, 3, dtype)
    _, mean, inv_std = REFERENCE.batchnorm_forward(
        x, gamma, np.zeros(3, dtype), np.zeros(3, dtype), np.ones(3, dtype), True)
    check(cuda_be, "batchnorm_backward", [dy, x, gamma, mean, inv_std], {}, dtype)
    # the (mean, inv_std) the cuda forward returns feed its backward directly
    be = cuda_be
    _, dmean, dinv = be.batchnorm_forward(x, gamma, np.zeros(3, dtype), be.zeros(3, dtype),
                                          be.asarray(np.ones(3, dtype)), True)
    got = be.batchnorm_backward(be.asarray(dy), be.asarray(x), gamma, dmean, dinv)
    want = REFERENCE.batchnorm_backward(dy, x, gamma, mean, inv_std)
    assert_close(tuple(be.to_numpy(g) for g in got), want, dtype)


# ----------------------------------------------------------------------
# optimizers
# ----------------------------------------------------------------------
def _steps(be, op, dtype, rng, n_state, kwargs, steps=3, shape=(3, 5), step_arg=False):
    p = randn(rng, shape, dtype)
    state = [np.zeros(shape, dtype) for _ in range(n_state)]
    for t in range(1, steps + 1):
        g = randn(rng, shape, dtype)
        extra = [t] if step_arg else []
        check(be, op, [p, g, *state, *extra], kwargs, dtype, inplace=range(2 + n_state))
        REFERENCE.__getattribute__(op)(p, g, *state, *extra, **kwargs)


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                dict(momentum=0.5, weight_decay=0.1)])
def test_sgd(cuda_be, dtype, rng, kw):
    _steps(cuda_be, "sgd_update", dtype, rng, 1 if kw.get("momentum") else 0,
           dict(learning_rate=0.1, **kw))


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_and_adamw(cuda_be, dtype, rng, wd):
    _steps(cuda_be, "adam_update", dtype, rng, 2,
           dict(learning_rate=0.01, weight_decay=wd), step_arg=True)


def test_rmsprop_adagrad(cuda_be, dtype, rng):
    _steps(cuda_be, "rmsprop_update", dtype, rng, 1, dict(learning_rate=0.01, weight_decay=0.1))
    _steps(cuda_be, "adagrad_update", dtype, rng, 1, dict(learning_rate=0.05))


def test_float32_state_flushes_denormals(cuda_be):
    be = cuda_be
    p = np.ones(4, np.float32)
    g = np.zeros(4, np.float32)
    m = np.full(4, 1.2e-38, np.float32)  # 0.9 * m is subnormal
    v = np.full(4, 1.0, np.float32)
    dp, dm, dv = be.asarray(p), be.asarray(m), be.asarray(v)
    be.adam_update(dp, g, dm, dv, 1)
    REFERENCE.adam_update(p, g, m, v, 1)
    assert np.all(be.to_numpy(dm) == 0.0) and np.all(m == 0.0)
    vel = be.asarray(np.full(4, 1.2e-38, np.float32))
    be.sgd_update(dp, g, vel, momentum=0.9)
    assert np.all(be.to_numpy(vel) == 0.0)


def test_optimizer_state_must_be_on_device(cuda_be):
    be = cuda_be
    p = be.asarray(np.ones(3))
    with pytest.raises(ValueError, match="param: expected a device array"):
        be.sgd_update(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="m: expected a device array"):
        be.adam_update(p, np.ones(3), np.zeros(3), be.zeros(3, np.float64), 1)
    with pytest.raises(ValueError, match="velocity"):
        be.sgd_update(p, np.ones(3), momentum=0.9)
    with pytest.raises(ValueError, match="grad: expected shape"):
        be.sgd_update(p, np.ones(4))
    with pytest.raises(ValueError, match="step"):
        be.adam_update(p, np.ones(3), be.zeros(3, np.float64), be.zeros(3, np.float64), 0)


# ----------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------
def test_helpers(cuda_be, dtype, rng):
    be = cuda_be
    x = randn(rng, (3, 5), dtype)
    x[0, 0] = 0.0
    assert_close(be.sum_squares(be.asarray(x)), REFERENCE.sum_squares(x), dtype)
    assert_close(be.regularizer_loss(be.asarray(x), l1=0.1, l2=0.2),
                 REFERENCE.regularizer_loss(x, l1=0.1, l2=0.2), dtype)
    d = be.asarray(x)
    assert_close(be.to_numpy(be.scale_(d, -1.5)), REFERENCE.scale_(x.copy(), -1.5), dtype)
    assert_close(be.to_numpy(be.clip_(d, -0.5, 0.25)),
                 REFERENCE.clip_(REFERENCE.scale_(x.copy(), -1.5), -0.5, 0.25), dtype)
    y = randn(rng, (3, 5), dtype)
    dy = be.asarray(y)
    assert_close(be.to_numpy(be.axpy_(0.3, be.asarray(x), dy)),
                 REFERENCE.axpy_(0.3, x, y.copy()), dtype)
    g = randn(rng, (3, 5), dtype)
    dg = be.asarray(g)
    assert_close(be.to_numpy(be.regularizer_grad_(be.asarray(x), dg, l1=0.1, l2=0.2)),
                 REFERENCE.regularizer_grad_(x, g.copy(), l1=0.1, l2=0.2), dtype)
    dst = be.empty((3, 5), dtype)
    np.testing.assert_array_equal(be.to_numpy(be.copy_(be.asarray(x), dst)), x)
    np.testing.assert_array_equal(be.to_numpy(be.copy_(x.astype(np.float64), dst)), x)
    assert be.all_finite(be.asarray(x))
    x[2, 4] = np.nan
    assert not be.all_finite(be.asarray(x))
    x[2, 4] = np.inf
    assert not be.all_finite(x)
