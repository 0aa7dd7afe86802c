"""CUDA backend tests, run under the CUDA simulator on machines without a GPU.

``NUMBA_ENABLE_CUDASIM=1`` must be set before ``numba.cuda`` is first
imported; this conftest sets it (unless the caller chose otherwise) when
pytest collects this directory, before any test module imports Numba's CUDA
target. Every test is skipped, with the reason, when numba-cuda is not
installed (CI installs it in a separate step) or the backend cannot start.
The backend is built with tiny blocks (4 threads, 4x4 GEMM tiles, at most 2
blocks) so the simulator stays fast and every grid-stride loop wraps.

The simulator runs every thread of a block as a Python thread and meets at each
``syncthreads`` on a barrier; with Python's default 5 ms GIL switch interval a
tiled GEMM spends most of its time waiting for the GIL (measured: ~14 ms per
barrier), so the session runs with a 10 us interval (about 10x faster here).
"""
import importlib.util
import os
import sys

import pytest

if "numba.cuda" not in sys.modules:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
_REASON = "numba-cuda is not installed (pip install numba-cuda)"

_cuda_error = None


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    if HAVE_NUMBA_CUDA:
        return
    skip = pytest.mark.skip(reason=_REASON)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _fast_gil_handoff():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


@pytest.fixture(scope="session")
def cuda_be():
    """The cuda backend with tiny launch sizes."""
    if not HAVE_NUMBA_CUDA:
        pytest.skip(_REASON)
    from pynn.backends.cuda_backend import CudaBackend
    try:
        return CudaBackend(threads_per_block=4, gemm_tile=4, max_blocks=2)
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"cuda backend unavailable: {exc}")

