"""Every op of every available backend against the NumPy reference ``Backend()``.

Each test runs once per backend (``backend`` fixture) and dtype (``dtype``) and
loops over shapes that include 1, odd sizes, zero rows and zero columns, plus one
shape big enough to reach the parallel/blocked paths of compiled kernels.
Comparisons go through ``helpers.check_op_exact`` (values with the one tolerance
table, plus result shapes and dtypes).
"""
import math

import numpy as np
import pytest

from pynn.backends.base import (ACTIVATIONS, ELEMENTWISE, EPILOGUE_ACTIVATIONS,
                                NEEDS_INPUT_FOR_BACKWARD, splitmix_uniform)

import helpers
from helpers import REFERENCE, assert_close, assert_close_scaled, check_op_exact, strided

#: glu changes the width (tests/test_activations_keras.py covers it on every backend)
ACTS = [a for a in ACTIVATIONS if a != "glu"]
SHAPES = [(1, 1), (1, 7), (6, 1), (13, 17), (64, 33), (0, 5), (5, 0), (521, 263)]
NONEMPTY = [s for s in SHAPES if 0 not in s]
ALPHAS = {"leaky_relu": [0.05, 1.7], "elu": [0.3, 1.7], "celu": [0.3, 1.7],
          "squareplus": [0.0, 1.7]}


def randn(rng, shape, dtype, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def act_input(rng, shape, dtype):
    """Activation inputs with exact zeros (relu'(0), elu at the kink) sprinkled in."""
    x = randn(rng, shape, dtype)
    x.reshape(-1)[::7] = 0.0
    return x


def labels_for(rng, n, k):
    return rng.integers(0, k, size=n)


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ACTS)
def test_activation_forward(backend, dtype, activation, rng):
    for shape in SHAPES:
        x = act_input(rng, shape, dtype)
        check_op_exact(backend, "activation_forward", [x, activation], dtype=dtype)
        for a in ALPHAS.get(activation, []):
            check_op_exact(backend, "activation_forward", [x, activation], {"alpha": a},
                           dtype=dtype)
    # out= is returned, and out may be x itself
    x = act_input(rng, (9, 11), dtype)
    want = REFERENCE.activation_forward(x, activation)
    buf = np.empty_like(x)
    assert backend.activation_forward(x, activation, out=buf) is buf
    assert_close(buf, want, dtype)
    assert backend.activation_forward(x, activation, out=x) is x
    assert_close(x, want, dtype)


@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_activation_forward_any_ndim(backend, dtype, activation, rng):
    for shape in [(7,), (0,), (3, 4, 5), (2, 1, 3, 2)]:
        x = act_input(rng, shape, dtype)
        check_op_exact(backend, "activation_forward", [x, activation], dtype=dtype)


@pytest.mark.parametrize("activation", ACTS)
def test_activation_backward(backend, dtype, activation, rng):
    for shape in SHAPES:
        x = act_input(rng, shape, dtype)
        y = REFERENCE.activation_forward(x, activation)
        dy = randn(rng, shape, dtype, 1.0)
        check_op_exact(backend, "activation_backward", [dy, y, activation], {"x": x},
                       dtype=dtype)
        if activation not in NEEDS_INPUT_FOR_BACKWARD:
            check_op_exact(backend, "activation_backward", [dy, y, activation], dtype=dtype)
        for a in ALPHAS.get(activation, []):
            y = REFERENCE.activation_forward(x, activation, alpha=a)
            check_op_exact(backend, "activation_backward", [dy, y, activation],
                           {"x": x, "alpha": a}, dtype=dtype)
    x = act_input(rng, (9, 11), dtype)
    y = REFERENCE.activation_forward(x, activation)
    dy = randn(rng, x.shape, dtype, 1.0)
    want = REFERENCE.activation_backward(dy, y, activation, x=x)
    buf = np.empty_like(dy)
    assert backend.activation_backward(dy, y, activation, x=x, out=buf) is buf
    assert_close(buf, want, dtype)
    assert backend.activation_backward(dy, y, activation, x=x, out=dy) is dy
    assert_close(dy, want, dtype)


@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_activation_backward_any_ndim(backend, dtype, activation, rng):
    for shape in [(7,), (0,), (3, 4, 5)]:
        x = act_input(rng, shape, dtype)
        y = REFERENCE.activation_forward(x, activation)
        dy = randn(rng, shape, dtype, 1.0)
        check_op_exact(backend, "activation_backward", [dy, y, activation], {"x": x},
                       dtype=dtype)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_ops(backend, dtype, op, rng):
    for shape in SHAPES:
        x = randn(rng, shape, dtype)
        check_op_exact(backend, op, [x], dtype=dtype)
    # rows with ties and constant rows
    x = np.array([[2.0, 2.0, 2.0], [0.0, 0.0, 1.0], [-5.0, 7.0, 7.0]], dtype=dtype)
    check_op_exact(backend, op, [x], dtype=dtype)
    want = getattr(REFERENCE, op)(x)
    buf = np.empty_like(x)
    assert getattr(backend, op)(x, out=buf) is buf
    assert getattr(backend, op)(x, out=x) is x  # out may be x itself
    assert_close(x, want, dtype)


# --------------------------------------------------------------------------
# gemm
# --------------------------------------------------------------------------
GEMM_SHAPES = [(1, 1, 1), (7, 13, 5), (0, 4, 3), (4, 0, 3), (5, 3, 0), (64, 33, 17),
               (130, 257, 65)]


def gemm_operands(rng, m, k, n, trans_a, trans_b, dtype):
    s = 1.0 / math.sqrt(max(k, 1))
    a = randn(rng, (k, m) if trans_a else (m, k), dtype, 1.0)
    b = randn(rng, (n, k) if trans_b else (k, n), dtype, s * 2.0)
    return a, b


@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 0.0), (-1.5, 0.75), (1.0, 1.0)])
@pytest.mark.parametrize("use_bias", [False, True], ids=["nobias", "bias"])
def test_gemm(backend, dtype, trans_a, trans_b, alpha, beta, use_bias, rng):
    for m, k, n in GEMM_SHAPES:
        a, b = gemm_operands(rng, m, k, n, trans_a, trans_b, dtype)
        kw = {"trans_a": trans_a, "trans_b": trans_b, "alpha": alpha, "beta": beta}
        if use_bias:
            kw["bias"] = randn(rng, (n,), dtype, 1.0)
        if beta != 0.0:
            kw["out"] = randn(rng, (m, n), dtype, 1.0)
        got, _ = check_op_exact(backend, "gemm", [a, b], kw, dtype=dtype)
    out = np.empty((m, n), dtype=dtype)
    kw["out"] = out
    assert backend.gemm(a, b, **kw) is out


@pytest.mark.parametrize("activation", EPILOGUE_ACTIVATIONS)
def test_gemm_activation_epilogue(backend, dtype, activation, rng):
    for trans_a in (False, True):
        for trans_b in (False, True):
            shapes = GEMM_SHAPES if not (trans_a or trans_b) else GEMM_SHAPES[:-1]
            for m, k, n in shapes:
                a, b = gemm_operands(rng, m, k, n, trans_a, trans_b, dtype)
                bias = randn(rng, (n,), dtype, 1.0)
                c = randn(rng, (m, n), dtype, 1.0)
                for alpha, beta in ((1.0, 0.0), (0.7, 0.5)):
                    kw = dict(trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta,
                              bias=bias, out=c)
                    pre = REFERENCE.gemm(a, b, **{**kw, "out": c.copy()})
                    scale = float(np.abs(pre).max()) if pre.size else 1.0
                    check_op_exact(backend, "gemm", [a, b], {**kw, "activation": activation},
                                   dtype=dtype, scale=scale)
                    for act_alpha in ALPHAS.get(activation, []):
                        check_op_exact(backend, "gemm", [a, b],
                                       {**kw, "activation": activation, "act_alpha": act_alpha},
                                       dtype=dtype, scale=scale)


def test_gemm_beta_zero_ignores_out_contents(backend, dtype, rng):
    a, b = randn(rng, (6, 4), dtype), randn(rng, (4, 5), dtype)
    out = np.full((6, 5), np.nan, dtype=dtype)
    backend.gemm(a, b, out=out, bias=np.ones(5, dtype))
    assert_close(out, REFERENCE.gemm(a, b, bias=np.ones(5, dtype)), dtype)


# --------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------
LOSS_SHAPES = [(1, 1), (1, 7), (6, 1), (13, 17), (64, 10), (0, 5), (5, 0), (300, 129)]


def make_target(rng, n, k, kind, dtype):
    if kind == "labels":
        return labels_for(rng, n, k)
    if kind == "labels_i32_col":
        return labels_for(rng, n, k).astype(np.int32)[:, None]
    if kind == "labels_float":
        return labels_for(rng, n, k).astype(np.float64)
    if kind == "onehot":
        return np.eye(k, dtype=dtype)[labels_for(rng, n, k)]
    if kind == "soft":
        return rng.dirichlet(np.ones(k), size=n).astype(dtype) if k else np.zeros((n, 0), dtype)
    raise ValueError(kind)


def weights_for(rng, n):
    w = rng.uniform(0.0, 2.0, size=n)
    w[::4] = 0.0
    return w


@pytest.mark.parametrize("target_kind", ["labels", "labels_i32_col", "labels_float", "onehot",
                                         "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_softmax_cross_entropy(backend, dtype, target_kind, weighted, label_smoothing, rng):
    for n, k in LOSS_SHAPES:
        if k == 0 and target_kind.startswith("labels") and n:
            continue  # no valid label exists (checked in test_labels_out_of_range)
        z = randn(rng, (n, k), dtype)
        t = make_target(rng, n, k, target_kind, dtype) if k else np.zeros((n, 0), dtype)
        kw = {"label_smoothing": label_smoothing}
        if weighted:
            kw["sample_weight"] = weights_for(rng, n)
        check_op_exact(backend, "softmax_cross_entropy", [z, t], kw, dtype=dtype)
    grad = np.empty((n, k), dtype=dtype)
    loss, g = backend.softmax_cross_entropy(z, t, grad=grad, **kw)
    assert g is grad


def probs_for(rng, n, k, dtype):
    """Unnormalised probabilities with exact zeros and near-one entries (clip region)."""
    p = REFERENCE.softmax(3.0 * rng.standard_normal((n, k))) if k else np.zeros((n, 0))
    if n and k > 1:
        p[::3, 0] = 0.0
        p[1::5] = 0.0
        p[1::5, -1] = 1.0
    p *= rng.uniform(0.5, 2.0, size=(n, 1))
    return p.astype(dtype)


@pytest.mark.parametrize("target_kind", ["labels", "onehot", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("epsilon", [1e-7, 0.05])
def test_categorical_cross_entropy(backend, dtype, target_kind, weighted, epsilon, rng):
    for n, k in LOSS_SHAPES:
        if k == 0 and target_kind == "labels" and n:
            continue
        p = probs_for(rng, n, k, dtype)
        t = make_target(rng, n, k, target_kind, dtype) if k else np.zeros((n, 0), dtype)
        kw = {"epsilon": epsilon}
        if weighted:
            kw["sample_weight"] = weights_for(rng, n)
        check_op_exact(backend, "categorical_cross_entropy", [p, t], kw, dtype=dtype)


def binary_targets(rng, shape, soft, dtype):
    if soft:
        return rng.uniform(0.0, 1.0, size=shape).astype(dtype)
    return (rng.uniform(size=shape) < 0.5).astype(dtype)


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_sigmoid_binary_cross_entropy(backend, dtype, soft, weighted, rng):
    for shape in LOSS_SHAPES:
        z = randn(rng, shape, dtype, 4.0)
        t = binary_targets(rng, shape, soft, dtype)
        kw = {"sample_weight": weights_for(rng, shape[0])} if weighted else {}
        check_op_exact(backend, "sigmoid_binary_cross_entropy", [z, t], kw, dtype=dtype,
                       scale=np.abs(z).max(initial=1.0))


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("epsilon", [1e-7, 1e-3])
def test_binary_cross_entropy(backend, dtype, soft, weighted, epsilon, rng):
    for shape in LOSS_SHAPES:
        p = rng.uniform(0.0, 1.0, size=shape)
        flat = p.reshape(-1)
        flat[::5], flat[1::7], flat[2::11] = 0.0, 1.0, epsilon  # clip region and its edge
        p = p.astype(dtype)
        t = binary_targets(rng, shape, soft, dtype)
        kw = {"epsilon": epsilon}
        if weighted:
            kw["sample_weight"] = weights_for(rng, shape[0])
        check_op_exact(backend, "binary_cross_entropy", [p, t], kw, dtype=dtype)


@pytest.mark.parametrize("loss", ["mean_squared_error", "mean_absolute_error"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_regression_losses(backend, dtype, loss, weighted, rng):
    for shape in LOSS_SHAPES:
        p = randn(rng, shape, dtype)
        t = randn(rng, shape, dtype)
        t.reshape(-1)[::3] = p.reshape(-1)[::3]  # exact ties: MAE's sign(0) = 0
        kw = {"sample_weight": weights_for(rng, shape[0])} if weighted else {}
        check_op_exact(backend, loss, [p, t], kw, dtype=dtype)
    if weighted:  # sample_weight as a column (n, 1) is accepted too
        kw = {"sample_weight": weights_for(rng, shape[0])[:, None]}
        check_op_exact(backend, loss, [p, t], kw, dtype=dtype)


def test_losses_accumulate_in_float64(backend, rng):
    """Loss sums over many small terms after a large one: float32 accumulation loses them."""
    n = 1 << 15
    p = np.full((n, 1), 1e-4, dtype=np.float32)
    p[0, 0] = 30.0
    t = np.zeros_like(p)
    check_op_exact(backend, "mean_squared_error", [p, t], dtype=np.float32)
    check_op_exact(backend, "mean_absolute_error", [p, t], dtype=np.float32)


# --------------------------------------------------------------------------
# bias_grad, dropout, batchnorm
# --------------------------------------------------------------------------
def test_bias_grad(backend, dtype, rng):
    for shape in SHAPES:
        dy = randn(rng, shape, dtype)
        check_op_exact(backend, "bias_grad", [dy], dtype=dtype)
    out = np.empty(shape[1], dtype=dtype)
    assert backend.bias_grad(dy, out=out) is out


def test_bias_grad_accumulates_in_float64(backend):
    dy = np.full((1 << 17, 3), 1e-8, dtype=np.float32)
    dy[0] = 1.0
    got = backend.bias_grad(dy)
    np.testing.assert_allclose(got, 1.0 + (dy.shape[0] - 1) * np.float64(np.float32(1e-8)),
                               rtol=1e-6)
    check_op_exact(backend, "bias_grad", [dy], dtype=np.float32)


# A rate just above a float32 value: comparing uniforms with float32(rate) differs.
TRICKY_RATE = 0.5 + 0.4 * 2.0 ** -24


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3, 0.5, 0.77, TRICKY_RATE])
@pytest.mark.parametrize("seed", [0, 1, 2**63 + 5, -3])
def test_dropout_forward_masks_identical(backend, dtype, rate, seed, rng):
    for shape in SHAPES + [(7,), (3, 4, 5)]:
        x = randn(rng, shape, dtype)
        want_out, want_mask = REFERENCE.dropout_forward(x.copy(), rate, seed)
        out, mask = backend.dropout_forward(x.copy(), rate, seed)
        helpers.assert_same_kind((out, mask), (want_out, want_mask), backend.name)
        np.testing.assert_array_equal(mask, want_mask, err_msg=f"{backend.name} mask {shape}")
        np.testing.assert_array_equal(out, want_out, err_msg=f"{backend.name} out {shape}")
    # caller buffers are filled and returned
    o, m = np.empty_like(x), np.empty_like(x)
    r = backend.dropout_forward(x, rate, seed, out=o, mask=m)
    assert r[0] is o and r[1] is m
    np.testing.assert_array_equal(m, want_mask)


def test_dropout_mask_pattern(backend, rng):
    """Same seed -> same units in every dtype; the kept fraction is 1 - rate."""
    x = np.ones((400, 250))
    _, m64 = backend.dropout_forward(x, TRICKY_RATE, 42)
    _, m32 = backend.dropout_forward(x.astype(np.float32), TRICKY_RATE, 42)
    np.testing.assert_array_equal(m64 != 0, m32 != 0)
    _, again = backend.dropout_forward(x, TRICKY_RATE, 42)
    np.testing.assert_array_equal(again, m64)
    _, other = backend.dropout_forward(x, TRICKY_RATE, 43)
    assert np.mean(other != m64) > 0.3
    kept = np.mean(m64 != 0)
    assert abs(kept - (1 - TRICKY_RATE)) < 0.01
    # the mask is splitmix_uniform(seed) >= rate, in C order
    np.testing.assert_array_equal(m64 != 0, splitmix_uniform(42, x.size).reshape(x.shape)
                                  >= TRICKY_RATE)


def test_dropout_backward(backend, dtype, rng):
    for shape in SHAPES + [(7,), (3, 4, 5)]:
        _, mask = REFERENCE.dropout_forward(np.ones(shape, dtype), 0.3, 5)
        dy = randn(rng, shape, dtype)
        check_op_exact(backend, "dropout_backward", [dy, mask], dtype=dtype)
    out = np.empty_like(dy)
    assert backend.dropout_backward(dy, mask, out=out) is out


def bn_params(rng, k, dtype):
    gamma = rng.uniform(0.5, 2.0, size=k).astype(dtype)
    beta = randn(rng, (k,), dtype, 1.0)
    mm = randn(rng, (k,), dtype, 1.0)
    mv = rng.uniform(0.5, 2.0, size=k).astype(dtype)
    return gamma, beta, mm, mv


@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("momentum,epsilon", [(0.99, 1e-3), (0.5, 1e-5)])
def test_batchnorm_forward(backend, dtype, training, momentum, epsilon, rng):
    for n, k in SHAPES:
        if training and n == 0:
            continue
        x = (randn(rng, (n, k), dtype) + 2.0).astype(dtype)
        gamma, beta, mm, mv = bn_params(rng, k, dtype)
        args = [x, gamma, beta, mm, mv, training]
        check_op_exact(backend, "batchnorm_forward", args,
                       {"momentum": momentum, "epsilon": epsilon}, dtype=dtype, inplace=(3, 4))
    out = np.empty_like(x)
    res = backend.batchnorm_forward(x, gamma, beta, mm, mv, training, out=out)
    assert res[0] is out


def test_batchnorm_moving_stats_in_place(backend, dtype, rng):
    x = randn(rng, (50, 7), dtype)
    gamma, beta, mm, mv = bn_params(rng, 7, dtype)
    mm0, mv0 = mm.copy(), mv.copy()
    backend.batchnorm_forward(x, gamma, beta, mm, mv, True, momentum=0.9)
    xd = x.astype(np.float64)
    assert_close(mm, 0.9 * mm0 + 0.1 * xd.mean(0), dtype)
    assert_close(mv, 0.9 * mv0 + 0.1 * xd.var(0), dtype)
    mm1, mv1 = mm.copy(), mv.copy()
    backend.batchnorm_forward(x, gamma, beta, mm, mv, False)
    np.testing.assert_array_equal(mm, mm1)  # inference leaves them alone
    np.testing.assert_array_equal(mv, mv1)


def test_batchnorm_statistics_accumulate_in_float64(backend, rng):
    """A large offset: one-pass float32 variance cancels catastrophically."""
    x = (3000.0 + rng.standard_normal((4096, 5))).astype(np.float32)
    gamma, beta, mm, mv = bn_params(rng, 5, np.float32)
    check_op_exact(backend, "batchnorm_forward", [x, gamma, beta, mm, mv, True],
                   dtype=np.float32, inplace=(3, 4))


def test_batchnorm_backward(backend, dtype, rng):
    for n, k in SHAPES:
        if n == 0:
            continue
        x = randn(rng, (n, k), dtype)
        gamma, beta, mm, mv = bn_params(rng, k, dtype)
        _, mean, inv_std = REFERENCE.batchnorm_forward(x, gamma, beta, mm, mv, True)
        dy = randn(rng, (n, k), dtype, 1.0)
        check_op_exact(backend, "batchnorm_backward", [dy, x, gamma, mean, inv_std],
                       dtype=dtype)
    bufs = (np.empty_like(x), np.empty_like(gamma), np.empty_like(gamma))
    res = backend.batchnorm_backward(dy, x, gamma, mean, inv_std, *bufs)
    assert all(r is b for r, b in zip(res, bufs))


# --------------------------------------------------------------------------
# optimizers: several consecutive steps, parameters and state compared each step
# --------------------------------------------------------------------------
PARAM_SHAPES = [(1,), (7,), (13, 17), (0,), (0, 3), (300, 301)]

OPTIMIZERS = {
    "sgd": ("sgd_update", [], {"learning_rate": 0.1}),
    "sgd_wd": ("sgd_update", [], {"learning_rate": 0.1, "weight_decay": 0.01}),
    "momentum": ("sgd_update", ["velocity"], {"learning_rate": 0.05, "momentum": 0.9}),
    "nesterov": ("sgd_update", ["velocity"], {"learning_rate": 0.05, "momentum": 0.9,
                                             "nesterov": True}),
    "momentum_wd": ("sgd_update", ["velocity"], {"learning_rate": 0.05, "momentum": 0.8,
                                                "nesterov": True, "weight_decay": 0.1}),
    "adam": ("adam_update", ["m", "v"], {"learning_rate": 0.01}),
    "adam_custom": ("adam_update", ["m", "v"], {"learning_rate": 0.003, "beta_1": 0.8,
                                               "beta_2": 0.95, "epsilon": 1e-4,
                                               "weight_decay": 0.05}),
    "rmsprop": ("rmsprop_update", ["ms"], {"learning_rate": 0.01}),
    "rmsprop_custom": ("rmsprop_update", ["ms"], {"learning_rate": 0.01, "rho": 0.7,
                                                  "epsilon": 1e-3, "weight_decay": 0.02}),
    "adagrad": ("adagrad_update", ["acc"], {"learning_rate": 0.1}),
    "adagrad_wd": ("adagrad_update", ["acc"], {"learning_rate": 0.1, "epsilon": 1e-2,
                                               "weight_decay": 0.01}),
}


def run_optimizer(be, op, param, states, grads, kw):
    """Apply len(grads) steps in place; yield after each step."""
    for t, g in enumerate(grads, start=1):
        args = [param, g, *states] + ([t] if op == "adam_update" else [])
        res = getattr(be, op)(*args, **kw)
        assert res is param
        yield t


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps(backend, dtype, name, rng):
    op, state_names, kw = OPTIMIZERS[name]
    for shape in PARAM_SHAPES:
        p0 = randn(rng, shape, dtype, 1.0)
        grads = [randn(rng, shape, dtype, 1.0) for _ in range(5)]
        if grads[0].size:
            grads[2].reshape(-1)[::3] = 0.0  # zero gradients (dead units)
        init = [np.abs(randn(rng, shape, dtype, 0.1)) if nm in ("v", "ms", "acc")
                else randn(rng, shape, dtype, 0.1) for nm in state_names]
        ref_p, got_p = p0.copy(), p0.copy()
        ref_s, got_s = [s.copy() for s in init], [s.copy() for s in init]
        steps = zip(run_optimizer(REFERENCE, op, ref_p, ref_s, grads, kw),
                    run_optimizer(backend, op, got_p, got_s, grads, kw))
        for t, _ in steps:
            what = f"{backend.name}.{name} {shape} step {t}"
            assert_close(got_p, ref_p, dtype, what=what + " param")
            for nm, g, r in zip(state_names, got_s, ref_s):
                assert g.dtype == dtype
                assert_close(g, r, dtype, what=f"{what} {nm}")


def test_optimizer_grad_noncontiguous_and_converted(backend, dtype, rng):
    for name, (op, state_names, kw) in OPTIMIZERS.items():
        p = randn(rng, (6, 5), dtype, 1.0)
        g = randn(rng, (6, 5), np.float64, 1.0)
        states = [np.abs(randn(rng, (6, 5), dtype, 0.1)) for _ in state_names]
        extra = [2] if op == "adam_update" else []
        for grad in (strided(g, "step"), strided(g, "T"), g.astype(np.float16),
                     np.rint(4 * g).astype(np.int32)):
            check_op_exact(backend, op, [p, grad, *states, *extra], kw, dtype=dtype,
                           inplace=tuple(range(2, 2 + len(states))) + (0,))


@pytest.mark.parametrize("op", ["adam", "rmsprop", "adagrad", "momentum"])
def test_float32_state_flushed_to_zero(backend, op):
    """State that would become subnormal is flushed to 0 (subnormals are ~38x slower)."""
    tiny = np.finfo(np.float32).tiny
    p = np.ones(64, np.float32)
    g = np.zeros(64, np.float32)
    if op == "adam":
        m = np.full(64, 1.05 * tiny, np.float32)    # * beta_1 -> subnormal
        v = np.full(64, 1.0005 * tiny, np.float32)  # * beta_2 -> subnormal
        backend.adam_update(p, g, m, v, 3)
        states = [m, v]
    elif op == "rmsprop":
        ms = np.full(64, 1.05 * tiny, np.float32)
        backend.rmsprop_update(p, g, ms, rho=0.9)
        states = [ms]
    elif op == "adagrad":
        acc = np.zeros(64, np.float32)
        g = np.full(64, 1e-20, np.float32)          # g*g = 1e-40 is subnormal
        backend.adagrad_update(p, g, acc)
        states = [acc]
    else:
        vel = np.full(64, 1.05 * tiny, np.float32)
        backend.sgd_update(p, g, vel, momentum=0.9)
        states = [vel]
    for s in states:
        assert s.dtype == np.float32
        assert np.all(s == 0.0), f"{backend.name}.{op}: state not flushed: {s[:3]}"
    assert np.all(np.isfinite(p))


def test_adam_state_decays_to_zero_over_steps(backend):
    """Dead units: many steps with zero gradient never leave subnormal moments."""
    p = np.ones(16, np.float32)
    m = np.full(16, 1e-30, np.float32)
    v = np.full(16, 1e-30, np.float32)
    g = np.zeros(16, np.float32)
    tiny = np.finfo(np.float32).tiny
    for t in range(1, 300):
        backend.adam_update(p, g, m, v, t)
        for s in (m, v):
            assert not np.any((s != 0) & (np.abs(s) < tiny)), f"subnormal at step {t}"
    assert np.all(m == 0)  # 0.9**t reached the subnormal range and was flushed


# --------------------------------------------------------------------------
# argument handling: non-contiguous inputs, conversions, errors
# --------------------------------------------------------------------------
class Case:
    """A typical call of one op: positional args, keyword args, which of them are
    inputs (converted / may be strided), which are state updated in place, and the
    output buffers (name -> (position or keyword, shape))."""

    def __init__(self, op, args, kwargs=None, inputs=(), kw_inputs=(), state=(), outs=None,
                 no_int=(), scale=None):
        self.op, self.args, self.kwargs = op, args, kwargs or {}
        self.inputs, self.kw_inputs, self.state = inputs, kw_inputs, state
        self.outs = outs or {}
        self.no_int = no_int  # inputs where integer values are meaningless
        self.scale = scale


def make_case(name, rng, dtype):
    r = lambda *s, sc=1.0: randn(rng, s, dtype, sc)  # noqa: E731
    n, k = 6, 5
    if name == "gemm":
        return Case("gemm", [r(n, 4), r(4, k)], {"bias": r(k), "activation": "relu"},
                    inputs=(0, 1), kw_inputs=("bias",), outs={"out": ("out", (n, k))})
    if name == "gemm_tt":
        return Case("gemm", [r(4, n), r(k, 4)], {"trans_a": True, "trans_b": True,
                                                 "activation": "tanh"},
                    inputs=(0, 1), outs={"out": ("out", (n, k))}, scale=10.0)
    if name == "activation_forward":
        return Case(name, [r(n, k), "elu"], inputs=(0,), outs={"out": ("out", (n, k))})
    if name == "activation_backward":
        x = r(n, k)
        return Case(name, [r(n, k), REFERENCE.activation_forward(x, "gelu"), "gelu"],
                    {"x": x}, inputs=(0, 1), kw_inputs=("x",), outs={"out": ("out", (n, k))})
    if name in ("softmax", "log_softmax"):
        return Case(name, [r(n, k)], inputs=(0,), outs={"out": ("out", (n, k))})
    if name == "softmax_cross_entropy":
        return Case(name, [r(n, k), labels_for(rng, n, k)],
                    {"sample_weight": weights_for(rng, n), "label_smoothing": 0.1},
                    inputs=(0,), kw_inputs=("sample_weight",), outs={"grad": ("grad", (n, k))})
    if name == "softmax_cross_entropy_dense":
        return Case("softmax_cross_entropy", [r(n, k), make_target(rng, n, k, "soft", dtype)],
                    inputs=(0, 1), outs={"grad": ("grad", (n, k))}, no_int=(1,))
    if name == "categorical_cross_entropy":
        return Case(name, [probs_for(rng, n, k, dtype), make_target(rng, n, k, "onehot", dtype)],
                    {"sample_weight": weights_for(rng, n)}, inputs=(0, 1),
                    kw_inputs=("sample_weight",), outs={"grad": ("grad", (n, k))}, no_int=(0,))
    if name == "sigmoid_binary_cross_entropy":
        return Case(name, [r(n, k, sc=3.0), binary_targets(rng, (n, k), False, dtype)],
                    inputs=(0, 1), outs={"grad": ("grad", (n, k))}, scale=10.0)
    if name == "binary_cross_entropy":
        return Case(name, [rng.uniform(0.05, 0.95, (n, k)).astype(dtype),
                           binary_targets(rng, (n, k), False, dtype)],
                    {"sample_weight": weights_for(rng, n)}, inputs=(0, 1),
                    kw_inputs=("sample_weight",), outs={"grad": ("grad", (n, k))}, no_int=(0,))
    if name in ("mean_squared_error", "mean_absolute_error"):
        return Case(name, [r(n, k, sc=3.0), r(n, k, sc=3.0)],
                    {"sample_weight": weights_for(rng, n)}, inputs=(0, 1),
                    kw_inputs=("sample_weight",), outs={"grad": ("grad", (n, k))})
    if name == "bias_grad":
        return Case(name, [r(n, k)], inputs=(0,), outs={"out": ("out", (k,))})
    if name == "dropout_forward":
        return Case(name, [r(n, k), 0.3, 11], inputs=(0,),
                    outs={"out": ("out", (n, k)), "mask": ("mask", (n, k))})
    if name == "dropout_backward":
        _, mask = REFERENCE.dropout_forward(np.ones((n, k), dtype), 0.4, 3)
        return Case(name, [r(n, k), mask], inputs=(0, 1), outs={"out": ("out", (n, k))})
    if name == "batchnorm_forward":
        gamma, beta, mm, mv = bn_params(rng, k, dtype)
        return Case(name, [r(n, k), gamma, beta, mm, mv, True], inputs=(0, 1, 2), state=(3, 4),
                    outs={"out": ("out", (n, k)), "moving_mean": (3, (k,)),
                          "moving_var": (4, (k,))})
    if name == "batchnorm_backward":
        x = r(n, k)
        gamma, beta, mm, mv = bn_params(rng, k, dtype)
        _, mean, inv_std = REFERENCE.batchnorm_forward(x, gamma, beta, mm, mv, True)
        return Case(name, [r(n, k), x, gamma, mean, inv_std], inputs=(0, 1, 2),
                    outs={"dx": ("dx", (n, k)), "dgamma": ("dgamma", (k,)),
                          "dbeta": ("dbeta", (k,))})
    if name == "sgd_update":
        return Case(name, [r(n, k), r(n, k), r(n, k)], {"momentum": 0.9, "nesterov": True},
                    inputs=(1,), state=(0, 2), outs={"param": (0, (n, k)),
                                                     "velocity": (2, (n, k))})
    if name == "adam_update":
        return Case(name, [r(n, k), r(n, k), r(n, k), np.abs(r(n, k)), 4], inputs=(1,),
                    state=(0, 2, 3), outs={"param": (0, (n, k)), "m": (2, (n, k)),
                                           "v": (3, (n, k))})
    if name == "rmsprop_update":
        return Case(name, [r(n, k), r(n, k), np.abs(r(n, k))], inputs=(1,), state=(0, 2),
                    outs={"param": (0, (n, k)), "ms": (2, (n, k))})
    if name == "adagrad_update":
        return Case(name, [r(n, k), r(n, k), np.abs(r(n, k))], inputs=(1,), state=(0, 2),
                    outs={"param": (0, (n, k)), "acc": (2, (n, k))})
    raise ValueError(name)


CASES = ["gemm", "gemm_tt", "activation_forward", "activation_backward", "softmax",
         "log_softmax", "softmax_cross_entropy", "softmax_cross_entropy_dense",
         "categorical_cross_entropy", "sigmoid_binary_cross_entropy", "binary_cross_entropy",
         "mean_squared_error", "mean_absolute_error", "bias_grad", "dropout_forward",
         "dropout_backward", "batchnorm_forward", "batchnorm_backward", "sgd_update",
         "adam_update", "rmsprop_update", "adagrad_update"]


def run_case(backend, case, args, kwargs, dtype, ref_args=None, ref_kwargs=None):
    """Run the case on ``backend`` with ``args`` and on the reference with
    ``ref_args`` (default: the same), compare results and in-place state."""
    ref_args = [a.copy() if isinstance(a, np.ndarray) else a
                for a in (args if ref_args is None else ref_args)]
    ref_kwargs = dict(kwargs if ref_kwargs is None else ref_kwargs)
    got_args = [a.copy() if isinstance(a, np.ndarray) and i in case.state else a
                for i, a in enumerate(args)]
    want = getattr(REFERENCE, case.op)(*ref_args, **ref_kwargs)
    got = getattr(backend, case.op)(*got_args, **kwargs)
    what = f"{backend.name}.{case.op}"
    helpers.assert_same_kind(got, want, what)
    if case.scale:
        assert_close_scaled(got, want, dtype, case.scale, what=what)
    else:
        assert_close(got, want, dtype, what=what)
    for i in case.state:
        assert_close(got_args[i], ref_args[i], dtype, what=f"{what} arg {i}")


@pytest.mark.parametrize("case_name", CASES)
@pytest.mark.parametrize("kind", ["step", "T"])
def test_noncontiguous_inputs(backend, dtype, case_name, kind, rng):
    case = make_case(case_name, rng, dtype)
    args = [strided(a, kind) if i in case.inputs else a for i, a in enumerate(case.args)]
    kwargs = {k: (strided(v, kind) if k in case.kw_inputs else v)
              for k, v in case.kwargs.items()}
    run_case(backend, case, args, kwargs, dtype, ref_args=case.args, ref_kwargs=case.kwargs)


def convert(a, how, dtype):
    if how == "int":
        return np.rint(a).astype(np.int64)
    if how == "float16":
        return a.astype(np.float16)
    if how == "other_float":
        return a.astype(np.float32 if dtype == np.float64 else np.float64)
    raise ValueError(how)


def conversion_targets(case, how, which):
    """Positional and keyword inputs to convert: the first input, or the others."""
    targets = [i for i in case.inputs if not (how == "int" and i in case.no_int)]
    targets = targets[:1] if which == "first" else targets[1:]
    return targets, (list(case.kw_inputs) if which == "rest" else [])


CONVERSIONS = [(c, how, which) for c in CASES for how in ("int", "float16", "other_float")
               for which in ("first", "rest")
               if any(conversion_targets(make_case(c, np.random.default_rng(0), np.dtype(
                   np.float64)), how, which))]


@pytest.mark.parametrize("case_name,how,which", CONVERSIONS)
def test_converted_inputs(backend, dtype, case_name, how, which, rng):
    """int/float16 inputs are converted (float64 working dtype when first); a second
    input of the other float type is converted to the first input's dtype."""
    case = make_case(case_name, rng, dtype)
    targets, kw_targets = conversion_targets(case, how, which)
    args = [convert(a, how, dtype) if i in targets else a for i, a in enumerate(case.args)]
    if which == "first" and 0 in targets:  # state arrays follow the new working dtype
        work = np.float64 if how != "other_float" else args[0].dtype
        args = [a.astype(work) if i in case.state else a for i, a in enumerate(args)]
    kwargs = {k: (convert(v, how, dtype) if k in kw_targets else v)
              for k, v in case.kwargs.items()}
    run_case(backend, case, args, kwargs, dtype if which == "rest" else np.float32)


@pytest.mark.parametrize("case_name", CASES)
def test_non_numeric_input_raises_type_error(backend, case_name, rng):
    case = make_case(case_name, rng, np.float64)
    for i in case.inputs:
        args = list(case.args)
        args[i] = np.full(np.shape(args[i]), "x")
        with pytest.raises(TypeError):
            getattr(backend, case.op)(*args, **case.kwargs)
    if case.op in ("softmax_cross_entropy", "categorical_cross_entropy"):
        args = list(case.args)
        args[1] = np.array(["a"] * case.args[0].shape[0])
        with pytest.raises(TypeError):
            getattr(backend, case.op)(*args, **case.kwargs)
    if case.op.endswith("_update"):  # the parameter must be a float ndarray
        args = list(case.args)
        args[0] = np.rint(args[0]).astype(np.int64)
        with pytest.raises(TypeError, match="param"):
            getattr(backend, case.op)(*args, **case.kwargs)


def bad_buffers(shape, dtype):
    other = np.float32 if dtype == np.float64 else np.float64
    ro = np.zeros(shape, dtype)
    ro.setflags(write=False)
    wrong_shape = np.zeros((shape[0] + 1,) + tuple(shape[1:]), dtype)
    return {
        "shape": wrong_shape,
        "dtype": np.zeros(shape, other),
        "noncontiguous": strided(np.zeros(shape, dtype), "step"),
        "readonly": ro,
    }


@pytest.mark.parametrize("case_name", CASES)
def test_bad_out_raises_value_error_naming_it(backend, dtype, case_name, rng):
    case = make_case(case_name, rng, dtype)
    assert case.outs
    for name, (where, shape) in case.outs.items():
        for problem, buf in bad_buffers(shape, dtype).items():
            if where == 0 and problem in ("dtype", "shape"):
                continue  # the parameter defines shape and dtype; see the state arrays
            args, kwargs = list(case.args), dict(case.kwargs)
            args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            if isinstance(where, int):
                args[where] = buf
            else:
                kwargs[where] = buf
            with pytest.raises(ValueError, match=rf"\b{name}\b") as info:
                getattr(backend, case.op)(*args, **kwargs)
            assert name in str(info.value), (problem, str(info.value))
        # not an array at all
        args, kwargs = list(case.args), dict(case.kwargs)
        lst = np.zeros(shape, dtype).tolist()
        if isinstance(where, int):
            args[where] = lst
        else:
            kwargs[where] = lst
        with pytest.raises(TypeError, match=rf"\b{name}\b"):
            getattr(backend, case.op)(*args, **kwargs)


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "categorical_cross_entropy"])
def test_labels_out_of_range(backend, dtype, op, rng):
    z = randn(rng, (4, 3), dtype)
    if op == "categorical_cross_entropy":
        z = np.abs(z)
    for bad in ([0, 1, 3, 0], [0, -1, 2, 1], [0, 1, 2, 1000]):
        with pytest.raises(ValueError, match="target"):
            getattr(backend, op)(z, np.array(bad))
    with pytest.raises(ValueError, match="target"):
        getattr(backend, op)(z, np.array([0.0, 1.5, 2.0, 1.0]))  # non-integer float labels
    with pytest.raises(ValueError, match="target"):
        getattr(backend, op)(z, np.array([0, 1, 2]))  # wrong length
    with pytest.raises(ValueError, match="target"):
        getattr(backend, op)(z, np.zeros((4, 2)))  # dense of the wrong width
    with pytest.raises(ValueError, match="target"):
        getattr(backend, op)(np.zeros((3, 0), dtype), np.array([0, 0, 0]))  # no classes


def test_other_errors(backend, dtype, rng):
    x = randn(rng, (4, 3), dtype)
    with pytest.raises(ValueError, match="inner"):
        backend.gemm(x, randn(rng, (4, 3), dtype))
    with pytest.raises(ValueError):
        backend.gemm(x[0], randn(rng, (3, 2), dtype))
    with pytest.raises(ValueError, match="beta"):
        backend.gemm(x, randn(rng, (3, 2), dtype), beta=1.0)
    with pytest.raises(ValueError, match="bias"):
        backend.gemm(x, randn(rng, (3, 2), dtype), bias=np.zeros(3, dtype))
    with pytest.raises(ValueError, match="nope"):
        backend.activation_forward(x, "nope")
    with pytest.raises(ValueError, match="nope"):
        backend.activation_backward(x, x, "nope")
    with pytest.raises(ValueError, match="nope"):
        backend.gemm(x, randn(rng, (3, 2), dtype), activation="nope")
    with pytest.raises(ValueError, match="gelu"):
        backend.activation_backward(x, x, "gelu")
    with pytest.raises(ValueError):
        backend.activation_backward(x, x[:2], "relu")
    with pytest.raises(ValueError, match="rate"):
        backend.dropout_forward(x, 1.0, 0)
    with pytest.raises(ValueError, match="rate"):
        backend.dropout_forward(x, -0.1, 0)
    with pytest.raises(ValueError):
        backend.dropout_backward(x, x[:2])
    p = x.copy()
    with pytest.raises(ValueError, match="step"):
        backend.adam_update(p, x, np.zeros_like(x), np.zeros_like(x), 0)
    with pytest.raises(ValueError, match="velocity"):
        backend.sgd_update(p, x, momentum=0.9)
    with pytest.raises(ValueError, match="grad"):
        backend.sgd_update(p, x[:2])
    gamma, beta, mm, mv = bn_params(rng, 3, dtype)
    with pytest.raises(ValueError):
        backend.batchnorm_forward(np.zeros((0, 3), dtype), gamma, beta, mm, mv, True)
    with pytest.raises(ValueError, match="gamma"):
        backend.batchnorm_forward(x, gamma[:2], beta, mm, mv, True)
    with pytest.raises(ValueError, match="sample_weight"):
        backend.mean_squared_error(x, x, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="target"):
        backend.sigmoid_binary_cross_entropy(x, x[:, :2])


# --------------------------------------------------------------------------
# extreme values: +-1e3 logits stay finite
# --------------------------------------------------------------------------
def extreme_logits(rng, dtype):
    z = rng.choice([-1e3, 1e3], size=(9, 6)) + rng.uniform(-1, 1, size=(9, 6))
    z[0] = 1e3
    z[1] = -1e3
    z[2] = [1e3, -1e3, 0.0, 999.0, -999.0, 1.0]
    return z.astype(dtype)


def test_extreme_logits_losses(backend, dtype, rng):
    z = extreme_logits(rng, dtype)
    n, k = z.shape
    scale = 1e3
    cases = [
        ("softmax_cross_entropy", [z, labels_for(rng, n, k)], {}),
        ("softmax_cross_entropy", [z, make_target(rng, n, k, "soft", dtype)], {}),
        ("softmax_cross_entropy", [z, labels_for(rng, n, k)],
         {"label_smoothing": 0.2, "sample_weight": weights_for(rng, n)}),
        ("sigmoid_binary_cross_entropy", [z, binary_targets(rng, z.shape, False, dtype)], {}),
        ("sigmoid_binary_cross_entropy", [z, binary_targets(rng, z.shape, True, dtype)], {}),
    ]
    for op, args, kw in cases:
        (loss, grad), _ = check_op_exact(backend, op, args, kw, dtype=dtype, scale=scale)
        assert math.isfinite(loss) and np.all(np.isfinite(grad)), op


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "sigmoid", "tanh", "softplus"])
def test_extreme_logits_activations(backend, dtype, op, rng):
    z = extreme_logits(rng, dtype)
    if op in ("softmax", "log_softmax"):
        out, _ = check_op_exact(backend, op, [z], dtype=dtype)
        assert np.all(np.isfinite(out))
        return
    y, _ = check_op_exact(backend, "activation_forward", [z, op], dtype=dtype)
    assert np.all(np.isfinite(y))
    dy = np.ones_like(z)
    g, _ = check_op_exact(backend, "activation_backward", [dy, y, op], {"x": z}, dtype=dtype)
    assert np.all(np.isfinite(g))
    _, sm = check_op_exact(backend, "activation_backward",
                           [dy, REFERENCE.softmax(z), "softmax"], dtype=dtype)
    assert np.all(np.isfinite(sm))


# --------------------------------------------------------------------------
# the suite can fail: deliberately broken backends are caught by the tests above
# --------------------------------------------------------------------------
F64, F32 = np.dtype(np.float64), np.dtype(np.float32)


def _rng():
    return np.random.default_rng(1234)


CATCHES = [
    (helpers.BrokenReluBackward,
     lambda be: test_activation_backward(be, F64, "relu", _rng())),
    (helpers.BrokenUnshiftedSoftmax,
     lambda be: test_extreme_logits_activations(be, F32, "softmax", _rng())),
    (helpers.BrokenFloat32BiasGrad, lambda be: test_bias_grad_accumulates_in_float64(be)),
    (helpers.BrokenDropoutRng,
     lambda be: test_dropout_forward_masks_identical(be, F32, 0.3, 1, _rng())),
    (helpers.BrokenAdamNoFlush, lambda be: test_float32_state_flushed_to_zero(be, "adam")),
    (helpers.BrokenStrideBlindGemm,
     lambda be: test_noncontiguous_inputs(be, F64, "gemm", "T", _rng())),
    (helpers.BrokenLabelCheck,
     lambda be: test_labels_out_of_range(be, F64, "softmax_cross_entropy", _rng())),
    (helpers.BrokenOutCheck,
     lambda be: test_bad_out_raises_value_error_naming_it(be, F64, "activation_forward",
                                                          _rng())),
    (helpers.BrokenGeluGrad, lambda be: test_activation_backward(be, F64, "gelu", _rng())),
    (helpers.BrokenBatchnormVariance,
     lambda be: test_batchnorm_statistics_accumulate_in_float64(be, _rng())),
]


@pytest.mark.parametrize("broken,run", CATCHES, ids=[c[0].__name__ for c in CATCHES])
def test_suite_catches_broken_backend(broken, run):
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        run(broken())


@pytest.mark.parametrize("broken,run", CATCHES, ids=[c[0].__name__ for c in CATCHES])
def test_same_checks_pass_on_reference(broken, run):
    """The tests used above pass on the reference itself (they fail for the bug)."""
    from pynn.backends.base import Backend
    run(Backend())
