"""The float32 exp-based activations of the recurrent kernels' epilogues (csrc/vec_math.h,
vectorised polynomials instead of libm): within a few ulps of float64 libm over the
whole float32 range, NaN and infinities handled; float64 is libm itself."""
import math

import numpy as np
import pytest

from pynn.backends.activation_codes import ACTIVATIONS

seq = pytest.importorskip("pynn._ext.sequence")


def _sigmoid64(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _run(name, x):
    out = np.empty_like(x)
    seq.epilogue_activation(ACTIVATIONS[name], x, out)
    return out


def _ulp_errors(got, want):
    """|got - want| in units of float32's spacing at ``want``."""
    w32 = np.abs(want.astype(np.float32))
    spacing = np.spacing(w32).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


# Every 97th float32 bit pattern in [0, 20) (~1.1e7 values, denormals included) and
# their negatives, then a coarse grid out to +-100.
_DENSE = np.arange(0, np.float32(20).view(np.int32), 97, dtype=np.int32).view(np.float32)
_X = np.concatenate([_DENSE, -_DENSE, np.linspace(-100, 100, 200001, dtype=np.float32),
                     np.float32([0.0, -0.0, 1e-30, -1e-30, 0.625, -0.625])])


@pytest.mark.parametrize("name, ref, max_ulp", [("tanh", np.tanh, 2.0),
                                                ("sigmoid", _sigmoid64, 3.0)])
def test_float32_within_ulps_of_libm(name, ref, max_ulp):
    want = ref(_X.astype(np.float64))
    got = _run(name, _X)
    assert got.dtype == np.float32
    err = _ulp_errors(got, want)
    # below -87.3 the logistic saturates at exp(-87.3) ~ 1.2e-38 instead of going
    # denormal: the error there is absolute and smaller than float32's smallest normal
    tiny = (want < 1.3e-38) & (name == "sigmoid")
    assert np.max(err[~tiny]) <= max_ulp, (name, _X[~tiny][np.argmax(err[~tiny])])
    assert np.max(np.abs(got[tiny] - want[tiny]), initial=0.0) < 1.23e-38  # exp(-87.3)


def test_float32_odd_and_bounded():
    got = _run("tanh", _X)
    np.testing.assert_array_equal(got[_X > 0], -_run("tanh", -_X[_X > 0]))
    assert np.all(np.abs(got) <= 1)
    s = _run("sigmoid", _X)
    assert np.all((s >= 0) & (s <= 1))


def test_float32_specials():
    x = np.float32([np.nan, np.inf, -np.inf, 1e30, -1e30])
    t = _run("tanh", x)
    assert np.isnan(t[0])
    np.testing.assert_array_equal(t[1:], [1, -1, 1, -1])
    s = _run("sigmoid", x)
    assert np.isnan(s[0])
    assert s[1] == 1 and s[3] == 1
    assert 0 <= s[2] < 1.23e-38 and 0 <= s[4] < 1.23e-38


def test_float64_is_libm():
    # math's functions are the C library's (NumPy's own may use other SIMD versions)
    x = np.linspace(-40, 40, 20001)
    np.testing.assert_array_equal(_run("tanh", x), [math.tanh(v) for v in x])
    e = [math.exp(-abs(v)) for v in x]
    want = [1 / (1 + ev) if v >= 0 else ev / (1 + ev) for v, ev in zip(x, e)]
    np.testing.assert_array_equal(_run("sigmoid", x), want)


def test_rejects_other_codes_and_shapes():
    x = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="relu"):
        seq.epilogue_activation(ACTIVATIONS["relu"], x, x)
    with pytest.raises(ValueError, match="out"):
        seq.epilogue_activation(ACTIVATIONS["tanh"], x, np.zeros(3, np.float32))
