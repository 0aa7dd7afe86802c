"""Hypothesis property tests: elementwise and loss kernels of every backend agree
with the reference on random shapes, dtypes and values, including +-0,
subnormals and huge magnitudes (bounded so that no intermediate the reference
computes overflows)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pynn.backends.base import ELEMENTWISE

import helpers
from helpers import REFERENCE, check_op_exact

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


def exact(dtype, vals):
    """``vals`` rounded to ``dtype`` (hypothesis wants exactly representable bounds)."""
    return [float(dtype.type(v)) for v in vals]


def specials(dtype, bound):
    info = np.finfo(dtype)
    sub = float(info.smallest_subnormal)
    return exact(dtype, [0.0, -0.0, sub, -sub, 3 * sub, info.tiny, -info.tiny, 1e-30,
                         bound, -bound, bound / 3, 1.0, -1.0])


def values(dtype, bound):
    """Floats in [-bound, bound] of ``dtype``: spread, special values, subnormals."""
    w = 32 if dtype == np.float32 else 64
    bound = exact(dtype, [bound])[0]
    return st.one_of(
        st.floats(-bound, bound, width=w, allow_subnormal=True),
        st.sampled_from(specials(dtype, bound)),
        st.floats(-10.0, 10.0, width=w),
    )


def array(draw, dtype, shape, bound, elements=None):
    if elements is None:
        elements = values(dtype, bound)
    return draw(hnp.arrays(dtype, shape, elements=elements))


# largest magnitudes: f32 kept away from overflow of dy * act'(x) and 2-term sums
BOUND = {np.dtype(np.float32): 1e37, np.dtype(np.float64): 1e300}

shapes_any = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=7)
shapes_2d = hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=9)
shapes_2d_rows = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9)


@SETTINGS
@given(data=st.data())
def test_activation_forward_backward(backend, data):
    check_activation(backend, data, data.draw(st.sampled_from(ELEMENTWISE)))


def check_activation(backend, data, activation):
    dtype = data.draw(DTYPES)
    shape = data.draw(shapes_any)
    x = array(data.draw, dtype, shape, BOUND[dtype])
    alpha = data.draw(st.sampled_from([None, 0.01, 1.0])) if activation in (
        "leaky_relu", "elu", "celu", "squareplus") else None
    y, _ = check_op_exact(backend, "activation_forward", [x, activation], {"alpha": alpha},
                          dtype=dtype)
    dy = array(data.draw, dtype, shape, BOUND[dtype] / 4)
    yr = REFERENCE.activation_forward(x, activation, alpha=alpha)
    check_op_exact(backend, "activation_backward", [dy, yr, activation],
                   {"x": x, "alpha": alpha}, dtype=dtype)


@SETTINGS
@given(data=st.data())
def test_softmax_properties(backend, data):
    check_softmax(backend, data, data.draw(st.sampled_from(["softmax", "log_softmax"])))


def check_softmax(backend, data, op):
    dtype = data.draw(DTYPES)
    x = array(data.draw, dtype, data.draw(shapes_2d), BOUND[dtype] / 4)
    out, _ = check_op_exact(backend, op, [x], dtype=dtype)
    if op == "softmax" and out.size:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
        assert np.all(out >= 0)
    y = REFERENCE.softmax(x)
    dy = array(data.draw, dtype, x.shape, 1e6)
    # y * (dy - sum(dy * y)) cancels: float32 kernels may round at |dy| * eps
    check_op_exact(backend, "activation_backward", [dy, y, "softmax"], dtype=dtype,
                   scale=np.abs(dy).max(initial=1.0))


def weights(data, n):
    if not data.draw(st.booleans()):
        return None
    return data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(0.0, 10.0)))


@SETTINGS
@given(data=st.data())
def test_softmax_cross_entropy_properties(backend, data):
    dtype = data.draw(DTYPES)
    n, k = data.draw(shapes_2d_rows)
    z = array(data.draw, dtype, (n, k), 1e30 if dtype == np.float32 else 1e300)
    if data.draw(st.booleans()):
        t = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    else:
        t = data.draw(hnp.arrays(dtype, (n, k), elements=st.floats(0.0, 1.0, width=32)))
    kw = {"sample_weight": weights(data, n),
          "label_smoothing": data.draw(st.sampled_from([0.0, 0.1]))}
    (loss, grad), _ = check_op_exact(backend, "softmax_cross_entropy", [z, t], kw, dtype=dtype,
                                     scale=np.abs(z).max())
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


@SETTINGS
@given(data=st.data())
def test_sigmoid_binary_cross_entropy_properties(backend, data):
    dtype = data.draw(DTYPES)
    shape = data.draw(shapes_2d)
    z = array(data.draw, dtype, shape, 1e30 if dtype == np.float32 else 1e300)
    t = data.draw(hnp.arrays(dtype, shape, elements=st.one_of(
        st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0, width=32))))
    kw = {"sample_weight": weights(data, shape[0])}
    # per-element max(z, 0) - z * t cancels: float32 kernels may round at |z| * eps
    (loss, grad), _ = check_op_exact(backend, "sigmoid_binary_cross_entropy", [z, t], kw,
                                     dtype=dtype, scale=np.abs(z).max(initial=1.0))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


def probabilities(dtype, eps):
    edges = exact(dtype, [0.0, 1.0, eps, 1 - eps, np.nextafter(dtype.type(eps), dtype.type(0)),
                          np.nextafter(dtype.type(1 - eps), dtype.type(1)),
                          np.finfo(dtype).smallest_subnormal])
    return st.one_of(st.floats(0.0, 1.0, width=32 if dtype == np.float32 else 64),
                     st.sampled_from(edges))


@SETTINGS
@given(data=st.data())
def test_binary_cross_entropy_properties(backend, data):
    dtype = data.draw(DTYPES)
    eps = data.draw(st.sampled_from([1e-7, 1e-3]))
    shape = data.draw(shapes_2d)
    p = data.draw(hnp.arrays(dtype, shape, elements=probabilities(dtype, eps)))
    t = data.draw(hnp.arrays(dtype, shape, elements=probabilities(dtype, eps)))
    kw = {"sample_weight": weights(data, shape[0]), "epsilon": eps}
    check_op_exact(backend, "binary_cross_entropy", [p, t], kw, dtype=dtype)


@SETTINGS
@given(data=st.data())
def test_categorical_cross_entropy_properties(backend, data):
    dtype = data.draw(DTYPES)
    n, k = data.draw(shapes_2d_rows)
    p = data.draw(hnp.arrays(dtype, (n, k), elements=probabilities(dtype, 1e-7)))
    p[:, 0] += dtype.type(0.25)  # every row has positive mass
    if data.draw(st.booleans()):
        t = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    else:
        t = data.draw(hnp.arrays(dtype, (n, k), elements=st.floats(0.0, 1.0, width=32)))
    kw = {"sample_weight": weights(data, n)}
    check_op_exact(backend, "categorical_cross_entropy", [p, t], kw, dtype=dtype)


@SETTINGS
@given(data=st.data())
def test_regression_loss_properties(backend, data):
    loss = data.draw(st.sampled_from(["mean_squared_error", "mean_absolute_error"]))
    dtype = data.draw(DTYPES)
    shape = data.draw(shapes_2d)
    bound = 1e18 if dtype == np.float32 else 1e150  # (p - t)**2 stays finite
    p = array(data.draw, dtype, shape, bound)
    t = array(data.draw, dtype, shape, bound)
    if data.draw(st.booleans()):
        t = p.copy()  # all ties
    kw = {"sample_weight": weights(data, shape[0])}
    check_op_exact(backend, loss, [p, t], kw, dtype=dtype)


@SETTINGS
@given(data=st.data())
def test_bias_grad_and_dropout_properties(backend, data):
    check_bias_grad_and_dropout(backend, data)


def check_bias_grad_and_dropout(backend, data):
    dtype = data.draw(DTYPES)
    shape = data.draw(shapes_2d)
    dy = array(data.draw, dtype, shape, 1e30 if dtype == np.float32 else 1e300)
    check_op_exact(backend, "bias_grad", [dy], dtype=dtype)
    rate = data.draw(st.floats(0.0, 0.999))
    seed = data.draw(st.integers(-2**63, 2**64 - 1))
    want = REFERENCE.dropout_forward(dy, rate, seed)
    got = backend.dropout_forward(dy, rate, seed)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(backend.dropout_backward(dy, got[1]),
                                  REFERENCE.dropout_backward(dy, want[1]))


# the same checks, pinned to the op a broken backend gets wrong; no shrinking
META = settings(SETTINGS, phases=[Phase.generate], print_blob=False)


@META
@given(data=st.data())
def _relu_only(backend, data):
    check_activation(backend, data, "relu")


@META
@given(data=st.data())
def _softmax_only(backend, data):
    check_softmax(backend, data, "softmax")


@META
@given(data=st.data())
def _dropout(backend, data):
    check_bias_grad_and_dropout(backend, data)


def test_properties_catch_broken_backends():
    with pytest.raises(AssertionError):
        _relu_only(helpers.BrokenReluBackward())
    with pytest.raises(AssertionError):
        _softmax_only(helpers.BrokenUnshiftedSoftmax())
    with pytest.raises(AssertionError):
        _dropout(helpers.BrokenDropoutRng())
    for check in (_relu_only, _softmax_only, _dropout):  # and pass on the reference
        check(REFERENCE)


# ------------------------------------------------------------------------------------------
# the remaining ops: gemm, batch norm, optimizer updates - random shapes, dtypes, memory
# layouts (contiguous, stepped with negative strides, Fortran order) and values including
# +-0 and subnormals. Non-contiguous inputs go to the backend as views; the reference gets
# contiguous copies, so a kernel that ignores strides fails here.
# ------------------------------------------------------------------------------------------
LAYOUTS = st.sampled_from(["C", "step", "T"])


def small_values(dtype, bound=10.0):
    """Moderate magnitudes (sums of products stay comparable), plus zeros and subnormals."""
    w = 32 if dtype == np.float32 else 64
    info = np.finfo(dtype)
    sub = float(info.smallest_subnormal)
    bound = exact(dtype, [bound])[0]
    return st.one_of(st.floats(-bound, bound, width=w),
                     st.sampled_from(exact(dtype, [0.0, -0.0, sub, -sub, float(info.tiny)])))


def laid_out(data, dtype, shape, bound=10.0):
    """(view handed to the backend, contiguous copy handed to the reference)."""
    a = array(data.draw, dtype, shape, bound, elements=small_values(dtype, bound))
    layout = data.draw(LAYOUTS)
    if layout == "C" or a.ndim != 2:
        return a, a.copy()
    return helpers.strided(a, layout), a.copy()


@SETTINGS
@given(data=st.data())
def test_gemm_properties(backend, data):
    dtype = data.draw(DTYPES)
    m, k, n = (data.draw(st.integers(0, 9)) for _ in range(3))
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    a, a_ref = laid_out(data, dtype, (k, m) if ta else (m, k))
    b, b_ref = laid_out(data, dtype, (n, k) if tb else (k, n))
    act = data.draw(st.sampled_from(["linear", "relu", "tanh", "sigmoid", "softmax"]))
    bias = array(data.draw, dtype, (n,), 10.0, elements=small_values(dtype)) \
        if data.draw(st.booleans()) else None
    alpha = data.draw(st.sampled_from([1.0, 0.5, -2.0]))
    beta = data.draw(st.sampled_from([0.0, 1.0, 0.25]))
    out0 = array(data.draw, dtype, (m, n), 10.0, elements=small_values(dtype))
    kw = dict(trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, bias=bias, activation=act)
    got = backend.gemm(a, b, out=out0.copy(), **kw)
    want = REFERENCE.gemm(a_ref, b_ref, out=out0.copy(), **kw)
    # error bound of a length-k dot product of values <= 10: scale by k * 100 * |alpha|
    helpers.assert_close_scaled(got, want, dtype, scale=max(1.0, k * 100.0 * abs(alpha)
                                                                + 10.0 * abs(beta) + 10.0),
                                what=f"{backend.name}.gemm")


@SETTINGS
@given(data=st.data())
def test_batchnorm_properties(backend, data):
    dtype = data.draw(DTYPES)
    n, k = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 7))
    x, x_ref = laid_out(data, dtype, (n, k))
    gamma = array(data.draw, dtype, (k,), 10.0, elements=small_values(dtype))
    beta = array(data.draw, dtype, (k,), 10.0, elements=small_values(dtype))
    training = data.draw(st.booleans())
    mm = array(data.draw, dtype, (k,), 10.0, elements=small_values(dtype))
    mv = np.abs(array(data.draw, dtype, (k,), 10.0, elements=small_values(dtype)))
    got_mm, got_mv, ref_mm, ref_mv = mm.copy(), mv.copy(), mm.copy(), mv.copy()
    got = backend.batchnorm_forward(x, gamma, beta, got_mm, got_mv, training)
    want = REFERENCE.batchnorm_forward(x_ref, gamma, beta, ref_mm, ref_mv, training)
    # outputs are normalised: |y| <= |gamma| * sqrt(n) + |beta| (or / sqrt(eps) in inference)
    scale = 10.0 * (np.sqrt(n) if training else 1.0 / np.sqrt(1e-3) * 20.0) + 10.0
    helpers.assert_close_scaled(got[0], want[0], dtype, scale=scale, what="bn out")
    helpers.assert_close_scaled(got_mm, ref_mm, dtype, scale=10.0, what="moving_mean")
    helpers.assert_close_scaled(got_mv, ref_mv, dtype, scale=100.0, what="moving_var")
    if training:
        dy, dy_ref = laid_out(data, dtype, (n, k))
        g = backend.batchnorm_backward(dy, x, gamma, want[1], want[2])
        w = REFERENCE.batchnorm_backward(dy_ref, x_ref, gamma, want[1], want[2])
        # dx = gamma * inv_std / n * (n dy - sum dy - xhat sum(dy xhat)): terms up to
        # |gamma| inv_std (|dy| + |dy| + n |dy|) cancel; dgamma, dbeta are sums of n terms
        inv = float(np.max(want[2]))
        for i, nm in enumerate(("dx", "dgamma", "dbeta")):
            helpers.assert_close_scaled(g[i], w[i], dtype, what=nm,
                                        scale=10.0 * max(1.0, inv) * (20.0 + 10.0 * n))


@SETTINGS
@given(data=st.data())
def test_optimizer_update_properties(backend, data):
    dtype = data.draw(DTYPES)
    shape = (data.draw(st.integers(0, 6)), data.draw(st.integers(0, 6)))
    p0 = array(data.draw, dtype, shape, 10.0, elements=small_values(dtype))
    g, g_ref = laid_out(data, dtype, shape, bound=1.0)
    which = data.draw(st.sampled_from(["sgd", "nesterov", "adam", "rmsprop", "adagrad"]))
    wd = data.draw(st.sampled_from([0.0, 0.01]))
    steps = data.draw(st.integers(1, 3))
    state = np.abs(array(data.draw, dtype, shape, 1e-3, elements=small_values(dtype, 1e-3)))
    # half the entries: a zero gradient over a subnormal state (what dead ReLU units give)
    state.flat[::2] = 7 * np.finfo(dtype).smallest_subnormal
    g_ref.flat[::2] = 0
    g[...] = g_ref
    got_p, ref_p = p0.copy(), p0.copy()
    got_s = [state.copy(), state.copy()]
    ref_s = [state.copy(), state.copy()]
    for t in range(1, steps + 1):
        for be, p, s, grad in ((backend, got_p, got_s, g), (REFERENCE, ref_p, ref_s, g_ref)):
            if which in ("sgd", "nesterov"):
                be.sgd_update(p, grad, s[0], learning_rate=0.1, momentum=0.9,
                              nesterov=which == "nesterov", weight_decay=wd)
            elif which == "adam":
                be.adam_update(p, grad, s[0], s[1], t, learning_rate=0.01, weight_decay=wd)
            elif which == "rmsprop":
                be.rmsprop_update(p, grad, s[0], learning_rate=0.01, weight_decay=wd)
            else:
                be.adagrad_update(p, grad, s[0], learning_rate=0.01, weight_decay=wd)
    assert_close_opt = helpers.assert_close_scaled
    assert_close_opt(got_p, ref_p, dtype, scale=10.0, what=f"{which} param")
    for i in range(2):
        assert_close_opt(got_s[i], ref_s[i], dtype, scale=1.0, what=f"{which} state {i}")
        used = 2 if which == "adam" else 1
        if dtype == np.float32 and i < used:
            # float32 state is flushed to zero: no subnormal survives an update (they run
            # ~38x slower); tolerances alone cannot see a subnormal against a zero
            a = np.abs(got_s[i])
            assert not np.any((a > 0) & (a < np.finfo(np.float32).tiny)), \
                f"{which} state {i} holds subnormal values"
