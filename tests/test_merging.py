"""Merging layers: values against NumPy (and PyTorch when installed), float64
finite-difference gradients on every CPU backend, Keras's shape rules and errors."""
import functools
import tracemalloc

import numpy as np
import pytest

from pynn.layers import Input
from pynn.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply,
                                 Subtract, add, average, concatenate, dot, maximum, minimum,
                                 multiply, subtract)
from pynn.layers.merging.dot import EPSILON

from helpers import assert_close
from helpers import numerical_grad

try:
    import torch
except ImportError:  # the PyTorch comparisons are skipped, nothing else
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def distinct_inputs(rng, shapes, dtype=np.float64):
    """Inputs whose entries are all different (at least 0.05 apart): no ties for
    Maximum/Minimum, even after the finite-difference step."""
    sizes = [int(np.prod(s)) for s in shapes]
    values = (rng.permutation(sum(sizes)) - sum(sizes) / 2) * 0.05
    out, start = [], 0
    for s, k in zip(shapes, sizes):
        out.append(values[start:start + k].reshape(s).astype(dtype))
        start += k
    return out


def run(layer, xs, dy=None):
    """One forward (training) and, with ``dy``, one backward on a fresh context."""
    be = layer.backend
    arrays = [be.asarray(x, dtype=np.dtype(layer.dtype)) for x in xs]
    layer._build_for([a.shape for a in arrays])
    ctx = layer.context()
    y = np.array(layer.forward(ctx, arrays, training=True), copy=True)
    if dy is None:
        return y
    grads = layer.backward(ctx, be.asarray(dy, dtype=np.dtype(layer.dtype)))
    return y, [np.array(g, copy=True) for g in grads]


def check_gradients(layer, xs, rng, rtol=1e-6, atol=1e-8):
    """L = sum(r * layer(xs)); backward's input gradients against central differences."""
    xs = [np.array(x, dtype=np.float64) for x in xs]
    y = run(layer, xs)
    r = rng.standard_normal(y.shape)
    _, grads = run(layer, xs, r)

    def loss():
        return float(np.sum(r * run(layer, xs)))

    assert len(grads) == len(xs)
    for i, (g, x) in enumerate(zip(grads, xs)):
        assert g.shape == x.shape, f"{layer.name}: gradient {i} has shape {g.shape}"
        np.testing.assert_allclose(g, numerical_grad(loss, x), rtol=rtol, atol=atol,
                                   err_msg=f"{layer.name}: d input {i}")


# ---------------------------------------------------------------------------------------
# the NumPy reference: Keras's rank expansion, then NumPy broadcasting
# ---------------------------------------------------------------------------------------
def keras_expand(xs):
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]


ELEMENTWISE = {
    "add": (Add, add, lambda xs: functools.reduce(np.add, keras_expand(xs))),
    "subtract": (Subtract, subtract, lambda xs: np.subtract(*keras_expand(xs))),
    "multiply": (Multiply, multiply, lambda xs: functools.reduce(np.multiply, keras_expand(xs))),
    "average": (Average, average,
                lambda xs: functools.reduce(np.add, keras_expand(xs)) / len(xs)),
    "maximum": (Maximum, maximum, lambda xs: functools.reduce(np.maximum, keras_expand(xs))),
    "minimum": (Minimum, minimum, lambda xs: functools.reduce(np.minimum, keras_expand(xs))),
}

#: input shape lists (batch axis first): odd sizes, size-1 axes, lower ranks, 1-3 inputs
CASES = {
    "same": [(5, 3, 7), (5, 3, 7)],
    "size1": [(4, 1, 6), (4, 5, 1)],
    "three": [(3, 2, 5), (3, 1, 5), (3, 2, 1)],
    "rank": [(4, 5), (4, 3, 5)],
    "rank1": [(6,), (6, 4)],
    "vectors": [(7,), (7,)],
    "one": [(3, 4)],
    "four_batch1": [(1, 2, 3), (1, 2, 3), (1, 1, 3), (1, 2, 1)],
}


ELEMENTWISE_PARAMS = [pytest.param(kind, shapes, id=f"{kind}-{case}")
                      for kind in ELEMENTWISE for case, shapes in CASES.items()
                      if kind != "subtract" or len(shapes) == 2]


@pytest.mark.parametrize("kind,shapes", ELEMENTWISE_PARAMS)
def test_elementwise_forward_matches_numpy(backend, dtype, rng, kind, shapes):
    cls, fn, ref = ELEMENTWISE[kind]
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    layer = cls(dtype=dtype.name)
    y = layer(xs)
    want = ref([x.astype(np.float64) for x in xs])
    assert y.dtype == dtype and y.shape == want.shape
    assert_close(y, want, dtype, what=kind)
    assert layer.output_shape == (None,) + want.shape[1:]
    assert_close(fn(xs, dtype=dtype.name), want, dtype, what=f"functional {kind}")


@pytest.mark.parametrize("kind,shapes", ELEMENTWISE_PARAMS)
def test_elementwise_gradients(backend, rng, kind, shapes):
    cls = ELEMENTWISE[kind][0]
    check_gradients(cls(dtype="float64"), distinct_inputs(rng, shapes), rng)


def test_symbolic_shapes_follow_keras():
    # lower ranks expand after the batch axis; None matches any size
    y = Add()([Input((3,)), Input((4, 3))])
    assert y.shape == (None, 4, 3)
    y = Multiply()([Input((4, 3)), Input((1, 1)), Input((1,))])
    assert y.shape == (None, 4, 3)
    # unknown sizes (pynn.Input needs known ones): straight through compute_output_shape
    assert Multiply().compute_output_shape(
        [(None, None, 3), (None, 5, 1), (None, 1)]) == (None, None, 3)
    assert Concatenate(axis=1).compute_output_shape(
        [(None, 2, 5), (None, None, 5), (None, 3, 5)]) == (None, None, 5)
    assert Concatenate(axis=-1).compute_output_shape(
        [(None, None, 5), (None, 4, 1)]) == (None, 4, 6)
    assert Dot(axes=2).compute_output_shape([(None, None, 6), (None, 5, None)]) == \
        (None, None, 5)
    y = Concatenate()([Input((2, 5)), Input((2, 1))])
    assert y.shape == (None, 2, 6)
    y = Dot(axes=(2, 1))([Input((4, 6)), Input((6, 5))])
    assert y.shape == (None, 4, 5)
    assert Dot(axes=1)([Input((6,)), Input((6,))]).shape == (None, 1)


# ---------------------------------------------------------------------------------------
# Maximum / Minimum ties: the first input holding the extreme value gets the gradient
# ---------------------------------------------------------------------------------------
def test_maximum_minimum_tie_gradient_goes_to_the_first_input(backend):
    a = np.array([[1.0, 3.0, 2.0, 7.0]])
    b = np.array([[1.0, 5.0, 2.0, 7.0]])
    c = np.array([[0.0, 5.0, 4.0, 7.0]])
    dy = np.array([[10.0, 20.0, 30.0, 40.0]])
    y, (da, db, dc) = run(Maximum(dtype="float64"), [a, b, c], dy)
    np.testing.assert_array_equal(y, [[1.0, 5.0, 4.0, 7.0]])
    np.testing.assert_array_equal(da, [[10.0, 0.0, 0.0, 40.0]])
    np.testing.assert_array_equal(db, [[0.0, 20.0, 0.0, 0.0]])
    np.testing.assert_array_equal(dc, [[0.0, 0.0, 30.0, 0.0]])
    y, (da, db, dc) = run(Minimum(dtype="float64"), [-a, -b, -c], dy)
    np.testing.assert_array_equal(y, [[-1.0, -5.0, -4.0, -7.0]])
    np.testing.assert_array_equal(da, [[10.0, 0.0, 0.0, 40.0]])
    np.testing.assert_array_equal(db, [[0.0, 20.0, 0.0, 0.0]])
    np.testing.assert_array_equal(dc, [[0.0, 0.0, 30.0, 0.0]])


def test_maximum_tie_with_a_broadcast_input(backend):
    # b (2, 1) is broadcast along axis 1: its gradient sums the elements it won
    a = np.array([[1.0, 2.0, 0.0], [5.0, 1.0, 5.0]])
    b = np.array([[1.0], [5.0]])
    dy = np.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    y, (da, db) = run(Maximum(dtype="float64"), [a, b], dy)
    np.testing.assert_array_equal(y, [[1.0, 2.0, 1.0], [5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(da, [[1.0, 2.0, 0.0], [8.0, 0.0, 32.0]])
    np.testing.assert_array_equal(db, [[4.0], [16.0]])
    # the same with b first: now b wins the ties
    y, (db, da) = run(Maximum(dtype="float64"), [b, a], dy)
    np.testing.assert_array_equal(da, [[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(db, [[5.0], [56.0]])


# ---------------------------------------------------------------------------------------
# Concatenate
# ---------------------------------------------------------------------------------------
CONCAT_CASES = [
    pytest.param(-1, [(4, 3), (4, 5)], id="last"),
    pytest.param(1, [(3, 2, 5), (3, 1, 5), (3, 4, 5)], id="middle-three"),
    pytest.param(-2, [(2, 3, 1, 4), (2, 3, 2, 4)], id="rank4-neg"),
    pytest.param(2, [(5, 3, 1), (5, 3, 1)], id="size1"),
    pytest.param(-1, [(3, 7)], id="one"),
]


@pytest.mark.parametrize("axis,shapes", CONCAT_CASES)
def test_concatenate_forward_matches_numpy(backend, dtype, rng, axis, shapes):
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    want = np.concatenate(xs, axis=axis)
    y = Concatenate(axis=axis, dtype=dtype.name)(xs)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(concatenate(xs, axis=axis, dtype=dtype.name), want)


@pytest.mark.parametrize("axis,shapes", CONCAT_CASES)
def test_concatenate_gradients(backend, rng, axis, shapes):
    check_gradients(Concatenate(axis=axis, dtype="float64"), distinct_inputs(rng, shapes), rng)


# ---------------------------------------------------------------------------------------
# Dot
# ---------------------------------------------------------------------------------------
def dot_reference(x, y, axes, normalize):
    """Keras's batch_dot, sample by sample with tensordot (float64)."""
    if isinstance(axes, int):
        axes = (axes, axes)
    a0 = axes[0] % x.ndim
    a1 = axes[1] % y.ndim
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=a0, keepdims=True), EPSILON)
        y = y / np.maximum(np.linalg.norm(y, axis=a1, keepdims=True), EPSILON)
    out = np.stack([np.tensordot(x[i], y[i], axes=(a0 - 1, a1 - 1)) for i in range(len(x))])
    return out.reshape(len(x), 1) if out.ndim == 1 else out


DOT_CASES = [
    pytest.param(1, [(5, 4), (5, 4)], (5, 1), id="2d"),
    pytest.param(-1, [(5, 4), (5, 4)], (5, 1), id="2d-neg"),
    pytest.param(2, [(3, 4, 6), (3, 5, 6)], (3, 4, 5), id="3d-last"),
    pytest.param(1, [(3, 6, 4), (3, 6, 5)], (3, 4, 5), id="3d-first"),
    pytest.param((2, 1), [(3, 4, 6), (3, 6, 5)], (3, 4, 5), id="3d-matmul"),
    pytest.param([1, 2], [(2, 6, 4), (2, 5, 6)], (2, 4, 5), id="3d-crossed"),
    pytest.param((1, 1), [(3, 6), (3, 6, 5)], (3, 5), id="2d-3d"),
    pytest.param((2, -1), [(3, 4, 6), (3, 6)], (3, 4), id="3d-2d"),
    pytest.param((3, 1), [(2, 3, 4, 5), (2, 5, 3)], (2, 3, 4, 3), id="4d-3d"),
]


@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
@pytest.mark.parametrize("axes,shapes,out_shape", DOT_CASES)
def test_dot_forward_matches_numpy(backend, dtype, rng, axes, shapes, out_shape, normalize):
    x, y = (rng.standard_normal(s).astype(dtype) for s in shapes)
    want = dot_reference(x.astype(np.float64), y.astype(np.float64), axes, normalize)
    assert want.shape == out_shape
    layer = Dot(axes=axes, normalize=normalize, dtype=dtype.name)
    got = layer([x, y])
    assert got.dtype == dtype and got.shape == out_shape
    assert layer.output_shape == (None,) + out_shape[1:]
    assert_close(got, want, dtype, loose=3.0, what=f"dot axes={axes}")
    assert_close(dot([x, y], axes=axes, normalize=normalize, dtype=dtype.name), want, dtype,
                 loose=3.0, what="functional dot")


@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
@pytest.mark.parametrize("axes,shapes,out_shape", DOT_CASES)
def test_dot_gradients(backend, rng, axes, shapes, out_shape, normalize):
    check_gradients(Dot(axes=axes, normalize=normalize, dtype="float64"),
                    [rng.standard_normal(s) for s in shapes], rng)


def test_dot_normalize_zero_vector_is_finite(backend, rng):
    # |x| < EPSILON: the norm is clamped, x_hat = x / EPSILON is a constant scaling
    x = np.zeros((2, 3))
    x[1] = [1e-9, -2e-9, 0.5e-9]
    z = rng.standard_normal((2, 3))
    dy = np.array([[1.5], [-2.0]])
    out, (dx, dz) = run(Dot(axes=1, normalize=True, dtype="float64"), [x, z], dy)
    z_hat = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(out, np.sum(x / EPSILON * z_hat, axis=1, keepdims=True))
    np.testing.assert_allclose(dx, dy * z_hat / EPSILON, rtol=1e-12)
    assert np.all(np.isfinite(dz))
    np.testing.assert_allclose(dz[0], 0.0)


# ---------------------------------------------------------------------------------------
# PyTorch as an independent implementation (forward and autograd, float64)
# ---------------------------------------------------------------------------------------
def torch_grads(fn, xs, dy):
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    out = fn(ts)
    out.backward(torch.tensor(dy))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def _fold(op):
    return lambda ts: functools.reduce(op, ts)


def torch_expanded(op):
    """``op`` on Keras-expanded tensors (torch aligns ranks from the right instead)."""
    def fn(ts):
        rank = max(t.ndim for t in ts)
        return op([t.reshape(t.shape[:1] + (1,) * (rank - t.ndim) + t.shape[1:]) for t in ts])
    return fn


TORCH_OPS = {} if torch is None else {
    "add": _fold(torch.add),
    "subtract": lambda ts: torch.sub(*ts),
    "multiply": _fold(torch.mul),
    "average": lambda ts: _fold(torch.add)(ts) / len(ts),
    "maximum": _fold(torch.maximum),
    "minimum": _fold(torch.minimum),
}


@needs_torch
@pytest.mark.parametrize("kind,shapes", ELEMENTWISE_PARAMS)
def test_elementwise_matches_torch(rng, kind, shapes):
    xs = distinct_inputs(rng, shapes)  # no ties: torch splits them, we pick the first
    ref = ELEMENTWISE[kind][2](xs)
    dy = rng.standard_normal(ref.shape)
    want_y, want_g = torch_grads(torch_expanded(TORCH_OPS[kind]), xs, dy)
    y, grads = run(ELEMENTWISE[kind][0](dtype="float64"), xs, dy)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    for g, w in zip(grads, want_g):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("axis,shapes", CONCAT_CASES)
def test_concatenate_matches_torch(rng, axis, shapes):
    xs = [rng.standard_normal(s) for s in shapes]
    dy = rng.standard_normal(np.concatenate(xs, axis=axis).shape)
    want_y, want_g = torch_grads(lambda ts: torch.cat(ts, dim=axis), xs, dy)
    y, grads = run(Concatenate(axis=axis, dtype="float64"), xs, dy)
    np.testing.assert_array_equal(y, want_y)
    for g, w in zip(grads, want_g):
        np.testing.assert_array_equal(g, w)


def torch_batch_dot(axes, normalize):
    def fn(ts):
        x, y = ts
        a0, a1 = (axes, axes) if isinstance(axes, int) else axes
        a0, a1 = a0 % x.ndim, a1 % y.ndim
        if normalize:
            x = torch.nn.functional.normalize(x, dim=a0, eps=EPSILON)
            y = torch.nn.functional.normalize(y, dim=a1, eps=EPSILON)
        xm = torch.movedim(x, a0, -1)
        ym = torch.movedim(y, a1, 1)
        n, d = xm.shape[0], xm.shape[-1]
        out = torch.bmm(xm.reshape(n, -1, d), ym.reshape(n, d, -1))
        shape = tuple(xm.shape[:-1]) + tuple(ym.shape[2:])
        return out.reshape(shape if len(shape) > 1 else (n, 1))
    return fn


@needs_torch
@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
@pytest.mark.parametrize("axes,shapes,out_shape", DOT_CASES)
def test_dot_matches_torch(rng, axes, shapes, out_shape, normalize):
    xs = [rng.standard_normal(s) for s in shapes]
    dy = rng.standard_normal(out_shape)
    want_y, want_g = torch_grads(torch_batch_dot(axes, normalize), xs, dy)
    y, grads = run(Dot(axes=axes, normalize=normalize, dtype="float64"), xs, dy)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    for g, w in zip(grads, want_g):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@needs_torch
def test_dot_2d_normalize_is_torch_cosine_similarity(rng):
    x, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    want = torch.nn.functional.cosine_similarity(torch.tensor(x), torch.tensor(y), dim=1)
    np.testing.assert_allclose(Dot(axes=1, normalize=True, dtype="float64")([x, y])[:, 0],
                               want.numpy(), rtol=1e-12)


# ---------------------------------------------------------------------------------------
# the layer contract: workspaces, input_grad=False, config
# ---------------------------------------------------------------------------------------
#: every input is at least 1 MiB in float32, so copying any of them shows up below
CONTRACT_LAYERS = [
    pytest.param(lambda: Add(), [(32, 1, 8192), (32, 8, 8192)], id="add"),
    pytest.param(lambda: Subtract(), [(32, 8, 8192), (32, 1, 8192)], id="subtract"),
    pytest.param(lambda: Multiply(), [(32, 8, 1024)] * 3, id="multiply"),
    pytest.param(lambda: Average(), [(32, 8192), (32, 8, 8192)], id="average"),
    pytest.param(lambda: Maximum(), [(32, 8, 8192), (32, 1, 8192)], id="maximum"),
    pytest.param(lambda: Minimum(), [(32, 8, 1024)] * 3, id="minimum"),
    pytest.param(lambda: Concatenate(axis=1), [(32, 8, 1024), (32, 16, 1024)],
                 id="concatenate"),
    pytest.param(lambda: Dot(axes=2), [(32, 8, 1024), (32, 16, 1024)], id="dot"),
    pytest.param(lambda: Dot(axes=1, normalize=True), [(32, 1024, 8), (32, 1024, 16)],
                 id="dot-normalize"),
]

#: what a warm step may allocate: NumPy's ufunc iteration buffers (8192 elements per
#: operand when casting), never an array of the step's size
WARM_STEP_BYTES = 256 * 1024


@pytest.mark.parametrize("make,shapes", CONTRACT_LAYERS)
def test_warm_step_allocates_no_arrays(backend, rng, make, shapes):
    layer = make()
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    assert min(x.nbytes for x in xs) >= 4 * WARM_STEP_BYTES
    layer._build_for([x.shape for x in xs])
    ctx = layer.context()
    y = layer.forward(ctx, xs, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    first = layer.backward(ctx, dy)
    tracemalloc.start()
    try:
        y2 = layer.forward(ctx, xs, training=True)
        second = layer.backward(ctx, dy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < WARM_STEP_BYTES, f"a warm step allocated {peak} bytes"
    assert np.shares_memory(y, y2)
    assert all(np.shares_memory(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("make,shapes", CONTRACT_LAYERS)
def test_backward_without_input_grad_returns_none(make, shapes, rng):
    layer = make()
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    layer._build_for([x.shape for x in xs])
    ctx = layer.context()
    y = layer.forward(ctx, xs, training=False)
    assert layer.backward(ctx, np.ones_like(y), input_grad=False) is None


@pytest.mark.parametrize("layer", [
    Add(name="plus"), Subtract(), Multiply(dtype="float64"), Average(), Maximum(),
    Minimum(trainable=False), Concatenate(axis=1), Concatenate(),
    Dot(axes=(2, 1), normalize=True), Dot(axes=-1)], ids=lambda layer: layer.name)
def test_config_round_trip(layer):
    cfg = layer.get_config()
    again = type(layer).from_config(cfg)
    assert again.get_config() == cfg
    if isinstance(layer, Concatenate):
        assert cfg["axis"] == layer.axis
    if isinstance(layer, Dot):
        assert cfg["axes"] == layer.axes and cfg["normalize"] == layer.normalize


def test_dot_config_keeps_keras_arguments():
    cfg = Dot(axes=(1, 2), normalize=True).get_config()
    assert cfg["axes"] == [1, 2] and cfg["normalize"] is True
    assert Dot(axes=-1).get_config()["axes"] == -1
    assert Concatenate().get_config()["axis"] == -1


# ---------------------------------------------------------------------------------------
# bad input: a ValueError naming the layer and the shapes
# ---------------------------------------------------------------------------------------
def raises(layer, xs, *fragments):
    with pytest.raises(ValueError) as info:
        layer(xs)
    msg = str(info.value)
    assert repr(layer.name) in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


@pytest.mark.parametrize("cls", [Add, Subtract, Multiply, Average, Maximum, Minimum])
def test_elementwise_errors(cls):
    a, b = np.ones((4, 3)), np.ones((4, 5))
    raises(cls(), [a, b], "incompatible", "(None, 3)", "(None, 5)")
    raises(cls(), [a, np.ones((5, 3))], "batch sizes", "(4, 3)", "(5, 3)")
    raises(cls(), a, "list", "(None, 3)")
    raises(cls(), [], "at least" if cls is not Subtract else "exactly 2", "got 0")
    raises(cls(), [np.ones((4, 2, 3)), np.ones((4, 3, 3))], "incompatible", "(None, 2, 3)")


def test_subtract_takes_exactly_two_inputs():
    a = np.ones((2, 3))
    raises(Subtract(), [a], "exactly 2 inputs", "got 1", "[(None, 3)]")
    raises(Subtract(), [a, a, a], "exactly 2 inputs", "got 3")


def test_concatenate_errors():
    raises(Concatenate(), [np.ones((2, 3, 4)), np.ones((2, 5, 4))], "except for the "
           "concatenation axis", "(None, 3, 4)", "(None, 5, 4)")
    raises(Concatenate(), [np.ones((2, 3)), np.ones((2, 1, 3))], "same rank")
    raises(Concatenate(axis=0), [np.ones((2, 3)), np.ones((2, 3))], "batch axis")
    raises(Concatenate(axis=2), [np.ones((2, 3)), np.ones((2, 3))], "out of range")
    raises(Concatenate(), [np.ones((2, 3)), np.ones((4, 3))], "batch sizes", "(4, 3)")
    raises(Concatenate(), np.ones((2, 3)), "list", "(None, 3)")
    with pytest.raises(ValueError, match="axis must be an integer"):
        Concatenate(axis="1")


def test_dot_errors():
    raises(Dot(axes=1), [np.ones((2, 3)), np.ones((2, 4))], "incompatible sizes 3", "4",
           "(None, 3)", "(None, 4)")
    raises(Dot(axes=0), [np.ones((2, 3)), np.ones((2, 3))], "batch axis")
    raises(Dot(axes=(1, 3)), [np.ones((2, 3)), np.ones((2, 3))], "out of range")
    raises(Dot(axes=-1), [np.ones((2,)), np.ones((2,))], "rank >= 2")
    raises(Dot(axes=1), [np.ones((2, 3))] * 3, "exactly 2 inputs", "got 3")
    raises(Dot(axes=1), [np.ones((2, 3)), np.ones((5, 3))], "batch sizes", "(5, 3)")
    raises(Dot(axes=1), np.ones((2, 3)), "list")
    for bad in ("1", (1,), (1, 2, 3), (1.0, 2), True):
        with pytest.raises(ValueError, match="axes must be"):
            Dot(axes=bad)


def test_symbolic_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"'plus'.*\(None, 3\).*\(None, 4\)"):
        Add(name="plus")([Input((3,)), Input((4,))])
    with pytest.raises(ValueError, match=r"'cat'.*\(None, 2, 5\)"):
        Concatenate(name="cat")([Input((2, 5)), Input((3, 4))])


def test_forward_rejects_a_non_list(rng):
    layer = Add()
    layer._build_for([(2, 3), (2, 3)])
    with pytest.raises(ValueError, match=r"'add.*not a list"):
        layer.forward(layer.context(), np.ones((2, 3)))


# ---------------------------------------------------------------------------------------
# inside a functional model: the engine's graph, backward and optimizer
# ---------------------------------------------------------------------------------------
def test_functional_model_with_merges_learns(backend):
    import pynn
    from pynn.layers import Dense

    pynn.set_seed(7)
    a, b = Input((4,)), Input((3,))
    h = Concatenate()([Dense(6)(a), Dense(6)(b)])
    m = Maximum()([Dense(6, activation="relu")(h), Dense(6)(h)])
    d = Dot(axes=1, normalize=True)([Dense(6)(a), m])
    out = Dense(1)(Add()([Multiply()([Dense(1)(h), d]), Subtract()([Dense(1)(m), d])]))
    model = pynn.Model([a, b], out)
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((256, 4)), rng.standard_normal((256, 3))
    target = x1[:, :1] * x2[:, :1] + x1[:, 1:2]
    losses = model.fit([x1, x2], target, epochs=40, batch_size=32, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses
