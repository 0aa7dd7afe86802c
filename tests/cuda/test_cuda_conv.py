"""The cuda backend's convolution and pooling kernels against the NumPy reference.

The geometries, pooling cases and bad calls are those every CPU backend is checked
on (``tests/test_conv_ops.py``): 1x1 and non-square kernels, a kernel as large as
the input, strides that do not divide, asymmetric padding and padding beyond the
kernel, dilation, groups up to depthwise, batch 1, one channel, empty batches and
axes; float32 and float64; host and device inputs, contiguous or not; every
activation of the epilogue; max-pooling ties (the first maximum, with the same
int64 index). With 4-thread blocks and at most 2 blocks, every grid-stride loop
wraps and the kernel gradient's shared-memory tree has two levels.

Also: device arrays may not overlap either, the kernels load on first use, and every
CUDA kernel (these and ``_cuda_kernels``) caches only in pynn's checked directory.
"""
import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pynn
from pynn.backends.conv import ConvOps
from helpers import REFERENCE, assert_close, conv_case, dy_for, pad_pair, strided
from test_conv_ops import ACTIVATIONS, BAD_CALLS, CONV_CASES, POOL_CASES
from test_cuda_ops import check

pytestmark = pytest.mark.cudasim

CONV_OPS = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_kernel",
            "pool2d_forward", "pool2d_backward")
DTYPES = [np.float32, np.float64]


def _is_device(a):
    return bool(getattr(a, "__cuda_ndarray__", False))


@pytest.fixture(autouse=True)
def _device_arrays_never_reach_host_conversion(monkeypatch):
    """The simulator's device arrays convert to numpy silently, a GPU's do not: fail
    any conversion of a device array by the checks (``as_float``) these ops share."""
    import pynn.backends.conv as conv_module
    import pynn.backends.cuda_backend as cuda_module
    original = conv_module.as_float

    def as_float(x, *args, **kwargs):
        assert not _is_device(x), "a device array was converted on the host"
        return original(x, *args, **kwargs)

    monkeypatch.setattr(conv_module, "as_float", as_float)
    monkeypatch.setattr(cuda_module, "as_float", as_float)


# ----------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv_ops_match_reference(cuda_be, case, dt):
    rng = np.random.default_rng(0)
    x, kernel, geo = conv_case(case, dt, rng)
    bias = rng.standard_normal(kernel.shape[3]).astype(dt)
    check(cuda_be, "conv2d_forward", [x, kernel], dict(geo), dt)
    check(cuda_be, "conv2d_forward", [x, kernel, bias], dict(geo, activation="relu"), dt)
    dy = dy_for(x, kernel, geo, rng)
    check(cuda_be, "conv2d_backward_input", [dy, kernel, x.shape], dict(geo), dt)
    check(cuda_be, "conv2d_backward_kernel", [x, dy, kernel.shape], dict(geo), dt)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CONV_CASES[:8], ids=[c[0] for c in CONV_CASES[:8]])
def test_fused_conv_backward_matches_reference(cuda_be, case, dt):
    """``conv2d_backward`` (the conv layers' backward op) on device arrays: the
    activation gradient, kernel, bias and input gradients, and subsets of them."""
    rng = np.random.default_rng(2)
    x, kernel, geo = conv_case(case, dt, rng)
    bias = rng.standard_normal(kernel.shape[3]).astype(dt)
    for act, flags in (("linear", (True, True, True)), ("tanh", (True, True, True)),
                       ("relu", (False, True, False))):
        y = REFERENCE.conv2d_forward(x, kernel, bias, activation=act, **geo)
        dy = rng.standard_normal(y.shape).astype(dt)
        check(cuda_be, "conv2d_backward", [dy, x, kernel],
              dict(geo, y=y, activation=act, input_grad=flags[0], kernel_grad=flags[1],
                   bias_grad=flags[2]), dt)


def test_conv_model_trains_on_the_device_as_on_the_reference(cuda_be):
    """A Conv2D -> MaxPooling2D -> Dense model: two Adam steps on the cuda backend give
    the reference's weights (float64)."""
    from pynn import layers
    x = np.random.default_rng(3).random((4, 6, 6, 2))
    y = np.eye(3)[[0, 1, 2, 0]]
    results = []
    pynn.set_floatx("float64")
    try:
        for be in ("numpy", cuda_be):
            with pynn.backends.use_backend(be):
                pynn.set_seed(0)
                m = pynn.Sequential([pynn.Input((6, 6, 2)),
                                     layers.Conv2D(3, 3, activation="relu"),
                                     layers.MaxPooling2D(2), layers.Flatten(),
                                     layers.Dense(3, activation="softmax")])
                m.compile(optimizer="adam", loss="categorical_crossentropy")
                m.fit(x, y, epochs=2, batch_size=4, verbose=0, shuffle=False)
                results.append(m.get_weights())
    finally:
        pynn.set_floatx("float32")
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
def test_conv_forward_every_activation(cuda_be, dt):
    rng = np.random.default_rng(1)
    x, kernel, geo = conv_case(("", 2, 5, 4, 4, 3, 2, 6, (1, 2), 1, 1, 2), dt, rng)
    bias = rng.standard_normal(6).astype(dt)
    for act in ACTIVATIONS + [None]:
        check(cuda_be, "conv2d_forward", [x, kernel, bias], dict(geo, activation=act), dt)
    check(cuda_be, "conv2d_forward", [x, kernel], dict(geo, activation="softmax"), dt)


@pytest.mark.parametrize("kind", ["step", "T"])
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
def test_conv_non_contiguous_device_and_converted_inputs(cuda_be, dt, kind):
    """Strided host views, device arrays (contiguous or not, of another dtype), and
    host inputs of another dtype: converted as the reference converts them."""
    be = cuda_be
    rng = np.random.default_rng(2)
    x, kernel, geo = conv_case(("", 2, 6, 5, 4, 3, 3, 4, 2, 1, 1, 2), dt, rng)
    dy = dy_for(x, kernel, geo, rng)
    bias = rng.standard_normal(4)
    want_y = REFERENCE.conv2d_forward(x, kernel, bias, activation="tanh", **geo)
    want_dx = REFERENCE.conv2d_backward_input(dy, kernel, x.shape, **geo)
    want_dk = REFERENCE.conv2d_backward_kernel(x, dy, kernel.shape, **geo)
    sx, sk, sd = strided(x, kind), strided(kernel, kind), strided(dy, kind)
    variants = {
        "host views": (sx, sk, sd, bias),
        "device": (be.asarray(x), be.asarray(kernel), be.asarray(dy), be.asarray(bias)),
        # a device view that is not C-contiguous: every other image of a larger batch
        "device views": tuple(be.asarray(np.repeat(a, 2, axis=0))[::2]
                              for a in (x, kernel, dy)) + (bias,),
    }
    for what, (vx, vk, vd, vb) in variants.items():
        y = be.conv2d_forward(vx, vk, vb, activation="tanh", **geo)
        assert _is_device(y) and y.dtype == dt
        assert_close(be.to_numpy(y), want_y, dt, what=f"forward, {what}")
        assert_close(be.to_numpy(be.conv2d_backward_input(vd, vk, x.shape, **geo)), want_dx,
                     dt, what=f"backward_input, {what}")
        assert_close(be.to_numpy(be.conv2d_backward_kernel(vx, vd, kernel.shape, **geo)),
                     want_dk, dt, what=f"backward_kernel, {what}")
    other = np.float64 if dt == np.float32 else np.float32
    check(be, "conv2d_forward", [x, kernel.astype(other)], dict(geo), dt)
    y = be.conv2d_forward(x, be.asarray(kernel.astype(other)), **geo)
    assert y.dtype == dt
    check(be, "conv2d_backward_kernel", [x, dy.astype(other), kernel.shape], dict(geo), dt)
    check(be, "conv2d_forward", [x.astype(np.int32), kernel], dict(geo), np.float64)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
def test_conv_extreme_values(cuda_be, dt):
    """Huge and tiny magnitudes, infinities and NaN propagate as in the reference."""
    rng = np.random.default_rng(3)
    x, kernel, geo = conv_case(("", 2, 4, 4, 3, 3, 3, 4, 1, 1, 1, 1), dt, rng)
    big = np.finfo(dt).max ** 0.5 / 64
    for scale in (big, 1 / big):
        xs = (x * scale).astype(dt)
        check(cuda_be, "conv2d_forward", [xs, kernel], dict(geo, activation="sigmoid"), dt)
        dy = dy_for(xs, kernel, geo, rng)
        check(cuda_be, "conv2d_backward_kernel", [xs, dy, kernel.shape], dict(geo), dt)
    xs = x.copy()
    xs[0, 1, 2, 0], xs[1, 3, 3, 2], xs[1, 0, 0, 1] = np.inf, -np.inf, np.nan
    check(cuda_be, "conv2d_forward", [xs, kernel], dict(geo), dt)
    dy = dy_for(x, kernel, geo, rng)
    dy[1, 2, 2, 3] = np.inf
    check(cuda_be, "conv2d_backward_input", [dy, kernel, x.shape], dict(geo), dt)


def test_conv_out_buffers_are_device_arrays_filled_in_place(cuda_be):
    be = cuda_be
    rng = np.random.default_rng(4)
    x, kernel, geo = conv_case(("", 2, 5, 5, 2, 3, 3, 3, 1, 1, 1, 1), np.float32, rng)
    out = be.empty((2, 5, 5, 3), np.float32)
    assert be.conv2d_forward(x, kernel, out=out, **geo) is out
    assert_close(be.to_numpy(out), REFERENCE.conv2d_forward(x, kernel, **geo), np.float32)
    dk = be.zeros(kernel.shape, np.float32)
    assert be.conv2d_backward_kernel(x, out, kernel.shape, out=dk, **geo) is dk
    with pytest.raises(ValueError, match=r"out: expected a device array of shape \(2, 5, 5, 3\)"):
        be.conv2d_forward(x, kernel, out=np.empty((2, 5, 5, 3), np.float32), **geo)
    with pytest.raises(ValueError, match=r"out: expected shape \(2, 5, 5, 3\)"):
        be.conv2d_forward(x, kernel, out=be.empty((2, 5, 5, 2), np.float32), **geo)
    with pytest.raises(ValueError, match="out: expected dtype float32"):
        be.conv2d_forward(x, kernel, out=be.empty((2, 5, 5, 3), np.float64), **geo)


# ----------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------
def _pool_case(case, dt, rng, ties=False):
    _, n, h, w, c, pool, strides, padding = case
    if ties:
        x = rng.integers(-2, 2, (n, h, w, c)).astype(dt)
    else:
        x = rng.standard_normal((n, h, w, c)).astype(dt)
    return x, dict(pool_size=pool, strides=strides, padding=pad_pair(padding))


def _check_pool(be, x, geo, mode, dt, rng, index_kind=None):
    """Forward (values, and the same int64 index for max), then backward from the
    reference's index (or, ``index_kind``, a view or another integer dtype of it)
    and from the device index the cuda forward returned."""
    want, want_index = REFERENCE.pool2d_forward(x, mode=mode, **geo)
    got, got_index = be.pool2d_forward(x, mode=mode, **geo)
    assert _is_device(got)
    assert_close(be.to_numpy(got), want, dt, what=f"pool2d_forward {mode}")
    if mode == "max":
        assert _is_device(got_index) and got_index.dtype == np.int64
        np.testing.assert_array_equal(be.to_numpy(got_index), want_index)
    else:
        assert got_index is None and want_index is None
    if mode == "max" and (want_index < 0).any():
        return  # windows of padding only (an empty input axis): nothing to scatter
    dy = rng.standard_normal(want.shape).astype(dt)
    ref_dx = REFERENCE.pool2d_backward(dy, x.shape, mode=mode, index=want_index, **geo)
    index = want_index
    if index is not None and index_kind is not None:
        index = strided(index, "step") if index_kind == "step" else index.astype(index_kind)
    for idx in ((index, got_index) if mode == "max" else (None,)):
        dx = be.pool2d_backward(dy, x.shape, mode=mode, index=idx, **geo)
        assert _is_device(dx)
        assert_close(be.to_numpy(dx), ref_dx, dt, what=f"pool2d_backward {mode}")


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # reference, empty axis
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool_ops_match_reference(cuda_be, case, dt, mode):
    rng = np.random.default_rng(5)
    x, geo = _pool_case(case, dt, rng)
    _check_pool(cuda_be, x, geo, mode, dt, rng)
    x, geo = _pool_case(case, dt, rng, ties=True)
    _check_pool(cuda_be, x, geo, mode, dt, rng)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # the reference, summing
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # infinities
@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
def test_pool_strided_device_inputs_extreme_values_and_indices(cuda_be, dt):
    be = cuda_be
    rng = np.random.default_rng(6)
    x, geo = _pool_case(("", 2, 6, 5, 3, 3, 2, 1), dt, rng)
    for mode in ("max", "avg"):
        _check_pool(be, strided(x, "step"), geo, mode, dt, rng)
        _check_pool(be, strided(x, "T"), geo, mode, dt, rng)
        want = REFERENCE.pool2d_forward(x, mode=mode, **geo)[0]
        got = be.pool2d_forward(be.asarray(np.repeat(x, 2, axis=0))[::2], mode=mode, **geo)[0]
        assert_close(be.to_numpy(got), want, dt, what=f"device view, {mode}")
    for kind in ("step", np.int32, np.uint16):
        _check_pool(be, x, geo, "max", dt, rng, index_kind=kind)
    xs = x * (np.finfo(dt).max / 8)
    xs[0, 0, 0, 0], xs[1, 2, 3, 1], xs[1, 4, 4, 2] = np.nan, np.inf, -np.inf
    xs[0, 1, 1, :] = np.nan
    for mode in ("max", "avg"):
        _check_pool(be, xs, geo, mode, dt, rng)


def test_max_pool_backward_refuses_an_index_outside_its_window(cuda_be):
    """The gather over windows needs each index in its own window: a position of the
    input elsewhere (which the reference would scatter to) is refused, host or device;
    a position outside the input gets the reference's error from a device index too."""
    be = cuda_be
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float64).reshape(2, 4, 4, 3)
    _, index = REFERENCE.pool2d_forward(x, 2)
    dy = np.ones((2, 2, 2, 3))
    for bad in (index[::-1].copy(), index - 1, index[..., ::-1].copy()):
        for idx in (bad, be.asarray(bad)):
            with pytest.raises(ValueError, match="outside their pooling windows"):
                be.pool2d_backward(dy, x.shape, 2, index=idx)
    for bad in (index + x.size, index - index.max() - 1):
        with pytest.raises(ValueError) as want:
            REFERENCE.pool2d_backward(dy, x.shape, 2, index=bad)
        with pytest.raises(ValueError) as got:
            be.pool2d_backward(dy, x.shape, 2, index=be.asarray(bad))
        assert str(got.value) == str(want.value)
    with pytest.raises(ValueError, match="index must be integers"):
        be.pool2d_backward(dy, x.shape, 2, index=be.asarray(index.astype(np.float64)))


def test_pool_out_and_index_buffers(cuda_be):
    be = cuda_be
    x = np.random.default_rng(7).standard_normal((2, 4, 5, 3))
    out, index = be.empty((2, 2, 2, 3), np.float64), be.empty((2, 2, 2, 3), np.int64)
    got = be.pool2d_forward(x, 2, out=out, index=index)
    assert got[0] is out and got[1] is index
    with pytest.raises(ValueError, match="index: expected a device array"):
        be.pool2d_forward(x, 2, index=np.empty((2, 2, 2, 3), np.int64))
    with pytest.raises(ValueError, match="index: expected dtype int64"):
        be.pool2d_forward(x, 2, index=be.empty((2, 2, 2, 3), np.int32))


# ----------------------------------------------------------------------
# errors and aliasing
# ----------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_bad_arguments_raise_the_reference_error(cuda_be, i):
    """The reference's error, type and message; except that an output buffer must be
    a device array (as in every op of this backend), which the error says."""
    op, args, kwargs = BAD_CALLS[i]
    with pytest.raises((TypeError, ValueError)) as want:
        getattr(REFERENCE, op)(*args, **kwargs)
    buffer = "out" if "out" in kwargs else ("index" if op == "pool2d_forward"
                                            and "index" in kwargs else None)
    if buffer is not None:
        with pytest.raises(ValueError, match=f"{buffer}: expected a device array"):
            getattr(cuda_be, op)(*args, **kwargs)
        return
    with pytest.raises(want.type) as got:
        getattr(cuda_be, op)(*args, **kwargs)
    assert str(got.value) == str(want.value)
    dev = [cuda_be.asarray(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
           for a in args]
    with pytest.raises(want.type) as got:
        getattr(cuda_be, op)(*dev, **kwargs)
    assert str(got.value) == str(want.value), "with device arrays"


def test_conv_ops_refuse_aliasing_on_the_device(cuda_be):
    be = cuda_be
    buf = be.zeros((3, 5, 5, 4), np.float64)
    x, k = buf[1:], np.ones((1, 1, 4, 4))  # x: the last two images of buf
    with pytest.raises(ValueError, match=r"out and x overlap in memory \(the same array\)"):
        be.conv2d_forward(x, k, out=x)
    with pytest.raises(ValueError, match=r"out and x overlap in memory;"):
        be.conv2d_forward(x, k, out=buf[:2])
    with pytest.raises(ValueError, match="out and dy overlap"):
        be.conv2d_backward_input(x, k, x.shape, out=buf[:2])
    with pytest.raises(ValueError, match="out and x overlap"):
        be.pool2d_forward(x, 1, mode="avg", out=buf[:2])
    index = be.empty((2, 5, 5, 4), np.int64)
    with pytest.raises(ValueError, match="out and index overlap"):
        be.pool2d_forward(x, 1, out=index.view(np.float64), index=index)
    y = be.conv2d_forward(x, k, out=be.empty((2, 5, 5, 4), np.float64))  # apart: fine
    be.conv2d_forward(buf[:1], k, out=buf[2:])  # adjacent, not overlapping: fine
    assert_close(be.to_numpy(buf[2:]), be.to_numpy(y)[1:], np.float64)


# ----------------------------------------------------------------------
# the contract: signatures, no fallback, lazy import
# ----------------------------------------------------------------------
def test_conv_ops_keep_signatures_and_do_not_fall_back(cuda_be, monkeypatch):
    be = cuda_be
    for op in CONV_OPS:
        assert getattr(type(be), op) is not getattr(ConvOps, op), op
        assert inspect.signature(getattr(type(be), op)) == \
            inspect.signature(getattr(ConvOps, op)), op

        def spy(self, *args, _op=op, **kwargs):
            raise AssertionError(f"cuda.{_op} called the reference")

        monkeypatch.setattr(ConvOps, op, spy)
    x = be.asarray(np.ones((2, 4, 4, 3), np.float32))
    k = np.ones((3, 3, 3, 4), np.float32)
    y = be.conv2d_forward(x, k, np.ones(4, np.float32), padding=((1, 1), (1, 1)),
                          activation="softmax")
    be.conv2d_backward_input(y, k, x.shape, padding=((1, 1), (1, 1)))
    be.conv2d_backward_kernel(x, y, k.shape, padding=((1, 1), (1, 1)))
    for mode in ("max", "avg"):
        out, index = be.pool2d_forward(y, 2, mode=mode)
        be.pool2d_backward(out, y.shape, 2, mode=mode, index=index)


def test_conv_kernels_load_on_first_use():
    """Neither ``import pynn`` nor starting the backend loads the conv kernels (they
    compile on their first launch); the first conv op does."""
    code = ("import sys, numpy as np\n"
            "from pynn.backends.cuda_backend import CudaBackend\n"
            "be = CudaBackend()\n"
            "name = 'pynn.backends._cuda_conv'\n"
            "print(name in sys.modules)\n"
            "be.pool2d_forward(np.ones((1, 2, 2, 1)), 2)\n"
            "print(name in sys.modules)\n")
    path = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    env = dict(os.environ, PYTHONPATH=path, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


def test_kernels_are_cached_only_in_pynns_checked_directory(tmp_path):
    """With a real ``numba.cuda`` (no simulator; no GPU needed to build dispatchers),
    every kernel of both CUDA modules caches in pynn's directory (never Numba's
    default ``__pycache__``), with pynn's checked, framed files: a damaged index is
    discarded, not unpickled. The conv kernels' entries are also keyed on
    ``_cuda_kernels.py``, whose device functions are compiled into them."""
    code = textwrap.dedent("""
        import os, warnings
        warnings.simplefilter("always")
        from numba.cuda.dispatcher import CUDADispatcher
        from pynn.backends import _cuda_conv as C, _cuda_kernels as K, _numba_cache as NC
        root = NC.cache_dir()
        for mod in (K, C):
            for name, d in sorted(vars(mod).items()):
                if not isinstance(d, CUDADispatcher) or d.py_func.__module__ != mod.__name__:
                    continue
                device = d.targetoptions.get("device", False)
                where = getattr(d._cache, "cache_path", None)
                print(mod.__name__.rsplit(".", 1)[1], name, device,
                      type(d._cache).__module__ == NC.__name__,
                      where is not None and where.startswith(root))
        cache = C.conv_forward._cache
        print("stamps", len(cache._cache_file._source_stamp))
        cache._impl.locator.ensure_cache_path()
        files = cache._cache_file
        files._save_index({"sig": "entry"})
        print("index", files._load_index())
        with open(files._index_path, "wb") as f:
            f.write(b"not a pynn cache file")
        print("damaged", files._load_index(), os.path.exists(files._index_path))
    """)
    path = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    env = dict(os.environ, PYTHONPATH=path, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    kernels = [line.split() for line in lines[:-3]]
    assert {k[0] for k in kernels} == {"_cuda_kernels", "_cuda_conv"}
    # six kernels and the unravel device function
    assert sum(k[0] == "_cuda_conv" for k in kernels) == 7
    for mod, name, device, ours, inside in kernels:
        if device == "True":  # compiled into the kernels that call it, not on its own
            assert ours == "False", name
        else:
            assert (ours, inside) == ("True", "True"), f"{mod}.{name}"
    assert lines[-3:] == ["stamps 2", "index {'sig': 'entry'}", "damaged {} False"]
    assert "discarded the damaged Numba cache file" in r.stderr
    assert not list(tmp_path.rglob("__pycache__"))
