"""Embedding: the gather/scatter-add ops on every backend, and the layer."""
import numpy as np
import pytest

import pynn
import pynn.backends as B


from helpers import CPU_BACKENDS, REFERENCE, assert_close


# --------------------------------------------------------------------------------------
# ops
# --------------------------------------------------------------------------------------
IDS = [
    np.array([3], np.int32),
    np.array([[0, 4, 4], [4, 4, 1]], np.int64),
    np.array([[[2, 2], [0, 1]]], np.uint8),
    np.zeros((0, 3), np.int64),
    np.array([[1, 2, 3, 4, 0, 0, 0, 0]], np.int64)[:, ::2],  # non-contiguous
]


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("dim", [1, 3, 17])
def test_ops_equal_reference(name, dt, dim):
    be = B.get(name)
    rng = np.random.default_rng(dim)
    table = rng.standard_normal((5, dim)).astype(dt)
    for ids in IDS:
        want = REFERENCE.embedding_forward(ids, table)
        np.testing.assert_array_equal(want, table[ids.astype(np.intp)])
        got = be.embedding_forward(ids, table)
        assert got.dtype == dt and got.shape == ids.shape + (dim,)
        np.testing.assert_array_equal(got, want)
        dy = rng.standard_normal(ids.shape + (dim,)).astype(dt)
        want = REFERENCE.embedding_backward(ids, dy, 5)
        expect = np.zeros((5, dim))
        for k in np.ndindex(ids.shape):
            expect[ids[k]] += dy[k]
        assert_close(want, expect, dt)
        out = np.full((5, dim), np.nan, dt)
        got = be.embedding_backward(ids, dy, 5, out=out)
        assert got is out
        assert_close(got, want, dt)


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_repeated_ids_accumulate(name):
    be = B.get(name)
    ids = np.array([[2, 2, 2, 2]], np.int64)
    dy = np.ones((1, 4, 2), np.float32)
    got = be.embedding_backward(ids, dy, 3)
    np.testing.assert_array_equal(got, [[0, 0], [0, 0], [4, 4]])


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_ops_bad_input(name):
    be = B.get(name)
    table = np.zeros((5, 2), np.float32)
    with pytest.raises(TypeError, match=r"ids must be an integer array .* float32"):
        be.embedding_forward(np.array([[1.0, 2.0]], np.float32), table)
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\).*found -1 at index \(0, 1\)"):
        be.embedding_forward(np.array([[1, -1]]), table)
    with pytest.raises(ValueError, match=r"shape \(1, 2\) must lie in \[0, 5\).*found 5"):
        be.embedding_forward(np.array([[1, 5]]), table)
    with pytest.raises(ValueError, match=r"table: expected a 2-D array"):
        be.embedding_forward(np.array([[1]]), table[0])
    with pytest.raises(ValueError, match=r"out: expected shape \(1, 1, 2\)"):
        be.embedding_forward(np.array([[1]]), table, out=np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"dy must have shape ids.shape \+ \(dim,\)"):
        be.embedding_backward(np.array([[1, 2]]), np.zeros((1, 3, 2), np.float32), 5)
    with pytest.raises(ValueError, match=r"num_embeddings must be a positive int"):
        be.embedding_backward(np.array([[1, 2]]), np.zeros((1, 2, 2), np.float32), 0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        be.embedding_backward(np.array([[1, 4]]), np.zeros((1, 2, 2), np.float32), 3)


@pytest.mark.parametrize("name", [n for n in CPU_BACKENDS if getattr(
    type(B.get(n)), "embedding_forward") is not getattr(B.Backend, "embedding_forward")])
def test_compiled_ops_allocate_nothing_when_warm(name):
    from test_recurrent_ops import WARM_LIMIT, transient_bytes
    be = B.get(name)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (16, 20)).astype(np.intp)
    table = rng.standard_normal((50, 32)).astype(np.float32)
    out = np.empty((16, 20, 32), np.float32)
    grad = np.empty((50, 32), np.float32)

    def run():
        be.embedding_forward(ids, table, out=out)
        be.embedding_backward(ids, out, 50, out=grad)

    assert transient_bytes(run) < WARM_LIMIT
