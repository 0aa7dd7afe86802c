"""The fused Dense-stack training step (``Backend.dense_stack_forward_backward``).

* every backend against the reference composition of single ops (float32 and
  float64; depth 1-3, odd widths, batch 1 and odd; every loss, activation,
  label kind, sample weights, label smoothing, loss scale, layers without bias);
* the reference itself against finite differences (float64);
* bad arguments raise clear errors, on every backend;
* the model: the fused path gives the layered path's losses and weights, is
  bit-identical across runs, and allocates no arrays per step after warm-up.
"""

import numpy as np
import pytest

import pynn
from pynn.trainers import explain
import pynn.backends as B
from pynn import bench, layers, losses
from pynn.backends.base import EPILOGUE_ACTIVATIONS, STACK_LOSSES, Backend, StackUpdate
from pynn.models import Sequential

from helpers import CPU_BACKENDS, FAST_BACKENDS
from helpers import assert_close, raises_naming, stack_bad_cases

REF = Backend()
COMPILED = FAST_BACKENDS or pytest.skip("no compiled backend", allow_module_level=True)
FOLD = {"softmax_cross_entropy": "softmax", "sigmoid_binary_cross_entropy": "sigmoid"}


# ------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------
def make_problem(rng, dtype, sizes, n, loss, target_kind="labels", bias=True, weighted=False):
    """Random kernels, biases, x and targets of a Dense stack with widths ``sizes``."""
    ks = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
          for a, b in zip(sizes[:-1], sizes[1:])]
    if isinstance(bias, bool):
        bias = [bias] * len(ks)
    bs = [(rng.standard_normal(b) * 0.1).astype(dtype) if use else None
          for b, use in zip(sizes[1:], bias)]
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    k = sizes[-1]
    if loss == "softmax_cross_entropy":
        if target_kind == "labels":
            t = rng.integers(0, k, n).astype(np.intp)
        elif target_kind == "labels_column":
            t = rng.integers(0, k, (n, 1)).astype(np.int32)
        else:
            t = rng.dirichlet(np.ones(k), n).astype(dtype)
    elif loss == "sigmoid_binary_cross_entropy":
        t = (rng.random((n, k)) > 0.5).astype(dtype)
    else:
        t = rng.standard_normal((n, k)).astype(dtype)
    w = rng.random(n) + 0.5 if weighted else None
    return x, t, ks, bs, w


def make_buffers(dtype, sizes, n, biases, fill=np.nan):
    """Workspaces and gradients, pre-filled with NaN so unwritten entries show."""
    units = sizes[1:]
    outs = [np.full((n, u), fill, dtype) for u in units]
    deltas = [np.full((n, u), fill, dtype) for u in units]
    preacts = [np.full((n, u), fill, dtype) for u in units]
    dks = [np.full((a, b), fill, dtype) for a, b in zip(sizes[:-1], units)]
    dbs = [None if b is None else np.full(u, fill, dtype) for u, b in zip(units, biases)]
    return outs, deltas, preacts, dks, dbs


def run_step(be, x, t, ks, bs, acts, loss, w=None, alphas=None, ls=0.0, scale=1.0,
             sizes=None, n=None):
    sizes = sizes or [ks[0].shape[0]] + [k.shape[1] for k in ks]
    n = x.shape[0] if n is None else n
    outs, deltas, preacts, dks, dbs = make_buffers(ks[0].dtype, sizes, n, bs)
    value = be.dense_stack_forward_backward(
        x, t, ks, bs, acts, loss, outs, deltas, dks, dbs, sample_weight=w, act_alphas=alphas,
        preacts=preacts, label_smoothing=ls, loss_scale=scale)
    return value, outs, dks, dbs


def compose(x, t, ks, bs, acts, loss, w=None, alphas=None, ls=0.0, scale=1.0):
    """The step written out with the reference's single ops (independent of the op)."""
    h, hs, zs = np.asarray(x, ks[0].dtype), [], []
    names = list(acts)
    if names[-1] == FOLD.get(loss):
        names[-1] = "linear"
    for i, k in enumerate(ks):
        z = REF.gemm(h, k, bias=bs[i])
        a = REF.activation_forward(z, names[i], alpha=None if alphas is None else alphas[i])
        hs.append(a)
        zs.append(z)
        h = a
    g = np.empty_like(h)
    kw = {"label_smoothing": ls} if loss == "softmax_cross_entropy" else {}
    value, g = getattr(REF, loss)(h, t, grad=g, sample_weight=w, **kw)
    g = g * g.dtype.type(scale)
    dks, dbs = [None] * len(ks), [None] * len(ks)
    for i in range(len(ks) - 1, -1, -1):
        g = REF.activation_backward(g, hs[i], names[i], x=zs[i],
                                    alpha=None if alphas is None else alphas[i])
        prev = np.asarray(x, ks[0].dtype) if i == 0 else hs[i - 1]
        dks[i] = REF.gemm(prev, g, trans_a=True)
        dbs[i] = None if bs[i] is None else REF.bias_grad(g)
        if i:
            g = REF.gemm(g, ks[i], trans_b=True)
    return value * scale, hs, dks, dbs


def assert_step_close(got, want, dtype, loose=1.0, what=""):
    g_value, g_outs, g_dks, g_dbs = got
    w_value, w_outs, w_dks, w_dbs = want
    assert isinstance(g_value, float), what
    assert_close(g_value, w_value, dtype, loose, f"{what} loss")
    for i in range(len(w_dks)):
        assert_close(g_outs[i], w_outs[i], dtype, loose, f"{what} outs[{i}]")
        assert_close(g_dks[i], w_dks[i], dtype, loose, f"{what} dkernels[{i}]")
        if w_dbs[i] is None:
            assert g_dbs[i] is None
        else:
            assert_close(g_dbs[i], w_dbs[i], dtype, loose, f"{what} dbiases[{i}]")


@pytest.fixture(params=CPU_BACKENDS)
def be(request):
    return B.get(request.param)


# ------------------------------------------------------------------------------------------
# parity with the reference composition
# ------------------------------------------------------------------------------------------
ARCHS = {1: [9, 5], 2: [13, 7, 3], 3: [11, 17, 6, 5]}


@pytest.mark.parametrize("loss", sorted(STACK_LOSSES))
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_parity_every_loss_and_depth(be, dtype, loss, depth, rng):
    sizes = ARCHS[depth]
    acts = (["relu", "tanh", "elu"][:depth - 1]
            + [FOLD.get(loss, "linear" if loss == "mean_squared_error" else "sigmoid")])
    for n, weighted in ((7, False), (1, True), (33, True)):
        x, t, ks, bs, w = make_problem(rng, dtype, sizes, n, loss, weighted=weighted)
        want = compose(x, t, ks, bs, acts, loss, w)
        got = run_step(be, x, t, ks, bs, acts, loss, w)
        assert_step_close(got, want, dtype, what=f"{be.name} {loss} depth {depth} n {n}")


@pytest.mark.parametrize("act", sorted(EPILOGUE_ACTIVATIONS))
def test_parity_every_activation(be, dtype, act, rng):
    sizes = [6, 11, 4, 3]
    # hidden position, and last position under a loss that does not fold it
    for acts, loss in (([act, "relu", "softmax"], "softmax_cross_entropy"),
                       (["tanh", act, act], "mean_squared_error")):
        x, t, ks, bs, w = make_problem(rng, dtype, sizes, 5, loss)
        want = compose(x, t, ks, bs, acts, loss)
        got = run_step(be, x, t, ks, bs, acts, loss)
        assert_step_close(got, want, dtype, what=f"{be.name} {acts} {loss}")


@pytest.mark.parametrize("target_kind", ["labels", "labels_column", "dense"])
def test_parity_targets_weights_smoothing_scale(be, dtype, target_kind, rng):
    sizes = [10, 8, 4]
    acts = ["leaky_relu", "softmax"]
    loss = "softmax_cross_entropy"
    for weighted, ls, scale in ((False, 0.0, 1.0), (True, 0.1, 2.5), (True, 0.0, 32.0)):
        x, t, ks, bs, w = make_problem(rng, dtype, sizes, 9, loss, target_kind, weighted=weighted)
        tt = t[:, 0].astype(np.intp) if target_kind == "labels_column" else t
        want = compose(x, tt, ks, bs, acts, loss, w, alphas=[0.05, None], ls=ls, scale=scale)
        got = run_step(be, x, t, ks, bs, acts, loss, w, alphas=[0.05, None], ls=ls, scale=scale)
        assert_step_close(got, want, dtype, what=f"{be.name} {target_kind} ls={ls} s={scale}")


def test_parity_without_bias_and_float64_input(be, rng):
    sizes = [12, 9, 5, 2]
    loss = "sigmoid_binary_cross_entropy"
    x, t, ks, bs, w = make_problem(rng, np.float32, sizes, 6, loss, bias=[False, True, False])
    acts = ["gelu", "softplus", "sigmoid"]
    want = compose(x, t, ks, bs, acts, loss)
    got = run_step(be, x.astype(np.float64), t, ks, bs, acts, loss)  # x converted
    assert_step_close(got, want, np.float32, what=be.name)


@pytest.mark.parametrize("sizes", [[1, 3, 2], [4, 1, 2], [1, 1, 1]])
def test_parity_width_one_layers(be, dtype, sizes, rng):
    """Width-1 layers make single-row products (matrix-vector paths) in every GEMM of
    the step, with and without a transposed operand."""
    loss = "softmax_cross_entropy" if sizes[-1] > 1 else "mean_squared_error"
    acts = ["tanh", "softmax" if sizes[-1] > 1 else "linear"]
    for n in (1, 5):
        x, t, ks, bs, w = make_problem(rng, dtype, sizes, n, loss)
        want = compose(x, t, ks, bs, acts, loss)
        got = run_step(be, x, t, ks, bs, acts, loss)
        assert_step_close(got, want, dtype, what=f"{be.name} {sizes} n {n}")


def test_every_output_written(be, dtype, rng):
    """NaN-filled workspaces: every entry of every gradient is written (no stale data)."""
    sizes = [5, 4, 3]
    x, t, ks, bs, w = make_problem(rng, dtype, sizes, 4, "mean_absolute_error")
    value, outs, dks, dbs = run_step(be, x, t, ks, bs, ["relu", "linear"],
                                     "mean_absolute_error")
    for arr in outs + dks + dbs:
        assert np.isfinite(arr).all()
    assert np.isfinite(value)


def test_repeated_calls_are_bit_identical(be, rng):
    sizes = [20, 16, 10]
    x, t, ks, bs, w = make_problem(rng, np.float32, sizes, 8, "softmax_cross_entropy")
    outs, deltas, preacts, dks, dbs = make_buffers(np.float32, sizes, 8, bs)
    first = None
    for _ in range(3):
        v = be.dense_stack_forward_backward(x, t, ks, bs, ["relu", "softmax"],
                                            "softmax_cross_entropy", outs, deltas, dks, dbs)
        snap = (v, [d.copy() for d in dks], [d.copy() for d in dbs])
        if first is None:
            first = snap
        else:
            assert snap[0] == first[0]
            for a, b in zip(snap[1] + snap[2], first[1] + first[2]):
                np.testing.assert_array_equal(a, b)


def test_empty_batch_gives_zero_gradients(be):
    sizes = [4, 3, 2]
    ks = [np.ones((4, 3), np.float64), np.ones((3, 2), np.float64)]
    bs = [np.zeros(3), np.zeros(2)]
    x = np.zeros((0, 4))
    t = np.zeros(0, np.intp)
    value, outs, dks, dbs = run_step(be, x, t, ks, bs, ["relu", "softmax"],
                                     "softmax_cross_entropy", sizes=sizes, n=0)
    assert value == 0.0
    for d in dks + dbs:
        np.testing.assert_array_equal(d, 0.0)


# ------------------------------------------------------------------------------------------
# the reference against finite differences
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss,acts", [
    ("softmax_cross_entropy", ["tanh", "gelu", "softmax"]),
    ("sigmoid_binary_cross_entropy", ["elu", "softplus", "sigmoid"]),
    ("mean_squared_error", ["sigmoid", "leaky_relu", "linear"]),
    ("mean_squared_error", ["tanh", "tanh", "softmax"]),
])
def test_gradients_match_finite_differences(be, loss, acts, rng):
    sizes = [5, 6, 4, 3]
    x, t, ks, bs, w = make_problem(rng, np.float64, sizes, 4, loss, "dense", weighted=True)
    value, outs, dks, dbs = run_step(be, x, t, ks, bs, acts, loss, w, scale=1.7)

    def f(ks_, bs_):
        return run_step(REF, x, t, ks_, bs_, acts, loss, w, scale=1.7)[0]

    eps = 1e-6
    for i in range(len(ks)):
        for arr, grad, name in ((ks[i], dks[i], "kernel"), (bs[i], dbs[i], "bias")):
            for idx in [tuple(rng.integers(0, s) for s in arr.shape) for _ in range(4)]:
                old = arr[idx]
                arr[idx] = old + eps
                up = f(ks, bs)
                arr[idx] = old - eps
                down = f(ks, bs)
                arr[idx] = old
                num = (up - down) / (2 * eps)
                assert abs(grad[idx] - num) <= 1e-6 * max(1.0, abs(num)), \
                    f"{be.name} {name}[{i}]{idx}: {grad[idx]} vs {num}"
    assert value == pytest.approx(f(ks, bs), rel=1e-12)


# ------------------------------------------------------------------------------------------
# bad arguments
# ------------------------------------------------------------------------------------------
def _good(dtype=np.float32):
    rng = np.random.default_rng(0)
    sizes = [6, 5, 3]
    x, t, ks, bs, w = make_problem(rng, dtype, sizes, 4, "softmax_cross_entropy")
    outs, deltas, preacts, dks, dbs = make_buffers(dtype, sizes, 4, bs)
    return dict(x=x, target=t, kernels=ks, biases=bs, activations=["relu", "softmax"],
                loss="softmax_cross_entropy", outs=outs, deltas=deltas, dkernels=dks,
                dbiases=dbs)


def _bad_cases():
    def dk_dtype(a):
        a["dkernels"][0] = np.zeros((6, 5), np.float64)

    def delta_noncontig(a):
        a["deltas"][0] = np.zeros((5, 4), np.float32).T

    def db_readonly(a):
        a["dbiases"][0].flags.writeable = False

    def kernel_dtype(a):
        a["kernels"][1] = a["kernels"][1].astype(np.float64)

    def labels_range(a):
        a["target"] = np.array([0, 1, 3, 2])

    def target_shape(a):
        a["target"] = np.zeros((4, 2), np.float32)

    def unknown_loss(a):
        a["loss"] = "hinge"

    def gelu_no_preacts(a):
        a["activations"] = ["gelu", "softmax"]

    def weights_shape(a):
        a["sample_weight"] = np.ones(3)

    def smoothing_mse(a):
        a["loss"] = "mean_squared_error"
        a["target"] = np.zeros((4, 3), np.float32)
        a["label_smoothing"] = 0.1

    def db_without_bias(a):
        a["biases"][0] = None

    def delta_is_out(a):
        a["deltas"][0] = a["outs"][0]

    def out_overlaps_x(a):
        buf = np.zeros(4 * 6 + 4 * 5 - 3, np.float32)
        a["x"] = buf[:24].reshape(4, 6)
        a["outs"][0] = buf[-20:].reshape(4, 5)

    def dkernel_is_kernel(a):
        a["dkernels"][1] = a["kernels"][1]

    return stack_bad_cases() + [
        (delta_is_out, ValueError, "deltas[0] and outs[0] overlap|outs[0] and deltas[0] overlap"),
        (out_overlaps_x, ValueError, "outs[0] and x overlap"),
        (dkernel_is_kernel, ValueError, "dkernels[1] and kernels[1] overlap"),
        (dk_dtype, ValueError, "dkernels[0]"), (delta_noncontig, ValueError, "deltas[0]"),
        (db_readonly, ValueError, "dbiases[0]"), (kernel_dtype, ValueError, "kernels[1]"),
        (labels_range, ValueError, "target"), (target_shape, ValueError, "target"),
        (unknown_loss, ValueError, "loss"), (gelu_no_preacts, TypeError, "preacts[0]"),
        (weights_shape, ValueError, "sample_weight"),
        (smoothing_mse, ValueError, "label_smoothing"),
        (db_without_bias, ValueError, "dbiases[0]"),
    ]


@pytest.mark.parametrize("mutate,exc,text", _bad_cases(), ids=lambda c: getattr(c, "__name__", ""))
def test_bad_arguments_raise(be, mutate, exc, text):
    args = _good()
    mutate(args)
    with raises_naming(exc, text):
        be.dense_stack_forward_backward(**args)


def test_overlap_is_caught_after_a_good_call_with_the_same_workspaces(be):
    """A backend that remembers validated workspaces still checks each new x against them."""
    args = _good()
    assert np.isfinite(be.dense_stack_forward_backward(**args))
    x_in_workspace = args["dkernels"][0].reshape(-1)[:24].reshape(4, 6)
    x_in_workspace[...] = args["x"]
    with pytest.raises(ValueError, match=r"dkernels\[0\] and x overlap"):
        be.dense_stack_forward_backward(**dict(args, x=x_in_workspace))
    assert np.isfinite(be.dense_stack_forward_backward(**args))
    # dense targets inside a workspace, after a good call with dense targets: refused
    # before anything is written (the numba kernel checks them itself)
    dense = np.eye(3, dtype=np.float32)[args["target"]]
    assert np.isfinite(be.dense_stack_forward_backward(**dict(args, target=dense)))
    before = [d.copy() for d in args["dkernels"]]
    t_in_workspace = args["deltas"][0].reshape(-1)[:12].reshape(4, 3)
    t_in_workspace[...] = dense
    with pytest.raises(ValueError, match=r"deltas\[0\] and target overlap"):
        be.dense_stack_forward_backward(**dict(args, target=t_in_workspace))
    for b, d in zip(before, args["dkernels"]):
        np.testing.assert_array_equal(b, d)
    assert np.isfinite(be.dense_stack_forward_backward(**args))
    # sample weights inside a workspace, after a good call with sample weights: refused
    # before anything is written (float64 weights can alias any workspace's bytes)
    sw = np.array([1.0, 2.0, 0.5, 1.0])
    assert np.isfinite(be.dense_stack_forward_backward(**dict(args, sample_weight=sw)))
    for update in (None, StackUpdate(rule="sgd", learning_rate=0.1, kernel_states=((), ()),
                                     bias_states=((), ()))):
        w_in_workspace = args["dkernels"][0].reshape(-1)[:8].view(np.float64)
        w_in_workspace[...] = sw
        before = [d.copy() for d in args["dkernels"]] + [k.copy() for k in args["kernels"]]
        with pytest.raises(ValueError, match=r"dkernels\[0\] and sample_weight overlap"):
            be.dense_stack_forward_backward(**dict(args, sample_weight=w_in_workspace,
                                                   update=update))
        for b, d in zip(before, args["dkernels"] + args["kernels"]):
            np.testing.assert_array_equal(b, d)
    # weights inside a kernel that the update writes
    w_in_kernel = args["kernels"][0].reshape(-1)[:8].view(np.float64)
    w_in_kernel[...] = sw
    upd = StackUpdate(rule="sgd", learning_rate=0.1, kernel_states=((), ()),
                      bias_states=((), ()))
    with pytest.raises(ValueError, match=r"kernels\[0\] and sample_weight overlap"):
        be.dense_stack_forward_backward(**dict(args, sample_weight=w_in_kernel, update=upd))
    assert np.isfinite(be.dense_stack_forward_backward(**args))


def test_good_call_after_a_bad_one(be):
    """A rejected call leaves nothing behind that a later good call trips over."""
    args = _good()
    bad = dict(args, target=np.array([0, 1, 9, 2]))
    with pytest.raises(ValueError):
        be.dense_stack_forward_backward(**bad)
    assert np.isfinite(be.dense_stack_forward_backward(**args))


# ------------------------------------------------------------------------------------------
# float32 denormals
# ------------------------------------------------------------------------------------------
def test_float32_loss_gradient_has_no_denormals_and_fp_mode_is_restored(be):
    if be.name == "numpy":
        pytest.skip("the reference does not flush")
    ks = [np.eye(4, dtype=np.float32) * 60.0]
    x = np.eye(4, dtype=np.float32) * 2.0  # logits 120 on the label, 0 elsewhere
    t = np.arange(4, dtype=np.intp)
    outs, deltas, preacts, dks, dbs = make_buffers(np.float32, [4, 4], 4, [None])
    be.dense_stack_forward_backward(x, t, ks, [None], ["softmax"], "softmax_cross_entropy",
                                    outs, deltas, dks, dbs)
    tiny = np.finfo(np.float32).tiny
    d = deltas[0]
    assert not np.any((d != 0) & (np.abs(d) < tiny))
    # flush-to-zero must not leak out of the step
    assert np.float32(1e-38) * np.float32(0.01) != 0.0


# ------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------
def _model(be_name, dtype, arch, acts, use_bias=True, seed=3):
    with B.use_backend(be_name):
        pynn.set_seed(seed)
        model = Sequential([layers.Input(shape=(arch[0],), dtype=dtype)] + [
            layers.Dense(u, activation=a, use_bias=use_bias, dtype=dtype)
            for u, a in zip(arch[1:], acts)])
    return model


MODEL_CASES = {
    "sparse_softmax": (["relu", "relu", "softmax"], lambda: "sparse_categorical_crossentropy",
                       "labels"),
    "cce_smoothing": (["tanh", "gelu", "softmax"],
                      lambda: losses.CategoricalCrossentropy(label_smoothing=0.1), "onehot"),
    "sparse_from_logits": (["elu", "relu", None],
                           lambda: losses.SparseCategoricalCrossentropy(from_logits=True),
                           "labels"),
    "bce_sigmoid_sum": (["relu", "softplus", "sigmoid"],
                        lambda: losses.BinaryCrossentropy(reduction="sum"), "binary"),
    "mse_linear": (["sigmoid", "leaky_relu", None], lambda: "mse", "regression"),
    "mae_weighted_mean": (["relu", "tanh", None],
                          lambda: losses.MeanAbsoluteError(reduction="mean_with_sample_weight"),
                          "regression"),
}


def _targets(kind, rng, n, k):
    if kind == "labels":
        return rng.integers(0, k, n)
    if kind == "onehot":
        return np.eye(k)[rng.integers(0, k, n)]
    if kind == "binary":
        return (rng.random((n, k)) > 0.5).astype(np.float64)
    return rng.standard_normal((n, k))


def _train(be_name, dtype, case, layered, epochs=2, optimizer="adam", weighted=False):
    acts, make_loss, kind = MODEL_CASES[case]
    arch = [12, 9, 7, 4]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((50, arch[0]))
    y = _targets(kind, rng, 50, arch[-1])
    sw = rng.random(50) + 0.5 if weighted else None
    model = _model(be_name, dtype, arch, acts)
    calls = []
    with B.use_backend(be_name) as be:
        model.compile(optimizer=optimizer, loss=make_loss(), jit_compile=not layered)
        original = be.dense_stack_forward_backward

        def counted(*a, **k):
            calls.append(1)
            return original(*a, **k)

        be.dense_stack_forward_backward = counted  # on the instance; removed below
        try:
            hist = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=True,
                             sample_weight=sw)
        finally:
            del be.dense_stack_forward_backward
    return hist.history["loss"], [w.copy() for w in model.get_weights()], len(calls)


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_model_fused_path_matches_layered_path(backend_name, case):
    dtype = "float64"
    weighted = case == "mae_weighted_mean"
    l_loss, l_w, l_calls = _train(backend_name, dtype, case, layered=True, weighted=weighted)
    assert l_calls == 0
    f_loss, f_w, n_calls = _train(backend_name, dtype, case, layered=False, weighted=weighted)
    assert n_calls == 2 * 4  # 50 samples / batch 16 -> 4 steps per epoch, every one fused
    np.testing.assert_allclose(f_loss, l_loss, rtol=1e-9)
    for a, b in zip(f_w, l_w):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_model_fused_path_matches_layered_path_float32(backend_name, optimizer):
    l_loss, l_w, _ = _train(backend_name, "float32", "sparse_softmax", True, optimizer=optimizer)
    f_loss, f_w, n_calls = _train(backend_name, "float32", "sparse_softmax", False,
                                  optimizer=optimizer)
    assert n_calls == 8
    np.testing.assert_allclose(f_loss, l_loss, rtol=1e-4)
    for a, b in zip(f_w, l_w):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_model_fused_path_is_bit_identical_across_runs(backend_name):
    a = _train(backend_name, "float32", "sparse_softmax", False)
    b = _train(backend_name, "float32", "sparse_softmax", False)
    assert a[0] == b[0]
    for x, y in zip(a[1], b[1]):
        np.testing.assert_array_equal(x, y)


def test_model_without_bias_and_with_regularizer_uses_fused_path(backend_name):
    def build(layered):
        with B.use_backend(backend_name):
            pynn.set_seed(5)
            model = Sequential([layers.Input(shape=(8,)),
                                layers.Dense(6, activation="relu", use_bias=False,
                                             kernel_regularizer="l2"),
                                layers.Dense(3, activation="softmax")])
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                          run_eagerly=layered)
            rng = np.random.default_rng(2)
            x, y = rng.standard_normal((20, 8)), rng.integers(0, 3, 20)
            h = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
            assert explain(model)["train"] is not layered
            return h.history["loss"], model.get_weights()

    (la, wa), (lb, wb) = build(False), build(True)
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    for a, b in zip(wa, wb):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_model_falls_back_when_not_a_plain_dense_stack(backend_name):
    with B.use_backend(backend_name):
        pynn.set_seed(1)
        x = np.random.default_rng(0).standard_normal((10, 5)).astype(np.float32)
        y = np.arange(10) % 3
        with_dropout = Sequential([layers.Input(shape=(5,)), layers.Dense(4, activation="relu"),
                                   layers.Dropout(0.2), layers.Dense(3, activation="softmax")])
        with_dropout.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        with_dropout.fit(x, y, epochs=1, verbose=0)
        assert not explain(with_dropout)["train"]
        frozen = Sequential([layers.Input(shape=(5,)), layers.Dense(4, activation="relu"),
                             layers.Dense(3, activation="softmax")])
        frozen.layers[0].trainable = False
        frozen.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        frozen.fit(x, y, epochs=1, verbose=0)
        assert not explain(frozen)["train"]
        probs = Sequential([layers.Input(shape=(5,)), layers.Dense(3, activation="relu")])
        probs.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")  # from probs
        assert not explain(probs)["train"]
        plain = Sequential([layers.Input(shape=(5,)), layers.Dense(3, activation="softmax")])
        plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        plain.fit(x, y, epochs=1, verbose=0)
        assert explain(plain)["train"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("backend_name", COMPILED)
def test_fused_training_step_allocates_nothing_after_warm_up(backend_name, optimizer):
    """Compiled backends (the reference composes allocating NumPy expressions), measured
    as ``python -m pynn bench --startup`` does (:func:`pynn.bench.step_allocations`).

    Batch 128 and widths >= 16: every array a step could allocate (workspaces,
    gradients, temporaries of the parameter size) is >= 8 KB, far above the
    few hundred bytes of Python objects a step creates and frees.
    """
    transient, held = bench.step_allocations(backend_name, optimizer, steps=50, batch=128,
                                             arch=(30, 64, 32, 16))
    assert transient < 4096, transient
    assert held == 0, held


def test_step_allocations_sees_the_reference_allocate():
    transient, held = bench.step_allocations("numpy", "adam", steps=3, batch=128,
                                             arch=(30, 64, 32, 16))
    assert transient >= 8192 and held == 0


def test_model_recompiled_with_another_loss_uses_it(backend_name):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((12, 2))
    with B.use_backend(backend_name):
        pynn.set_seed(2)
        model = Sequential([layers.Input(shape=(5,)), layers.Dense(2)])
        for loss, name, fn in (("mse", "mean_squared_error", losses.mean_squared_error),
                               ("mae", "mean_absolute_error", losses.mean_absolute_error)):
            model.compile(optimizer="sgd", loss=loss)
            assert explain(model)["train"]
            assert model._fast_path.train_spec(2)["loss"] == name
            want = float(np.mean(fn(y, model.predict(x, verbose=0))))
            model.reset_metrics()
            got = model.train_on_batch(x, y)
            got = got[0] if isinstance(got, list) else got
            assert got == pytest.approx(want, rel=1e-6)
