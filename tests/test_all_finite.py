"""``Backend.all_finite`` (the check every fit/predict runs on its input) on every CPU
backend: the same answer as NumPy for NaN/inf anywhere, extreme finite values, every
size, layout and dtype."""
import numpy as np
import pytest

import pynn.backends as B

from helpers import CPU_BACKENDS


@pytest.fixture(params=CPU_BACKENDS)
def be(request):
    return B.get(request.param)


@pytest.mark.parametrize("size", [0, 1, 7, 64, 1001, 2 * B.base.FINITE_BLOCK + 3])
def test_all_finite_matches_numpy(be, dtype, size):
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(dtype)
    assert be.all_finite(x) is True
    block = B.base.FINITE_BLOCK  # the reference checks in blocks: their edges too
    edges = {block - 1, block, 2 * block} if size > block else set()
    for pos in sorted({0, size // 2, size - 1} | edges) if size else []:
        for v in (np.nan, np.inf, -np.inf, -np.nan):
            y = x.copy()
            y[pos] = v
            assert be.all_finite(y) is False, (size, pos, v)
            assert be.all_finite(y.reshape(1, -1)) is False
    if size >= 4:  # extreme but finite: max, smallest normal / 4 (subnormal), -0
        info = np.finfo(dtype)
        y = x.copy()
        y[:4] = [info.max, -info.max, info.tiny / 4, -0.0]
        assert be.all_finite(y) is True


def test_all_finite_other_layouts_and_dtypes(be):
    x = np.ones((6, 4), np.float32)
    x[2, 3] = np.nan
    assert be.all_finite(x[:, ::2]) is True  # strided views
    assert be.all_finite(x[:, 1::2]) is False
    assert be.all_finite(np.asfortranarray(x)) is False
    big = np.zeros((3, B.base.FINITE_BLOCK), np.float32)  # blocks of an F-ordered array
    big[2, -1] = np.inf
    assert be.all_finite(np.asfortranarray(big)) is False
    assert be.all_finite(big[::-1][1:]) is True
    assert be.all_finite(np.arange(5)) is True  # integers are always finite
    ro = np.ones(3)
    ro.flags.writeable = False
    assert be.all_finite(ro) is True
