"""The optimizer step folded into the fused Dense-stack step (``update=StackUpdate``).

* every backend against the reference: the step without ``update`` followed by
  ``sgd_update`` / ``adam_update`` of the reference on every weight, over several
  consecutive steps (float32 and float64; plain SGD, weight decay, momentum,
  Nesterov, Adam, AdamW; layers without bias; width-1 layers and batch 1);
* a non-finite loss leaves weights and state untouched;
* bad update arguments raise clear errors naming the argument;
* the model folds the update only where it is the same step (SGD, Adam, AdamW
  without clipping, regularizers or decay exclusions) and then matches the
  layered path (``Optimizer.apply``) step for step, schedules included.
"""
import numpy as np
import pytest

import pynn
import pynn.backends as B
from pynn import layers, optimizers
from pynn.backends.base import Backend, StackUpdate
from pynn.models import Sequential

from helpers import CPU_BACKENDS, assert_close

REF = Backend()

RULES = {
    "sgd": dict(rule="sgd", learning_rate=0.1),
    "sgd_decay": dict(rule="sgd", learning_rate=0.1, weight_decay=0.05),
    "momentum": dict(rule="sgd", learning_rate=0.05, momentum=0.9),
    "nesterov_decay": dict(rule="sgd", learning_rate=0.05, momentum=0.8, nesterov=True,
                           weight_decay=0.01),
    "adam": dict(rule="adam", learning_rate=0.01),
    "adamw": dict(rule="adam", learning_rate=0.01, weight_decay=0.004, beta_1=0.8,
                  beta_2=0.99, epsilon=1e-6),
}


def _slots(hyper):
    if hyper["rule"] == "adam":
        return 2
    return 1 if hyper.get("momentum") else 0


def _problem(rng, dtype, sizes, n, bias):
    ks = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
          for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [(rng.standard_normal(b) * 0.1).astype(dtype) if use else None
          for b, use in zip(sizes[1:], bias)]
    return ks, bs


def _states(ks, bs, slots, rng):
    """State arrays (non-zero, as after earlier steps) per kernel and bias."""
    def make(w):
        return tuple((np.abs(rng.standard_normal(w.shape)) * 1e-3).astype(w.dtype)
                     for _ in range(slots))
    return [make(k) for k in ks], [() if b is None else make(b) for b in bs]


def _buffers(dtype, sizes, n, bs):
    units = sizes[1:]
    return ([np.empty((n, u), dtype) for u in units], [np.empty((n, u), dtype) for u in units],
            [np.empty((n, u), dtype) for u in units],
            [np.empty((a, b), dtype) for a, b in zip(sizes[:-1], units)],
            [None if b is None else np.empty(u, dtype) for u, b in zip(units, bs)])


def _reference_step(x, y, ks, bs, acts, hyper, kst, bst, step):
    """The step without ``update`` on the reference, then its single optimizer ops."""
    sizes = [ks[0].shape[0]] + [k.shape[1] for k in ks]
    outs, deltas, pre, dks, dbs = _buffers(ks[0].dtype, sizes, x.shape[0], bs)
    value = REF.dense_stack_forward_backward(x, y, ks, bs, acts, "softmax_cross_entropy", outs,
                                             deltas, dks, dbs, preacts=pre)
    kw = {k: v for k, v in hyper.items() if k != "rule"}
    for w, g, st in list(zip(ks, dks, kst)) + list(zip(bs, dbs, bst)):
        if w is None:
            continue
        if hyper["rule"] == "sgd":
            REF.sgd_update(w, g, st[0] if st else None, **kw)
        else:
            REF.adam_update(w, g, st[0], st[1], step, **kw)
    return value


def _fused_step(be, x, y, ks, bs, acts, hyper, kst, bst, step):
    sizes = [ks[0].shape[0]] + [k.shape[1] for k in ks]
    outs, deltas, pre, dks, dbs = _buffers(ks[0].dtype, sizes, x.shape[0], bs)
    extra = {"step": step} if hyper["rule"] == "adam" else {}
    upd = StackUpdate(kernel_states=tuple(kst), bias_states=tuple(bst), **hyper, **extra)
    return be.dense_stack_forward_backward(x, y, ks, bs, acts, "softmax_cross_entropy", outs,
                                           deltas, dks, dbs, preacts=pre, update=upd)


def _copy(seq):
    return [None if a is None else (tuple(s.copy() for s in a) if isinstance(a, tuple)
                                    else a.copy()) for a in seq]


@pytest.fixture(params=CPU_BACKENDS)
def be(request):
    return B.get(request.param)


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("shape", [
    ([11, 17, 6, 5], 13, [True, False, True]),  # odd widths, a layer without bias
    ([1, 1, 3], 1, [True, True]),                 # width-1 layers, one sample
    ([7, 4], 32, [False]),                        # one layer, no bias
], ids=["odd", "width1_batch1", "single_nobias"])
def test_update_matches_reference_ops(be, dtype, rule, shape, rng):
    sizes, n, bias = shape
    hyper = RULES[rule]
    ks, bs = _problem(rng, dtype, sizes, n, bias)
    kst, bst = _states(ks, bs, _slots(hyper), rng)
    acts = ["tanh", "gelu", "softmax"][-(len(sizes) - 1):] if len(sizes) > 2 else ["softmax"]
    want = [_copy(ks), _copy(bs), _copy(kst), _copy(bst)]
    got = [_copy(ks), _copy(bs), _copy(kst), _copy(bst)]
    for step in (1, 2, 3):
        x = rng.standard_normal((n, sizes[0])).astype(dtype)
        y = rng.integers(0, sizes[-1], n).astype(np.intp)
        v_want = _reference_step(x, y, *want[:2], acts, hyper, *want[2:], step)
        v_got = _fused_step(be, x, y, *got[:2], acts, hyper, *got[2:], step)
        assert isinstance(v_got, float)
        what = f"{be.name} {rule} step {step}"
        assert_close(v_got, v_want, dtype, 10, f"{what} loss")
        for name, g_list, w_list in zip(("kernels", "biases", "kernel states", "bias states"),
                                        got, want):
            for i, (g, w) in enumerate(zip(g_list, w_list)):
                if w is None:
                    assert g is None
                    continue
                # three steps of float32 rounding, amplified by Adam's division
                assert_close(g, w, dtype, 100, f"{what} {name}[{i}]")


def test_numpy_backend_update_is_bit_identical_to_its_ops(rng):
    """The reference's own fused update IS the single ops, so equality is exact."""
    for rule, hyper in RULES.items():
        ks, bs = _problem(rng, np.float32, [6, 5, 3], 4, [True, True])
        kst, bst = _states(ks, bs, _slots(hyper), rng)
        a = [_copy(ks), _copy(bs), _copy(kst), _copy(bst)]
        b = [_copy(ks), _copy(bs), _copy(kst), _copy(bst)]
        x = rng.standard_normal((4, 6)).astype(np.float32)
        y = rng.integers(0, 3, 4).astype(np.intp)
        _reference_step(x, y, *a[:2], ["relu", "softmax"], hyper, *a[2:], 1)
        _fused_step(REF, x, y, *b[:2], ["relu", "softmax"], hyper, *b[2:], 1)
        for ga, gb in zip(a, b):
            for p, q in zip(ga, gb):
                if isinstance(p, tuple):
                    for s, t in zip(p, q):
                        np.testing.assert_array_equal(s, t, err_msg=rule)
                elif p is not None:
                    np.testing.assert_array_equal(p, q, err_msg=rule)


@pytest.mark.parametrize("rule", ["sgd", "momentum", "adam"])
def test_non_finite_loss_leaves_weights_and_state_untouched(be, rule, rng):
    hyper = RULES[rule]
    ks, bs = _problem(rng, np.float32, [5, 4, 3], 6, [True, True])
    kst, bst = _states(ks, bs, _slots(hyper), rng)
    before = [_copy(ks), _copy(bs), _copy(kst), _copy(bst)]
    x = rng.standard_normal((6, 5)).astype(np.float32)
    x[2, 1] = np.inf
    y = rng.integers(0, 3, 6).astype(np.intp)
    value = _fused_step(be, x, y, ks, bs, ["relu", "softmax"], hyper, kst, bst, 1)
    assert not np.isfinite(value)
    for g_list, w_list in zip((ks, bs, kst, bst), before):
        for g, w in zip(g_list, w_list):
            for s, t in (zip(g, w) if isinstance(g, tuple) else [(g, w)]):
                np.testing.assert_array_equal(s, t)


def _bad_update_cases():
    def wrong_rule(a):
        a["update"] = a["update"]._replace(rule="rmsprop")

    def missing_state(a):
        u = a["update"]
        a["update"] = u._replace(kernel_states=(u.kernel_states[0][:1],) + u.kernel_states[1:])

    def state_shape(a):
        u = a["update"]
        m, v = u.kernel_states[1]
        a["update"] = u._replace(kernel_states=(u.kernel_states[0], (m, v[:-1])))

    def state_dtype(a):
        u = a["update"]
        m, v = u.bias_states[0]
        a["update"] = u._replace(bias_states=((m, v.astype(np.float64)),) + u.bias_states[1:])

    def state_is_a_workspace(a):
        u = a["update"]
        m, _ = u.kernel_states[0]
        a["dkernels"][0] = m  # the kernel's m doubles as its gradient buffer
        a["update"] = u

    def state_is_the_kernel(a):
        u = a["update"]
        m, _ = u.kernel_states[1]
        a["update"] = u._replace(kernel_states=(u.kernel_states[0], (a["kernels"][1], m)))

    def read_only_kernel(a):
        a["kernels"][0].flags.writeable = False

    def step_zero(a):
        a["update"] = a["update"]._replace(step=0)

    def not_an_update(a):
        a["update"] = {"rule": "sgd"}

    return [
        (wrong_rule, ValueError, "update.rule"),
        (missing_state, ValueError, "update.kernel_states[0]"),
        (state_shape, ValueError, "update.kernel_states[1][1]"),
        (state_dtype, ValueError, "update.bias_states[0][1]"),
        (state_is_a_workspace, ValueError, "overlap"),
        (state_is_the_kernel, ValueError, "overlap"),
        (read_only_kernel, ValueError, "kernels[0]"),
        (step_zero, ValueError, "update.step"),
        (not_an_update, TypeError, "StackUpdate"),
    ]


@pytest.mark.parametrize("mutate,exc,text", _bad_update_cases(),
                         ids=lambda c: getattr(c, "__name__", ""))
def test_bad_update_arguments_raise(be, mutate, exc, text):
    rng = np.random.default_rng(3)
    ks, bs = _problem(rng, np.float32, [6, 5, 3], 4, [True, True])
    kst, bst = _states(ks, bs, 2, rng)
    outs, deltas, pre, dks, dbs = _buffers(np.float32, [6, 5, 3], 4, bs)
    args = dict(kernels=ks, dkernels=dks,
                update=StackUpdate(rule="adam", learning_rate=0.01, kernel_states=tuple(kst),
                                   bias_states=tuple(bst)))
    mutate(args)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = np.array([0, 1, 2, 0], dtype=np.intp)
    with pytest.raises(exc, match=text.replace("[", r"\[").replace("]", r"\]")):
        be.dense_stack_forward_backward(x, y, args["kernels"], bs, ["relu", "softmax"],
                                        "softmax_cross_entropy", outs, deltas, args["dkernels"],
                                        dbs, update=args["update"])


# ------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------
def _fit(be_name, make_opt, fold, dtype="float64", regularizer=None, epochs=2):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((60, 10))
    y = rng.integers(0, 4, 60)
    updates = []
    with B.use_backend(be_name) as be:
        pynn.set_seed(3)
        model = Sequential([layers.Input(shape=(10,)),
                            layers.Dense(9, activation="relu", dtype=dtype,
                                         kernel_regularizer=regularizer),
                            layers.Dense(6, activation="tanh", use_bias=False, dtype=dtype),
                            layers.Dense(4, activation="softmax", dtype=dtype)])
        model.compile(optimizer=make_opt(), loss="sparse_categorical_crossentropy")
        if not fold:  # the fused step, with the update run on its own afterwards
            model._fast_path.stack_update = lambda spec: None
        original = be.dense_stack_forward_backward

        def spy(*a, **k):
            updates.append(k.get("update"))
            return original(*a, **k)

        be.dense_stack_forward_backward = spy
        try:
            hist = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
        finally:
            del be.dense_stack_forward_backward
    return hist.history, model.get_weights(), model.optimizer, updates


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.05),
    "sgd_momentum_nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "sgd_decay_schedule": lambda: optimizers.SGD(
        optimizers.schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5),
        weight_decay=0.01),
    "adam": lambda: optimizers.Adam(0.01),
    "adamw_cosine": lambda: optimizers.AdamW(
        optimizers.schedules.CosineDecay(0.01, decay_steps=6)),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_model_folded_update_matches_apply(backend_name, opt):
    h_fold, w_fold, o_fold, upd = _fit(backend_name, OPTIMIZERS[opt], True)
    h_plain, w_plain, o_plain, plain = _fit(backend_name, OPTIMIZERS[opt], False)
    assert len(upd) == 8 and all(u is not None for u in upd)  # 4 steps x 2 epochs, folded
    assert all(u is None for u in plain)
    assert o_fold.iterations == o_plain.iterations == 8
    assert [u.learning_rate for u in upd] == pytest.approx(
        [float(o_plain._learning_rate(i)) if callable(o_plain._learning_rate)
         else o_plain._learning_rate for i in range(8)])
    np.testing.assert_allclose(h_fold["loss"], h_plain["loss"], rtol=1e-9)
    for a, b in zip(w_fold, w_plain):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(o_fold.variables, o_plain.variables):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", ["clipnorm", "amsgrad", "rmsprop", "regularizer",
                                  "exclude_bias"])
def test_model_keeps_apply_where_folding_would_differ(backend_name, case):
    make = {
        "clipnorm": lambda: optimizers.Adam(0.01, clipnorm=0.1),
        "amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
        "rmsprop": lambda: optimizers.RMSprop(0.01),
        "regularizer": lambda: optimizers.SGD(0.05),
        "exclude_bias": lambda: _exclude_bias(optimizers.AdamW(0.01, weight_decay=0.1)),
    }[case]
    reg = "l2" if case == "regularizer" else None
    h, w, opt, upd = _fit(backend_name, make, True, regularizer=reg)
    assert upd and all(u is None for u in upd)  # the fused gradient step, update apart
    assert opt.iterations == 8
    h2, w2, _, _ = _fit(backend_name, make, False, regularizer=reg)
    np.testing.assert_allclose(h["loss"], h2["loss"], rtol=1e-12)
    for a, b in zip(w, w2):
        np.testing.assert_array_equal(a, b)


def _exclude_bias(opt):
    opt.exclude_from_weight_decay(var_names=["bias"])
    return opt


def test_nan_step_in_fit_keeps_the_previous_weights_and_step_count(backend_name):
    with B.use_backend(backend_name):
        pynn.set_seed(0)
        model = Sequential([layers.Input(shape=(3,)), layers.Dense(4),
                            layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.set_weights([np.ones((3, 4)), np.zeros(4), np.tile([[1.0, -1.0]], (4, 1)),
                           np.zeros(2)])
        x = np.full((4, 3), 0.1, np.float32)
        model.train_on_batch(x, np.array([0, 1, 0, 1]))
        weights, it = [w.copy() for w in model.get_weights()], model.optimizer.iterations
        state = [v.copy() for v in model.optimizer.variables]
        bad = x.copy()
        bad[1] = 3e38  # finite input, logits (inf, -inf): the loss is not finite
        loss = model.train_on_batch(bad, np.array([0, 1, 0, 1]))
        assert not np.isfinite(loss)
        assert model.optimizer.iterations == it
        for a, b in zip(model.get_weights(), weights):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(model.optimizer.variables, state):
            np.testing.assert_array_equal(a, b)


def test_a_subclass_with_its_own_apply_or_update_is_called_every_step(backend_name):
    calls = []

    class LoggedSGD(optimizers.SGD):
        def apply(self, grads, params=None, flat_grad=None):
            calls.append("apply")
            return super().apply(grads, params, flat_grad=flat_grad)

    class HalvedAdam(optimizers.Adam):
        def _update(self, backend, param, grad, state, lr, weight_decay):
            calls.append("update")
            super()._update(backend, param, grad, state, lr * 0.5, weight_decay)

    _, _, opt, upd = _fit(backend_name, lambda: LoggedSGD(0.05), True)
    assert calls.count("apply") == 8 and all(u is None for u in upd)
    calls.clear()
    _, _, opt, upd = _fit(backend_name, lambda: HalvedAdam(0.01), True)
    assert calls.count("update") == 8  # one call per step over the flat parameter buffer
    assert all(u is None for u in upd)
