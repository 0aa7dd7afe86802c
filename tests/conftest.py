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

from helpers import CPU_BACKENDS, EXTRA_BACKENDS, FAST_BACKENDS  # noqa: E402,F401


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
