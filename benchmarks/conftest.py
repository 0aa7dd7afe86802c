"""Fixtures of the pytest-benchmark suite.

Real runs: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/ --benchmark-enable``
(pyproject's ``addopts`` pass ``--benchmark-disable``, which runs every benchmark once as
a quick smoke test without timing).
"""
import os
import time
import sys

import pytest

try:
    import pynn  # noqa: F401
except ImportError:  # running from a source checkout that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pynn.backends as B  # noqa: E402
from pynn.bench import PAUSE_S, blas_info, openblas_overrides  # noqa: E402

#: Every backend that works here, the NumPy reference included.
BACKENDS = B.available()


def pytest_report_header(config):
    lines = [f"pynn backends: {', '.join(BACKENDS)}"]
    for p in blas_info():
        arch = f" {p['architecture']}" if p.get("architecture") else ""
        lines.append(f"thread pool: {p['internal_api']} {p['version']}{arch}, "
                     f"{p['num_threads']} threads")
    env = openblas_overrides()
    if env:
        lines.append("WARNING: " + " ".join(f"{k}={v}" for k, v in env.items())
                     + " slow NumPy down; benchmark with `env "
                     + " ".join(f"-u {k}" for k in env) + " pytest benchmarks/ "
                     "--benchmark-enable`")
    return lines


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    """Name of each available backend in turn."""
    return request.param


@pytest.fixture
def backend(backend_name):
    """The backend instance, also made active for the duration of the benchmark."""
    with B.use_backend(backend_name) as be:
        yield be


@pytest.fixture(autouse=True)
def _settle_thread_pools(request):
    """Before a timed benchmark, let the previous one's BLAS workers stop spinning.

    The cython and numba backends use SciPy's OpenBLAS and NumPy has its own copy; a
    product on one right after work on the other stalls while the other's threads spin.
    """
    if not request.config.getoption("benchmark_disable", True):
        time.sleep(PAUSE_S)
