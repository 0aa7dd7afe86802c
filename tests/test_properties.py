"""Hypothesis property tests: elementwise and loss kernels of every backend agree
with the reference on random shapes, dtypes and values, including +-0,
subnormals and huge magnitudes (bounded so that no intermediate the reference
computes overflows)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pynn.backends.base import ACTIVATIONS

import helpers
from helpers import REFERENCE, check_op_exact

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
ELEMENTWISE = [a for a in ACTIVATIONS if a != "softmax"]


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
    return draw(hnp.arrays(dtype, shape, elements=elements or values(dtype, bound)))


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
        "leaky_relu", "elu") else None
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
