"""Convolution and pooling ops on every CPU backend against the reference.

* A grid of odd geometries (1x1 and non-square kernels, a kernel as large as the
  input, strides that do not divide, every kind of padding, dilation, groups up to
  depthwise, batch 1, one channel, a zero-size batch, an input axis of size 0) in
  float32 and float64, C-contiguous and strided inputs, every op and activation,
  compared with :class:`pynn.backends.base.Backend` (``helpers.check_op``).
* Bad arguments raise the reference's error (type and message) on every backend.
* Compiled ops keep the reference's signatures, never call it, and allocate nothing
  once warm.
* The reference's gradients agree with float64 central differences of its forward
  ops (so the oracle itself is checked).
"""
import inspect

import numpy as np
import pytest

import pynn.backends as B
from pynn.backends.base import Backend
from pynn.backends.conv import ConvOps

from helpers import (CPU_BACKENDS, REFERENCE, assert_close, check_op, conv_case, dy_for,
                     numerical_grad, pad_pair, strided, transient_bytes)

CONV_OPS = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_kernel",
            "conv2d_backward", "pool2d_forward", "pool2d_backward")
#: Backends whose conv ops are compiled (they override every one of them).
COMPILED = [n for n in CPU_BACKENDS
            if any(getattr(type(B.get(n)), op) is not getattr(Backend, op) for op in CONV_OPS)]
DTYPES = [np.float32, np.float64]
ACTIVATIONS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus",
               "softmax"]


#: (id, n, h, w, c_in, kh, kw, c_out, strides, padding, dilation, groups)
CONV_CASES = [
    ("1x1", 2, 5, 6, 4, 1, 1, 3, 1, 0, 1, 1),
    ("1x1-groups", 2, 5, 6, 4, 1, 1, 6, 1, 0, 1, 2),
    ("1x1-stride", 2, 5, 6, 3, 1, 1, 2, 2, 0, 1, 1),
    ("1x1-padded", 1, 4, 3, 2, 1, 1, 3, 1, ((1, 0), (0, 2)), 1, 1),
    ("1x1-dilated", 2, 4, 4, 3, 1, 1, 2, 1, 0, 3, 1),
    ("3x3", 2, 7, 7, 3, 3, 3, 4, 1, 0, 1, 1),
    ("non-square", 2, 6, 9, 3, 2, 3, 5, (2, 1), ((1, 0), (2, 1)), 1, 1),
    ("kernel-is-input", 3, 4, 5, 2, 4, 5, 3, 1, 0, 1, 1),
    ("strides-do-not-divide", 2, 8, 9, 3, 3, 3, 4, (3, 2), 0, 1, 1),
    ("same-padding", 2, 6, 6, 3, 3, 3, 4, 1, 1, 1, 1),
    ("asymmetric-padding", 2, 5, 6, 2, 3, 2, 3, 1, ((0, 2), (1, 0)), 1, 1),
    ("padding-beyond-kernel", 1, 3, 4, 2, 2, 2, 3, (2, 3), ((3, 3), (2, 4)), 1, 1),
    ("dilation", 2, 9, 8, 3, 3, 2, 4, 1, ((2, 1), (0, 1)), (2, 3), 1),
    ("groups-2", 2, 6, 6, 4, 3, 3, 6, 1, 1, 1, 2),
    ("depthwise", 2, 6, 5, 4, 3, 3, 8, (2, 1), 1, 1, 4),
    ("batch-1-one-channel", 1, 7, 6, 1, 3, 3, 1, 1, 0, 1, 1),
    ("zero-batch", 0, 5, 5, 3, 3, 3, 4, 1, 1, 1, 1),
    ("empty-axis", 2, 0, 5, 3, 1, 2, 4, 1, ((1, 1), (0, 0)), 1, 1),
    ("no-input-channels", 2, 4, 4, 0, 2, 2, 3, 1, 0, 1, 1),
    ("no-output-channels", 2, 4, 4, 3, 2, 2, 0, 1, 0, 1, 1),
]


def check_views(backend, op, args, kwargs, dtype):
    """:func:`helpers.check_op` without copying the inputs (a copy would make a strided
    view contiguous): the same arrays, made read-only, go to the reference and to
    ``backend``."""
    def frozen(a):
        if isinstance(a, np.ndarray):
            a = a.view()
            a.flags.writeable = False
        return a
    args = [frozen(a) for a in args]
    kwargs = {k: frozen(v) for k, v in kwargs.items()}
    want = getattr(REFERENCE, op)(*args, **kwargs)
    got = getattr(backend, op)(*args, **kwargs)
    assert_close(got, want, dtype, what=f"{backend.name}.{op}")
    return got, want


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_ops_match_reference(name, case, dt):
    be = B.get(name)
    rng = np.random.default_rng(0)
    x, kernel, geo = conv_case(case, dt, rng)
    bias = rng.standard_normal(kernel.shape[3]).astype(dt)
    check_op(be, "conv2d_forward", (x, kernel), dict(geo), dtype=dt)
    check_op(be, "conv2d_forward", (x, kernel, bias), dict(geo, activation="relu"), dtype=dt)
    dy = dy_for(x, kernel, geo, rng)
    check_op(be, "conv2d_backward_input", (dy, kernel, x.shape), dict(geo), dtype=dt)
    check_op(be, "conv2d_backward_kernel", (x, dy, kernel.shape), dict(geo), dtype=dt)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_forward_every_activation(name, dt):
    be = B.get(name)
    rng = np.random.default_rng(1)
    x, kernel, geo = conv_case(("", 2, 6, 5, 4, 3, 2, 6, (1, 2), 1, 1, 2), dt, rng)
    bias = rng.standard_normal(6).astype(dt)
    for act in ACTIVATIONS + [None]:
        check_op(be, "conv2d_forward", (x, kernel, bias), dict(geo, activation=act), dtype=dt)
        check_op(be, "conv2d_forward", (x, kernel), dict(geo, activation=act), dtype=dt)


@pytest.mark.parametrize("kind", ["step", "T"])
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_strided_and_converted_inputs(name, dt, kind):
    """Non-contiguous views, and inputs of another dtype (converted as the reference
    converts them: the result takes ``x``'s / ``dy``'s dtype)."""
    be = B.get(name)
    rng = np.random.default_rng(2)
    x, kernel, geo = conv_case(("", 2, 6, 7, 4, 3, 3, 4, 2, 1, 1, 2), dt, rng)
    dy = dy_for(x, kernel, geo, rng)
    bias = rng.standard_normal(4)
    sx, sk, sd = strided(x, kind), strided(kernel, kind), strided(dy, kind)
    check_views(be, "conv2d_forward", (sx, sk, bias), dict(geo, activation="tanh"), dt)
    check_views(be, "conv2d_backward_input", (sd, sk, x.shape), dict(geo), dt)
    check_views(be, "conv2d_backward_kernel", (sx, sd, kernel.shape), dict(geo), dt)
    other = np.float64 if dt == np.float32 else np.float32
    check_op(be, "conv2d_forward", (x, kernel.astype(other)), dict(geo), dtype=dt)
    check_op(be, "conv2d_backward_kernel", (x, dy.astype(other), kernel.shape), dict(geo),
             dtype=dt)
    check_op(be, "conv2d_forward", (x.astype(np.int32), kernel), dict(geo), dtype=np.float64)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_extreme_values(name, dt):
    """Huge and tiny magnitudes, infinities and NaN propagate as in the reference."""
    be = B.get(name)
    rng = np.random.default_rng(3)
    x, kernel, geo = conv_case(("", 2, 5, 5, 3, 3, 3, 4, 1, 1, 1, 1), dt, rng)
    big = np.finfo(dt).max ** 0.5 / 64
    for scale in (big, 1 / big):
        xs = (x * scale).astype(dt)
        check_op(be, "conv2d_forward", (xs, kernel), dict(geo, activation="sigmoid"),
                 dtype=dt)
        dy = dy_for(xs, kernel, geo, rng)
        check_op(be, "conv2d_backward_kernel", (xs, dy, kernel.shape), dict(geo), dtype=dt)
    xs = x.copy()
    xs[0, 1, 2, 0], xs[1, 3, 3, 2], xs[1, 0, 0, 1] = np.inf, -np.inf, np.nan
    check_op(be, "conv2d_forward", (xs, kernel), dict(geo), dtype=dt)
    dy = dy_for(x, kernel, geo, rng)
    dy[1, 2, 2, 3] = np.inf
    check_op(be, "conv2d_backward_input", (dy, kernel, x.shape), dict(geo), dtype=dt)


FLAGS = [(True, True, True), (False, True, True), (True, False, False),
         (False, False, True), (False, False, False)]


def _check_fused_backward(be, x, kernel, geo, act, dt, rng, flags=(True, True, True),
                          views=False):
    bias = rng.standard_normal(kernel.shape[3]).astype(dt)
    y = REFERENCE.conv2d_forward(x, kernel, bias, activation=act, **geo)
    dy = rng.standard_normal(y.shape).astype(dt)
    want_dx, want_dk, want_db = flags
    kw = dict(geo, y=y, activation=act, input_grad=want_dx, kernel_grad=want_dk,
              bias_grad=want_db)
    if views:
        got, want = check_views(be, "conv2d_backward", (dy, x, kernel), kw, dt)
    else:
        got, want = check_op(be, "conv2d_backward", (dy, x, kernel), kw, dtype=dt)
    for g, w, wanted in zip(got, want, flags):
        assert (g is None) == (w is None) == (not wanted)
    # the fused op is the sequence of the single ops on the reference
    m = dy.shape[0] * dy.shape[1] * dy.shape[2]
    dz = dy if act in ("linear", None) else REFERENCE.activation_backward(
        dy.reshape(m, dy.shape[3]), y.reshape(m, dy.shape[3]), act).reshape(dy.shape)
    if want_dx:
        assert_close(got[0], REFERENCE.conv2d_backward_input(dz, kernel, x.shape, **geo), dt,
                     what="dx")
    if want_dk:
        assert_close(got[1], REFERENCE.conv2d_backward_kernel(x, dz, kernel.shape, **geo), dt,
                     what="dkernel")
    if want_db:
        assert_close(got[2], dz.astype(np.float64).sum(axis=(0, 1, 2)), dt, what="dbias")


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_fused_conv_backward_matches_reference(name, case, dt):
    """``conv2d_backward`` (activation gradient + kernel, bias and input gradients in
    one op) over the whole geometry grid, with and without an activation."""
    be = B.get(name)
    rng = np.random.default_rng(11)
    x, kernel, geo = conv_case(case, dt, rng)
    for act in ("linear", "relu"):
        _check_fused_backward(be, x, kernel, geo, act, dt, rng)


def _wide(case, factor=12):
    """``case`` with ``factor`` times the input and twice the output channels: wider
    column matrices and products than the grid's few channels."""
    case = list(case)
    case[4] *= factor
    case[7] *= 2
    return tuple(case)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_wide_conv_ops_match_reference(name, case, dt):
    be = B.get(name)
    rng = np.random.default_rng(15)
    x, kernel, geo = conv_case(_wide(case), dt, rng)
    bias = rng.standard_normal(kernel.shape[3]).astype(dt)
    check_op(be, "conv2d_forward", (x, kernel, bias), dict(geo, activation="elu"), dtype=dt)
    dy = dy_for(x, kernel, geo, rng)
    check_op(be, "conv2d_backward_input", (dy, kernel, x.shape), dict(geo), dtype=dt)
    check_op(be, "conv2d_backward_kernel", (x, dy, kernel.shape), dict(geo), dtype=dt)
    _check_fused_backward(be, x, kernel, geo, "relu", dt, rng)
    _check_fused_backward(be, x, kernel, geo, "linear", dt, rng, (False, True, True))


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_fused_conv_backward_every_activation_and_subset(name, dt):
    be = B.get(name)
    rng = np.random.default_rng(12)
    x, kernel, geo = conv_case(("", 2, 6, 5, 4, 3, 2, 6, (1, 2), 1, 1, 2), dt, rng)
    for act in ACTIVATIONS + [None]:
        _check_fused_backward(be, x, kernel, geo, act, dt, rng)
    for flags in FLAGS:
        _check_fused_backward(be, x, kernel, geo, "tanh", dt, rng, flags)
    x1, k1, geo1 = conv_case(CONV_CASES[0], dt, rng)  # 1x1: the input is the column matrix
    for flags in FLAGS:
        _check_fused_backward(be, x1, k1, geo1, "elu", dt, rng, flags)


@pytest.mark.parametrize("kind", ["step", "T"])
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_fused_conv_backward_strided_inputs(name, dt, kind):
    be = B.get(name)
    rng = np.random.default_rng(13)
    x, kernel, geo = conv_case(("", 2, 6, 7, 4, 3, 3, 4, 2, 1, 1, 2), dt, rng)
    bias = rng.standard_normal(4).astype(dt)
    y = REFERENCE.conv2d_forward(x, kernel, bias, activation="sigmoid", **geo)
    dy = rng.standard_normal(y.shape).astype(dt)
    check_views(be, "conv2d_backward", (strided(dy, kind), strided(x, kind),
                                        strided(kernel, kind)),
                dict(geo, y=strided(y, kind), activation="sigmoid"), dt)


def test_fused_conv_backward_bad_arguments():
    rng = np.random.default_rng(14)
    x, kernel, geo = conv_case(("", 2, 5, 5, 4, 3, 3, 6, 1, 1, 1, 2), np.float64, rng)
    y = REFERENCE.conv2d_forward(x, kernel, activation="relu", **geo)
    bad = [
        ((y[:1], x, kernel), dict(geo, y=y, activation="relu"), "dy must have shape"),
        ((y, x, kernel), dict(geo, activation="relu"), "needs y"),
        ((y, x, kernel), dict(geo, y=y[..., :3], activation="relu"), "y must have"),
        ((y, x, kernel), dict(geo, y=y, activation="gelu"), "needs its input"),
        ((y, x, kernel), dict(geo, y=y, activation="swish"), "Unknown activation"),
        ((y, x, kernel), dict(geo, input_grad=False, dx=np.empty_like(x)), "dx was given"),
        ((y, x, kernel), dict(geo, dkernel=np.empty((3, 3, 4, 6))), "dkernel: expected"),
        ((y, x, kernel), dict(geo, dbias=np.empty(6, np.float32)), "dbias: expected dtype"),
        ((y, x, kernel), dict(geo, dx=y), "dx: expected shape"),
        ((y, x, kernel[..., :5]), geo, "do not divide"),
    ]
    for name in CPU_BACKENDS:
        be = B.get(name)
        for args, kwargs, match in bad:
            with pytest.raises(ValueError, match=match):
                be.conv2d_backward(*args, **kwargs)
        buf = np.zeros((2, 5, 5, 4))
        with pytest.raises(ValueError, match="dx and dy overlap"):
            be.conv2d_backward(buf, np.ones((2, 5, 5, 4)), np.ones((1, 1, 4, 4)), dx=buf)


def test_cython_conv_in_blocks_smaller_than_a_row(monkeypatch):
    """Column-matrix blocks of one and of a few rows (the block boundaries fall inside
    image rows and between images, and the kernel gradient sums many blocks)."""
    _conv = pytest.importorskip("pynn._ext.conv")
    be = B.get("cython")
    rng = np.random.default_rng(4)
    for block_bytes in (1, 200):
        monkeypatch.setattr(_conv, "COLS_BLOCK_BYTES", block_bytes)
        # 18-column float64 rows: one row per block (1 and 200 bytes)
        assert _conv.plan(100, (3, 3, 2, 4), (1, 1), ((0, 0), (0, 0)), 8) == (1, 18)
        cases = CONV_CASES[:4] + CONV_CASES[6:7] + CONV_CASES[13:15]
        for case in cases + [_wide(c, 5) for c in cases]:
            for dt in DTYPES:
                x, kernel, geo = conv_case(case, dt, rng)
                dy = dy_for(x, kernel, geo, rng)
                check_op(be, "conv2d_forward", (x, kernel), dict(geo, activation="softmax"),
                         dtype=dt)
                check_op(be, "conv2d_backward_input", (dy, kernel, x.shape), dict(geo),
                         dtype=dt)
                check_op(be, "conv2d_backward_kernel", (x, dy, kernel.shape), dict(geo),
                         dtype=dt)
                _check_fused_backward(be, x, kernel, geo, "relu", dt, rng)


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------
#: (id, n, h, w, c, pool, strides, padding)
POOL_CASES = [
    ("2x2", 2, 6, 8, 3, 2, None, 0),
    ("2x2-not-dividing", 2, 5, 7, 3, 2, None, 0),
    ("3x3-stride-1-same", 2, 5, 6, 4, 3, 1, 1),
    ("non-square", 2, 7, 6, 3, (3, 2), (2, 1), ((2, 0), (0, 1))),
    ("overlapping", 1, 7, 7, 2, 3, 2, ((1, 1), (2, 1))),
    ("pool-is-input", 3, 4, 5, 2, (4, 5), None, 0),
    ("1x1", 2, 3, 4, 3, 1, None, 0),
    ("batch-1-one-channel", 1, 6, 6, 1, 2, None, 0),
    ("zero-batch", 0, 4, 4, 3, 2, None, 0),
    ("empty-axis", 2, 0, 4, 3, 2, None, ((1, 1), (0, 0))),
    ("many-channels", 1, 4, 4, 300, 2, 1, ((0, 1), (1, 0))),
]


def _pool_case(case, dt, rng, ties=False):
    _, n, h, w, c, pool, strides, padding = case
    if ties:
        x = rng.integers(-2, 2, (n, h, w, c)).astype(dt)
    else:
        x = rng.standard_normal((n, h, w, c)).astype(dt)
    return x, dict(pool_size=pool, strides=strides, padding=pad_pair(padding))


def _check_pool(be, x, geo, mode, dt, rng, index_kind=None):
    got, want = check_views(be, "pool2d_forward", (x,), dict(geo, mode=mode), dt)
    if mode == "max":
        np.testing.assert_array_equal(got[1], want[1])  # same positions, first on ties
        assert got[1].dtype == np.int64
    else:
        assert got[1] is None and want[1] is None
    ref_out, ref_index = want
    if mode == "max" and (ref_index < 0).any():
        return  # windows of padding only (an empty input axis): nothing to scatter
    dy = rng.standard_normal(ref_out.shape).astype(dt)
    if ref_index is not None and index_kind is not None:
        ref_index = strided(ref_index, "step") if index_kind == "step" else \
            ref_index.astype(index_kind)
    check_views(be, "pool2d_backward", (dy, x.shape), dict(geo, mode=mode, index=ref_index),
                dt)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # reference, empty axis
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[c[0] for c in POOL_CASES])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_pool_ops_match_reference(name, case, dt, mode):
    be = B.get(name)
    rng = np.random.default_rng(5)
    x, geo = _pool_case(case, dt, rng)
    _check_pool(be, x, geo, mode, dt, rng)
    x, geo = _pool_case(case, dt, rng, ties=True)
    _check_pool(be, x, geo, mode, dt, rng)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # the reference, summing
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # infinities
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_pool_strided_inputs_extreme_values_and_indices(name, dt):
    be = B.get(name)
    rng = np.random.default_rng(6)
    x, geo = _pool_case(("", 2, 6, 7, 4, 3, 2, 1), dt, rng)
    for mode in ("max", "avg"):
        _check_pool(be, strided(x, "step"), geo, mode, dt, rng)
        _check_pool(be, strided(x, "T"), geo, mode, dt, rng)
    for kind in ("step", np.int32, np.uint16):
        _check_pool(be, x, geo, "max", dt, rng, index_kind=kind)
    xs = x * (np.finfo(dt).max / 8)
    xs[0, 0, 0, 0], xs[1, 2, 3, 1], xs[1, 4, 4, 2] = np.nan, np.inf, -np.inf
    xs[0, 1, 1, :] = np.nan
    for mode in ("max", "avg"):
        _check_pool(be, xs, geo, mode, dt, rng)


# ---------------------------------------------------------------------------
# errors: the reference's, on every backend
# ---------------------------------------------------------------------------
def _bad_calls():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 5, 4))
    k = rng.standard_normal((3, 3, 2, 6))
    geo = dict(padding=((1, 1), (1, 1)), groups=2)
    y = REFERENCE.conv2d_forward(x, k, **geo)
    dy = np.ones_like(y)
    pooled, index = REFERENCE.pool2d_forward(x, 2)
    pdy = np.ones_like(pooled)
    f = "conv2d_forward"
    bi, bk = "conv2d_backward_input", "conv2d_backward_kernel"
    pf, pb = "pool2d_forward", "pool2d_backward"
    return [
        (f, (x[0], k), geo),
        (f, (x, k[:, :, :1]), geo),
        (f, (x, k[..., :5]), geo),
        (f, (x, k), dict(geo, groups=0)),
        (f, (x, k), dict(geo, groups=True)),
        (f, (x, k), dict(geo, groups=2.0)),
        (f, (x, k), dict(geo, strides=0)),
        (f, (x, k), dict(geo, strides=(1, 2, 3))),
        (f, (x, k), dict(geo, dilation=(1, 0))),
        (f, (x, k), dict(geo, padding=1)),
        (f, (x, k), dict(geo, padding=((1, -1), (0, 0)))),
        (f, (x, k), dict(geo, dilation=4)),
        (f, (x, k), dict(geo, padding=0, strides=1, dilation=(1, 3))),
        (f, (x, k, np.ones(5)), geo),
        (f, (x, k, np.ones((6, 1))), geo),
        (f, (x, k), dict(geo, activation="gelu")),
        (f, (x, k), dict(geo, activation="swish")),
        (f, (x, k), dict(geo, out=np.empty((2, 5, 5, 5)))),
        (f, (x, k), dict(geo, out=np.empty(y.shape, np.float32))),
        (f, (x, k), dict(geo, out=np.empty(y.shape[::-1]).T)),
        (f, (x, k), dict(geo, out=np.broadcast_to(np.empty(6), y.shape))),
        (f, (x.astype(str), k), geo),
        (f, (x, k), dict(geo, out=[[0.0]])),
        (bi, (dy, k, (2, 5, 5)), geo),
        (bi, (dy, k, None), geo),
        (bi, (dy[:1], k, x.shape), geo),
        (bi, (dy, k, (2, 5, 5, 3)), geo),
        (bi, (dy, k, x.shape), dict(geo, out=np.empty((2, 5, 5, 3)))),
        (bk, (x, dy, (3, 3, 2)), geo),
        (bk, (x, dy, "kernel"), geo),
        (bk, (x, dy[..., :5], k.shape), geo),
        (bk, (x, dy, (3, 3, 2, 5)), geo),
        (bk, (x[..., :3], dy, k.shape), geo),
        (pf, (x, 2), dict(mode="min")),
        (pf, (x, 2), dict(padding=((2, 0), (0, 0)))),
        (pf, (x, 6), {}),
        (pf, (x, 0), {}),
        (pf, (x, 2), dict(strides=(1, 0))),
        (pf, (x, 2), dict(index=np.empty(pooled.shape, np.int32))),
        (pf, (x, 2), dict(out=np.empty((2, 3, 3, 4)))),
        (pb, (pdy, x.shape, 2), {}),
        (pb, (pdy, x.shape, 2), dict(index=index[:1])),
        (pb, (pdy, x.shape, 2), dict(index=index.astype(np.float64))),
        (pb, (pdy, x.shape, 2), dict(index=index + x.size)),
        (pb, (pdy, x.shape, 2), dict(index=index - index.max() - 1)),
        (pb, (pdy, x.shape[:3], 2), dict(index=index)),
        (pb, (pdy[:, :1], x.shape, 2), dict(index=index, mode="avg")),
        (pb, (pdy, x.shape, 2), dict(index=index, mode="sum")),
        (pb, (pdy, x.shape, 3), dict(index=index)),
    ]


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_bad_arguments_raise_the_reference_error(name, i):
    op, args, kwargs = BAD_CALLS[i]
    with pytest.raises((TypeError, ValueError)) as want:
        getattr(REFERENCE, op)(*args, **kwargs)
    with pytest.raises(want.type) as got:
        getattr(B.get(name), op)(*args, **kwargs)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_ops_refuse_aliasing(name):
    be = B.get(name)
    buf = np.zeros((2, 5, 5, 4))
    x, k = buf, np.ones((1, 1, 4, 4))
    with pytest.raises(ValueError, match="out and x overlap"):
        be.conv2d_forward(x, k, out=buf)
    with pytest.raises(ValueError, match="out and dy overlap"):
        be.conv2d_backward_input(buf, k, buf.shape, out=buf)
    with pytest.raises(ValueError, match="out and x overlap"):
        be.pool2d_forward(buf, 1, mode="avg", out=buf)


# ---------------------------------------------------------------------------
# the compiled ops: signatures, no fallback, no allocation
# ---------------------------------------------------------------------------
def test_compiled_backends_are_tested():
    if B.why_unavailable("cython") is None:
        assert "cython" in COMPILED


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_conv_ops_keep_signatures_and_do_not_fall_back(name, monkeypatch):
    be = B.get(name)
    calls = []
    for op in CONV_OPS:
        assert getattr(type(be), op) is not getattr(ConvOps, op), op
        assert inspect.signature(getattr(type(be), op)) == \
            inspect.signature(getattr(ConvOps, op)), op

        def spy(self, *args, _op=op, **kwargs):
            calls.append(_op)
            raise AssertionError(f"{name}.{_op} called the reference")

        monkeypatch.setattr(ConvOps, op, spy)
    x = np.ones((2, 6, 6, 3), np.float32)
    k = np.ones((3, 3, 3, 4), np.float32)
    y = be.conv2d_forward(x, k, np.ones(4, np.float32), padding=((1, 1), (1, 1)),
                          activation="relu")
    be.conv2d_backward_input(y, k, x.shape, padding=((1, 1), (1, 1)))
    be.conv2d_backward_kernel(x, y, k.shape, padding=((1, 1), (1, 1)))
    for act in ("linear", "relu"):
        be.conv2d_backward(y, x, k, y=y, activation=act, padding=((1, 1), (1, 1)))
    for mode in ("max", "avg"):
        out, index = be.pool2d_forward(y, 2, mode=mode)
        be.pool2d_backward(out, y.shape, 2, mode=mode, index=index)
    assert calls == []


def _warm_calls(be, dt):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 16, 16, 8)).astype(dt)
    k = rng.standard_normal((3, 3, 4, 32)).astype(dt)
    b = rng.standard_normal(32).astype(dt)
    geo = dict(strides=1, padding=((1, 1), (1, 1)), dilation=1, groups=2)
    y = rng.standard_normal((8, 16, 16, 32)).astype(dt)  # also the dy of the gradients
    dx, dk = np.empty_like(x), np.empty_like(k)
    pooled, index = REFERENCE.pool2d_forward(x, 2)
    k1 = rng.standard_normal((1, 1, 8, 32)).astype(dt)
    dk1, db = np.empty_like(k1), np.empty(32, dt)
    return {
        "conv2d_forward": lambda: be.conv2d_forward(x, k, b, activation="relu", out=y, **geo),
        "conv2d_forward 1x1": lambda: be.conv2d_forward(x, k1, out=y),
        "conv2d_backward_input": lambda: be.conv2d_backward_input(y, k, x.shape, out=dx,
                                                                  **geo),
        "conv2d_backward_kernel": lambda: be.conv2d_backward_kernel(x, y, k.shape, out=dk,
                                                                    **geo),
        "conv2d_backward": lambda: be.conv2d_backward(y, x, k, y=y, activation="relu",
                                                      dx=dx, dkernel=dk, dbias=db, **geo),
        "conv2d_backward 1x1": lambda: be.conv2d_backward(y, x, k1, dx=dx, dkernel=dk1,
                                                          dbias=db),
        "pool2d_forward max": lambda: be.pool2d_forward(x, 2, out=pooled, index=index),
        "pool2d_forward avg": lambda: be.pool2d_forward(x, 2, mode="avg", out=pooled),
        "pool2d_backward max": lambda: be.pool2d_backward(pooled, x.shape, 2, index=index,
                                                          out=dx),
        "pool2d_backward avg": lambda: be.pool2d_backward(pooled, x.shape, 2, mode="avg",
                                                          out=dx),
    }


#: Transient bytes a warm call may show (argument tuples and other small Python
#: objects: up to ~1.4 KiB measured). The smallest array an op could allocate here is
#: a copy of the kernel (4.5 KiB in float32); the column matrix is 288 KiB.
WARM_LIMIT = 4096


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", COMPILED)
def test_compiled_conv_ops_allocate_nothing_when_warm(name, dt):
    for what, call in _warm_calls(B.get(name), dt).items():
        assert transient_bytes(call) < WARM_LIMIT, f"{name} {what}"


def test_allocation_check_sees_the_reference_allocate():
    calls = _warm_calls(REFERENCE, np.float32)
    for what in ("conv2d_forward", "pool2d_backward avg"):
        assert transient_bytes(calls[what]) > WARM_LIMIT, what


# ---------------------------------------------------------------------------
# the oracle's gradients against float64 central differences
# ---------------------------------------------------------------------------
GRAD_CASES = [CONV_CASES[i] for i in (3, 6, 11, 12, 14)]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_gradients_match_finite_differences(name, case):
    be = B.get(name)
    rng = np.random.default_rng(9)
    x, kernel, geo = conv_case(case, np.float64, rng)
    r = dy_for(x, kernel, geo, rng)

    def loss():
        return float(np.sum(REFERENCE.conv2d_forward(x, kernel, **geo) * r))

    dx = be.conv2d_backward_input(r, kernel, x.shape, **geo)
    dk = be.conv2d_backward_kernel(x, r, kernel.shape, **geo)
    assert_close(dx, numerical_grad(loss, x), np.float64, loose=1e4, what="dx")
    assert_close(dk, numerical_grad(loss, kernel), np.float64, loose=1e4, what="dkernel")


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_pool_gradients_match_finite_differences(name, mode):
    be = B.get(name)
    rng = np.random.default_rng(10)
    # distinct values far apart, so no perturbation changes which element is a max
    x = rng.permutation(2 * 5 * 6 * 3).reshape(2, 5, 6, 3).astype(np.float64) * 0.1
    geo = dict(pool_size=(3, 2), strides=(2, 1), padding=((1, 1), (0, 1)), mode=mode)
    out, index = REFERENCE.pool2d_forward(x, **geo)
    r = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(REFERENCE.pool2d_forward(x, **geo)[0] * r))

    dx = be.pool2d_backward(r, x.shape, index=index, **geo)
    assert_close(dx, numerical_grad(loss, x), np.float64, loose=1e4, what="dx")
