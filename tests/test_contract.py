"""The backend contract: signatures kept, hot ops really overridden.

* Every method a registered backend class overrides keeps the signature of
  :class:`pynn.backends.Backend` (thinc's ``test_ops_consistency``).
* Every hot op in ``pynn.ops._OPS`` is overridden by each available compiled
  backend, and a typical call does not end up in the reference implementation
  (a backend that silently falls back to NumPy is caught).
"""
import inspect

import numpy as np
import pytest

import pynn.backends as B
import pynn.ops
from pynn.backends.base import Backend

import helpers
from test_backend_ops import CASES, make_case

#: Every available backend except the reference (cython, numba, cuda, test extras).
COMPILED = [n for n in B.available() if n != "numpy"]
#: Those that take host numpy arrays, so the typical calls below can run on them.
HOST_COMPILED = [n for n in COMPILED if B.get(n).host_memory]

REFERENCE_METHODS = sorted(
    name for name, value in vars(Backend).items()
    if callable(value) or isinstance(value, (staticmethod, classmethod))
    if not (name.startswith("__") and name.endswith("__"))
)


def _static_kind(cls, name):
    return type(inspect.getattr_static(cls, name)).__name__


def signature_mismatches(cls):
    """``[(method, base signature, override signature)]`` for overrides that differ."""
    bad = []
    for name in REFERENCE_METHODS:
        if getattr(cls, name) is getattr(Backend, name):
            continue
        base, over = inspect.signature(getattr(Backend, name)), inspect.signature(
            getattr(cls, name))
        kinds = _static_kind(Backend, name), _static_kind(cls, name)
        if base != over or (kinds[0] in ("staticmethod", "classmethod")) != (
                kinds[1] in ("staticmethod", "classmethod")):
            bad.append((name, str(base), str(over)))
    return bad


def missing_overrides(cls):
    """Hot ops of ``pynn.ops._OPS`` that ``cls`` inherits from the reference."""
    missing = []
    for op in pynn.ops._OPS:
        owner = next(k for k in cls.__mro__ if op in vars(k))
        if owner is Backend:
            missing.append(op)
    return missing


def test_ops_are_backend_methods():
    """Each fused op keeps the backend method's parameters, in order; a function shared
    with keras.ops (softmax, log_softmax) adds Keras's keywords after them."""
    for op in pynn.ops._OPS:
        assert op in REFERENCE_METHODS
        params = list(inspect.signature(getattr(Backend, op)).parameters)[1:]
        got = list(inspect.signature(getattr(pynn.ops, op)).parameters)
        assert got[:len(params)] == params
        assert got[len(params):] == pynn.ops.KERAS_EXTRA_KEYWORDS.get(op, [])


@pytest.mark.parametrize("name", B.available())
def test_registered_backend_keeps_signatures(name):
    be = B.get(name)
    assert isinstance(be, Backend)
    assert be.name == name
    assert signature_mismatches(type(be)) == []


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_backend_overrides_every_hot_op(name):
    assert missing_overrides(type(B.get(name))) == []


def reference_calls(be, case, monkeypatch):
    """Run ``case`` on ``be`` with every ``Backend.<hot op>`` spied; return the calls."""
    calls = []
    for op in pynn.ops._OPS:
        original = getattr(Backend, op)

        def spy(self, *args, _op=op, _original=original, **kwargs):
            calls.append(_op)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Backend, op, spy)
    try:
        getattr(be, case.op)(*[a.copy() if isinstance(a, np.ndarray) else a
                               for a in case.args], **case.kwargs)
    finally:
        monkeypatch.undo()
    return calls


@pytest.mark.parametrize("case_name", CASES)
@pytest.mark.parametrize("name", HOST_COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_compiled_backend_does_not_fall_back(name, case_name, dtype, monkeypatch):
    """A typical call (C-contiguous float input) never reaches ``Backend.<op>``."""
    case = make_case(case_name, np.random.default_rng(0), np.dtype(dtype))
    calls = reference_calls(B.get(name), case, monkeypatch)
    assert calls == [], f"{name}.{case.op} fell back to the reference for {calls}"


def test_contract_checks_catch_broken_backends():
    assert missing_overrides(Backend) == list(pynn.ops._OPS)
    assert missing_overrides(helpers.BrokenSignature) == [
        op for op in pynn.ops._OPS if op != "softmax"]
    bad = signature_mismatches(helpers.BrokenSignature)
    assert [b[0] for b in bad] == ["softmax"]

    class StaticMismatch(Backend):
        def _decay(self, param, lr, weight_decay):  # base: a staticmethod
            return None

    assert [b[0] for b in signature_mismatches(StaticMismatch)] == ["_decay"]

    class Renamed(Backend):
        def gemm(self, a, b, out=None, transa=False, trans_b=False, alpha=1.0, beta=0.0,
                 bias=None, activation="linear", act_alpha=None):
            return super().gemm(a, b, out, transa, trans_b, alpha, beta, bias, activation,
                                act_alpha)

    assert [b[0] for b in signature_mismatches(Renamed)] == ["gemm"]


def test_fallback_spy_catches_super_calls(monkeypatch):
    """An override that hands the work back to the reference is reported."""
    case = make_case("gemm", np.random.default_rng(0), np.dtype(np.float32))
    assert reference_calls(helpers.BrokenStrideBlindGemm(), case, monkeypatch)[0] == "gemm"
    case = make_case("softmax", np.random.default_rng(0), np.dtype(np.float32))
    assert reference_calls(helpers.BrokenUnshiftedSoftmax(), case, monkeypatch) == []
