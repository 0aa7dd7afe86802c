"""The cuda backend's sequence ops (embedding, SimpleRNN / LSTM / GRU) against the NumPy
reference, under the simulator on tiny shapes.

The recurrent cases are those the CPU backends are checked on (tests/test_recurrent_ops.py):
sequence length 1, batch 1, units 1 and a few odd sizes; float32 and float64; masks with
a fully masked row and right padding; go_backwards; GRU with and without reset_after;
no bias and no initial states; every output (the workspaces too) and every gradient
(dh0/dc0 included). With 4-thread blocks, 4x4 GEMM tiles and at most 2 blocks, every
grid-stride loop wraps and every GEMM has partial tiles. Also: device arguments are
never converted on the host and device outputs are filled in place, the errors are the
reference's, and the kernels load on first use and cache only in pynn's directory.
"""
import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pynn
from pynn.backends.base import Backend
from helpers import REFERENCE, assert_close
from test_recurrent_ops import CELL_IDS, CELLS, backward, forward, problem

pytestmark = pytest.mark.cudasim

DTYPES = [np.float32, np.float64]
SEQ_OPS = ("embedding_forward", "embedding_backward", "simple_rnn_forward",
           "simple_rnn_backward", "lstm_forward", "lstm_backward", "gru_forward",
           "gru_backward")


def _is_device(a):
    return bool(getattr(a, "__cuda_ndarray__", False))


class Host:
    """The cuda backend called with the given arguments, its device results copied to
    the host (``None`` stays ``None``); every result must be a device array."""

    def __init__(self, be):
        self.be = be

    def _host(self, r):
        if isinstance(r, tuple):
            return tuple(self._host(v) for v in r)
        if r is None:
            return None
        assert _is_device(r), "cuda ops must return device arrays"
        return self.be.to_numpy(r)

    def __getattr__(self, op):
        fn = getattr(self.be, op)
        return lambda *args, **kwargs: self._host(fn(*args, **kwargs))


def _guarded(fn, pos):
    def wrapped(*args, **kwargs):
        assert not _is_device(args[pos]), f"{fn.__name__}: a device array reached the host"
        return fn(*args, **kwargs)
    return wrapped


@pytest.fixture(autouse=True)
def _device_arrays_never_reach_host_conversion(monkeypatch):
    """The simulator's device arrays convert to numpy silently, a GPU's do not: fail any
    conversion of a device array by the checks the sequence ops share."""
    import pynn.backends.embedding as E
    import pynn.backends.recurrent as R
    monkeypatch.setattr(R, "as_float", _guarded(R.as_float, 0))
    monkeypatch.setattr(R, "_mask", _guarded(R._mask, 1))
    monkeypatch.setattr(E, "as_float", _guarded(E.as_float, 0))
    monkeypatch.setattr(E, "prep_embedding_ids", _guarded(E.prep_embedding_ids, 1))


def _call(be, op, *args, **kwargs):
    """``be.op(*args, **kwargs)``, passing only the keywords ``op`` takes (the cells'
    signatures differ: SimpleRNN has no recurrent activation, only GRU reset_after)."""
    fn = getattr(be, op)
    params = inspect.signature(fn).parameters
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


FWD_NAMES = {"simple_rnn": ("out", "h_out", "hprev", "gates"),
             "lstm": ("out", "h_out", "c_out", "hprev", "cprev", "gates"),
             "gru": ("out", "h_out", "hprev", "gates")}
BWD_NAMES = {"simple_rnn": ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0"),
             "lstm": ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0", "dc0"),
             "gru": ("dx", "dkernel", "drecurrent_kernel", "dbias", "dh0")}


def run_forward(be, cell, p, dev=lambda a: a, **kwargs):
    states = (dev(p["h0"]),) + ((dev(p["c0"]),) if cell == "lstm" else ())
    res = _call(be, f"{cell}_forward", dev(p["x"]), dev(p["kernel"]), dev(p["rk"]),
                dev(p["bias"]), *states, mask=dev(p["mask"]), **kwargs)
    return dict(zip(FWD_NAMES[cell], res))


def run_backward(be, cell, fw, p, dy, dev=lambda a: a, **kwargs):
    work = (fw["hprev"],) + ((fw["cprev"],) if cell == "lstm" else ()) + (fw["gates"],)
    res = _call(be, f"{cell}_backward", dev(dy), dev(p["x"]), dev(p["kernel"]), dev(p["rk"]),
                *(dev(w) for w in work), mask=dev(p["mask"]), dh_out=dev(p["wh"]),
                dc_out=dev(p["wc"]), **kwargs)
    return dict(zip(BWD_NAMES[cell], res))


# ----------------------------------------------------------------------
# recurrent ops
# ----------------------------------------------------------------------
#: (n, T, d, units) -> cases (mask, go_backwards, bias and initial states given)
GRID = [
    ((1, 1, 1, 1), [(None, False, True), ("fully_masked_row", True, False)]),
    ((3, 4, 3, 2), [(m, gb, True) for m in (None, "fully_masked_row", "right_padded")
                    for gb in (False, True)] + [("random", False, False)]),
    ((2, 3, 5, 3), [("right_padded", True, False), (None, False, True)]),
    ((1, 5, 2, 5), [("fully_masked_row", False, True)]),  # the whole batch masked
    ((0, 3, 2, 2), [("random", False, True)]),  # empty batch
    ((2, 0, 2, 2), [(None, True, True)]),  # empty sequences: the states pass through
]


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
def test_recurrent_ops_match_reference(cuda_be, cell, reset_after, dt):
    """Every output (workspaces included) and every gradient, from host arguments."""
    host = Host(cuda_be)
    for (n, t, d, u), cases in GRID:
        for seed, (mask, go_backwards, full) in enumerate(cases):
            p = problem(cell, reset_after, n=n, t=t, d=d, u=u, dt=dt, seed=seed, mask=mask,
                        use_bias=full, initial=full)
            kw = dict(mask=p["mask"], go_backwards=go_backwards, reset_after=reset_after)
            args = (p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"])
            what = f"{cell} {(n, t, d, u)} mask={mask} go_backwards={go_backwards} {full}"
            want = forward(REFERENCE, cell, *args, **kw)
            got = forward(host, cell, *args, **kw)
            for k in want:
                assert_close(got[k], want[k], dt, loose=10, what=f"{what} {k}")
            bargs = (p["wy"], p["wh"], p["wc"], p["x"], p["kernel"], p["rk"])
            gw = backward(REFERENCE, cell, want, *bargs, use_bias=full, **kw)
            gg = backward(host, cell, want, *bargs, use_bias=full, **kw)
            assert set(gg) == set(gw)
            for k in gw:
                assert (gg[k] is None) == (gw[k] is None), f"{what} {k}"
                if gw[k] is not None:
                    assert_close(gg[k], gw[k], dt, loose=10, what=f"{what} {k}")


#: (n, T, d, units) -> (mask, go_backwards, bias and initial states given), with a
#: recurrent dropout mask
RDROP_GRID = [
    ((1, 1, 1, 1), [(None, False, True)]),
    ((3, 4, 3, 2), [("fully_masked_row", True, True), ("right_padded", False, False)]),
    ((2, 3, 2, 3), [(None, True, True)]),
]


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
def test_recurrent_dropout_matches_reference(cuda_be, cell, reset_after, dt):
    """With ``recurrent_dropout_mask``: every output and gradient, from host arguments
    and from a device mask."""
    host = Host(cuda_be)
    for (n, t, d, u), cases in RDROP_GRID:
        for seed, (mask, go_backwards, full) in enumerate(cases):
            p = problem(cell, reset_after, n=n, t=t, d=d, u=u, dt=dt, seed=seed, mask=mask,
                        use_bias=full, initial=full, rdrop=True)
            kw = dict(mask=p["mask"], go_backwards=go_backwards, reset_after=reset_after)
            args = (p["x"], p["kernel"], p["rk"], p["bias"], p["h0"], p["c0"])
            what = f"{cell} {(n, t, d, u)} mask={mask} go_backwards={go_backwards} {full}"
            want = forward(REFERENCE, cell, *args, rmask=p["rmask"], **kw)
            rm = p["rmask"] if seed else cuda_be.asarray(p["rmask"])
            got = forward(host, cell, *args, rmask=rm, **kw)
            for k in want:
                assert_close(got[k], want[k], dt, loose=10, what=f"{what} {k}")
            bargs = (p["wy"], p["wh"], p["wc"], p["x"], p["kernel"], p["rk"])
            gw = backward(REFERENCE, cell, want, *bargs, use_bias=full, rmask=p["rmask"], **kw)
            gg = backward(host, cell, want, *bargs, use_bias=full, rmask=rm, **kw)
            for k in gw:
                if gw[k] is not None:
                    assert_close(gg[k], gw[k], dt, loose=10, what=f"{what} {k}")


@pytest.mark.parametrize("cell, reset_after", CELLS, ids=CELL_IDS)
def test_recurrent_device_arguments_buffers_and_activations(cuda_be, cell, reset_after):
    """Device inputs (one of them a strided view), device output buffers filled in place
    and returned, the device workspaces fed back to backward; other activations;
    ``dy=None``; gradients not asked for come back ``None``."""
    be = cuda_be
    p = problem(cell, reset_after, n=3, t=3, d=2, u=2, seed=4, mask="fully_masked_row")

    def dev(a):
        return None if a is None else be.asarray(a)

    def strided_dev(a):  # every other sample of a doubled batch: not C-contiguous
        return None if a is None else be.asarray(np.repeat(a, 2, axis=0))[::2]

    for act, ract in (("relu", "linear"), ("elu", "tanh")):
        kw = dict(activation=act, recurrent_activation=ract, reset_after=reset_after,
                  go_backwards=True)
        want = run_forward(REFERENCE, cell, p, **kw)
        bufs = {k: be.empty(v.shape, v.dtype) for k, v in want.items()}
        x_dev = dict(p, x=strided_dev(p["x"]))
        got = run_forward(be, cell, x_dev, dev=lambda a: a if _is_device(a) else dev(a),
                          **kw, **bufs)
        for k in want:
            assert got[k] is bufs[k], k
            assert_close(be.to_numpy(got[k]), want[k], np.float64, what=f"{act} {k}")
        gwant = run_backward(REFERENCE, cell, want, p, None, **kw)
        gbufs = {k: be.empty(v.shape, v.dtype) for k, v in gwant.items()}
        dgates = be.empty(want["gates"].shape, np.float64)
        ggot = run_backward(be, cell, bufs, p, None, dev=dev, dgates=dgates, **kw, **gbufs)
        for k in gwant:
            assert ggot[k] is gbufs[k], k
            assert_close(be.to_numpy(ggot[k]), gwant[k], np.float64, what=f"{act} d{k}")
        flags = dict(input_grad=False, bias_grad=False, state_grad=False)
        part = run_backward(be, cell, bufs, p, p["wy"], dev=dev, **kw, **flags)
        full = run_backward(REFERENCE, cell, want, p, p["wy"], **kw)
        for k, v in part.items():
            if k in ("dkernel", "drecurrent_kernel"):
                assert_close(be.to_numpy(v), full[k], np.float64, what=f"{act} partial {k}")
            else:
                assert v is None, k


# ----------------------------------------------------------------------
# embedding
# ----------------------------------------------------------------------
EMB_IDS = [
    np.array([3], np.int32),
    np.array([[0, 4, 4], [4, 4, 1]], np.int64),
    np.array([[[2, 2], [0, 1]]], np.uint8),
    np.zeros((0, 3), np.int64),
    np.array([[1, 2, 3, 4, 0, 0, 0, 0]], np.int64)[:, ::2],  # non-contiguous
]


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("dim", [1, 3])
def test_embedding_ops_match_reference(cuda_be, dt, dim):
    be, host = cuda_be, Host(cuda_be)
    rng = np.random.default_rng(dim)
    table = rng.standard_normal((5, dim)).astype(dt)
    for ids in EMB_IDS:
        dy = rng.standard_normal(ids.shape + (dim,)).astype(dt)
        want_y = REFERENCE.embedding_forward(ids, table)
        want_g = REFERENCE.embedding_backward(ids, dy, 5)
        # host arguments; then device ids of another integer type, table and dy
        np.testing.assert_array_equal(host.embedding_forward(ids, table), want_y)
        assert_close(host.embedding_backward(ids, dy, 5), want_g, dt)
        dids = be.asarray(ids.astype(np.int32))
        out = be.empty(want_y.shape, dt)
        assert be.embedding_forward(dids, be.asarray(table), out=out) is out
        np.testing.assert_array_equal(be.to_numpy(out), want_y)
        grad = be.asarray(np.full((5, dim), np.nan, dt))
        assert be.embedding_backward(dids, be.asarray(dy), 5, out=grad) is grad
        assert_close(be.to_numpy(grad), want_g, dt)


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f64"])
def test_embedding_repeated_ids_accumulate(cuda_be, dt):
    """Repeated ids add up (in float64, as the reference: 300 float32 rows into one)."""
    host = Host(cuda_be)
    got = host.embedding_backward(np.array([[2, 2, 2, 2]]), np.ones((1, 4, 2), dt), 3)
    np.testing.assert_array_equal(got, [[0, 0], [0, 0], [4, 4]])
    rng = np.random.default_rng(1)
    ids = np.where(rng.random((3, 100)) < 0.9, 0, 3)
    dy = rng.standard_normal((3, 100, 2)).astype(dt)
    assert_close(host.embedding_backward(ids, dy, 4),
                 REFERENCE.embedding_backward(ids, dy, 4), dt)


# ----------------------------------------------------------------------
# errors: the reference's, with host and with device arguments
# ----------------------------------------------------------------------
def _same_error(be, call):
    """``call(backend, dev)`` raises on the cuda backend what it raises on the reference
    (same type and message), with host arguments and with device ones (``dev``)."""
    with pytest.raises(Exception) as want:
        call(REFERENCE, lambda a: a)
    for dev in (lambda a: a, be.asarray):
        with pytest.raises(want.type) as got:
            call(be, dev)
        assert str(got.value) == str(want.value)


_P = problem("lstm", True)
_X, _K, _RK, _B = _P["x"], _P["kernel"], _P["rk"], _P["bias"]
_FW = forward(REFERENCE, "lstm", _X, _K, _RK, _B)
_TABLE = np.zeros((5, 2), np.float32)
BAD_CALLS = [
    lambda be, d: be.lstm_forward(d(_X[0]), _K, _RK, _B),
    lambda be, d: be.lstm_forward(d(_X), d(_K[:2]), _RK, _B),
    lambda be, d: be.lstm_forward(_X, _K, d(_RK[:, :5]), _B),
    lambda be, d: be.lstm_forward(_X, _K, _RK, d(_B[:4])),
    lambda be, d: be.gru_forward(d(_X), _K[:, :6], _RK[:, :6], d(_B[:6])),
    lambda be, d: be.lstm_forward(_X, _K, _RK, _B, h0=d(np.zeros((2, 2)))),
    lambda be, d: be.lstm_forward(_X, _K, _RK, _B, mask=d(np.ones((3, 5), bool))),
    lambda be, d: be.lstm_forward(d(_X), _K, _RK, _B, activation="gelu"),
    lambda be, d: be.simple_rnn_forward(d(_X), _K[:, :2], _RK[:, :2], None,
                                        activation="nope"),
    lambda be, d: be.lstm_forward(_X, _K, _RK, _B, out=d(np.zeros((3, 4, 3)))),
    lambda be, d: be.lstm_forward(_X, _K, _RK, _B, c_out=d(np.zeros((3, 2), np.float32))),
    lambda be, d: be.lstm_backward(None, d(_X), _K, _RK, d(_FW["hprev"]), _FW["cprev"],
                                   _FW["gates"], bias_grad=False, dbias=d(np.zeros(8))),
    lambda be, d: be.lstm_backward(None, _X, _K, _RK, _FW["hprev"], _FW["cprev"],
                                   d(_FW["gates"][:, :, :4])),
    lambda be, d: be.gru_backward(d(_X[:, :, :1]), _X, _K[:, :6], _RK[:, :6],
                                  _FW["hprev"], _FW["gates"][:, :, :8]),
    lambda be, d: be.embedding_forward(d(np.array([[1.0, 2.0]], np.float32)), _TABLE),
    lambda be, d: be.embedding_forward(d(np.array([[1, -1]])), d(_TABLE)),
    lambda be, d: be.embedding_forward(d(np.array([[1, 2], [3, 5]])), _TABLE),
    lambda be, d: be.embedding_forward(d(np.array([[1]])), d(_TABLE[0])),
    lambda be, d: be.embedding_forward(d(np.array([[1]])), _TABLE[:0]),
    lambda be, d: be.embedding_forward(np.array([[1]]), _TABLE,
                                       out=d(np.zeros((1, 2), np.float32))),
    lambda be, d: be.embedding_backward(d(np.array([[1, 2]])),
                                        d(np.zeros((1, 3, 2), np.float32)), 5),
    lambda be, d: be.embedding_backward(d(np.array([[1, 2]])),
                                        np.zeros((1, 2, 2), np.float32), 0),
    lambda be, d: be.embedding_backward(d(np.array([[1, 2]])),
                                        np.zeros((1, 2, 2), np.float32), True),
    lambda be, d: be.embedding_backward(d(np.array([[1, 4]])),
                                        np.zeros((1, 2, 2), np.float32), 3),
]


@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_bad_arguments_raise_the_reference_error(cuda_be, i):
    _same_error(cuda_be, BAD_CALLS[i])


def test_outputs_must_be_device_arrays_apart_from_the_inputs(cuda_be):
    be = cuda_be
    with pytest.raises(ValueError, match=r"h_out: expected a device array of shape \(3, 2\)"):
        be.lstm_forward(be.asarray(_X), _K, _RK, _B, h_out=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"out: expected a device array"):
        be.embedding_forward(np.array([1]), _TABLE, out=np.zeros((1, 2), np.float32))
    x = be.asarray(_X)  # (3, 4, 3): an LSTM of 3 units writes out of that shape
    k3, rk3 = np.zeros((3, 12)), np.zeros((3, 12))
    with pytest.raises(ValueError, match=r"lstm_forward: out and x overlap in memory \(the "
                                         r"same array\)"):
        be.lstm_forward(x, k3, rk3, out=x)
    x2 = be.asarray(_X[:, :, :2])
    with pytest.raises(ValueError, match=r"lstm_forward: hprev and x overlap in memory"):
        be.lstm_forward(x2, _K[:2], _RK, hprev=x2)
    dk = be.empty(_K.shape, np.float64)
    with pytest.raises(ValueError, match=r"dkernel and drecurrent_kernel overlap in memory"):
        be.lstm_backward(None, _X, _K, _RK, _FW["hprev"], _FW["cprev"], _FW["gates"],
                         input_grad=False, bias_grad=False, state_grad=False, dkernel=dk,
                         drecurrent_kernel=dk[:2])
    table = be.asarray(_TABLE)
    with pytest.raises(ValueError, match=r"embedding_forward: out and table overlap"):
        be.embedding_forward(np.array([1, 2]), table, out=table[:2])


# ----------------------------------------------------------------------
# a model
# ----------------------------------------------------------------------
@pytest.fixture
def gpu_like_device_arrays(monkeypatch):
    """The simulator's device arrays hand numpy's methods and arithmetic through to a
    host array; a GPU's (numba's DeviceNDArray) have neither: refuse what a layer might
    use of them (``fill``, ``*``, ``+``, ``-``, ``/``), so the model test below fails on
    a host operation a GPU would fail on."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    delegate = FakeCUDAArray.__getattr__

    def getattr_(self, name):
        if name == "fill":
            raise AttributeError("a GPU device array has no fill()")
        return delegate(self, name)

    def no_arithmetic(self, other):
        raise TypeError("a GPU device array has no arithmetic operators")

    monkeypatch.setattr(FakeCUDAArray, "__getattr__", getattr_)
    for op in ("__mul__", "__add__", "__sub__", "__truediv__"):
        monkeypatch.setattr(FakeCUDAArray, op, no_arithmetic)


def test_sequence_model_trains_on_the_device_as_on_the_reference(cuda_be,
                                                                 gpu_like_device_arrays):
    """Embedding -> LSTM(go_backwards) -> GRU(reset_after=False) -> SimpleRNN (sequence
    outputs) -> GlobalAveragePooling1D -> Dense: two Adam steps on the cuda backend give
    the reference's weights and predictions (float32; the tolerance of
    test_cuda_model.py). Sequence outputs only: a last output or a mask still meets host
    NumPy operations in the layers (see the report of issue 17's cuda item)."""
    from pynn import layers as L
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, (8, 5))
    y = rng.integers(0, 2, 8)
    results = []
    for be in ("numpy", cuda_be):
        pynn.set_seed(3)
        with pynn.backends.use_backend(be):
            m = pynn.Sequential([L.Input((5,), dtype="int64"), L.Embedding(10, 4),
                                 L.LSTM(3, return_sequences=True, go_backwards=True),
                                 L.GRU(2, return_sequences=True, reset_after=False),
                                 L.SimpleRNN(2, return_sequences=True),
                                 L.GlobalAveragePooling1D(), L.Dense(2, activation="softmax")])
            m.compile(optimizer=pynn.optimizers.Adam(0.01),
                      loss="sparse_categorical_crossentropy")
            if results:
                m.set_weights(results[0][0])
            w0 = m.get_weights()
            m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
            results.append((w0, m.get_weights(), m.predict(x, verbose=0)))
    (w0, w_np, p_np), (_, w_cu, p_cu) = results
    assert len(w_cu) == len(w_np) == 12
    for i, (a, b, a0) in enumerate(zip(w_np, w_cu, w0)):
        assert b.dtype == np.float32 and not np.array_equal(a, a0), f"weight {i} did not move"
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=f"weight {i}")
    np.testing.assert_allclose(p_cu, p_np, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------
# the contract: signatures, no fallback, lazy import, cache
# ----------------------------------------------------------------------
def test_sequence_ops_keep_signatures_and_do_not_fall_back(cuda_be, monkeypatch):
    be = cuda_be
    for op in SEQ_OPS:
        assert getattr(type(be), op) is not getattr(Backend, op), op
        assert inspect.signature(getattr(type(be), op)) == \
            inspect.signature(getattr(Backend, op)), op

        def spy(self, *args, _op=op, **kwargs):
            raise AssertionError(f"cuda.{_op} called the reference")

        monkeypatch.setattr(Backend, op, spy)
    for helper in ("_rnn_forward", "_rnn_backward", "_rnn_weight_grads"):
        monkeypatch.setattr(Backend, helper, spy)
    ids = np.array([[1, 0]])
    y = be.embedding_forward(ids, _TABLE)
    be.embedding_backward(ids, y, 5)
    for cell, reset_after in CELLS:
        p = problem(cell, reset_after, n=1, t=2, d=1, u=1)
        fw = run_forward(be, cell, p, reset_after=reset_after)
        run_backward(be, cell, fw, p, p["wy"], reset_after=reset_after)


def test_sequence_kernels_load_on_first_use():
    """Starting the backend does not load the sequence kernels; the first such op does."""
    code = ("import sys, numpy as np\n"
            "from pynn.backends.cuda_backend import CudaBackend\n"
            "be = CudaBackend()\n"
            "name = 'pynn.backends._cuda_sequence'\n"
            "print(name in sys.modules)\n"
            "be.embedding_forward(np.array([1]), np.ones((2, 3)))\n"
            "print(name in sys.modules)\n")
    path = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    env = dict(os.environ, PYTHONPATH=path, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


def test_sequence_kernels_are_cached_only_in_pynns_checked_directory(tmp_path):
    """With a real ``numba.cuda`` (no simulator; no GPU needed to build dispatchers),
    every kernel of ``_cuda_sequence`` caches in pynn's directory, never Numba's
    default ``__pycache__``, its entries keyed on ``_cuda_kernels.py`` as well."""
    code = textwrap.dedent("""
        from numba.cuda.dispatcher import CUDADispatcher
        from pynn.backends import _cuda_sequence as S, _numba_cache as NC
        root = NC.cache_dir()
        for name, d in sorted(vars(S).items()):
            if isinstance(d, CUDADispatcher) and d.py_func.__module__ == S.__name__:
                where = getattr(d._cache, "cache_path", None)
                print(name, type(d._cache).__module__ == NC.__name__,
                      where is not None and where.startswith(root),
                      len(d._cache._cache_file._source_stamp))
    """)
    path = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    env = dict(os.environ, PYTHONPATH=path, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.strip().splitlines()]
    assert sorted(row[0] for row in rows) == sorted(
        ["fill_zero", "copy_cols", "ids_out_of_range", "embedding_gather",
         "embedding_scatter_add", "gru_reset_gates", "rnn_step_forward",
         "rnn_step_backward", "gru_reset_backward", "mul_cols", "add_mul_cols",
         "mul_cols_rows", "mask_reset_block"])
    for name, ours, inside, stamps in rows:
        assert (ours, inside, stamps) == ("True", "True", "2"), name
    assert not list(tmp_path.rglob("__pycache__"))
