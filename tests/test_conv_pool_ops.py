"""The fused convolution + max-pooling ops on every CPU backend.

* ``conv2d_pool_forward`` / ``conv2d_pool_backward`` equal the reference (itself the
  composition of the single ops, checked here too) over a grid of geometries, pool
  sizes (dividing the convolution's output or not), activations, dtypes, strided
  inputs and tiles of one image, several images and the whole batch.
* Their gradients equal float64 central differences.
* Bad arguments raise clear errors; outputs never alias inputs; compiled versions
  allocate nothing when warm.
"""
import numpy as np
import pytest

import pynn.backends as B

from helpers import (CPU_BACKENDS, REFERENCE, assert_close, check_op, conv_case, strided,
                     transient_bytes)
from test_conv_ops import CONV_CASES, WARM_LIMIT

DTYPES = [np.float32, np.float64]
ACTS = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus"]
#: CONV_CASES whose output has at least 2 x 2 pixels and a batch (pools of 2 fit)
CASES = [c for c in CONV_CASES if c[0] not in ("zero-batch", "empty-axis",
                                               "kernel-is-input", "padding-beyond-kernel")]


def _pool_fits(x, kernel, geo, pool):
    y = REFERENCE.conv2d_forward(x, kernel, **geo)
    p = (pool, pool) if isinstance(pool, int) else pool
    return y.shape[1] >= p[0] and y.shape[2] >= p[1]


def _check_pair(be, x, kernel, geo, act, pool, dt, rng, flags=(True, True, True)):
    bias = rng.standard_normal(kernel.shape[3]).astype(dt)
    kw = dict(geo, activation=act, pool_size=pool)
    want = REFERENCE.conv2d_pool_forward(x.copy(), kernel.copy(), bias.copy(), **kw)
    got = be.conv2d_pool_forward(x.copy(), kernel.copy(), bias.copy(), **kw)
    assert_close(got[0], want[0], dt, what=f"{be.name} out")
    # the reference is the single ops one after the other
    y = REFERENCE.conv2d_forward(x, kernel, bias, activation=act, **geo)
    pooled, index = REFERENCE.pool2d_forward(y, pool)
    assert_close(want[0], pooled, dt, what="reference out")
    np.testing.assert_array_equal(want[1], index)
    if dt == np.float64:  # float32 activations may round near-equal values to a tie
        np.testing.assert_array_equal(got[1], want[1])
    else:  # then the position may differ, not the value
        assert_close(y.reshape(-1)[got[1]], want[0], dt, what=f"{be.name} maxima")
    assert got[1].dtype == np.int64
    out, index = want
    dy = rng.standard_normal(out.shape).astype(dt)
    dx, dk, db = flags
    bk = dict(geo, activation=act, pool_size=pool, input_grad=dx, kernel_grad=dk,
              bias_grad=db)
    g, w = check_op(be, "conv2d_pool_backward", (dy, x, kernel, out, index), bk, dtype=dt)
    for gi, wi, wanted in zip(g, w, flags):
        assert (gi is None) == (wi is None) == (not wanted)
    # ... and the reference's gradient is the single ops' gradient
    dyc = REFERENCE.pool2d_backward(dy, y.shape, pool, index=index)
    ref = REFERENCE.conv2d_backward(dyc, x, kernel, y=y, activation=act, **geo)
    for wi, ri in zip(w, ref):
        if wi is not None:
            assert_close(wi, ri, dt, what="reference gradient")


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_pool_matches_reference(name, case, dt):
    be = B.get(name)
    rng = np.random.default_rng(20)
    x, kernel, geo = conv_case(case, dt, rng)
    for pool, act in ((2, "relu"), ((1, 2), "linear"), ((2, 1), "tanh")):
        if _pool_fits(x, kernel, geo, pool):
            _check_pair(be, x, kernel, geo, act, pool, dt, rng)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_pool_activations_pools_and_subsets(name, dt):
    be = B.get(name)
    rng = np.random.default_rng(21)
    # a 9 x 10 output: pools of 2 and 3 leave rows and columns out
    x, kernel, geo = conv_case(("", 3, 11, 12, 5, 3, 3, 6, 1, 0, 1, 1), dt, rng)
    for act in ACTS + [None]:
        _check_pair(be, x, kernel, geo, act, 2, dt, rng)
    for pool in (1, 3, (3, 2), (9, 10), (4, 5)):
        _check_pair(be, x, kernel, geo, "relu", pool, dt, rng)
    for flags in [(False, True, True), (True, False, False), (False, False, True),
                  (False, False, False)]:
        _check_pair(be, x, kernel, geo, "elu", 2, dt, rng, flags)
    # 1x1 kernel (the input is the column matrix), groups, relu ties (zeros)
    x1, k1, geo1 = conv_case(("", 2, 6, 4, 4, 1, 1, 6, 1, 0, 1, 2), dt, rng)
    _check_pair(be, x1, k1, geo1, "relu", 2, dt, rng)
    _check_pair(be, -np.abs(x1), np.abs(k1), geo1, "relu", 2, dt, rng)


@pytest.mark.parametrize("kind", ["step", "T"])
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_pool_strided_inputs(name, dt, kind):
    be = B.get(name)
    rng = np.random.default_rng(22)
    x, kernel, geo = conv_case(("", 2, 8, 7, 4, 3, 3, 4, 1, 1, 1, 2), dt, rng)
    bias = rng.standard_normal(4).astype(dt)
    want = REFERENCE.conv2d_pool_forward(x, kernel, bias, activation="relu", pool_size=2,
                                         **geo)
    got = be.conv2d_pool_forward(strided(x, kind), strided(kernel, kind), bias,
                                 activation="relu", pool_size=2, **geo)
    assert_close(got[0], want[0], dt)
    dy = rng.standard_normal(want[0].shape).astype(dt)
    args = (dy, x, kernel, want[0], want[1])
    w = REFERENCE.conv2d_pool_backward(*args, activation="relu", pool_size=2, **geo)
    g = be.conv2d_pool_backward(*(strided(a, kind) for a in args), activation="relu",
                                pool_size=2, **geo)
    assert_close(g, w, dt)


def test_cython_conv_pool_in_tiles(monkeypatch):
    """Tiles of one image, of a few images (the last one short) and of the whole batch:
    the index holds positions in the whole convolution output, and the kernel and
    bias gradients sum over the tiles."""
    _conv = pytest.importorskip("pynn._ext.conv")
    be = B.get("cython")
    rng = np.random.default_rng(23)
    x, kernel, geo = conv_case(("", 7, 9, 8, 3, 3, 3, 5, 1, ((1, 0), (0, 1)), 1, 1),
                                np.float64, rng)
    per_image = 7 * 6 * 5 * 8  # the convolution output of one image, float64
    for tile_bytes in (1, 3 * per_image, 1 << 20):
        monkeypatch.setattr(_conv, "TILE_BYTES", tile_bytes)
        for act in ("relu", "sigmoid"):
            _check_pair(be, x, kernel, geo, act, 2, np.float64, rng)
    monkeypatch.setattr(_conv, "COLS_BLOCK_BYTES", 200)  # column blocks inside a tile
    monkeypatch.setattr(_conv, "TILE_BYTES", 2 * per_image)
    _check_pair(be, x, kernel, geo, "relu", (2, 3), np.float64, rng)


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_conv_pool_gradients_match_finite_differences(name):
    be = B.get(name)
    rng = np.random.default_rng(24)
    x, kernel, geo = conv_case(("", 2, 6, 7, 3, 3, 2, 4, 1, ((1, 0), (0, 1)), 1, 1),
                                np.float64, rng)
    bias = rng.standard_normal(4)
    out, index = REFERENCE.conv2d_pool_forward(x, kernel, bias, activation="tanh",
                                               pool_size=2, **geo)
    r = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(REFERENCE.conv2d_pool_forward(
            x, kernel, bias, activation="tanh", pool_size=2, **geo)[0] * r))

    dx, dk, db = be.conv2d_pool_backward(r, x, kernel, out, index, activation="tanh",
                                         pool_size=2, **geo)
    for got, arr, what in ((dx, x, "dx"), (dk, kernel, "dkernel"), (db, bias, "dbias")):
        num = np.zeros_like(arr)
        flat, nf = arr.reshape(-1), num.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + 1e-6
            up = loss()
            flat[i] = old - 1e-6
            down = loss()
            flat[i] = old
            nf[i] = (up - down) / 2e-6
        assert_close(got, num, np.float64, loose=1e4, what=what)


def test_conv_pool_bad_arguments():
    rng = np.random.default_rng(25)
    x, k, geo = conv_case(("", 2, 6, 6, 4, 3, 3, 6, 1, 0, 1, 2), np.float64, rng)
    out, index = REFERENCE.conv2d_pool_forward(x, k, activation="relu", **geo)
    dy = np.ones_like(out)
    f, b = "conv2d_pool_forward", "conv2d_pool_backward"
    bad = [
        (f, (x, k), dict(geo, pool_size=5), "does not fit the convolution's output"),
        (f, (x, k), dict(geo, pool_size=0), "pool_size"),
        (f, (x, k), dict(geo, activation="gelu"), "not elementwise from the output"),
        (f, (x, k), dict(geo, activation="softmax"), "not elementwise from the output"),
        (f, (x, k), dict(geo, activation="swish"), "Unknown activation"),
        (f, (x, k, np.ones(5)), geo, "bias must have shape"),
        (f, (x, k), dict(geo, out=np.empty((2, 4, 4, 6))), "out: expected shape"),
        (f, (x, k), dict(geo, index=np.empty(out.shape, np.int32)), "index: expected dtype"),
        (f, (x[..., :3], k), geo, "channels"),
        (b, (dy[:1], x, k, out, index), geo, "dy must have the pooled shape"),
        (b, (dy, x, k, out[..., :3], index), geo, "out must have the pooled shape"),
        (b, (dy, x, k, out, index.astype(np.int32)), geo, "index must be the int64"),
        (b, (dy, x, k, out, index + 10 ** 6), geo, "outside the convolution's output"),
        (b, (dy, x, k, out, index), dict(geo, input_grad=False, dx=np.empty_like(x)),
         "dx was given"),
        (b, (dy, x, k, out, index), dict(geo, dkernel=np.empty((3, 3, 2, 5))),
         "dkernel: expected shape"),
    ]
    for name in CPU_BACKENDS:
        be = B.get(name)
        for op, args, kwargs, match in bad:
            with pytest.raises(ValueError, match=match):
                getattr(be, op)(*args, **kwargs)
        with pytest.raises(ValueError, match="out and x overlap"):
            be.conv2d_pool_forward(x, k, out=x.reshape(-1)[:out.size].reshape(out.shape),
                                   **geo)
        with pytest.raises(ValueError, match="dbias and dy overlap"):
            be.conv2d_pool_backward(dy, x, k, out, index, dbias=dy.reshape(-1)[:6], **geo)


def test_cython_conv_pool_refuses_an_index_from_another_tile(monkeypatch):
    """The tiled kernel scatters each gradient into its own tile of images: an index
    into another image (in range, but not what the forward returned) gives the
    reference's result while both images share a tile, and is refused, not misread,
    when they do not."""
    _conv = pytest.importorskip("pynn._ext.conv")
    rng = np.random.default_rng(26)
    x, k, geo = conv_case(("", 2, 6, 6, 3, 3, 3, 4, 1, 0, 1, 1), np.float64, rng)
    out, index = REFERENCE.conv2d_pool_forward(x, k, **geo)
    swapped = index[::-1].copy()  # image 0 gets image 1's positions
    dy = rng.standard_normal(out.shape)
    want = REFERENCE.conv2d_pool_backward(dy, x, k, out, swapped, **geo)
    assert_close(B.get("cython").conv2d_pool_backward(dy, x, k, out, swapped, **geo), want,
                 np.float64)
    monkeypatch.setattr(_conv, "TILE_BYTES", 1)
    with pytest.raises(ValueError, match="in another tile of images than its own"):
        B.get("cython").conv2d_pool_backward(dy, x, k, out, swapped, **geo)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", [n for n in CPU_BACKENDS if n != "numpy"])
def test_compiled_conv_pool_allocates_nothing_when_warm(name, dt):
    be = B.get(name)
    rng = np.random.default_rng(27)
    x = rng.standard_normal((16, 14, 14, 3)).astype(dt)
    k = rng.standard_normal((3, 3, 3, 16)).astype(dt)
    b = rng.standard_normal(16).astype(dt)
    out, index = np.empty((16, 6, 6, 16), dt), np.empty((16, 6, 6, 16), np.int64)
    dx, dk, db = np.empty_like(x), np.empty_like(k), np.empty_like(b)
    be.conv2d_pool_forward(x, k, b, activation="relu", out=out, index=index)
    dy = rng.standard_normal(out.shape).astype(dt)
    calls = {
        "forward": lambda: be.conv2d_pool_forward(x, k, b, activation="relu", out=out,
                                                  index=index),
        "backward": lambda: be.conv2d_pool_backward(dy, x, k, out, index, activation="relu",
                                                    dx=dx, dkernel=dk, dbias=db),
    }
    for what, call in calls.items():
        assert transient_bytes(call) < WARM_LIMIT, f"{name} {what}"
