"""``Backend.take_rows`` (how ``fit`` gathers each shuffled batch) on every CPU backend:
the rows NumPy's ``x[indices]`` gives, for every dtype, rank, layout and size; bad
indices and bad buffers refused by name with nothing written."""
import numpy as np
import pytest

import pynn.backends as B

from helpers import CPU_BACKENDS

DTYPES = [np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64]


@pytest.fixture(params=CPU_BACKENDS)
def be(request):
    return B.get(request.param)


def _rows(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 5), (1, 1), (9,), (6, 3, 4), (5, 0), (4, 1, 3),
                                   (300, 784)])
def test_take_rows_matches_numpy(be, dtype, shape):
    x = _rows(shape, dtype)
    n = shape[0]
    rng = np.random.default_rng(n)
    for idx in (rng.permutation(n), rng.integers(-n, n, 2 * n + 3), np.array([n - 1]),
                np.array([-n]), np.zeros(0, np.intp), np.arange(n)[::-1].copy()):
        want = x[idx]
        out = np.full(want.shape, 7, dtype)
        got = be.take_rows(x, idx, out)
        assert got is out
        np.testing.assert_array_equal(got, want)
        new = be.take_rows(x, idx)  # out allocated
        assert new.dtype == x.dtype and new.shape == want.shape
        np.testing.assert_array_equal(new, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_take_rows_extreme_values_copied_bit_for_bit(be, dtype):
    info = np.finfo(dtype)
    x = np.array([[np.nan, np.inf, -np.inf], [info.max, -info.max, info.tiny / 4],
                  [-0.0, 0.0, info.eps]], dtype)
    idx = np.array([2, 0, 1, 1])
    got = be.take_rows(x, idx, np.empty((4, 3), dtype))
    assert got.tobytes() == x[idx].tobytes()


@pytest.mark.parametrize("layout", ["rows_strided", "reversed", "columns_strided",
                                    "fortran", "list_indices", "int32_indices",
                                    "uint64_indices", "indices_view", "big_endian"])
def test_take_rows_other_layouts(be, layout):
    base = _rows((12, 6), np.float32, seed=3)
    idx = np.array([4, 0, -1, 2, 2])
    x = {"rows_strided": base[::2], "reversed": base[::-1], "columns_strided": base[:, ::2],
         "fortran": np.asfortranarray(base), "big_endian": base.astype(">f4")}.get(layout,
                                                                                   base)
    if layout == "list_indices":
        idx = [4, 0, -1, 2, 2]
    elif layout == "int32_indices":
        idx = idx.astype(np.int32)
    elif layout == "uint64_indices":
        idx = np.array([4, 0, 5, 2, 2], np.uint64)
    elif layout == "indices_view":
        idx = np.array([[4, 9], [0, 9], [-1, 9], [2, 9], [2, 9]])[:, 0]
    want = x[np.asarray(idx).astype(np.intp)]
    out = np.zeros(want.shape, x.dtype)
    got = be.take_rows(x, idx, out)
    assert got is out
    np.testing.assert_array_equal(got, want)


def test_take_rows_refuses_out_of_range_and_writes_nothing(be):
    x = _rows((5, 4), np.float32)
    out = np.full((4, 4), 7, np.float32)
    for idx, pos, value in (([0, 1, 5, 2], 2, 5), ([-6, 0, 1, 2], 0, -6),
                            ([0, 1, 2, 10 ** 12], 3, 10 ** 12)):
        with pytest.raises(IndexError, match=rf"indices\[{pos}\] = {value} is out of range "
                                             r"for x with 5 rows \(x shape \(5, 4\)\)"):
            be.take_rows(x, np.array(idx), out)
        assert (out == 7).all(), "a refused gather wrote into out"
    with pytest.raises(IndexError, match="out of range for x with 0 rows"):
        be.take_rows(np.zeros((0, 3), np.float32), np.array([0]), np.empty((1, 3), np.float32))
    huge = np.array([2 ** 63 + 5], np.uint64)
    with pytest.raises(IndexError, match="out of range"):
        be.take_rows(x, huge, np.empty((1, 4), np.float32))


def test_take_rows_refuses_bad_buffers_by_name(be):
    x = _rows((6, 4), np.float32)
    idx = np.array([1, 2])
    bad = {"expected shape \\(2, 4\\), got \\(3, 4\\)": np.empty((3, 4), np.float32),
           "expected shape \\(2, 4\\), got \\(2, 5\\)": np.empty((2, 5), np.float32),
           "expected dtype float32, got float64": np.empty((2, 4), np.float64),
           "must be C-contiguous": np.empty((4, 2), np.float32).T,
           "out and x overlap": x[:2],
           "must be writable": np.empty((2, 4), np.float32)}
    bad["must be writable"].flags.writeable = False
    for msg, out in bad.items():
        with pytest.raises(ValueError, match="out: " + msg if "overlap" not in msg else msg):
            be.take_rows(x, idx, out)
    with pytest.raises(TypeError, match="indices: expected a 1-D array of integers"):
        be.take_rows(x, np.array([[1, 2]]), np.empty((1, 2, 4), np.float32))
    with pytest.raises(TypeError, match="indices: expected a 1-D array of integers"):
        be.take_rows(x, np.array([1.0, 2.0]), np.empty((2, 4), np.float32))
    with pytest.raises(TypeError, match="x: expected a numpy.ndarray"):
        be.take_rows([[1.0, 2.0]], np.array([0]))
    with pytest.raises(ValueError, match="x: expected an array of rows"):
        be.take_rows(np.array(3.0), np.array([0]))


def test_take_rows_indices_overlapping_out_refused():
    """An ``out`` lying over the index array itself is refused on every backend."""
    for name in CPU_BACKENDS:
        mem = np.zeros(8, np.intp)
        idx, out = mem[2:4], mem[:4].reshape(2, 2)
        with pytest.raises(ValueError, match="out and indices overlap"):
            B.get(name).take_rows(np.zeros((3, 2), np.intp), idx, out)


def test_fit_gathers_through_take_rows(monkeypatch):
    """Shuffled ``fit`` gathers each batch with the backend's take_rows, into one
    reused buffer, and trains as before (the numpy backend's loss is the oracle)."""
    import pynn
    from pynn import layers
    from pynn.models import Sequential

    calls = []
    for name in CPU_BACKENDS:
        be = B.get(name)

        def counting(x, indices, out=None, _orig=be.take_rows):
            calls.append(out)
            return _orig(x, indices, out)
        monkeypatch.setattr(be, "take_rows", counting)
    rng = np.random.default_rng(0)
    x = rng.random((100, 6)).astype(np.float32)
    y = rng.integers(0, 3, 100)
    losses = {}
    for name in CPU_BACKENDS:
        pynn.set_backend(name)
        try:
            pynn.set_seed(0)
            m = Sequential([layers.Input(shape=(6,)), layers.Dense(5, activation="relu"),
                            layers.Dense(3, activation="softmax")])
            m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            calls.clear()
            hist = m.fit(x, y, batch_size=32, epochs=2, verbose=0)
            losses[name] = hist.history["loss"]
            assert len(calls) == 8  # 4 batches (the last one of 4 rows) x 2 epochs
            assert len({id(o) for o in calls if o.shape[0] == 32}) == 1
        finally:
            pynn.set_backend("numpy")
    for name, loss in losses.items():
        np.testing.assert_allclose(loss, losses["numpy"], rtol=1e-5, err_msg=name)
