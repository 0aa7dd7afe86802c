"""Shared fixtures: every test that takes ``backend`` runs on each available backend."""
import os
import sys

import numpy as np
import pytest

try:  # run from a source checkout without installing: the repository root on sys.path
    import pynn  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pynn.backends as B

# Tests and CI read datasets from ../shared/data and never download.
_here = os.path.dirname(os.path.abspath(__file__))
_shared = os.path.normpath(os.path.join(_here, "..", "..", "shared", "data"))
if "PYNN_DATA_DIR" not in os.environ and os.path.isdir(_shared):
    os.environ["PYNN_DATA_DIR"] = _shared

# Extra backends to run the whole suite against, e.g. a deliberately broken one
# to see the suite fail: PYNN_TEST_EXTRA_BACKENDS="broken_relu=helpers:BrokenReluBackward"
EXTRA_BACKENDS = []
for _item in filter(None, os.environ.get("PYNN_TEST_EXTRA_BACKENDS", "").split(",")):
    _name, _spec = _item.split("=", 1)
    B.register(_name.strip(), _spec.strip())
    EXTRA_BACKENDS.append(_name.strip())

# Only CPU backends are loaded here: loading "cuda" would import numba.cuda before
# tests/cuda/conftest.py can switch the simulator on.
CPU_BACKENDS = [n for n in ("numpy", "cython", "numba", *EXTRA_BACKENDS)
                if B.why_unavailable(n) is None]
FAST_BACKENDS = [n for n in CPU_BACKENDS if n != "numpy"]


@pytest.fixture(params=CPU_BACKENDS)
def backend_name(request):
    return request.param


@pytest.fixture
def backend(backend_name):
    with B.use_backend(backend_name) as be:
        yield be


@pytest.fixture(params=FAST_BACKENDS or ["numpy"])
def fast_backend(request):
    return B.get(request.param)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
