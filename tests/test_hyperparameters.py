"""Op hyper-parameters are finite and in range on every backend (issue 15, rule 5), and
ops read their inputs as passed.

* every hyper-parameter of :data:`~pynn.backends.validation.OP_HYPER` refuses NaN,
  infinities and values outside its range with the reference's ValueError (naming
  the argument and the value) before anything is written, on every CPU backend; an
  op's numeric keyword without a declared range fails the introspection test;
* label-range errors quote the labels as passed (2**40, -5, 2**64 - 1, 1e30, inf);
* unaligned inputs are copied like other layouts (cython refused them), unaligned
  outputs (and the Dense-stack weights, used in place) refused by name everywhere.
"""
import inspect
import math

import numpy as np
import pytest

import pynn
import pynn.backends as B
import pynn.ops as ops
from pynn.backends.base import Backend, StackUpdate
from pynn.backends.validation import OP_HYPER

from helpers import CPU_BACKENDS, REFERENCE, assert_close
from test_aliasing import CASES as ALIAS_CASES
from test_aliasing import PUBLIC_OPS, Case, _put, build, leaves, written

F32 = np.float32


def bad_values(where):
    """Values ``where`` (a Range) refuses: non-finite ones, and just outside it."""
    bad = [math.nan, math.inf, -math.inf]
    if where.low is not None:
        bad.append(where.low if where.low_open else where.low - 1.0)
    if where.high is not None:
        bad.append(where.high if where.high_open else where.high + 1.0)
    if where.integer:
        bad.append((where.low or 0) + 1.5)
    return bad


def _case(op, dt=F32):
    return next(c for c in ALIAS_CASES[dt] if c.op == op)


def _adam_stack_case():
    """The Dense-stack step with an Adam update (the aliasing cases use SGD)."""
    case = _case("dense_stack_forward_backward")
    kw = build(case)
    ks = tuple((np.zeros_like(k), np.zeros_like(k)) for k in kw["kernels"])
    bs = tuple((np.zeros_like(b), np.zeros_like(b)) for b in kw["biases"])
    kw["update"] = StackUpdate("adam", 0.01, ks, bs, step=2)
    return kw


def _snapshot(kw):
    return {n: a.tobytes() for n, (_, _, a) in leaves(Case("", kw)).items()}


def _refusal(be, op, kw):
    """The ValueError ``be.op(**kw)`` raises, after checking nothing was written."""
    before = _snapshot(kw)
    with pytest.raises(ValueError) as info:
        getattr(be, op)(**kw)
    assert _snapshot(kw) == before, f"{be.name}.{op} wrote before refusing"
    return str(info.value)


# --------------------------------------------------------------------------
# ops
# --------------------------------------------------------------------------
def test_every_numeric_keyword_of_an_op_has_a_range():
    """An op's float keyword (a hyper-parameter) must be declared in OP_HYPER."""
    missing = []
    for op in PUBLIC_OPS:
        for p in list(inspect.signature(getattr(Backend, op)).parameters.values())[1:]:
            if isinstance(p.default, float) and p.name not in OP_HYPER.get(op, {}):
                missing.append(f"{op}({p.name})")
    assert missing == [], f"numeric keywords without a range in OP_HYPER: {missing}"
    for op, ranges in OP_HYPER.items():
        params = inspect.signature(getattr(Backend, op)).parameters
        assert set(ranges) <= set(params), (op, set(ranges) - set(params))


OP_BAD = [(op, name, v) for op, ranges in OP_HYPER.items() for name, where in ranges.items()
          for v in bad_values(where)]


@pytest.mark.parametrize("op,name,value", OP_BAD, ids=[f"{o}-{n}-{v}" for o, n, v in OP_BAD])
def test_op_refuses_a_bad_hyperparameter_on_every_backend(op, name, value):
    want = None
    for bn in ["numpy"] + [b for b in CPU_BACKENDS if b != "numpy"]:
        kw = dict(build(_case(op)), **{name: value})
        msg = _refusal(B.get(bn), op, kw)
        assert name in msg and repr(value) in msg, msg
        want = msg if want is None else want
        assert msg == want, f"{bn} says {msg!r}, the reference {want!r}"


STACK_UPDATE_BAD = [(rule, field, v)
                    for rule, op in (("sgd", "sgd_update"), ("adam", "adam_update"))
                    for field, where in OP_HYPER[op].items()
                    for v in bad_values(where)]


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
@pytest.mark.parametrize("rule,field,value", STACK_UPDATE_BAD,
                         ids=[f"{r}-{f}-{v}" for r, f, v in STACK_UPDATE_BAD])
def test_fused_step_refuses_a_bad_update_hyperparameter(backend_name, rule, field, value):
    kw = build(_case("dense_stack_forward_backward")) if rule == "sgd" else _adam_stack_case()
    kw["update"] = kw["update"]._replace(**{field: value})
    msg = _refusal(B.get(backend_name), "dense_stack_forward_backward", kw)
    assert f"update.{field}" in msg and repr(value) in msg, msg


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_fused_step_checks_each_call_after_a_good_one(backend_name):
    """Compiled backends remember validated workspaces: a bad label smoothing or loss
    scale in a later call with the same arrays is still refused."""
    be = B.get(backend_name)
    kw = build(_case("dense_stack_forward_backward"))
    assert math.isfinite(be.dense_stack_forward_backward(**kw))
    for name, value in (("label_smoothing", 5.0), ("label_smoothing", math.nan),
                        ("loss_scale", math.inf), ("loss_scale", math.nan)):
        msg = _refusal(be, "dense_stack_forward_backward", dict(kw, **{name: value}))
        assert name in msg and repr(value) in msg, msg
    msg = _refusal(be, "dense_stack_forward", dict(
        x=kw["x"], kernels=kw["kernels"], biases=kw["biases"], activations=["relu", "tanh"],
        outs=kw["outs"], act_alphas=[math.inf, None]))
    assert "act_alphas[0]" in msg and "inf" in msg, msg


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_ops_label_smoothing_must_be_in_unit_interval(backend_name):
    z = np.random.default_rng(0).standard_normal((4, 3)).astype(F32)
    with B.use_backend(backend_name):
        for ls in (5, -0.1, math.nan):
            with pytest.raises(ValueError, match="label_smoothing") as info:
                ops.softmax_cross_entropy(z, np.array([0, 1, 2, 0]), label_smoothing=ls)
            assert repr(ls) in str(info.value)
        loss, _ = ops.softmax_cross_entropy(z, np.array([0, 1, 2, 0]), label_smoothing=1)
        assert math.isfinite(loss)


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_activation_alpha_must_be_finite(backend_name):
    be = B.get(backend_name)
    x = np.ones((2, 3), F32)
    for call in (lambda: be.activation_forward(x, "elu", alpha=math.nan),
                 lambda: be.activation_backward(x, x, "leaky_relu", alpha=math.inf),
                 lambda: be.gemm(x, x.T, activation="elu", act_alpha=-math.inf)):
        with pytest.raises(ValueError, match="alpha"):
            call()


# --------------------------------------------------------------------------
# labels are reported as passed
# --------------------------------------------------------------------------
HUGE_LABELS = [
    (np.array([0, 1, 2**40, 0], np.int64), "1099511627776"),
    (np.array([0, -5, 1, 0], np.int64), "-5"),
    (np.array([0, 1, 2**64 - 1, 0], np.uint64), "18446744073709551615"),
    (np.array([0.0, 1.0, 1e30, 0.0]), str(int(1e30))),
    (np.array([0.0, 1.0, np.inf, 0.0]), "inf"),
    (np.array([0, 1, 2**31 + 1, 0], np.int64), "2147483649"),
]


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
@pytest.mark.parametrize("labels,shown", HUGE_LABELS, ids=[s for _, s in HUGE_LABELS])
def test_label_range_errors_quote_the_labels_as_passed(backend_name, labels, shown):
    be = B.get(backend_name)
    z = np.abs(np.random.default_rng(0).standard_normal((4, 3))).astype(F32)
    for op in ("softmax_cross_entropy", "categorical_cross_entropy"):
        with pytest.raises(ValueError, match="target") as info:
            getattr(be, op)(z, labels)
        assert shown in str(info.value), str(info.value)
    kw = build(_case("dense_stack_forward_backward"))
    kw["x"], kw["target"], kw["sample_weight"] = kw["x"][:4], labels, None
    for key in ("outs", "deltas", "preacts"):
        kw[key] = [None if a is None else a[:4] for a in kw[key]]
    with pytest.raises(ValueError, match="target") as info:
        be.dense_stack_forward_backward(**kw)
    assert shown in str(info.value), str(info.value)


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
@pytest.mark.parametrize("labels,shown", HUGE_LABELS[:3], ids=[s for _, s in HUGE_LABELS[:3]])
def test_fit_reports_huge_labels_as_passed(backend_name, labels, shown):
    model = pynn.Sequential([pynn.layers.Input((2,)), pynn.layers.Dense(3)], seed=0)
    with B.use_backend(backend_name):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        with pytest.raises(ValueError, match=shown):
            model.fit(np.ones((4, 2), F32), labels, epochs=1, verbose=0)


# --------------------------------------------------------------------------
# unaligned arrays
# --------------------------------------------------------------------------
def unaligned(a):
    """A copy of ``a`` at an odd byte offset (not aligned for its dtype)."""
    buf = np.zeros(a.nbytes + 1, np.uint8)[1:]
    u = buf.view(a.dtype).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned and u.flags.c_contiguous
    return u


#: Ops that write into any writable array they are given (no ``out=`` checks).
IN_PLACE_HELPERS = {"scale_", "clip_", "axpy_", "copy_", "regularizer_grad_"}
#: Arguments used in place (never copied) although only read: the Dense-stack weights.
LAYOUT_CHECKED = {"kernels", "biases"}


def _unaligned_cases():
    out = []
    for ci, case in enumerate(ALIAS_CASES[F32]):
        for name, (_, _, a) in leaves(case).items():
            if a.dtype.itemsize > 1:
                out.append((ci, name, name in written(case)))
    return out


UNALIGNED = _unaligned_cases()


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
@pytest.mark.parametrize("ci,name,is_written", UNALIGNED,
                         ids=[f"{ALIAS_CASES[F32][c].op}#{c}-{n}" for c, n, _ in UNALIGNED])
def test_unaligned_inputs_are_copied_and_outputs_refused(backend_name, ci, name, is_written):
    case = ALIAS_CASES[F32][ci]
    be = B.get(backend_name)
    kw = build(case)
    param, path, a = leaves(case)[name]
    kw[param] = _put(kw[param], path, unaligned(a))
    if (is_written and case.op not in IN_PLACE_HELPERS) or (
            case.op.startswith("dense_stack") and param in LAYOUT_CHECKED):
        with pytest.raises(ValueError, match="must be aligned") as info:
            getattr(be, case.op)(**kw)
        assert name in str(info.value), str(info.value)
        return
    want_kw = build(case)
    want = getattr(REFERENCE, case.op)(**want_kw)
    got = getattr(be, case.op)(**kw)
    if case.op != "empty":
        assert_close(got, want, F32, what=f"{backend_name}.{case.op} with {name} unaligned")
    for n in written(case):
        assert_close(leaves(type(case)("", kw))[n][2], leaves(type(case)("", want_kw))[n][2],
                     F32, what=n)
