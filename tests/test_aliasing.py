"""One aliasing rule for every op on every CPU backend (issue 15, rule 4).

An array an op writes may be exactly one of its inputs only where
:data:`pynn.backends.validation.ALIASING` declares it (the op works in place there);
any other overlap, exact or partial, with an input or with another written array is a
``ValueError`` naming both arrays, raised before anything is written. Where exact
aliasing is allowed, every backend gives the reference's result.

The ops are found by introspection of :class:`~pynn.backends.base.Backend`: an op
added later fails :func:`test_every_op_has_an_aliasing_case` (naming it) until it
has an entry in ``ALIASING`` and a case here. Each case is one valid call; the pairs
(written array, other array) are derived from it, so every argument is covered.
"""
import inspect

import numpy as np
import pytest

import pynn.backends as B
from pynn.backends.base import Backend, StackUpdate
from pynn.backends.validation import ALIASING, prep_rows

from helpers import CPU_BACKENDS, REFERENCE, assert_close

#: Every public op of the reference backend (what every backend implements).
PUBLIC_OPS = sorted(name for name in dir(Backend)
                    if not name.startswith("_") and callable(getattr(Backend, name))
                    and not isinstance(getattr(Backend, name), type))


class Case:
    """One valid call of ``op``: ``kwargs`` by parameter name; ``reads`` names the
    parameters this call only reads although ``ALIASING`` lists them as written
    (the Dense-stack step writes the weights only with an update)."""

    def __init__(self, op, kwargs, reads=()):
        self.op, self.kwargs, self.reads = op, kwargs, frozenset(reads)


def _cases(dt):
    rng = np.random.default_rng(7)
    n = 5

    def r(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dt)

    def pos(*shape):
        return (np.abs(r(*shape)) + 0.5).astype(dt)

    def e(*shape):
        return np.zeros(shape, dt)

    probs = REFERENCE.softmax(r(n, n))
    onehot = np.eye(n, dtype=dt)[rng.integers(0, n, n)]
    labels = rng.integers(0, n, n).astype(np.intp)
    weights = rng.uniform(0.5, 1.5, n)
    binary = (rng.random((n, n)) < 0.5).astype(dt)
    _, mask = REFERENCE.dropout_forward(np.ones((n, n), dt), 0.4, 3)
    x_bn = r(n, n)
    _, mean, inv_std = REFERENCE.batchnorm_forward(x_bn, pos(n), r(n), e(n), pos(n), True)
    x_ln = r(n, n)
    _, ln_mean, ln_inv = REFERENCE.layernorm_forward(x_ln)
    y_l2, l2_inv = REFERENCE.l2_normalize_forward(r(n, n))

    def stack(update):
        kw = dict(x=r(n, n), target=probs.copy(), kernels=[r(n, n), r(n, n)],
                  biases=[r(n), r(n)], activations=["gelu", "softmax"],
                  loss="softmax_cross_entropy", outs=[e(n, n), e(n, n)],
                  deltas=[e(n, n), e(n, n)], dkernels=[e(n, n), e(n, n)],
                  dbiases=[e(n), e(n)], sample_weight=weights.copy(),
                  preacts=[e(n, n), None], label_smoothing=0.1)
        if update:
            kw["update"] = StackUpdate("sgd", 0.1, kernel_states=((r(n, n),), (r(n, n),)),
                                       bias_states=((r(n),), (r(n),)), momentum=0.9,
                                       weight_decay=0.01)
        return kw

    return [
        Case("empty", dict(shape=(n, n), dtype=dt)),
        Case("zeros", dict(shape=(n, n), dtype=dt)),
        Case("asarray", dict(x=r(n, n), dtype=dt)),
        Case("to_numpy", dict(x=r(n, n))),
        Case("synchronize", {}),
        Case("gemm", dict(a=r(n, n), b=r(n, n), out=r(n, n), beta=0.5, bias=r(n),
                          activation="tanh")),
        Case("gemm", dict(a=r(n, n), b=r(n, n), out=e(n, n), trans_a=True, trans_b=True,
                          activation="relu")),
        Case("activation_forward", dict(x=r(n, n), activation="elu", out=e(n, n))),
        Case("activation_forward", dict(x=r(n, n), activation="softmax", out=e(n, n))),
        Case("activation_backward", dict(dy=r(n, n), y=r(n, n), activation="gelu",
                                         x=r(n, n), out=e(n, n))),
        Case("activation_backward", dict(dy=r(n, n), y=probs.copy(), activation="softmax",
                                         out=e(n, n))),
        Case("softmax", dict(x=r(n, n), out=e(n, n))),
        Case("log_softmax", dict(x=r(n, n), out=e(n, n))),
        Case("softmax_cross_entropy", dict(logits=r(n, n), target=probs.copy(),
                                           grad=e(n, n), sample_weight=weights.copy(),
                                           label_smoothing=0.1)),
        Case("softmax_cross_entropy", dict(logits=r(n, n), target=labels.copy(),
                                           grad=e(n, n))),
        Case("categorical_cross_entropy", dict(probs=probs.copy(), target=onehot.copy(),
                                               grad=e(n, n), sample_weight=weights.copy())),
        Case("categorical_cross_entropy", dict(probs=probs.copy(), target=labels.copy(),
                                               grad=e(n, n))),
        Case("sigmoid_binary_cross_entropy", dict(logits=r(n, n), target=binary.copy(),
                                                  grad=e(n, n),
                                                  sample_weight=weights.copy())),
        Case("binary_cross_entropy", dict(probs=rng.uniform(0.05, 0.95, (n, n)).astype(dt),
                                          target=binary.copy(), grad=e(n, n),
                                          sample_weight=weights.copy())),
        Case("mean_squared_error", dict(pred=r(n, n), target=r(n, n), grad=e(n, n),
                                        sample_weight=weights.copy())),
        Case("mean_absolute_error", dict(pred=r(n, n), target=r(n, n), grad=e(n, n),
                                         sample_weight=weights.copy())),
        Case("bias_grad", dict(dy=r(n, n), out=e(n))),
        Case("dropout_forward", dict(x=r(n, n), rate=0.3, seed=11, out=e(n, n),
                                     mask=e(n, n))),
        Case("dropout_backward", dict(dy=r(n, n), mask=mask.copy(), out=e(n, n))),
        Case("batchnorm_forward", dict(x=r(n, n), gamma=r(n), beta=r(n), moving_mean=r(n),
                                       moving_var=pos(n), training=True, out=e(n, n))),
        Case("batchnorm_forward", dict(x=r(n, n), gamma=r(n), beta=r(n), moving_mean=r(n),
                                       moving_var=pos(n), training=False, out=e(n, n))),
        Case("batchnorm_backward", dict(dy=r(n, n), x=x_bn.copy(), gamma=r(n),
                                        mean=mean.copy(), inv_std=inv_std.copy(),
                                        dx=e(n, n), dgamma=e(n), dbeta=e(n))),
        Case("sgd_update", dict(param=r(n, n), grad=r(n, n), velocity=r(n, n),
                                learning_rate=0.1, momentum=0.9, nesterov=True,
                                weight_decay=0.01)),
        Case("adam_update", dict(param=r(n, n), grad=r(n, n), m=r(n, n), v=pos(n, n), step=3,
                                 weight_decay=0.01)),
        Case("rmsprop_update", dict(param=r(n, n), grad=r(n, n), ms=pos(n, n))),
        Case("adagrad_update", dict(param=r(n, n), grad=r(n, n), acc=pos(n, n))),
        Case("sum_squares", dict(x=r(n, n))),
        Case("scale_", dict(x=r(n, n), factor=0.5)),
        Case("clip_", dict(x=r(n, n), lo=-0.5, hi=0.5)),
        Case("axpy_", dict(alpha=0.3, x=r(n, n), y=r(n, n))),
        Case("copy_", dict(src=r(n, n), dst=e(n, n))),
        Case("regularizer_loss", dict(w=r(n, n), l1=0.01, l2=0.02)),
        Case("regularizer_grad_", dict(w=r(n, n), grad=r(n, n), l1=0.01, l2=0.02)),
        Case("take_rows", dict(x=r(n, n), indices=np.array([4, 0, 2, 2, -1], np.intp),
                               out=e(n, n))),
        Case("all_finite", dict(x=r(n, n))),
        Case("dense_stack_forward", dict(x=r(n, n), kernels=[r(n, n), r(n, n)],
                                         biases=[r(n), None], activations=["relu", "tanh"],
                                         outs=[e(n, n), e(n, n)])),
        Case("conv2d_forward", dict(x=r(2, 5, 4, 4), kernel=r(3, 2, 2, 6), bias=r(6),
                                    strides=(2, 1), padding=((1, 1), (0, 1)), groups=2,
                                    activation="relu", out=e(2, 3, 4, 6))),
        Case("conv2d_backward_input", dict(dy=r(2, 3, 4, 6), kernel=r(3, 2, 2, 6),
                                           input_shape=(2, 5, 4, 4), strides=(2, 1),
                                           padding=((1, 1), (0, 1)), groups=2,
                                           out=e(2, 5, 4, 4))),
        Case("conv2d_backward_kernel", dict(x=r(2, 5, 4, 4), dy=r(2, 3, 4, 6),
                                            kernel_shape=(3, 2, 2, 6), strides=(2, 1),
                                            padding=((1, 1), (0, 1)), groups=2,
                                            out=e(3, 2, 2, 6))),
        Case("conv2d_backward", dict(dy=r(2, 3, 4, 6), x=r(2, 5, 4, 4), kernel=r(3, 2, 2, 6),
                                     y=r(2, 3, 4, 6), activation="tanh", strides=(2, 1),
                                     padding=((1, 1), (0, 1)), groups=2, dx=e(2, 5, 4, 4),
                                     dkernel=e(3, 2, 2, 6), dbias=e(6))),
        Case("conv2d_pool_forward", dict(x=r(2, 6, 5, 4), kernel=r(3, 2, 2, 6), bias=r(6),
                                         padding=((1, 1), (0, 1)), groups=2,
                                         activation="relu", pool_size=2, out=e(2, 3, 2, 6),
                                         index=np.zeros((2, 3, 2, 6), np.int64))),
        Case("conv2d_pool_backward", dict(dy=r(2, 3, 2, 6), x=r(2, 6, 5, 4),
                                          kernel=r(3, 2, 2, 6), out=r(2, 3, 2, 6),
                                          index=np.arange(72, dtype=np.int64).reshape(
                                              2, 3, 2, 6) * 3,
                                          activation="tanh", padding=((1, 1), (0, 1)),
                                          groups=2, pool_size=2, dx=e(2, 6, 5, 4),
                                          dkernel=e(3, 2, 2, 6), dbias=e(6))),
        Case("pool2d_forward", dict(x=r(2, 5, 4, 3), pool_size=(2, 2), strides=(2, 1),
                                    padding=((0, 1), (0, 0)), mode="max", out=e(2, 3, 3, 3),
                                    index=np.zeros((2, 3, 3, 3), np.int64))),
        Case("pool2d_backward", dict(dy=r(2, 3, 3, 3), input_shape=(2, 5, 4, 3),
                                     pool_size=(2, 2), strides=(2, 1), padding=((0, 1), (0, 0)),
                                     mode="avg", out=e(2, 5, 4, 3))),
        Case("embedding_forward", dict(ids=np.array([[0, 3], [3, 1]], np.int64),
                                       table=r(4, 3), out=e(2, 2, 3))),
        Case("embedding_backward", dict(ids=np.array([[0, 3], [3, 1]], np.int64),
                                        dy=r(2, 2, 3), num_embeddings=4, out=e(4, 3))),
        Case("layernorm_forward", dict(x=r(n, n), gamma=r(n), beta=r(n), out=e(n, n))),
        Case("layernorm_backward", dict(dy=r(n, n), x=x_ln.copy(), gamma=r(n),
                                        mean=ln_mean.copy(), inv_std=ln_inv.copy(),
                                        dx=e(n, n), dgamma=e(n), dbeta=e(n))),
        Case("l2_normalize_forward", dict(x=r(n, n), out=e(n, n))),
        Case("l2_normalize_backward", dict(dy=r(n, n), y=y_l2.copy(), inv_norm=l2_inv.copy(),
                                           out=e(n, n))),
        *_recurrent_cases(r, e),
        Case("dense_stack_forward_backward", stack(update=True)),
        Case("dense_stack_forward_backward", stack(update=False),
             reads=("kernels", "biases")),
    ]


def _recurrent_cases(r, e):
    """One forward and one backward call of each recurrent op (masked, with states)."""
    n, t, d, u = 2, 3, 3, 3  # every written array > 8 bytes (the partial-overlap offset)
    mask = np.array([[True, False, True], [False, False, True]])
    cases = []
    for cell, k, g, bias in (("simple_rnn", 1, 1, (u,)), ("lstm", 4, 4, (4 * u,)),
                             ("gru", 3, 4, (2, 3 * u))):
        x, kernel, rk = r(n, t, d), r(d, k * u), r(u, k * u)
        fw = dict(x=x, kernel=kernel, recurrent_kernel=rk, bias=r(*bias), h0=r(n, u),
                  mask=mask.copy(), out=e(n, t, u), h_out=e(n, u), hprev=e(n, t, u),
                  gates=e(n, t, g * u))
        if cell == "lstm":
            fw.update(c0=r(n, u), c_out=e(n, u), cprev=e(n, t, u))
        res = getattr(REFERENCE, f"{cell}_forward")(**_copy_tree(fw))
        names = ("out", "h_out", "c_out", "hprev", "cprev", "gates") if cell == "lstm" \
            else ("out", "h_out", "hprev", "gates")
        saved = dict(zip(names, res))
        bw = dict(dy=r(n, t, u), x=x.copy(), kernel=kernel.copy(), recurrent_kernel=rk.copy(),
                  hprev=saved["hprev"].copy(), gates=saved["gates"].copy(), mask=mask.copy(),
                  dh_out=r(n, u), dx=e(n, t, d), dkernel=e(d, k * u),
                  drecurrent_kernel=e(u, k * u), dbias=e(*bias), dh0=e(n, u),
                  dgates=e(n, t, g * u))
        if cell == "lstm":
            bw.update(cprev=saved["cprev"].copy(), dc_out=r(n, u), dc0=e(n, u))
        cases += [Case(f"{cell}_forward", fw), Case(f"{cell}_backward", bw)]
    return cases


# --------------------------------------------------------------------------
# arguments as a tree of named array leaves
# --------------------------------------------------------------------------
def _leaves(value, name):
    """``[(path, name, array)]`` of the arrays inside an argument (lists, tuples, a
    StackUpdate); ``path`` locates the leaf for :func:`_put`."""
    if isinstance(value, np.ndarray):
        return [((), name, value)]
    if isinstance(value, StackUpdate):
        return [(("kernel_states",) + p, n, a)
                for p, n, a in _leaves(value.kernel_states, f"{name}.kernel_states")] + \
               [(("bias_states",) + p, n, a)
                for p, n, a in _leaves(value.bias_states, f"{name}.bias_states")]
    if isinstance(value, (list, tuple)):
        return [((i,) + p, n, a) for i, v in enumerate(value)
                for p, n, a in _leaves(v, f"{name}[{i}]")]
    return []


def _put(value, path, leaf):
    """A copy of ``value`` with the leaf at ``path`` replaced by ``leaf``."""
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    if isinstance(value, StackUpdate):
        return value._replace(**{head: _put(getattr(value, head), rest, leaf)})
    items = list(value)
    items[head] = _put(items[head], rest, leaf)
    return type(value)(items)


def leaves(case):
    """``{name: (parameter, path, array)}`` of every array argument of ``case``."""
    return {n: (param, path, a) for param, v in case.kwargs.items()
            for path, n, a in _leaves(v, param)}


def written(case):
    """Names of the arrays ``case``'s call writes."""
    roots = set(ALIASING[case.op]) - case.reads
    return [n for n, (param, _, _) in leaves(case).items() if param in roots]


def build(case, plan=None):
    """Fresh arguments for one call; ``plan`` is ``(kind, w, other)``: the written
    array ``w`` made exactly ``other`` (``'exact'``), a copy of it (``'copy'``: the
    same values in memory of its own) or overlapping it partly (``'partial'``)."""
    kw = {k: _copy_tree(v) for k, v in case.kwargs.items()}
    if plan is None:
        return kw
    kind, w, other = plan
    lv = leaves(Case(case.op, kw))
    (wp, wpath, wa), (op_, opath, oa) = lv[w], lv[other]
    if kind == "exact":
        new_w = new_o = oa.copy()
    elif kind == "copy":
        new_w, new_o = oa.copy(), oa
    else:
        big, small = (wa, oa) if wa.nbytes >= oa.nbytes else (oa, wa)
        buf = np.zeros(big.nbytes + 8, np.uint8)
        first = buf[:big.nbytes].view(big.dtype).reshape(big.shape)
        second = buf[8:8 + small.nbytes].view(small.dtype).reshape(small.shape)
        new_big, new_small = first, second
        new_w, new_o = (new_big, new_small) if big is wa else (new_small, new_big)
        new_o[...] = oa  # the other array's values win where they overlap
    kw[wp] = _put(kw[wp], wpath, new_w)
    kw[op_] = _put(kw[op_], opath, new_o)
    return kw


def _copy_tree(v):
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, StackUpdate):
        return v._replace(kernel_states=_copy_tree(v.kernel_states),
                          bias_states=_copy_tree(v.bias_states))
    if isinstance(v, (list, tuple)):
        return type(v)(_copy_tree(x) for x in v)
    return v


def _snapshot(kw):
    return {n: a.tobytes() for n, (_, _, a) in leaves(Case("", kw)).items()}


CASES = {dt: _cases(np.dtype(dt)) for dt in (np.float32, np.float64)}


def _pairs():
    """``(dtype, case index, kind, written name, other name)`` for every pair."""
    out = []
    for dt, cases in CASES.items():
        for ci, case in enumerate(cases):
            lv = leaves(case)
            for w in written(case):
                for other, (_, _, oa) in lv.items():
                    if other == w:
                        continue
                    wa = lv[w][2]
                    if wa.shape == oa.shape and wa.dtype == oa.dtype:
                        out.append((dt, ci, "exact", w, other))
                    out.append((dt, ci, "partial", w, other))
    return out


PAIRS = _pairs()


def _pair_id(p):
    dt, ci, kind, w, other = p
    return f"{CASES[dt][ci].op}#{ci}-{kind}-{w}-{other}-{np.dtype(dt).name}"


# --------------------------------------------------------------------------
# the declaration covers every op, and every op has a case
# --------------------------------------------------------------------------
def test_aliasing_table_declares_every_op():
    missing = [op for op in PUBLIC_OPS if op not in ALIASING]
    assert missing == [], f"ops without an entry in validation.ALIASING: {missing}"
    assert sorted(ALIASING) == PUBLIC_OPS, "ALIASING names ops Backend does not have"
    for op, outs in ALIASING.items():
        params = list(inspect.signature(getattr(Backend, op)).parameters)
        for out, inputs in outs.items():
            assert out in params, f"{op}: ALIASING names {out!r}, not a parameter"
            for name in inputs:
                assert name in params and name not in outs, (op, name)


def test_every_op_has_an_aliasing_case():
    covered = {c.op for c in CASES[np.float32]}
    missing = [op for op in PUBLIC_OPS if op not in covered]
    assert missing == [], f"ops without an aliasing case in tests/test_aliasing.py: {missing}"


def test_every_declared_in_place_pair_is_exercised():
    exercised = {(CASES[dt][ci].op, w.split("[")[0], o)
                 for dt, ci, kind, w, o in PAIRS if kind == "exact"}
    for op, outs in ALIASING.items():
        for out, inputs in outs.items():
            for name in inputs:
                assert (op, out, name) in exercised, f"{op}: {out} = {name} is never tried"


# --------------------------------------------------------------------------
# the rule, on every CPU backend
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("dt", list(CASES), ids=lambda d: np.dtype(d).name)
def test_arrays_not_declared_written_are_left_alone(name, dt):
    """A plain call writes nothing but what ALIASING declares."""
    be = B.get(name)
    for case in CASES[dt]:
        kw = build(case)
        before = _snapshot(kw)
        getattr(be, case.op)(**kw)
        after = _snapshot(kw)
        changed = sorted(n for n in before if before[n] != after[n])
        assert set(changed) <= set(written(case)), \
            f"{name}.{case.op} wrote {sorted(set(changed) - set(written(case)))}"


def _allowed(case, w, other):
    param_w = leaves(case)[w][0]
    param_o = leaves(case)[other][0]
    return (other not in written(case)
            and param_o in ALIASING[case.op].get(param_w, ())
            and w == param_w and other == param_o)


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_aliasing_rule(name, pair):
    dt, ci, kind, w, other = pair
    case = CASES[dt][ci]
    be = B.get(name)
    kw = build(case, (kind, w, other))
    if kind == "exact" and _allowed(case, w, other):
        # in place, every backend gives what the reference gives on separate memory
        want_kw = build(case, ("copy", w, other))
        want = getattr(REFERENCE, case.op)(**want_kw)
        got = getattr(be, case.op)(**kw)
        what = f"{name}.{case.op} with {w} = {other}"
        assert_close(got[0] if isinstance(got, tuple) and got[0] is kw[w] else got,
                     want[0] if isinstance(want, tuple) and want[0] is want_kw[w] else want,
                     dt, what=what)
        got_lv, want_lv = leaves(Case("", kw)), leaves(Case("", want_kw))
        for n in written(case):
            assert_close(got_lv[n][2], want_lv[n][2], dt, what=f"{what}: {n}")
        return
    before = _snapshot(kw)
    with pytest.raises(ValueError) as info:
        getattr(be, case.op)(**kw)
    msg = str(info.value)
    assert f"{w} and {other} overlap" in msg or f"{other} and {w} overlap" in msg, msg
    assert _snapshot(kw) == before, f"{name}.{case.op} wrote before refusing"


# --------------------------------------------------------------------------
# the checks above can fail: deliberately broken backends are caught
# --------------------------------------------------------------------------
class _InPlaceBlindSoftmax(Backend):
    """softmax that clears ``out`` before reading ``x`` (wrong when ``out`` is ``x``)."""
    name = "inplace_blind"

    def softmax(self, x, out=None):
        x, out = prep_rows("softmax", x, out)
        out[...] = 0
        e = np.exp(x - x.max(axis=1, keepdims=True))
        out[...] = e / e.sum(axis=1, keepdims=True)
        return out


class _UncheckedBiasGrad(Backend):
    """bias_grad that writes ``out`` without the aliasing check."""
    name = "unchecked"

    def bias_grad(self, dy, out=None):
        out[...] = np.asarray(dy).sum(axis=0)
        return out


class _ScribblingScale(Backend):
    """sum_squares that scales its input in place (writes what it does not declare)."""
    name = "scribbling"

    def sum_squares(self, x):
        r = super().sum_squares(x)
        x[...] = 0
        return r


def _find(op, kind, w, other, dt=np.float32):
    return next(p for p in PAIRS if p[0] is dt and CASES[dt][p[1]].op == op
                and p[2:] == (kind, w, other))


@pytest.mark.parametrize("broken,check", [
    (_InPlaceBlindSoftmax, lambda: test_aliasing_rule("broken", _find("softmax", "exact",
                                                                      "out", "x"))),
    (_UncheckedBiasGrad, lambda: test_aliasing_rule("broken", _find("bias_grad", "partial",
                                                                    "out", "dy"))),
    (_ScribblingScale, lambda: test_arrays_not_declared_written_are_left_alone(
        "broken", np.float32)),
], ids=["in_place_wrong", "unchecked_overlap", "undeclared_write"])
def test_rule_catches_broken_backends(broken, check, monkeypatch):
    monkeypatch.setattr(B, "get", lambda name: broken())
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check()
    monkeypatch.setattr(B, "get", lambda name: Backend())
    check()  # the same check passes on the reference
