"""Focused checks of the ``cython`` backend against the NumPy reference.

Every op, both dtypes, awkward shapes (0 rows, 1, odd sizes, several column
blocks), all GEMM transpose/beta combinations, extreme logits, non-contiguous
and read-only inputs, aliasing, and rejection of bad ``out=`` buffers.
"""
import inspect

import numpy as np
import pytest

import pynn.backends as B
from pynn.backends.base import ACTIVATIONS, EPILOGUE_ACTIVATIONS, Backend, splitmix_uniform

from helpers import REFERENCE, assert_close, check_op

if "cython" not in B.available():
    pytest.skip(f"cython backend unavailable: {B.why_unavailable('cython')}",
                allow_module_level=True)

from pynn._ext import dense as _dense  # noqa: E402
from pynn._ext import layers as _layers  # noqa: E402
from pynn._ext import losses as _losses  # noqa: E402

#: glu changes the width (tests/test_activations_keras.py covers it on every backend)
ACTS = [a for a in ACTIVATIONS if a != "glu"]
OPS = ["gemm", "activation_forward", "activation_backward", "softmax", "log_softmax",
       "softmax_cross_entropy", "categorical_cross_entropy", "sigmoid_binary_cross_entropy",
       "binary_cross_entropy", "mean_squared_error", "mean_absolute_error", "bias_grad",
       "dropout_forward", "dropout_backward", "batchnorm_forward", "batchnorm_backward",
       "sgd_update", "adam_update", "rmsprop_update", "adagrad_update"]


@pytest.fixture(scope="module")
def cy():
    return B.get("cython")


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------------------
# contract
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("op", OPS)
def test_overrides_keep_signature(cy, op):
    impl = getattr(type(cy), op)
    assert impl is not getattr(Backend, op), f"{op} is not overridden"
    assert inspect.signature(impl) == inspect.signature(getattr(Backend, op))


def test_registered_name(cy):
    assert cy.name == "cython" and isinstance(cy, Backend)


# ---------------------------------------------------------------------------
# gemm
# ---------------------------------------------------------------------------
GEMM_SHAPES = [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0), (1, 1, 1), (7, 13, 5),
               (33, 17, 65)]


@pytest.mark.parametrize("m,k,n", GEMM_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_gemm_trans_beta(cy, dtype, rng, m, k, n, trans_a, trans_b, beta):
    a = randn(rng, (k, m) if trans_a else (m, k), dtype)
    b = randn(rng, (n, k) if trans_b else (k, n), dtype)
    out = randn(rng, (m, n), dtype)
    kw = dict(trans_a=trans_a, trans_b=trans_b, beta=beta, alpha=-1.5)
    check_op(cy, "gemm", [a, b, out], kw, dtype=dtype)


@pytest.mark.parametrize("act", EPILOGUE_ACTIVATIONS)
@pytest.mark.parametrize("m,k,n", [(0, 3, 4), (1, 1, 1), (5, 0, 3), (9, 11, 7)])
def test_gemm_epilogue(cy, dtype, rng, act, m, k, n):
    a = randn(rng, (m, k), dtype)
    b = randn(rng, (k, n), dtype)
    bias = randn(rng, (n,), dtype)
    out = randn(rng, (m, n), dtype)
    check_op(cy, "gemm", [a, b], dict(bias=bias, activation=act), dtype=dtype)
    check_op(cy, "gemm", [a, b, out], dict(bias=bias, activation=act, beta=2.0,
                                           act_alpha=0.3), dtype=dtype)
    check_op(cy, "gemm", [a, b], dict(activation=act), dtype=dtype)


def test_gemm_k0_gives_epilogue_of_zeros(cy, dtype):
    a, b = np.zeros((3, 0), dtype), np.zeros((0, 4), dtype)
    bias = np.arange(4, dtype=dtype) - 1.5
    out = np.full((3, 4), np.nan, dtype)
    got = cy.gemm(a, b, out=out, bias=bias, activation="relu")
    np.testing.assert_array_equal(got, np.tile(np.maximum(bias, 0), (3, 1)))
    out = np.full((3, 4), 2.0, dtype)
    got = cy.gemm(a, b, out=out, beta=0.5, bias=bias)
    np.testing.assert_array_equal(got, np.tile(1.0 + bias, (3, 1)))


def test_gemm_noncontiguous_and_int_inputs(cy, dtype, rng):
    big = randn(rng, (20, 30), dtype)
    a = big[::2, 1::3]            # (10, 10) strided view
    b = big[:10, ::-3].T          # (10, 10) negative strides, transposed
    check_op(cy, "gemm", [a, b], dict(trans_b=True), dtype=dtype)
    ai = rng.integers(-5, 5, (4, 6))
    got = check_op(cy, "gemm", [ai, ai.T], dtype=np.float64)[0]
    assert got.dtype == np.float64


def test_gemm_out_aliases_input(cy, dtype, rng):
    a = randn(rng, (6, 6), dtype)
    b = randn(rng, (6, 6), dtype)
    want = REFERENCE.gemm(a.copy(), b, out=a.copy(), beta=0.5, trans_a=True)
    got = cy.gemm(a, b, out=a, beta=0.5, trans_a=True)
    assert got is a
    assert_close(got, want, dtype)


def test_gemm_large_magnitude_softmax(cy, dtype, rng):
    a = randn(rng, (8, 4), dtype, 30.0)
    b = randn(rng, (4, 10), dtype, 30.0)
    got, _ = check_op(cy, "gemm", [a, b], dict(activation="softmax"), dtype=dtype)
    assert np.all(np.isfinite(got))


def test_gemm_rejects_bad_args(cy, rng):
    a = randn(rng, (4, 5), np.float32)
    b = randn(rng, (5, 3), np.float32)
    with pytest.raises(ValueError, match="inner dimensions"):
        cy.gemm(a, b.T)
    with pytest.raises(ValueError, match="beta"):
        cy.gemm(a, b, beta=1.0)
    with pytest.raises(ValueError, match="bias"):
        cy.gemm(a, b, bias=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="Unknown activation"):
        cy.gemm(a, b, activation="swish")
    with pytest.raises(TypeError):
        cy.gemm(np.array([["x"]]), b)
    bad_outs = [np.zeros((4, 3), np.float64), np.zeros((3, 4), np.float32),
                np.zeros((4, 6), np.float32)[:, ::2], np.zeros((3, 4), np.float32).T]
    ro = np.zeros((4, 3), np.float32)
    ro.flags.writeable = False
    for out in bad_outs + [ro]:
        before = out.copy()
        with pytest.raises(ValueError):
            cy.gemm(a, b, out=out, bias=np.ones(3, np.float32), activation="relu")
        np.testing.assert_array_equal(out, before)


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------
ACT_SHAPES = [(0, 5), (1, 1), (7, 13), (3, 1, 5)]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", ACT_SHAPES)
def test_activation_forward_backward(cy, dtype, rng, act, shape):
    if act == "softmax" and len(shape) != 2:
        for op, args in (("activation_forward", [np.zeros(shape, dtype), act]),):
            with pytest.raises(ValueError):
                getattr(cy, op)(*args)
        return
    x = randn(rng, shape, dtype, 3.0)
    dy = randn(rng, shape, dtype)
    for alpha in (None, 0.35):
        check_op(cy, "activation_forward", [x, act], dict(alpha=alpha), dtype=dtype)
        y = REFERENCE.activation_forward(x, act, alpha=alpha)
        check_op(cy, "activation_backward", [dy, y, act], dict(x=x, alpha=alpha),
                 dtype=dtype)


@pytest.mark.parametrize("act", ACTS)
def test_activation_extreme_inputs(cy, dtype, act):
    x = np.array([[-1e3, -88.0, -20.0, -1e-6, 0.0, 1e-6, 20.0, 88.0, 1e3]], dtype)
    y, _ = check_op(cy, "activation_forward", [x, act], dtype=dtype)
    assert np.all(np.isfinite(y)) or act == "exponential"  # exp(1e3) overflows
    dy = np.ones_like(x)
    check_op(cy, "activation_backward", [dy, y, act], dict(x=x), dtype=dtype)


def test_activation_nan_propagates(cy, dtype):
    x = np.array([[np.nan, -1.0, 1.0]], dtype)
    for act in ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "softplus"):
        check_op(cy, "activation_forward", [x, act], dtype=dtype)
        assert np.isnan(cy.activation_forward(x, act)[0, 0]), act


@pytest.mark.parametrize("act", ACTS)
def test_activation_in_place(cy, dtype, rng, act):
    x = randn(rng, (5, 9), dtype)
    want = REFERENCE.activation_forward(x, act)
    got = cy.activation_forward(x, act, out=x)
    assert got is x
    assert_close(got, want, dtype)
    dy = randn(rng, (5, 9), dtype)
    x0 = randn(rng, (5, 9), dtype)
    want = REFERENCE.activation_backward(dy, want, act, x=x0)
    got = cy.activation_backward(dy, x, act, x=x0, out=dy)
    assert got is dy
    assert_close(got, want, dtype)


def test_activation_noncontiguous_and_readonly(cy, dtype, rng):
    base = randn(rng, (10, 12), dtype)
    x = base[::2, ::3]
    check_op(cy, "activation_forward", [x, "tanh"], dtype=dtype)
    ro = base.copy()
    ro.flags.writeable = False
    check_op(cy, "activation_forward", [ro, "gelu"], dtype=dtype)
    y = REFERENCE.activation_forward(ro, "sigmoid")
    y.flags.writeable = False
    check_op(cy, "activation_backward", [ro, y, "sigmoid"], dtype=dtype)


def test_activation_rejects_bad_args(cy, rng):
    x = randn(rng, (4, 5), np.float32)
    with pytest.raises(ValueError):
        cy.activation_forward(x, "nope")
    with pytest.raises(ValueError):
        cy.activation_forward(x, "relu", out=np.empty((4, 5), np.float64))
    with pytest.raises(ValueError):
        cy.activation_forward(x, "relu", out=np.empty((5, 4), np.float32))
    with pytest.raises(ValueError, match="gelu needs"):
        cy.activation_backward(x, x, "gelu")
    with pytest.raises(ValueError):
        cy.activation_backward(x, x[:3], "relu")
    with pytest.raises(ValueError):
        cy.activation_backward(x[None], x[None], "softmax")
    with pytest.raises(TypeError):
        cy.activation_forward(np.array(["a"]), "relu")


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (1, 1), (6, 11)])
def test_softmax_ops(cy, dtype, rng, op, shape):
    check_op(cy, op, [randn(rng, shape, dtype, 5.0)], dtype=dtype)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_extreme_logits(cy, dtype, op):
    x = np.array([[1e3, -1e3, 0.0], [-1e3, -1e3, -1e3], [1e3, 1e3 - 1, 999.5]], dtype)
    got, _ = check_op(cy, op, [x], dtype=dtype)
    assert np.all(np.isfinite(got))
    x2 = x.copy()
    assert cy.__getattribute__(op)(x2, out=x2) is x2
    assert_close(x2, got, dtype)


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(0, 3), (1, 1), (1, 4), (17, 10)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_softmax_cross_entropy(cy, dtype, rng, n, k, weighted, ls):
    z = randn(rng, (n, k), dtype, 4.0)
    labels = rng.integers(0, k, n)
    dense = REFERENCE.softmax(randn(rng, (n, k), dtype))
    kw = dict(sample_weight=rng.random(n) if weighted else None, label_smoothing=ls)
    check_op(cy, "softmax_cross_entropy", [z, labels], kw, dtype=dtype)
    check_op(cy, "softmax_cross_entropy", [z, labels[:, None]], kw, dtype=dtype)
    check_op(cy, "softmax_cross_entropy", [z, dense], kw, dtype=dtype)


def test_softmax_cross_entropy_extreme_and_in_place(cy, dtype):
    z = np.array([[1e3, -1e3, 0.0], [-1e3, 1e3, 1e3], [0.0, 0.0, 0.0]], dtype)
    labels = np.array([1, 2, 0])
    (loss, grad), _ = check_op(cy, "softmax_cross_entropy", [z, labels],
                               dict(label_smoothing=0.2), dtype=dtype)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    want = REFERENCE.softmax_cross_entropy(z, labels)
    zc = z.copy()
    got = cy.softmax_cross_entropy(zc, labels, grad=zc)
    assert got[1] is zc
    assert_close(got, want, dtype)


@pytest.mark.parametrize("n,k", [(0, 3), (1, 1), (13, 7)])
@pytest.mark.parametrize("weighted", [False, True])
def test_categorical_cross_entropy(cy, dtype, rng, n, k, weighted):
    p = rng.random((n, k)).astype(dtype)
    p[:, 0] = 1e-9  # below epsilon after renormalisation: clipped, zero gradient
    labels = rng.integers(0, k, n)
    dense = REFERENCE.softmax(randn(rng, (n, k), dtype))
    kw = dict(sample_weight=rng.random(n) if weighted else None)
    check_op(cy, "categorical_cross_entropy", [p, labels], kw, dtype=dtype)
    check_op(cy, "categorical_cross_entropy", [p, dense], dict(kw, epsilon=1e-3), dtype=dtype)
    one_hot = np.eye(k, dtype=dtype)[labels]
    check_op(cy, "categorical_cross_entropy", [one_hot, labels], kw, dtype=dtype)


@pytest.mark.parametrize("op,kind", [("sigmoid_binary_cross_entropy", "logits"),
                                     ("binary_cross_entropy", "probs"),
                                     ("mean_squared_error", "any"),
                                     ("mean_absolute_error", "any")])
@pytest.mark.parametrize("n,k", [(0, 3), (4, 0), (1, 1), (9, 5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_elementwise_losses(cy, dtype, rng, op, kind, n, k, weighted):
    if kind == "logits":
        pred = randn(rng, (n, k), dtype, 5.0)
        target = rng.random((n, k)).astype(dtype)
    elif kind == "probs":
        pred = rng.random((n, k)).astype(dtype)
        if pred.size:
            pred.flat[0] = 0.0   # clipped: zero gradient
            pred.flat[-1] = 1.0
        target = (rng.random((n, k)) > 0.5).astype(dtype)
    else:
        pred = randn(rng, (n, k), dtype)
        target = randn(rng, (n, k), dtype)
        if pred.size:
            target.flat[0] = pred.flat[0]  # sign(0) = 0
    kw = dict(sample_weight=rng.random(n) if weighted else None)
    check_op(cy, op, [pred, target], kw, dtype=dtype)
    if n and k:
        check_op(cy, op, [pred[:, ::-1], target.T.copy().T], kw, dtype=dtype)


def test_sigmoid_bce_extreme_logits(cy, dtype):
    z = np.array([[1e3, -1e3, 50.0, -50.0]], dtype)
    t = np.array([[0.0, 1.0, 1.0, 0.0]], dtype)
    (loss, grad), _ = check_op(cy, "sigmoid_binary_cross_entropy", [z, t], dtype=dtype)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


def test_losses_reject_bad_args(cy, rng):
    z = randn(rng, (4, 3), np.float32)
    with pytest.raises(ValueError, match="labels"):
        cy.softmax_cross_entropy(z, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="labels"):
        cy.categorical_cross_entropy(np.abs(z), np.array([0, -1, 2, 0]))
    with pytest.raises(ValueError, match="integer"):
        cy.softmax_cross_entropy(z, np.array([0.5, 1, 2, 0]))
    with pytest.raises(ValueError, match="sample_weight"):
        cy.mean_squared_error(z, z, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="target"):
        cy.binary_cross_entropy(z, z[:, :2])
    with pytest.raises(ValueError, match="grad"):
        cy.sigmoid_binary_cross_entropy(z, z, grad=np.empty((4, 3), np.float64))
    with pytest.raises(ValueError, match="grad"):
        cy.softmax_cross_entropy(z, np.zeros(4, int), grad=np.empty((4, 6), np.float32)[:, ::2])


# ---------------------------------------------------------------------------
# bias gradient, dropout, batch norm
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (1, 1), (3, 7), (9, 600)])
def test_bias_grad(cy, dtype, rng, shape):
    check_op(cy, "bias_grad", [randn(rng, shape, dtype)], dtype=dtype)


def test_bias_grad_accumulates_in_float64(cy):
    dy = np.full((200_000, 3), 0.1, np.float32)
    got = cy.bias_grad(dy)
    want = np.float32(0.1) * 200_000.0
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("shape", [(0, 4), (1,), (7, 13), (2, 3, 5)])
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("seed", [0, 12345, -7, 2**64 + 99])
def test_dropout_masks_bit_exact(cy, dtype, rng, shape, rate, seed):
    x = randn(rng, shape, dtype)
    want = REFERENCE.dropout_forward(x, rate, seed)
    got = cy.dropout_forward(x, rate, seed)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    assert got[0].dtype == dtype and got[1].dtype == dtype
    dy = randn(rng, shape, dtype)
    check_op(cy, "dropout_backward", [dy, got[1]], dtype=dtype)


def test_splitmix_kernel_matches_reference():
    for seed in (0, 1, 2**63 + 5, 2**64 - 1):
        out = np.empty(1001)
        _layers.uniform(seed, out)
        np.testing.assert_array_equal(out, splitmix_uniform(seed, 1001))


def test_dropout_in_place_and_bad_args(cy, dtype, rng):
    x = randn(rng, (6, 5), dtype)
    want_out, want_mask = REFERENCE.dropout_forward(x, 0.5, 3)
    out, mask = cy.dropout_forward(x, 0.5, 3, out=x)
    assert out is x
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(mask, want_mask)
    for rate in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            cy.dropout_forward(x, rate, 0)
    with pytest.raises(ValueError):
        cy.dropout_forward(x, 0.5, 0, mask=np.empty((6, 5), np.int32))
    with pytest.raises(ValueError):
        cy.dropout_backward(x, x[:2])


@pytest.mark.parametrize("n,k", [(1, 1), (8, 5), (33, 300)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm(cy, dtype, rng, n, k, training):
    x = randn(rng, (n, k), dtype, 2.0) + 1.0
    gamma, beta = randn(rng, (k,), dtype), randn(rng, (k,), dtype)
    mm, mv = randn(rng, (k,), dtype), rng.random(k).astype(dtype) + 0.5
    check_op(cy, "batchnorm_forward", [x, gamma, beta, mm, mv, training],
             dict(momentum=0.9, epsilon=1e-3), dtype=dtype, inplace=(3, 4))
    _, mean, inv_std = REFERENCE.batchnorm_forward(x, gamma, beta, mm.copy(), mv.copy(), True)
    dy = randn(rng, (n, k), dtype)
    check_op(cy, "batchnorm_backward", [dy, x, gamma, mean, inv_std], dtype=dtype)


def test_batchnorm_empty_batch(cy, dtype):
    x = np.zeros((0, 4), dtype)
    g, b = np.ones(4, dtype), np.zeros(4, dtype)
    mm, mv = np.zeros(4, dtype), np.ones(4, dtype)
    with pytest.raises(ValueError, match="at least one sample"):
        cy.batchnorm_forward(x, g, b, mm, mv, True)
    check_op(cy, "batchnorm_forward", [x, g, b, mm, mv, False], dtype=dtype)
    check_op(cy, "batchnorm_backward", [x, x, g, np.zeros(4), np.ones(4)], dtype=dtype)


def test_batchnorm_rejects_bad_args(cy, rng):
    x = randn(rng, (5, 4), np.float32)
    g = np.ones(4, np.float32)
    mm, mv = np.zeros(4, np.float32), np.ones(4, np.float32)
    with pytest.raises(ValueError, match="gamma"):
        cy.batchnorm_forward(x, g[:3], g, mm, mv, True)
    with pytest.raises(ValueError, match="moving_var"):
        cy.batchnorm_forward(x, g, g, mm, np.ones(4), True)
    with pytest.raises(TypeError, match="moving_mean"):
        cy.batchnorm_forward(x, g, g, [0.0] * 4, mv, True)
    with pytest.raises(ValueError, match="inv_std"):
        cy.batchnorm_backward(x, x, g, np.zeros(4), np.ones(5))


# ---------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------
def _state(rng, shape, dtype):
    return np.abs(randn(rng, shape, dtype))


@pytest.mark.parametrize("shape", [(0,), (1,), (7, 5), (3, 4, 2)])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_optimizers(cy, dtype, rng, shape, wd):
    p, g = randn(rng, shape, dtype), randn(rng, shape, dtype)
    check_op(cy, "sgd_update", [p, g], dict(learning_rate=0.1, weight_decay=wd),
             dtype=dtype, inplace=(0,))
    for nesterov in (False, True):
        check_op(cy, "sgd_update", [p, g, randn(rng, shape, dtype)],
                 dict(learning_rate=0.1, momentum=0.9, nesterov=nesterov, weight_decay=wd),
                 dtype=dtype, inplace=(0, 2))
    for step in (1, 7):
        check_op(cy, "adam_update", [p, g, randn(rng, shape, dtype), _state(rng, shape, dtype),
                                     step], dict(weight_decay=wd), dtype=dtype,
                 inplace=(0, 2, 3))
    check_op(cy, "rmsprop_update", [p, g, _state(rng, shape, dtype)],
             dict(rho=0.8, weight_decay=wd), dtype=dtype, inplace=(0, 2))
    check_op(cy, "adagrad_update", [p, g, _state(rng, shape, dtype)],
             dict(learning_rate=0.05, weight_decay=wd), dtype=dtype, inplace=(0, 2))


def test_optimizer_many_steps_track_reference(cy, dtype, rng):
    p_ref = randn(rng, (6, 4), dtype)
    m_ref, v_ref = np.zeros_like(p_ref), np.zeros_like(p_ref)
    p, m, v = p_ref.copy(), m_ref.copy(), v_ref.copy()
    for step in range(1, 51):
        g = randn(rng, (6, 4), dtype)
        REFERENCE.adam_update(p_ref, g, m_ref, v_ref, step, learning_rate=0.01)
        cy.adam_update(p, g, m, v, step, learning_rate=0.01)
    assert_close((p, m, v), (p_ref, m_ref, v_ref), dtype, loose=10.0)


def test_optimizers_flush_float32_denormals(cy):
    tiny = np.float32(np.finfo(np.float32).tiny)
    shape = (5,)
    g = np.zeros(shape, np.float32)
    state = np.array([tiny * 1.5, tiny * 0.5, -tiny * 0.25, 1e-45, 1.0], np.float32)
    for op, args, idx in (
            ("adam_update", lambda: [np.ones(shape, np.float32), g, state.copy(),
                                     state.copy(), 3], (2, 3)),
            ("rmsprop_update", lambda: [np.ones(shape, np.float32), g, state.copy()], (2,)),
            ("sgd_update", lambda: [np.ones(shape, np.float32), g, state.copy()], (2,))):
        kw = dict(momentum=0.5) if op == "sgd_update" else {}
        ref_args, got_args = args(), args()
        getattr(REFERENCE, op)(*ref_args, **kw)
        getattr(cy, op)(*got_args, **kw)
        for i in idx:
            np.testing.assert_array_equal(got_args[i], ref_args[i], err_msg=f"{op} arg {i}")
            small = np.abs(got_args[i]) < tiny
            assert np.all(got_args[i][small] == 0), f"{op}: denormal left in arg {i}"
    acc = np.array([1e-45, 0.0], np.float32)
    cy.adagrad_update(np.ones(2, np.float32), np.zeros(2, np.float32), acc)
    np.testing.assert_array_equal(acc, [0.0, 0.0])
    # float64 state is left alone
    v64 = np.array([1e-310, 1.0])
    cy.sgd_update(np.ones(2), np.zeros(2), v64, momentum=1.0)
    assert v64[0] == 1e-310


def test_optimizers_reject_bad_args(cy, rng):
    p = randn(rng, (4, 3), np.float32)
    with pytest.raises(TypeError, match="param"):
        cy.sgd_update([1.0, 2.0], [0.0, 0.0])
    with pytest.raises(TypeError, match="param"):
        cy.sgd_update(p.astype(np.int32), p)
    with pytest.raises(ValueError, match="grad"):
        cy.adam_update(p, p[:2], np.zeros_like(p), np.zeros_like(p), 1)
    with pytest.raises(ValueError, match="m"):
        cy.adam_update(p, p, np.zeros((4, 3)), np.zeros_like(p), 1)
    with pytest.raises(ValueError, match="step"):
        cy.adam_update(p, p, np.zeros_like(p), np.zeros_like(p), 0)
    with pytest.raises(ValueError, match="velocity"):
        cy.sgd_update(p, p, momentum=0.9)
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        cy.rmsprop_update(ro, p, np.zeros_like(p))
    with pytest.raises(ValueError, match="C-contiguous"):
        cy.adagrad_update(np.zeros((3, 4), np.float32).T, p, np.zeros_like(p))


# ---------------------------------------------------------------------------
# the kernels themselves never crash on bad input
# ---------------------------------------------------------------------------
def test_kernels_check_shapes_and_dtypes():
    f32 = np.zeros((3, 4), np.float32)
    e = np.zeros(0, np.float32)
    with pytest.raises(ValueError):
        _dense.gemm(f32, f32, np.zeros((3, 4), np.float32), False, False, 1.0, 0.0, e,
                    False, 0, 0.0)
    with pytest.raises(ValueError):
        _dense.gemm(f32, f32.T.copy(), np.zeros((3, 3), np.float32), False, False, 1.0, 0.0,
                    e, True, 0, 0.0)
    with pytest.raises(ValueError):
        _dense.gemm(f32, f32.T.copy(), np.zeros((3, 3), np.float32), False, False, 1.0, 0.0,
                    e, False, 99, 0.0)
    with pytest.raises((ValueError, TypeError)):
        _dense.softmax(f32, np.zeros((3, 4), np.float64))
    with pytest.raises(ValueError):
        _dense.activation_forward(f32.ravel(), np.zeros(5, np.float32), 1, 0.0)
    with pytest.raises(ValueError):
        _losses.softmax_cross_entropy_labels(f32, np.array([0, 1, 9], np.intp),
                                             np.zeros(0), False, f32.copy(), 0.0)
    with pytest.raises(ValueError):
        _layers.bias_grad(f32, np.zeros(3, np.float32))
    ro = np.zeros((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        _dense.softmax(f32, ro)


def test_softmax_cross_entropy_no_classes(cy, dtype):
    z = np.zeros((3, 0), dtype)
    loss, grad = cy.softmax_cross_entropy(z, np.zeros((3, 0), dtype))
    assert loss == 0.0 and grad.shape == (3, 0) and grad.dtype == dtype
    with pytest.raises(ValueError, match="labels"):
        cy.softmax_cross_entropy(z, np.zeros(3, int))


# ------------------------------------------------------------------------------------------
# which BLAS runs the products
# ------------------------------------------------------------------------------------------
def test_blas_choice_is_reported_and_checked(cy):
    from pynn._ext import step as _step
    assert cy.blas.startswith(("numpy's OpenBLAS", "scipy's BLAS"))
    expect = "ilp64" if cy.blas.startswith("numpy") else "scipy"
    assert _dense._blas_in_use() == _step._blas_in_use() == expect
    assert _dense._blas_selftest() and _step._blas_selftest()


def _blas_results(cy, rng):
    """Every product shape the kernels use (GEMM with transposes and beta, single-row
    GEMV), the fused step and the fused inference pass, float32 and float64."""
    out = []
    for dt in (np.float32, np.float64):
        a, b = randn(rng, (7, 9), dt), randn(rng, (9, 5), dt)
        c = randn(rng, (7, 5), dt)
        out.append(cy.gemm(a, b))
        out.append(cy.gemm(a.T.copy(), b, trans_a=True, beta=0.5, out=c.copy()))
        out.append(cy.gemm(a, b.T.copy(), trans_b=True, bias=randn(rng, 5, dt),
                           activation="relu"))
        ks = [randn(rng, (9, 6), dt), randn(rng, (6, 3), dt)]
        bs = [randn(rng, 6, dt), randn(rng, 3, dt)]
        for n in (1, 4):
            x = randn(rng, (n, 9), dt)
            outs = [np.empty((n, 6), dt), np.empty((n, 3), dt)]
            out.append(cy.dense_stack_forward(x, ks, bs, ["tanh", "softmax"], outs).copy())
            deltas = [np.empty((n, 6), dt), np.empty((n, 3), dt)]
            dks = [np.empty_like(k) for k in ks]
            dbs = [np.empty_like(b_) for b_ in bs]
            loss = cy.dense_stack_forward_backward(
                x, rng.integers(0, 3, n), ks, bs, ["relu", "softmax"],
                "softmax_cross_entropy", outs, deltas, dks, dbs)
            out += [np.float64(loss)] + [d.copy() for d in dks + dbs]
    return out


def test_numpy_and_scipy_blas_give_the_same_results(cy):
    """Whichever BLAS is chosen, the kernels compute the same values (to rounding)."""
    from pynn._ext import step as _step
    if not cy.blas.startswith("numpy"):
        pytest.skip("NumPy's ILP64 OpenBLAS is not there: only SciPy's BLAS to test")
    from pynn.backends import _blas
    chosen = _blas_results(cy, np.random.default_rng(5))
    try:
        for mod in (_dense, _step):
            mod._use_blas(0, 0, 0, 0)
        assert _dense._blas_in_use() == "scipy" and _dense._blas_selftest()
        scipy_results = _blas_results(cy, np.random.default_rng(5))
    finally:
        _, addrs = _blas.numpy_openblas_entry_points()
        for mod in (_dense, _step):
            mod._use_blas(*addrs)
    assert _step._blas_in_use() == "ilp64"
    for i, (got, want) in enumerate(zip(chosen, scipy_results)):
        dt = np.float32 if i < len(chosen) // 2 else np.float64
        assert_close(got, want, dt, 1.0, f"result {i}")


def test_blas_environment_variable():
    import os
    import subprocess
    import sys
    from helpers import PYNN_PATH
    code = ("import pynn.backends as B; print(B.get('cython').blas)")
    env = dict(os.environ, PYTHONPATH=PYNN_PATH, PYNN_BLAS="scipy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd="/", timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("scipy's BLAS")
    env["PYNN_BLAS"] = "mkl"  # the diagnostic names the variable (get() would raise)
    code = "import pynn.backends as B; print(B.why_unavailable('cython'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd="/", timeout=120)
    assert "PYNN_BLAS" in out.stdout, (out.stdout, out.stderr)



def test_compiled_all_finite_entry_point_refuses_what_it_cannot_read():
    from pynn._ext import step as _step
    with pytest.raises(TypeError, match="x"):
        _step._all_finite(None)
    with pytest.raises(ValueError, match="float32 or float64"):
        _step._all_finite(np.arange(3))
    with pytest.raises(ValueError, match="C-contiguous"):
        _step._all_finite(np.ones((4, 4))[:, ::2])
