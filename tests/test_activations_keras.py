"""Keras 3's activations (issue 18): every name and alias against ``keras.activations``,
every backend against the reference, hand-worked values, Dense models on every backend,
and the names through ``get``/``serialize``/``deserialize`` and layer configs.

Finite-difference gradients of every activation on every backend are in
tests/test_gradients.py (``test_activation_gradient``, float64, default and a given
parameter); here the analytic gradients are also checked against PyTorch's autograd
through Keras (``KERAS_BACKEND=torch``), except sparsemax's: Keras 3.15.1's sparsemax is
wrong whenever its support has more than one element (keras-team/keras#23425), so its
forward is checked against the definition (a bisection for the threshold).
"""
import math
import os

import numpy as np
import pytest

import pynn
import pynn.backends as B
from pynn import activations, layers
from pynn.backends.activation_codes import (ACTIVATIONS, ALIASES, NEEDS_INPUT_FOR_BACKWARD,
                                            REFERENCE_ONLY)
from pynn.models import Sequential
from pynn.trainers import explain

from helpers import CPU_BACKENDS, FAST_BACKENDS, REFERENCE, assert_close

#: the names issue 18 found missing, and the ones pynn had, with Keras's aliases
NEW = ("selu", "silu", "swish", "exponential", "hard_sigmoid", "hard_silu", "hard_swish",
       "softsign", "relu6", "mish", "log_softmax", "celu", "glu", "sparsemax", "squareplus",
       "tanh_shrink")
ALL_NAMES = tuple(sorted(set(ACTIVATIONS) | set(ALIASES)))
ROW_WISE = ("softmax", "log_softmax", "sparsemax", "glu")


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("these comparisons run Keras on its torch backend (KERAS_BACKEND=torch)")
    return keras


def inputs(dtype, width=10):
    """Random values, the kinks (0, +-3, 6) and extremes (+-1e4, +-88, tiny), as rows of
    ``width`` (even, for glu)."""
    rng = np.random.default_rng(18)
    special = [0.0, -3.0, 3.0, 6.0, -1e4, 1e4, 88.0, -88.0, 1e-30, -1e-30, 1e-3, -0.5]
    x = np.concatenate([rng.standard_normal(48) * 4, special])
    return x.reshape(-1, width).astype(dtype)


def keras_value(keras, fn, x, **kw):
    with np.errstate(all="ignore"):
        return keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(x), **kw))


def simplex_projection(x, axis=-1):
    """Sparsemax by its definition, independently of pynn's sort-based algorithm: the
    ``tau`` with ``sum(max(x - tau, 0)) = 1``, found by bisection in float64."""
    z = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    lo = z.max(axis=-1, keepdims=True) - 1.0  # sum >= 1 here
    hi = z.max(axis=-1, keepdims=True)        # sum = 0 here
    for _ in range(200):
        mid = (lo + hi) / 2
        big = np.maximum(z - mid, 0).sum(axis=-1, keepdims=True) > 1
        lo, hi = np.where(big, mid, lo), np.where(big, hi, mid)
    return np.moveaxis(np.maximum(z - (lo + hi) / 2, 0), -1, axis).astype(x.dtype)


def keras_like(keras, name, x, **kw):
    """Keras's ``name`` of ``x``; for float32 ``squareplus``, Keras's float64 value
    rounded to float32: Keras computes ``(x + sqrt(x^2 + b)) / 2``, which cancels in
    float32 for x << 0 (0 at x = -1e4, where the value is 1e-4); pynn writes
    ``b / (2 (sqrt(x^2 + b) - x))`` there."""
    fn = getattr(keras.activations, name)
    if name == "sparsemax":
        # Keras 3.15.1 computes tau wrongly when the support has more than one element
        # (keras-team/keras#23425, fixed upstream by #23469): compare with the definition,
        # and with Keras where its support has one element (its rows that sum to 1)
        want = simplex_projection(x, **kw)
        k = keras_value(keras, fn, x, **kw)
        one = np.abs(k.sum(axis=kw.get("axis", -1), keepdims=True) - 1) < 1e-6
        assert one.any()
        np.testing.assert_allclose(np.where(one, k, want), want, rtol=1e-5, atol=1e-6)
        return want
    if name == "squareplus" and x.dtype == np.float32:
        return keras_value(keras, fn, x.astype(np.float64), **kw).astype(np.float32)
    return keras_value(keras, fn, x, **kw)


def assert_like_keras(got, want, dtype, what):
    """Relative to ``1 + |want|``: float64 to 1e-12, float32 to 2e-6 (float32 libm and
    exact-erf GELU in float64 differ from torch's by an ulp or a few)."""
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape)
    assert np.array_equal(np.isfinite(got), np.isfinite(want)), what
    fin = np.isfinite(want)
    err = np.abs(got[fin].astype(np.float64) - want[fin]) / (1 + np.abs(want[fin]))
    assert err.max(initial=0.0) <= (1e-12 if dtype == np.float64 else 2e-6), (what, err.max())


# ------------------------------------------------------------------------------------------
# forward against Keras
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NAMES)
def test_forward_matches_keras(keras, name, dtype):
    x = inputs(dtype)
    got = activations.get(name)(x)
    want = keras_like(keras, name, x)
    assert_like_keras(got, want, dtype, name)


@pytest.mark.parametrize("name,kw", [
    ("celu", dict(alpha=0.5)), ("celu", dict(alpha=3.0)), ("celu", dict(alpha=-1.5)),
    ("squareplus", dict(b=1.0)),
    ("squareplus", dict(b=0.0)), ("elu", dict(alpha=0.3)),
    ("leaky_relu", dict(negative_slope=0.05)),
    ("gelu", dict(approximate=True)), ("gelu", dict(approximate=False)),
    ("relu", dict(negative_slope=0.1)), ("relu", dict(max_value=6.0)),
    ("relu", dict(max_value=2.5)), ("relu", dict(threshold=1.0)),
    ("relu", dict(negative_slope=0.1, max_value=4.0)),
    ("relu", dict(negative_slope=0.2, threshold=-0.5)),
    ("relu", dict(negative_slope=0.1, max_value=6.0, threshold=0.5)),
])
def test_keras_arguments(keras, name, kw, dtype):
    x = inputs(dtype)
    got = getattr(activations, name)(x, **kw)
    want = keras_like(keras, name, x, **kw)
    assert_like_keras(np.asarray(got), want, dtype, f"{name}{kw}")


@pytest.mark.parametrize("name", ROW_WISE)
@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_row_wise_axis_matches_keras(keras, name, axis, dtype):
    x = np.random.default_rng(3).standard_normal((4, 6, 8)).astype(dtype) * 3
    got = getattr(activations, name)(x, axis=axis)
    want = keras_like(keras, name, x, axis=axis)
    assert_like_keras(got, want, dtype, f"{name} axis={axis}")


# ------------------------------------------------------------------------------------------
# gradients against torch's autograd through Keras
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"linear", "sparsemax"}))
def test_gradient_matches_torch_autograd(keras, name, backend_name):
    import torch

    be = B.get(backend_name)
    x = inputs(np.float64)
    x = x[np.all(np.abs(x) < 1e3, axis=1)]  # exp overflows; the kinks stay in
    x = x[:, :8] if name != "glu" else x  # an even width either way
    kfn = keras.activations.get(name)
    xt = torch.tensor(x, requires_grad=True)
    yt = kfn(xt)
    g = np.random.default_rng(5).standard_normal(tuple(yt.shape))
    (yt * torch.tensor(g)).sum().backward()
    want = xt.grad.numpy()
    y = be.to_numpy(be.activation_forward(x, name))
    got = be.to_numpy(be.activation_backward(g, y, name, x=x))
    # at the kinks (x = 0, +-3, 6) pynn takes torch's one-sided choices; torch's
    # hard-sigmoid backward multiplies by 1/6 rounded to float32 (a 3e-8 relative error)
    rtol = 1e-7 if name in ("hard_sigmoid", "hard_silu") else 1e-9
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------------------------------
# every backend against the reference
# ------------------------------------------------------------------------------------------
def _args(name, shape, dtype, rng, scale=3.0):
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    y = REFERENCE.activation_forward(x, name)
    dy = rng.standard_normal(y.shape).astype(dtype)
    return x, y, dy


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(0, 6), (1, 2), (7, 10), (3, 2, 4), (2, 0)])
def test_backends_match_reference(fast_backend, name, shape, dtype):
    be = fast_backend
    if name == "softmax" and len(shape) != 2:
        return  # 2-D only (tests/test_backend_ops.py)
    x, y, dy = _args(name, shape, dtype, np.random.default_rng(7))
    for alpha in (None, 0.7) + ((-0.8,) if name == "celu" else ()):
        want = REFERENCE.activation_forward(x, name, alpha=alpha)
        got = be.to_numpy(be.activation_forward(x, name, alpha=alpha))
        assert got.dtype == dtype
        assert_close(got, want, dtype, what=f"{be.name} {name} forward")
        want = REFERENCE.activation_backward(dy, want, name, x=x, alpha=alpha)
        got = be.to_numpy(be.activation_backward(dy, y if alpha is None else
                                                 REFERENCE.activation_forward(x, name,
                                                                              alpha=alpha),
                                                 name, x=x, alpha=alpha))
        assert_close(got, want, dtype, what=f"{be.name} {name} backward")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_backends_extreme_and_noncontiguous(fast_backend, name, dtype):
    be = fast_backend
    x = inputs(dtype)
    tiny = np.finfo(dtype).tiny
    x[-1, :4] = [tiny, -tiny, tiny / 4, -tiny / 4]  # denormals
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), dtype)
    wide[:, ::2] = x
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    with np.errstate(all="ignore"):
        want = REFERENCE.activation_forward(x, name)
    got = be.to_numpy(be.activation_forward(view, name))
    assert_close(got, want, dtype, what=f"{be.name} {name} forward")
    dy = np.ones(want.shape, dtype)
    with np.errstate(all="ignore"):
        dwant = REFERENCE.activation_backward(dy, want, name, x=x)
    got = be.to_numpy(be.activation_backward(dy, want, name, x=view))
    assert_close(got, dwant, dtype, what=f"{be.name} {name} backward")
    # finite wherever the function and its derivative are (exp overflows above ~88/709)
    if name != "exponential":
        assert np.all(np.isfinite(want)) and np.all(np.isfinite(dwant)), name


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"glu"}))
def test_in_place(fast_backend, name, dtype):
    be = fast_backend
    x, y, dy = _args(name, (5, 8), dtype, np.random.default_rng(9))
    xc = x.copy()
    got = be.activation_forward(xc, name, out=xc)
    assert got is xc
    assert_close(got, y, dtype, what=f"{be.name} {name}")
    want = REFERENCE.activation_backward(dy, y, name, x=x)
    got = be.activation_backward(dy, y, name, x=x, out=dy)
    assert got is dy
    assert_close(got, want, dtype, what=f"{be.name} {name} backward")


def test_nan_propagates(fast_backend):
    x = np.array([[np.nan, -1.0, 1.0, 2.0]])
    for name in sorted(set(ACTIVATIONS) - {"linear"}):
        for be in (REFERENCE, fast_backend):
            y = be.to_numpy(be.activation_forward(x, name))
            assert np.isnan(y).any(), (be.name, name)


# ------------------------------------------------------------------------------------------
# hand-worked values
# ------------------------------------------------------------------------------------------
E1 = math.exp(-1.0)
SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805


@pytest.mark.parametrize("name,x,y,dydx,kw", [
    ("selu", [1.0, -1.0], [SELU_S, SELU_S * SELU_A * (E1 - 1)], [SELU_S, SELU_S * SELU_A * E1],
     {}),
    ("silu", [0.0, 2.0], [0.0, 2 / (1 + math.exp(-2))],
     [0.5, (1 / (1 + math.exp(-2))) * (1 + 2 * (1 - 1 / (1 + math.exp(-2))))], {}),
    ("exponential", [0.0, 1.0], [1.0, math.e], [1.0, math.e], {}),
    ("hard_sigmoid", [1.0, -4.0, 4.0], [2 / 3, 0.0, 1.0], [1 / 6, 0.0, 0.0], {}),
    ("hard_silu", [1.0, -4.0, 4.0, 0.0], [2 / 3, 0.0, 4.0, 0.0], [5 / 6, 0.0, 1.0, 0.5], {}),
    ("softsign", [3.0, -1.0], [0.75, -0.5], [1 / 16, 0.25], {}),
    ("relu6", [7.0, 3.0, -1.0], [6.0, 3.0, 0.0], [0.0, 1.0, 0.0], {}),
    ("mish", [0.0], [0.0], [0.6], {}),  # tanh(log 2) = 3/5
    ("celu", [-1.0, 2.0], [2 * (math.exp(-0.5) - 1), 2.0], [math.exp(-0.5), 1.0],
     dict(alpha=2.0)),
    ("squareplus", [0.0, -1.0], [1.0, (math.sqrt(5) - 1) / 2], [0.5, (1 - 1 / math.sqrt(5)) / 2],
     {}),
    ("tanh_shrink", [0.0, 1.0], [0.0, 1 - math.tanh(1)], [0.0, math.tanh(1) ** 2], {}),
])
def test_hand_worked(backend, name, x, y, dydx, kw):
    x = np.array([x])
    alpha = next(iter(kw.values()), None)
    got = backend.to_numpy(backend.activation_forward(x, name, alpha=alpha))
    np.testing.assert_allclose(got[0], y, rtol=1e-12, atol=1e-15)
    d = backend.to_numpy(backend.activation_backward(np.ones_like(x), got, name, x=x,
                                                     alpha=alpha))
    np.testing.assert_allclose(d[0], dydx, rtol=1e-12, atol=1e-15)


def test_hand_worked_row_wise(backend):
    # sparsemax of (0, 0.5, 1): support {0.5, 1}, tau = (1.5 - 1) / 2 = 0.25
    y = backend.to_numpy(backend.activation_forward(np.array([[0.0, 0.5, 1.0]]), "sparsemax"))
    np.testing.assert_allclose(y, [[0.0, 0.25, 0.75]], atol=1e-15)
    # its Jacobian on the support: I - 1/2 (dy = e_3 -> (0, -1/2, 1/2))
    d = backend.to_numpy(backend.activation_backward(np.array([[0.0, 0.0, 1.0]]), y,
                                                     "sparsemax"))
    np.testing.assert_allclose(d, [[0.0, -0.5, 0.5]], atol=1e-15)
    # glu of (1, 2 | 0, log 3): (1 * 1/2, 2 * 3/4)
    x = np.array([[1.0, 2.0, 0.0, math.log(3.0)]])
    y = backend.to_numpy(backend.activation_forward(x, "glu"))
    np.testing.assert_allclose(y, [[0.5, 1.5]], rtol=1e-14)
    d = backend.to_numpy(backend.activation_backward(np.ones((1, 2)), y, "glu", x=x))
    np.testing.assert_allclose(d, [[0.5, 0.75, 0.25, 2 * 0.75 * 0.25]], rtol=1e-14)
    # log_softmax of (0, log 3): log(1/4), log(3/4); backward dy - softmax * sum(dy)
    y = backend.to_numpy(backend.activation_forward(np.array([[0.0, math.log(3.0)]]),
                                                    "log_softmax"))
    np.testing.assert_allclose(y, [[math.log(0.25), math.log(0.75)]], rtol=1e-14)
    d = backend.to_numpy(backend.activation_backward(np.array([[1.0, 0.0]]), y, "log_softmax"))
    np.testing.assert_allclose(d, [[0.75, -0.75]], rtol=1e-14)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
def test_bad_parameters_and_shapes_are_refused(backend):
    x = np.ones((2, 4))
    with pytest.raises(ValueError, match="alpha of celu: must be nonzero"):
        backend.activation_forward(x, "celu", alpha=0.0)
    with pytest.raises(ValueError, match="alpha of squareplus"):
        backend.activation_forward(x, "squareplus", alpha=-1.0)
    with pytest.raises(ValueError, match="glu.*even; got 3"):
        backend.activation_forward(np.ones((2, 3)), "glu")
    with pytest.raises(ValueError, match="glu needs the forward input x"):
        backend.activation_backward(np.ones((2, 2)), np.ones((2, 2)), "glu")
    for name in NEEDS_INPUT_FOR_BACKWARD - {"glu"}:
        with pytest.raises(ValueError, match=f"{name} needs the forward input x"):
            backend.activation_backward(x, x, name)
    for name in REFERENCE_ONLY:
        with pytest.raises(ValueError, match="no fused epilogue"):
            backend.gemm(x, np.ones((4, 4)), activation=name)
    with pytest.raises(ValueError, match="Unknown activation 'swishy'.*'swish'"):
        activations.get("swishy")
    with pytest.raises(ValueError, match="axis must be an integer"):
        activations.softmax(x, axis=2)


def test_layers_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="glu.*even; got 7"):
        layers.Dense(7, activation="glu")
    with pytest.raises(ValueError, match="activation='glu'.*not supported.*Activation"):
        layers.Conv2D(4, 3, activation="glu")
    for name in ("log_softmax", "sparsemax"):
        with pytest.raises(ValueError, match=f"{name}.*channels_first"):
            layers.Conv2D(4, 3, activation=name, data_format="channels_first")


# ------------------------------------------------------------------------------------------
# names: get / serialize / deserialize and layer configs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NAMES)
def test_names_round_trip_like_keras(keras, name):
    fn = activations.get(name)
    canonical = ALIASES.get(name, name)
    assert activations.serialize(fn) == activations.serialize(name) == canonical
    assert activations.deserialize(canonical) is fn
    assert activations.get(fn) is fn
    assert getattr(activations, name) is fn
    # Keras serializes an alias under the function's own name, as pynn does
    assert keras.activations.serialize(keras.activations.get(name)) == canonical
    units = 8
    layer = layers.Dense(units, activation=name)
    cfg = layer.get_config()
    assert cfg["activation"] == canonical
    assert keras.layers.Dense(units, activation=name).get_config()["activation"] == canonical
    again = layers.Dense.from_config(cfg)
    assert again.get_config() == cfg
    assert layers.Activation.from_config(layers.Activation(name).get_config()).activation is fn


def test_glu_layers_halve_the_width_like_keras(keras):
    k = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="glu")])
    p = Sequential([layers.Input((5,)), layers.Dense(8, activation="glu")])
    # Keras 3.15.1's symbolic shape keeps 8 (so a layer after it fails when called), its
    # output has 4 columns; pynn's shape says 4, and a layer after it builds for 4
    assert tuple(p.output_shape) == (None, 4)
    p.layers[0].kernel.assign(np.asarray(k.layers[0].kernel.numpy(), np.float32))
    x = np.random.default_rng(2).standard_normal((6, 5)).astype(np.float32)
    want = k.predict(x, verbose=0)
    assert want.shape == (6, 4)
    np.testing.assert_allclose(p.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    deeper = Sequential([layers.Input((5,)), layers.Dense(8, activation="glu"),
                         layers.Dense(3)])
    assert deeper.layers[1].kernel.shape == (4, 3)
    assert deeper.predict(x, verbose=0).shape == (6, 3)
    a = layers.Activation("glu")
    assert a.compute_output_shape((None, 3, 6)) == (None, 3, 3)


# ------------------------------------------------------------------------------------------
# Dense models: every activation trains alike on every backend (and the fused step runs)
# ------------------------------------------------------------------------------------------
def _train(backend_name, name, steps=4):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    with B.use_backend(backend_name):
        pynn.set_seed(3)
        model = Sequential([layers.Input((6,)), layers.Dense(16, activation=name),
                            layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        fused = explain(model)["train"]
        for _ in range(steps):
            model.train_on_batch(x, y)
        return fused, [w.numpy() if hasattr(w, "numpy") else np.asarray(w)
                       for w in model.get_weights()]


@pytest.mark.parametrize("name", NEW)
def test_dense_model_trains_alike_on_every_backend(name):
    # the fused Dense-stack step runs for every activation it has kernels for
    expect_fused = activations.canonical_name(name) not in REFERENCE_ONLY
    fused, want = _train("numpy", name)
    assert fused == expect_fused
    _, untrained = _train("numpy", name, steps=0)
    assert any(not np.array_equal(w, u) for w, u in zip(want, untrained))
    for be in FAST_BACKENDS:
        fused, got = _train(be, name)
        assert fused == expect_fused, (be, name)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5, err_msg=f"{be} {name}")


@pytest.mark.parametrize("name", ["selu", "exponential", "hard_sigmoid", "softsign", "relu6",
                                  "celu", "squareplus"])
def test_recurrent_cells_take_the_output_derivable_ones(name):
    """SimpleRNN / LSTM with a new activation: the compiled cells agree with the
    reference (their derivative follows from the output)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 2)).astype(np.float32) * 0.5
    outs = {}
    for be in CPU_BACKENDS:
        with B.use_backend(be):
            pynn.set_seed(1)
            model = Sequential([layers.Input((5, 2)), layers.SimpleRNN(4, activation=name),
                                layers.Dense(1)])
            model.compile(optimizer="sgd", loss="mse")
            model.train_on_batch(x, np.ones((3, 1), np.float32))
            outs[be] = model.predict(x, verbose=0)
    for be in CPU_BACKENDS:
        np.testing.assert_allclose(outs[be], outs["numpy"], rtol=1e-4, atol=1e-5, err_msg=be)


@pytest.mark.parametrize("name", sorted(REFERENCE_ONLY))
def test_ops_dense_runs_reference_only_after_the_product(backend, name):
    from pynn import ops

    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 6)), rng.standard_normal(6)
    want = REFERENCE.activation_forward(x @ w + b, name)
    got = backend.to_numpy(ops.dense(x, w, b, activation=name))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
