"""Focused checks of the ``numba`` backend against the NumPy reference.

The cross-backend parity suite lives in ``test_backend_ops.py``; this file
covers every op of ``NumbaBackend`` on both dtypes and awkward shapes, the
argument checking, and the lazy-compilation / on-disk-cache guarantees.
"""
import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import PYNN_PATH

pytest.importorskip("numba")

import pynn.backends as B  # noqa: E402
from pynn.backends.base import (ACTIVATIONS, ELEMENTWISE, Backend,  # noqa: E402
                                splitmix_uniform)

from helpers import REFERENCE, assert_close, check_op  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = [(0, 5), (1, 1), (7, 13), (4, 1)]


@pytest.fixture(scope="module")
def nb():
    return B.get("numba")


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# --------------------------------------------------------------------------
# the contract
# --------------------------------------------------------------------------
def test_overrides_every_hot_op_with_same_signature(nb):
    hot = ["gemm", "activation_forward", "activation_backward", "softmax", "log_softmax",
           "softmax_cross_entropy", "categorical_cross_entropy",
           "sigmoid_binary_cross_entropy", "binary_cross_entropy", "mean_squared_error",
           "mean_absolute_error", "bias_grad", "dropout_forward", "dropout_backward",
           "batchnorm_forward", "batchnorm_backward", "sgd_update", "adam_update",
           "rmsprop_update", "adagrad_update"]
    cls = type(nb)
    assert nb.name == "numba"
    for op in hot:
        assert getattr(cls, op) is not getattr(Backend, op), f"{op} not overridden"
        assert inspect.signature(getattr(cls, op)) == inspect.signature(getattr(Backend, op)), op


# --------------------------------------------------------------------------
# gemm
# --------------------------------------------------------------------------
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("mkn", [(5, 7, 3), (1, 4, 1), (0, 3, 2), (3, 0, 2), (2, 3, 0), (1, 1, 6)])
def test_gemm_trans(nb, dtype, rng, trans_a, trans_b, mkn):
    m, k, n = mkn
    a = rand(rng, (k, m) if trans_a else (m, k), dtype)
    b = rand(rng, (n, k) if trans_b else (k, n), dtype)
    check_op(nb, "gemm", [a, b], dict(trans_a=trans_a, trans_b=trans_b), dtype=dtype)


@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5])
@pytest.mark.parametrize("alpha", [1.0, 2.5])
@pytest.mark.parametrize("activation", ["linear", "relu", "gelu", "softmax", "elu"])
def test_gemm_epilogue(nb, dtype, rng, alpha, beta, activation):
    a, b = rand(rng, (6, 9), dtype), rand(rng, (5, 9), dtype)
    out, bias = rand(rng, (6, 5), dtype), rand(rng, 5, dtype)
    check_op(nb, "gemm", [a, b], dict(out=out, trans_b=True, alpha=alpha, beta=beta,
                                      bias=bias, activation=activation), dtype=dtype)
    check_op(nb, "gemm", [a, b], dict(out=out, trans_b=True, alpha=alpha, beta=beta,
                                      activation=activation, act_alpha=0.3), dtype=dtype)


def test_gemm_noncontiguous_and_transposed_views(nb, dtype, rng):
    base = rand(rng, (8, 12), dtype)
    w = rand(rng, (6, 8), dtype)
    # strided slice (copied), F-ordered view (used through its transpose), int input
    check_op(nb, "gemm", [base[:, ::2], rand(rng, (6, 4), dtype)], dtype=dtype)
    check_op(nb, "gemm", [base.T, w.T], dict(bias=rand(rng, 6, dtype)), dtype=dtype)
    v = rand(rng, (12, 5), dtype)
    check_op(nb, "gemm", [base.T, v.T], dict(trans_a=True, trans_b=True), dtype=dtype)
    check_op(nb, "gemm", [np.arange(6).reshape(2, 3), np.ones((3, 2), dtype)],
             dtype=np.float64)
    # out aliasing an operand
    sq = rand(rng, (5, 5), dtype)
    want = REFERENCE.gemm(sq.copy(), sq.copy(), trans_b=True, activation="tanh")
    got = nb.gemm(sq, sq, out=sq, trans_b=True, activation="tanh")
    assert got is sq
    assert_close(got, want, dtype)


def test_gemm_bad_arguments(nb, rng):
    a, b = rand(rng, (3, 4), np.float32), rand(rng, (4, 5), np.float32)
    with pytest.raises(ValueError, match="inner dimensions"):
        nb.gemm(a, a)
    with pytest.raises(ValueError, match="beta"):
        nb.gemm(a, b, beta=1.0)
    with pytest.raises(ValueError, match="bias"):
        nb.gemm(a, b, bias=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="activation"):
        nb.gemm(a, b, activation="swish")
    with pytest.raises(ValueError, match="2-D"):
        nb.gemm(a[0], b)
    with pytest.raises(TypeError):
        nb.gemm(np.array([["x"]]), b)
    _check_bad_out(lambda out: nb.gemm(a, b, out=out), (3, 5), np.float32)


def _check_bad_out(call, shape, dtype, name="out"):
    """Wrong shape / dtype / layout / read-only / non-array buffers are rejected."""
    bad_dtype = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    wide = np.zeros(shape[:-1] + (2 * shape[-1] + 1,), dtype)
    readonly = np.zeros(shape, dtype)
    readonly.flags.writeable = False
    for out in (np.zeros(shape[:-1] + (shape[-1] + 1,), dtype), np.zeros(shape, bad_dtype),
                wide[..., ::2][..., : shape[-1]], readonly):
        if out.shape == shape and out.flags.c_contiguous and out.dtype == dtype \
                and out.flags.writeable:
            continue  # a degenerate stride pattern that is contiguous after all
        with pytest.raises(ValueError, match=name):
            call(out)
    with pytest.raises(TypeError, match=name):
        call(np.zeros(shape, dtype).tolist())


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------
@pytest.mark.parametrize("activation", [a for a in ACTIVATIONS if a != "glu"])
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_forward_backward(nb, dtype, rng, activation, shape):
    x = rand(rng, shape, dtype, 3.0)
    if x.size:
        x.flat[0] = 30.0
        x.flat[-1] = -30.0
    check_op(nb, "activation_forward", [x, activation], dtype=dtype)
    y = REFERENCE.activation_forward(x, activation)
    dy = rand(rng, shape, dtype)
    check_op(nb, "activation_backward", [dy, y, activation], dict(x=x), dtype=dtype)
    if activation in ("leaky_relu", "elu"):
        check_op(nb, "activation_forward", [x, activation], dict(alpha=0.7), dtype=dtype)
        check_op(nb, "activation_backward", [dy, y, activation], dict(alpha=0.7), dtype=dtype)


@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_activation_extremes_nd_and_inplace(nb, dtype, activation):
    x = np.array([[-1e3, -20.0, -1.0, -0.0, 0.0, 1e-3, 1.0, 20.0, 1e3]], dtype)
    check_op(nb, "activation_forward", [x, activation], dtype=dtype)
    x3 = np.linspace(-4, 4, 2 * 3 * 5).reshape(2, 3, 5).astype(dtype)
    check_op(nb, "activation_forward", [x3, activation], dtype=dtype)
    y3 = REFERENCE.activation_forward(x3, activation)
    check_op(nb, "activation_backward", [np.ones_like(x3), y3, activation], dict(x=x3),
             dtype=dtype)
    # out may be the input itself
    want = REFERENCE.activation_forward(x3, activation)
    buf = x3.copy()
    assert nb.activation_forward(buf, activation, out=buf) is buf
    assert_close(buf, want, dtype)
    dy = np.linspace(1, 2, x3.size).reshape(x3.shape).astype(dtype)
    want = REFERENCE.activation_backward(dy, y3, activation, x=x3)
    assert nb.activation_backward(dy, y3, activation, x=x3, out=dy) is dy
    assert_close(dy, want, dtype)
    # NaN propagates (fastmath without nnan)
    xn = np.array([[np.nan, 1.0]], dtype)
    assert np.isnan(nb.activation_forward(xn, activation)[0, 0])


def test_activation_bad_arguments(nb, rng):
    x = rand(rng, (3, 4), np.float32)
    with pytest.raises(ValueError, match="gelu needs"):
        nb.activation_backward(x, x, "gelu")
    with pytest.raises(ValueError, match="differ"):
        nb.activation_backward(x, x[:2], "relu")
    with pytest.raises(ValueError, match="2-D"):
        nb.activation_forward(x[0], "softmax")
    with pytest.raises(ValueError, match="Unknown activation"):
        nb.activation_forward(x, "nope")
    with pytest.raises(TypeError):
        nb.activation_forward(np.array(["a"]), "relu")
    _check_bad_out(lambda out: nb.activation_forward(x, "tanh", out=out), (3, 4), np.float32)
    _check_bad_out(lambda out: nb.activation_backward(x, x, "gelu", x=x, out=out), (3, 4),
                   np.float32)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_ops(nb, dtype, rng, op, shape):
    check_op(nb, op, [rand(rng, shape, dtype, 3.0)], dtype=dtype)
    check_op(nb, op, [rand(rng, shape, dtype, 1e3)], dtype=dtype)


def test_softmax_special_values(nb, dtype):
    x = np.array([[1e3, -1e3, 0.0], [np.nan, 1.0, 2.0], [-np.inf, 0.0, 1.0]], dtype)
    for op in ("softmax", "log_softmax"):
        check_op(nb, op, [x], dtype=dtype)
    _check_bad_out(lambda out: nb.softmax(x, out=out), (3, 3), dtype)


# --------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------
def _loss_cases(rng, n, k, dtype, scale=2.0):
    logits = rand(rng, (n, k), dtype, scale)
    labels = rng.integers(0, k, n)
    dense = rng.random((n, k)).astype(dtype)
    dense /= np.maximum(dense.sum(axis=1, keepdims=True), 1e-6)
    w = rng.random(n) + 0.5
    return logits, labels, dense, w


@pytest.mark.parametrize("nk", [(0, 4), (1, 1), (7, 5), (3, 11)])
@pytest.mark.parametrize("scale", [2.0, 1e3])
def test_softmax_cross_entropy(nb, dtype, rng, nk, scale):
    z, labels, dense, w = _loss_cases(rng, *nk, dtype, scale)
    for target in (labels, labels.reshape(-1, 1) if nk[1] != 1 else labels, dense):
        check_op(nb, "softmax_cross_entropy", [z, target], dtype=dtype)
        check_op(nb, "softmax_cross_entropy", [z, target],
                 dict(sample_weight=w, label_smoothing=0.1), dtype=dtype)


@pytest.mark.parametrize("nk", [(0, 4), (1, 1), (7, 5), (3, 11)])
def test_categorical_cross_entropy(nb, dtype, rng, nk):
    n, k = nk
    z, labels, dense, w = _loss_cases(rng, n, k, dtype)
    probs = REFERENCE.softmax(z)
    if probs.size > 2:
        probs[0, 0] = 0.0          # clipped below
        probs[-1, :] = 0.0
        probs[-1, -1] = 1.0        # clipped above
    for target in (labels, dense):
        check_op(nb, "categorical_cross_entropy", [probs, target], dtype=dtype)
        check_op(nb, "categorical_cross_entropy", [probs, target],
                 dict(sample_weight=w.reshape(-1, 1), epsilon=1e-4), dtype=dtype)


@pytest.mark.parametrize("op", ["sigmoid_binary_cross_entropy", "binary_cross_entropy",
                                "mean_squared_error", "mean_absolute_error"])
@pytest.mark.parametrize("nk", [(0, 3), (1, 1), (7, 5), (2, 9)])
def test_elementwise_losses(nb, dtype, rng, op, nk):
    n, k = nk
    t = (rng.random((n, k)) > 0.5).astype(dtype)
    w = rng.random(n) + 0.5
    if op == "sigmoid_binary_cross_entropy":
        preds = [rand(rng, (n, k), dtype, 3.0), rand(rng, (n, k), dtype, 1e3)]
    elif op == "binary_cross_entropy":
        p = rng.random((n, k)).astype(dtype)
        if p.size > 1:
            p.flat[0], p.flat[-1] = 0.0, 1.0
        preds = [p]
    else:
        p = rand(rng, (n, k), dtype)
        if p.size:
            p.flat[0] = t.flat[0]  # zero difference: sign 0
        preds = [p]
    for p in preds:
        check_op(nb, op, [p, t], dtype=dtype)
        check_op(nb, op, [p, t], dict(sample_weight=w), dtype=dtype)


def test_loss_bad_arguments(nb, rng):
    z = rand(rng, (4, 3), np.float32)
    with pytest.raises(ValueError, match="labels must be in"):
        nb.softmax_cross_entropy(z, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="target"):
        nb.softmax_cross_entropy(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="sample_weight"):
        nb.mean_squared_error(z, z, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="target"):
        nb.binary_cross_entropy(z, z[:, :2])
    for op in ("softmax_cross_entropy", "categorical_cross_entropy",
               "sigmoid_binary_cross_entropy", "binary_cross_entropy",
               "mean_squared_error", "mean_absolute_error"):
        tgt = np.array([0, 1, 2, 0]) if "categorical" in op or "softmax" in op else z
        _check_bad_out(lambda g, op=op, tgt=tgt: getattr(nb, op)(z, tgt, grad=g), (4, 3),
                       np.float32, "grad")


# --------------------------------------------------------------------------
# reductions, dropout, batch norm
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES + [(300, 7)])
def test_bias_grad(nb, dtype, rng, shape):
    check_op(nb, "bias_grad", [rand(rng, shape, dtype, 100.0)], dtype=dtype)


@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (5, 7), (2, 3, 4)])
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.9])
def test_dropout_bit_exact(nb, dtype, rng, shape, rate):
    x = rand(rng, shape, dtype)
    for seed in (0, 12345, 2**63 + 7, -1):
        got_out, got_mask = nb.dropout_forward(x, rate, seed)
        want_out, want_mask = REFERENCE.dropout_forward(x, rate, seed)
        assert got_mask.dtype == dtype and np.array_equal(got_mask, want_mask)
        assert np.array_equal(got_out, want_out)
    u = splitmix_uniform(99, x.size).reshape(x.shape)
    assert np.array_equal(nb.dropout_forward(x, rate, 99)[1] != 0, u >= rate)
    dy = rand(rng, shape, dtype)
    assert np.array_equal(nb.dropout_backward(dy, got_mask),
                          REFERENCE.dropout_backward(dy, want_mask))


def test_dropout_bad_arguments(nb, rng):
    x = rand(rng, (3, 4), np.float32)
    for rate in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            nb.dropout_forward(x, rate, 0)
    with pytest.raises(ValueError, match="differ"):
        nb.dropout_backward(x, x[:2])
    _check_bad_out(lambda m: nb.dropout_forward(x, 0.5, 1, mask=m), (3, 4), np.float32, "mask")
    _check_bad_out(lambda o: nb.dropout_backward(x, x, out=o), (3, 4), np.float32)


@pytest.mark.parametrize("shape", [(0, 4), (1, 1), (9, 6), (64, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm(nb, dtype, rng, shape, training):
    n, k = shape
    x = rand(rng, shape, dtype, 3.0) + 5.0
    gamma, beta = rand(rng, k, dtype), rand(rng, k, dtype)
    mm, mv = rand(rng, k, dtype), (rng.random(k) + 0.5).astype(dtype)
    if training and n == 0:
        with pytest.raises(ValueError, match="at least one"):
            nb.batchnorm_forward(x, gamma, beta, mm, mv, True)
        return
    check_op(nb, "batchnorm_forward", [x, gamma, beta, mm, mv, training],
             dict(momentum=0.9, epsilon=1e-3), dtype=dtype, inplace=(3, 4))
    if n:
        _, mean, inv_std = REFERENCE.batchnorm_forward(x, gamma, beta, mm.copy(), mv.copy(), True)
    else:
        mean, inv_std = mm.astype(np.float64), 1.0 / np.sqrt(mv.astype(np.float64))
    dy = rand(rng, shape, dtype)
    check_op(nb, "batchnorm_backward", [dy, x, gamma, mean, inv_std], dtype=dtype)


def test_batchnorm_bad_arguments(nb, rng):
    x = rand(rng, (5, 3), np.float32)
    g = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="gamma"):
        nb.batchnorm_forward(x, np.ones(2, np.float32), g, g.copy(), g.copy(), True)
    with pytest.raises(ValueError, match="moving_mean"):
        nb.batchnorm_forward(x, g, g, np.ones(3), g.copy(), True)
    with pytest.raises(ValueError, match="inv_std"):
        nb.batchnorm_backward(x, x, g, np.zeros(3), np.ones(4))
    _check_bad_out(lambda d: nb.batchnorm_backward(x, x, g, np.zeros(3), np.ones(3), dx=d),
                   (5, 3), np.float32, "dx")


# --------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------
def _opt_case(rng, dtype, shape=(6, 5)):
    p, g = rand(rng, shape, dtype), rand(rng, shape, dtype)
    s1, s2 = rand(rng, shape, dtype) * 0.1, (rng.random(shape) * 0.1).astype(dtype)
    return p, g, s1, s2


@pytest.mark.parametrize("shape", [(0,), (1,), (6, 5), (2, 3, 4)])
def test_optimizers(nb, dtype, rng, shape):
    p, g, s1, s2 = _opt_case(rng, dtype, shape)
    for kw in (dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True, weight_decay=0.1),
               dict(learning_rate=0.5, weight_decay=0.01)):
        check_op(nb, "sgd_update", [p, g, s1], kw, dtype=dtype, inplace=(0, 2))
    for step in (1, 10):
        check_op(nb, "adam_update", [p, g, s1, s2, step], dtype=dtype, inplace=(0, 2, 3))
        check_op(nb, "adam_update", [p, g, s1, s2, step],
                 dict(learning_rate=0.01, beta_1=0.8, weight_decay=0.05), dtype=dtype,
                 inplace=(0, 2, 3))
    check_op(nb, "rmsprop_update", [p, g, s2], dtype=dtype, inplace=(0, 2))
    check_op(nb, "rmsprop_update", [p, g, s2], dict(rho=0.5, weight_decay=0.1), dtype=dtype,
             inplace=(0, 2))
    check_op(nb, "adagrad_update", [p, g, s2], dtype=dtype, inplace=(0, 2))
    check_op(nb, "adagrad_update", [p, g, s2], dict(learning_rate=0.1, weight_decay=0.1),
             dtype=dtype, inplace=(0, 2))


def test_optimizer_denormal_flush(nb, dtype):
    tiny = float(np.finfo(np.float32).tiny)
    vals = np.array([3e-39, -3e-39, 2 * tiny, 1e-3, 0.0, 5 * tiny], dtype)
    zero_g = np.zeros_like(vals)
    cases = [("sgd_update", (vals, dict(momentum=0.5))),
             ("rmsprop_update", (np.abs(vals), {})), ("adagrad_update", (np.abs(vals), {}))]
    for op, (state, kw) in cases:
        args = [np.ones_like(vals), zero_g, state]
        got, _ = check_op(nb, op, args, kw, dtype=dtype, inplace=(0, 2))
        rs, gs = state.copy(), state.copy()
        getattr(REFERENCE, op)(np.ones_like(vals), zero_g, rs, **kw)
        getattr(nb, op)(np.ones_like(vals), zero_g, gs, **kw)
        assert np.array_equal(rs == 0, gs == 0), op
        if dtype == np.float32:
            assert np.all((np.abs(gs) >= tiny) | (gs == 0)), op
    m, v = vals.copy(), np.abs(vals)
    rm, rv = m.copy(), v.copy()
    nb.adam_update(np.ones_like(vals), zero_g, m, v, 3)
    REFERENCE.adam_update(np.ones_like(vals), zero_g, rm, rv, 3)
    assert np.array_equal(m == 0, rm == 0) and np.array_equal(v == 0, rv == 0)


def test_optimizer_bad_arguments(nb, rng):
    p, g, s1, s2 = _opt_case(rng, np.float32)
    with pytest.raises(ValueError, match="velocity"):
        nb.sgd_update(p, g, momentum=0.9)
    with pytest.raises(ValueError, match="step"):
        nb.adam_update(p, g, s1, s2, 0)
    with pytest.raises(ValueError, match="grad"):
        nb.adagrad_update(p, g[:2], s2)
    with pytest.raises(ValueError, match="ms"):
        nb.rmsprop_update(p, g, s2.astype(np.float64))
    with pytest.raises(ValueError, match="acc"):
        nb.adagrad_update(p, g, np.zeros((6, 10), np.float32)[:, ::2])
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param"):
        nb.sgd_update(ro, g)
    with pytest.raises(TypeError, match="param"):
        nb.sgd_update(p.tolist(), g)


# --------------------------------------------------------------------------
# lazy compilation and the on-disk cache
# --------------------------------------------------------------------------
def _run(code, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir),
               PYTHONPATH=PYNN_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=PYNN_PATH,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_import_compiles_nothing(tmp_path):
    out = _run("""
        import sys
        import pynn
        assert "numba" not in sys.modules, "import pynn must not import numba"
        import pynn.backends.numba_backend as nbm
        from pynn.backends import _numba_kernels as K
        be = pynn.backends.get("numba")
        kernels = K.KERNELS + K.HELPERS
        print(len(kernels), sum(len(k.signatures) for k in kernels),
              sum(len(k.overloads) for k in kernels))
    """, tmp_path)
    n, sigs, overloads = map(int, out.split())
    assert n >= 20 and sigs == 0 and overloads == 0
    assert not any(tmp_path.rglob("*.nbi")), "nothing may be written to the cache on import"
    assert not any(tmp_path.rglob("pynn_generated_*")), "no step is generated on import"


def test_second_process_hits_cache(tmp_path):
    code = """
        import numpy as np
        import pynn.backends as B
        from pynn.backends import _numba_codegen as G
        be = B.get("numba")
        a = np.ones((4, 3), np.float32)
        be.gemm(a, a, trans_b=True, bias=np.ones(4, np.float32), activation="relu")
        st = G.gemm(False, True, 1).stats
        print(sum(st.cache_hits.values()), sum(st.cache_misses.values()))
    """
    hits, misses = map(int, _run(code, tmp_path).split())
    assert (hits, misses) == (0, 1)
    assert any(tmp_path.rglob("*.nbi"))
    hits, misses = map(int, _run(code, tmp_path).split())
    assert (hits, misses) == (1, 0)


# --------------------------------------------------------------------------
# the fused steps generated per set of activations (pynn.backends._numba_codegen)
# --------------------------------------------------------------------------
_STEP_CALL = """
    import numpy as np
    import pynn.backends as B
    from pynn.backends import _numba_codegen as G
    be = B.get("numba")
    rng = np.random.default_rng(0)
    ks = [rng.standard_normal(s).astype(np.float32) for s in [(5, 4), (4, 3)]]
    bs = [np.zeros(3 + (i == 0), np.float32) for i in range(2)]
    outs = [np.empty((6, k.shape[1]), np.float32) for k in ks]
    deltas = [np.empty_like(o) for o in outs]
    dks = [np.empty_like(k) for k in ks]
    dbs = [np.empty_like(b) for b in bs]
    x = rng.random((6, 5)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    loss = be.dense_stack_forward_backward(x, y, ks, bs, ["relu", "softmax"],
                                           "softmax_cross_entropy", outs, deltas, dks, dbs)
    st = G.stack_step([1, 0], 0, 0, labels=True, biases="all").stats
    print(sum(st.cache_hits.values()), sum(st.cache_misses.values()), repr(loss))
"""


def test_generated_step_is_cached_across_processes(tmp_path):
    first = _run(_STEP_CALL, tmp_path).split()
    assert first[:2] == ["0", "1"]
    sources = list((tmp_path / "pynn" / "generated").glob("pynn_generated_step_*.py"))
    assert len(sources) == 1
    stamp = sources[0].stat().st_mtime_ns
    second = _run(_STEP_CALL, tmp_path).split()
    assert second[:2] == ["1", "0"], "the second process must load the compiled step"
    assert second[2] == first[2]
    assert sources[0].stat().st_mtime_ns == stamp, "an intact source is not rewritten"


def test_a_changed_generated_file_is_rewritten_never_run(tmp_path):
    first = _run(_STEP_CALL, tmp_path).split()
    (path,) = (tmp_path / "pynn" / "generated").glob("pynn_generated_step_*.py")
    original = path.read_text()
    path.write_text(original + "\nraise SystemExit('foreign code ran')\n")
    out = _run(_STEP_CALL, tmp_path).split()  # _run asserts the process succeeded
    assert out[2] == first[2]
    assert path.read_text() == original


def test_one_plan_takes_labels_and_dense_targets_in_turn():
    """The softmax cross-entropy step has a kernel per kind of target: the same
    workspaces given labels, then one-hot rows, then labels again agree with the
    reference every time (and labels out of range are still refused)."""
    rng = np.random.default_rng(3)
    ks = [rng.standard_normal(s).astype(np.float32) for s in [(5, 4), (4, 3)]]
    bs = [rng.standard_normal(k.shape[1]).astype(np.float32) for k in ks]
    x = rng.random((6, 5)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 2, 1])
    results = {}
    for name in ("numpy", "numba"):
        be = B.get(name)
        outs = [np.empty((6, k.shape[1]), np.float32) for k in ks]
        deltas = [np.empty_like(o) for o in outs]
        dks = [np.empty_like(k) for k in ks]
        dbs = [np.empty_like(b) for b in bs]
        runs = []
        for target in (y, np.eye(3, dtype=np.float32)[y] * 0.5, y):
            loss = be.dense_stack_forward_backward(
                x, target, ks, bs, ["tanh", "softmax"], "softmax_cross_entropy", outs,
                deltas, dks, dbs, label_smoothing=0.1)
            runs.append((loss, [d.copy() for d in dks], [d.copy() for d in dbs]))
        results[name] = runs
        with pytest.raises(ValueError, match="target"):
            be.dense_stack_forward_backward(
                x, np.array([0, 1, 3, 0, 2, 1]), ks, bs, ["tanh", "softmax"],
                "softmax_cross_entropy", outs, deltas, dks, dbs)
    for ref, got in zip(results["numpy"], results["numba"]):
        assert got[0] == pytest.approx(ref[0], rel=1e-5)
        for r, g in zip(ref[1] + ref[2], got[1] + got[2]):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    assert results["numba"][0][0] != results["numba"][1][0]  # the targets differ


def test_generated_source_holds_only_what_the_stack_uses():
    from pynn.backends import _numba_codegen as G
    src = G._source(("step", (0, 1), 0, 2, True, "all"))
    body = src[src.index("def step"):]
    assert "K.act_relu(" in body and "K.grad_relu(" in body
    for other in ("tanh", "sigmoid", "gelu", "elu", "softplus"):
        assert f"act_{other}(" not in body and f"grad_{other}(" not in body
    assert "softmax_cross_entropy_labels(" in body and "regression_loss(" not in body
    assert "softmax_cross_entropy_dense(" not in body
    assert "adam_update(" in body and "sgd_update(" not in body
    preact = f"table, s + {G.STEP_SLOTS.index('preact')}, x"
    assert preact not in body  # no GELU layer: no pre-activation kept
    gelu = G._source(("step", (0, ACTIVATIONS["gelu"]), 2, 1, False, "some"))
    gelu_body = gelu[gelu.index("def step"):]
    assert preact in gelu_body and "K.grad_gelu(" in gelu_body
    assert "regression_loss(z, t, w, True, g)" in gelu_body and "sgd_update(" in gelu_body
    assert "K.gemm_update(" in gelu_body and "sgd_momentum_update(" not in gelu_body
    momentum = G._source(("step", (0, 1), 0, G.SGD_MOMENTUM, True, "none"))
    momentum_body = momentum[momentum.index("def step"):]
    assert "sgd_momentum_update(" in momentum_body and "K.gemm_update(" not in momentum_body
    # a bias on every layer, on none, or on some: only the loops that can run
    assert "float(b[j])" in body and "if b.shape[0] > 0:" not in body
    assert "float(b[j])" not in momentum_body
    assert "float(b[j])" in gelu_body and "if b.shape[0] > 0:" in gelu_body
    with pytest.raises(ValueError, match="biases"):
        G.stack_step([1], 0, 1, biases="most")
    # the kernels' own hash is in the source, so edited kernels give new files
    assert G._kernels_hash() in src
    assert G._source(("forward", (1, 8), "some")).count("def forward") == 1


def test_missing_numba_raises_import_error(tmp_path):
    out = _run("""
        import sys
        sys.modules["numba"] = None  # what an uninstalled package looks like to import
        try:
            import pynn.backends.numba_backend
        except ImportError as exc:
            print("ImportError", exc)
        import pynn.backends as B
        print("numba" in B.available(), B.why_unavailable("numba") is not None)
    """, tmp_path)
    assert out.splitlines()[0].startswith("ImportError")
    assert out.splitlines()[1] == "False True"


def test_registry_lists_numba():
    assert "numba" in B.available()
    assert isinstance(B.get("numba"), Backend)
