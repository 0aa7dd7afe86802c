"""Fused Dense-stack inference (``Backend.dense_stack_forward``) and the model's use of it.

* every CPU backend against the reference composition of single ops (float32 and
  float64; depth 1-3; every activation in every position, softmax and sigmoid last;
  batch 0, 1 and odd; layers without bias; float64 and non-contiguous ``x``;
  extreme inputs);
* bad arguments raise errors naming the argument, on every backend;
* ``predict``/``predict_on_batch``/``__call__`` run a plain Dense stack (Dropout
  included) as one backend call, give the layer-by-layer outputs, write straight
  into the returned array and leave nothing shared between calls.
"""
import numpy as np
import pytest

import pynn
import pynn.backends as B
from pynn import layers
from pynn.backends.base import EPILOGUE_ACTIVATIONS, Backend
from pynn.models import Sequential

from helpers import CPU_BACKENDS, assert_close, raises_naming, stack_bad_cases

REF = Backend()
ARCHS = {1: [9, 5], 2: [13, 7, 3], 3: [11, 17, 6, 5]}


def layered(model, x):
    """The model's layer-by-layer inference (the fused path switched off publicly)."""
    model.jit_compile = False
    try:
        return model.predict(x, verbose=0)
    finally:
        model.jit_compile = True


@pytest.fixture(params=CPU_BACKENDS)
def be(request):
    return B.get(request.param)


def make_stack(rng, dtype, sizes, bias=True):
    ks = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
          for a, b in zip(sizes[:-1], sizes[1:])]
    if isinstance(bias, bool):
        bias = [bias] * len(ks)
    bs = [(rng.standard_normal(b) * 0.1).astype(dtype) if use else None
          for b, use in zip(sizes[1:], bias)]
    return ks, bs


def compose(x, ks, bs, acts, alphas=None):
    """Every layer's output, written out with the reference's single ops."""
    h, hs = np.asarray(x, ks[0].dtype), []
    for i, k in enumerate(ks):
        z = REF.gemm(h, k, bias=bs[i])
        h = REF.activation_forward(z, acts[i], alpha=None if alphas is None else alphas[i])
        hs.append(h)
    return hs


def run(be, x, ks, bs, acts, alphas=None, n=None):
    n = np.asarray(x).shape[0] if n is None else n
    outs = [np.full((n, k.shape[1]), np.nan, ks[0].dtype) for k in ks]
    got = be.dense_stack_forward(x, ks, bs, acts, outs, act_alphas=alphas)
    assert got is outs[-1]
    return outs


def assert_outs_close(got, want, dtype, what):
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, dtype, 1.0, f"{what} outs[{i}]")


# ------------------------------------------------------------------------------------------
# parity
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_parity_every_depth_and_batch(be, dtype, depth, rng):
    sizes = ARCHS[depth]
    acts = ["relu", "tanh", "softmax"][-depth:]
    ks, bs = make_stack(rng, dtype, sizes)
    for n in (1, 7, 33):
        x = rng.standard_normal((n, sizes[0])).astype(dtype)
        assert_outs_close(run(be, x, ks, bs, acts), compose(x, ks, bs, acts), dtype,
                          f"{be.name} depth {depth} n {n}")


@pytest.mark.parametrize("act", sorted(EPILOGUE_ACTIVATIONS))
def test_parity_every_activation_in_every_position(be, dtype, act, rng):
    sizes = [6, 11, 4, 3]
    ks, bs = make_stack(rng, dtype, sizes)
    x = rng.standard_normal((5, 6)).astype(dtype) * 3
    for acts in ([act, "relu", "linear"], ["tanh", act, "softmax"], ["elu", "relu", act]):
        alphas = [0.05 if a in ("leaky_relu", "elu") else None for a in acts]
        assert_outs_close(run(be, x, ks, bs, acts, alphas), compose(x, ks, bs, acts, alphas),
                          dtype, f"{be.name} {acts}")


def test_parity_without_bias_float64_and_noncontiguous_input(be, rng):
    sizes = [12, 9, 5, 2]
    ks, bs = make_stack(rng, np.float32, sizes, bias=[False, True, False])
    acts = ["gelu", "softplus", "sigmoid"]
    x = rng.standard_normal((6, 12))
    want = compose(x.astype(np.float32), ks, bs, acts)
    assert_outs_close(run(be, x, ks, bs, acts), want, np.float32, f"{be.name} f64 x")
    wide = np.zeros((6, 24), np.float32)
    wide[:, ::2] = x
    assert not wide[:, ::2].flags.c_contiguous
    assert_outs_close(run(be, wide[:, ::2], ks, bs, acts), want, np.float32,
                      f"{be.name} strided x")
    xf = np.asfortranarray(x.astype(np.float32))
    assert_outs_close(run(be, xf, ks, bs, acts), want, np.float32, f"{be.name} F-order x")


def test_zero_samples_and_size_one_layers(be, dtype, rng):
    ks, bs = make_stack(rng, dtype, [4, 1, 1])
    outs = run(be, np.zeros((0, 4), dtype), ks, bs, ["relu", "sigmoid"])
    assert [o.shape for o in outs] == [(0, 1), (0, 1)]
    x = rng.standard_normal((3, 4)).astype(dtype)
    assert_outs_close(run(be, x, ks, bs, ["relu", "sigmoid"]),
                      compose(x, ks, bs, ["relu", "sigmoid"]), dtype, f"{be.name} width 1")


def test_extreme_inputs_stay_finite_and_match(be, dtype, rng):
    """Huge logits: softmax and sigmoid saturate to exact 0/1 rows, never NaN."""
    ks, bs = make_stack(rng, dtype, [5, 4, 3])
    big = np.finfo(dtype).max ** 0.25
    x = (rng.standard_normal((6, 5)) * big).astype(dtype)
    for acts in (["relu", "softmax"], ["tanh", "sigmoid"], ["linear", "softmax"]):
        got = run(be, x, ks, bs, acts)
        assert np.isfinite(got[-1]).all(), (be.name, acts)
        assert_outs_close(got, compose(x, ks, bs, acts), dtype, f"{be.name} {acts} huge")
        if acts[-1] == "softmax":
            np.testing.assert_allclose(got[-1].sum(axis=1), 1.0, rtol=1e-5)


def test_repeated_calls_are_bit_identical(be, rng):
    ks, bs = make_stack(rng, np.float32, [20, 16, 10])
    x = rng.standard_normal((8, 20)).astype(np.float32)
    first = run(be, x, ks, bs, ["relu", "softmax"])
    for _ in range(2):
        for a, b in zip(run(be, x, ks, bs, ["relu", "softmax"]), first):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------
# bad arguments
# ------------------------------------------------------------------------------------------
def _good():
    rng = np.random.default_rng(1)
    ks, bs = make_stack(rng, np.float32, [6, 5, 3])
    return dict(x=rng.standard_normal((4, 6)).astype(np.float32), kernels=ks, biases=bs,
                activations=["relu", "softmax"],
                outs=[np.empty((4, 5), np.float32), np.empty((4, 3), np.float32)])


def _bad_cases():
    def kernel_dtype(a):
        a["kernels"][1] = np.zeros((5, 3), np.float64)

    def out_dtype(a):
        a["outs"][0] = np.empty((4, 5), np.float64)

    def out_readonly(a):
        a["outs"][0].flags.writeable = False

    def out_noncontig(a):
        a["outs"][1] = np.empty((4, 6), np.float32)[:, ::2]

    def bias_shape(a):
        a["biases"][0] = np.zeros(4, np.float32)

    def x_text(a):
        a["x"] = np.array([["a"] * 6] * 4)

    def no_layers(a):
        a.update(kernels=[], biases=[], activations=[], outs=[])

    def out_is_x(a):
        a["x"] = np.zeros((4, 6), np.float32)
        a["outs"][0] = a["x"][:, :5]

    def out_in_x(a):
        buf = np.zeros(4 * 6 + 4 * 5 - 1, np.float32)
        a["x"] = buf[:24].reshape(4, 6)
        a["outs"][0] = buf[-20:].reshape(4, 5)

    def outs_shared(a):
        buf = np.zeros(4 * 5 + 4 * 3 - 2, np.float32)
        a["outs"] = [buf[:20].reshape(4, 5), buf[-12:].reshape(4, 3)]

    def out_is_bias(a):
        a["outs"] = [np.zeros((1, 5), np.float32), np.zeros((1, 3), np.float32)]
        a["x"] = a["x"][:1]
        a["biases"][1] = a["outs"][1][0]

    return stack_bad_cases() + [
        (out_in_x, ValueError, "outs[0] and x overlap"),
        (outs_shared, ValueError, "outs[0] and outs[1] overlap"),
        (out_is_bias, ValueError, "outs[1] and biases[1] overlap"),
        (out_is_x, ValueError, "outs[0]"), (kernel_dtype, ValueError, "kernels[1]"),
        (out_dtype, ValueError, "outs[0]"), (out_readonly, ValueError, "outs[0]"),
        (out_noncontig, ValueError, "outs[1]"), (bias_shape, ValueError, "biases[0]"),
        (x_text, TypeError, "x"), (no_layers, ValueError, "kernels"),
    ]


@pytest.mark.parametrize("mutate,exc,text", _bad_cases(),
                         ids=lambda c: getattr(c, "__name__", ""))
def test_bad_arguments_raise(be, mutate, exc, text):
    args = _good()
    mutate(args)
    with raises_naming(exc, text):
        be.dense_stack_forward(**args)


def test_overlap_is_caught_after_a_good_call_with_the_same_arrays(be):
    args = _good()
    be.dense_stack_forward(**args)
    last_in_x = args["x"].reshape(-1)[:12].reshape(4, 3)
    with pytest.raises(ValueError, match=r"outs\[1\] and x overlap"):
        be.dense_stack_forward(**dict(args, outs=[args["outs"][0], last_in_x]))
    assert np.isfinite(be.dense_stack_forward(**args)).all()
    # the numba backend checks x and a fresh last output inside its kernel: every
    # overlap it must refuse, with nothing written before the validator names it
    kernel0 = args["kernels"][0].copy()
    args["kernels"][0] = kernel0
    buf = np.zeros(20 + 24 - 4, np.float32)  # outs[0] in its first 20, room for an x
    args["outs"][0] = buf[:20].reshape(4, 5)
    be.dense_stack_forward(**args)
    before = [o.copy() for o in args["outs"]]
    last_in_kernel = kernel0.reshape(-1)[:12].reshape(4, 3)
    with pytest.raises(ValueError, match=r"outs\[1\] and kernels\[0\] overlap"):
        be.dense_stack_forward(**dict(args, outs=[args["outs"][0], last_in_kernel]))
    last_in_out0 = args["outs"][0].reshape(-1)[:12].reshape(4, 3)
    with pytest.raises(ValueError, match=r"outs\[0\] and outs\[1\] overlap"):
        be.dense_stack_forward(**dict(args, outs=[args["outs"][0], last_in_out0]))
    with pytest.raises(ValueError, match=r"outs\[0\] and x overlap"):
        be.dense_stack_forward(**dict(args, x=buf[16:].reshape(4, 6)))
    np.testing.assert_array_equal(kernel0, args["kernels"][0])
    for b, o in zip(before, args["outs"]):
        np.testing.assert_array_equal(b, o)
    assert np.isfinite(be.dense_stack_forward(**args)).all()


def test_threads_sharing_the_layers_write_their_own_results(be):
    """Two threads run the same layers into their own last outputs, at once: each
    gets its own input's result (nothing per call is kept in shared state)."""
    import threading
    args = _good()
    want = {}
    xs = {i: np.random.default_rng(10 + i).standard_normal((4, 6)).astype(np.float32)
          for i in range(2)}
    for i, x in xs.items():
        want[i] = compose(x, args["kernels"], args["biases"], args["activations"])[-1]
    hidden = [np.empty((4, 5), np.float32) for _ in range(2)]
    errors = []

    def run(i):
        try:
            for _ in range(300):
                last = np.empty((4, 3), np.float32)
                out = be.dense_stack_forward(
                    xs[i], args["kernels"], args["biases"], args["activations"],
                    [hidden[i], last])
                assert out is last
                assert_close(out, want[i], np.float32, 1.0, be.name)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_good_call_after_a_bad_one_with_the_same_arrays(be):
    """A rejected call (or a remembered plan) never lets a later call skip a check."""
    args = _good()
    want = compose(args["x"], args["kernels"], args["biases"], args["activations"])
    be.dense_stack_forward(**args)
    with pytest.raises(ValueError, match="kernels"):
        be.dense_stack_forward(**dict(args, x=np.zeros((4, 7), np.float32)))
    with pytest.raises(ValueError):
        be.dense_stack_forward(**dict(args, x=np.zeros((5, 6), np.float32)))
    out = be.dense_stack_forward(**args)
    assert_close(out, want[-1], np.float32, 1.0, be.name)


# ------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------
def _model(dropout=False, bias=True, last="softmax", dtype=None):
    ls = [layers.Input((12,)), layers.Dense(16, activation="relu", use_bias=bias)]
    if dropout:
        ls.append(layers.Dropout(0.5))
    ls += [layers.Dense(8, activation="tanh"), layers.Dense(4, activation=last)]
    pynn.set_seed(3)
    return Sequential(ls)


def _count_fused(monkeypatch, be):
    calls = []
    original = type(be).dense_stack_forward

    def counted(self, *args, **kwargs):
        calls.append(args[0].shape)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(be), "dense_stack_forward", counted)
    return calls


@pytest.mark.parametrize("dropout", [False, True])
def test_predict_runs_one_fused_call_per_batch_and_matches_layers(backend_name, dropout,
                                                                    monkeypatch):
    be = B.get(backend_name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 12)).astype(np.float32)
    with pynn.use_backend(be):
        m = _model(dropout=dropout)
        m.build((None, 12))
        want = layered(m, x).copy()
        calls = _count_fused(monkeypatch, be)
        got = m.predict(x, batch_size=16, verbose=0)
        assert calls == [(16, 12), (16, 12), (16, 12), (2, 12)]
        assert_close(got, want, np.float32, 1.0, f"{backend_name} predict")
        one = m.predict(x[:1], verbose=0)
        assert_close(one, want[:1], np.float32, 1.0, f"{backend_name} predict 1")
        pb = m.predict_on_batch(x)
        called = m(x)
        assert_close(pb, want, np.float32, 1.0, "predict_on_batch")
        assert_close(called, want, np.float32, 1.0, "__call__")
        # every call returns its own array: a later call leaves it alone
        keep = one.copy()
        m.predict(x[1:2], verbose=0)
        np.testing.assert_array_equal(one, keep)
        assert not np.shares_memory(pb, called)
        # with a progress bar / callbacks: same values, per-batch hooks
        seen = []

        class Spy(pynn.callbacks.Callback):
            def on_predict_batch_end(self, batch, logs=None):
                seen.append((batch, logs["outputs"].shape))

        got_cb = m.predict(x, batch_size=32, verbose=0, callbacks=[Spy()])
        np.testing.assert_array_equal(got_cb, m.predict(x, batch_size=32, verbose=0))
        assert seen == [(0, (32, 4)), (1, (18, 4))]


def test_predict_float64_model_and_layered_models(backend_name, monkeypatch):
    be = B.get(backend_name)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 12))
    with pynn.use_backend(be):
        pynn.set_seed(0)
        m64 = Sequential([layers.Input((12,)), layers.Dense(5, activation="gelu",
                                                            dtype="float64"),
                          layers.Dense(3, activation="sigmoid", dtype="float64")])
        m64.build((None, 12))
        want = layered(m64, x).copy()
        calls = _count_fused(monkeypatch, be)
        got = m64.predict(x, verbose=0)
        assert got.dtype == np.float64 and calls == [(9, 12)]
        assert_close(got, want, np.float64, 1.0, "float64 model")
        # a BatchNormalization layer: layer by layer (no fused call), same API
        bn = Sequential([layers.Input((12,)), layers.Dense(6, activation="relu"),
                         layers.BatchNormalization(), layers.Dense(2)])
        bn.build((None, 12))
        calls.clear()
        out = bn.predict(x, verbose=0)
        assert calls == [] and out.shape == (9, 2)
        assert_close(out, layered(bn, x.astype(np.float32)), np.float32,
                     1.0, "batchnorm model")


def test_predict_follows_weight_changes(backend_name):
    """set_weights, training and trainable flips change what predict computes."""
    be = B.get(backend_name)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 12)).astype(np.float32)
    y = rng.integers(0, 4, 7)
    with pynn.use_backend(be):
        m = _model()
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        before = m.predict(x, verbose=0)
        m.fit(x, y, epochs=2, verbose=0)
        after = m.predict(x, verbose=0)
        assert not np.allclose(before, after)
        assert_close(after, layered(m, x), np.float32, 1.0, "after fit")
        w = m.get_weights()
        w[-1] = w[-1] + 1.0
        m.set_weights(w)
        assert_close(m.predict(x, verbose=0), layered(m, x), np.float32, 1.0,
                     "after set_weights")
        m.layers[0].trainable = False
        assert_close(m.predict(x, verbose=0), layered(m, x), np.float32, 1.0,
                     "after freezing")


def test_predict_bad_input_names_the_layer(backend_name):
    with pynn.use_backend(B.get(backend_name)):
        m = _model()
        m.build((None, 12))
        with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 12"):
            m.predict(np.zeros((2, 11), np.float32), verbose=0)
        with pytest.raises(ValueError, match="NaN"):
            m.predict(np.full((2, 12), np.nan, np.float32), verbose=0)
