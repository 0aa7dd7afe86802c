"""The cuda backend's memory API, argument checking, registry entry and contract."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import pynn
import pynn.backends as B
from pynn.backends import Backend

pytestmark = pytest.mark.cudasim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _is_device(x):
    return bool(getattr(x, "__cuda_ndarray__", False))


def test_memory_api(cuda_be, dtype, rng):
    be = cuda_be
    assert be.name == "cuda" and be.host_memory is False
    x = rng.standard_normal((3, 5))
    d = be.asarray(x, dtype=dtype)
    assert _is_device(d) and d.dtype == dtype and tuple(d.shape) == (3, 5)
    back = be.to_numpy(d)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, x.astype(dtype))
    back[0, 0] = 99.0  # a copy: the device array is untouched
    assert be.to_numpy(d)[0, 0] == x.astype(dtype)[0, 0]
    assert be.asarray(d) is d
    d64 = be.asarray(d, dtype=np.float64)  # converted on the device
    np.testing.assert_array_equal(be.to_numpy(d64), x.astype(dtype).astype(np.float64))
    z = be.zeros((2, 0, 3), dtype)
    assert _is_device(z) and tuple(z.shape) == (2, 0, 3)
    np.testing.assert_array_equal(be.to_numpy(be.zeros((4,), dtype)), np.zeros(4, dtype))
    e = be.empty((4, 2), dtype)
    assert _is_device(e) and e.dtype == dtype and tuple(e.shape) == (4, 2)
    be.synchronize()


def test_ops_return_device_arrays_for_host_and_device_inputs(cuda_be, rng):
    be = cuda_be
    x = rng.standard_normal((3, 4))
    for arg in (x, be.asarray(x)):
        y = be.activation_forward(arg, "relu")
        assert _is_device(y)
        np.testing.assert_array_equal(be.to_numpy(y), np.maximum(x, 0))
    # an integer host array computes in float64, as in the reference
    y = be.activation_forward(np.arange(6).reshape(2, 3) - 2, "relu")
    assert y.dtype == np.float64


def test_out_buffers_are_checked(cuda_be):
    be = cuda_be
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="out: expected a device array"):
        be.activation_forward(x, "relu", out=np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 4\)"):
        be.activation_forward(x, "relu", out=be.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="out: expected dtype float32"):
        be.activation_forward(x, "relu", out=be.empty((3, 4), np.float64))
    with pytest.raises(ValueError, match="grad: expected a device array"):
        be.mean_squared_error(x, x, grad=np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="moving_mean"):
        be.batchnorm_forward(x, np.ones(4), np.zeros(4), np.zeros(4, np.float32),
                             be.zeros(4, np.float32), True)
    with pytest.raises(ValueError, match="Unknown activation"):
        be.activation_forward(x, "swish")
    with pytest.raises(TypeError, match="numeric"):
        be.activation_forward(np.array([["a"]]), "relu")
    with pytest.raises(ValueError, match="gelu needs"):
        be.activation_backward(x, x, "gelu")


def test_constructor_checks_launch_sizes(cuda_be):
    CudaBackend = type(cuda_be)
    with pytest.raises(ValueError, match="threads_per_block"):
        CudaBackend(threads_per_block=6)
    with pytest.raises(ValueError, match="gemm_tile"):
        CudaBackend(gemm_tile=64)
    with pytest.raises(ValueError, match="max_blocks"):
        CudaBackend(max_blocks=0)
    be = CudaBackend()
    assert (be.threads_per_block, be.gemm_tile) == (256, 16)


def test_overrides_keep_base_signatures(cuda_be):
    cls = type(cuda_be)
    # the class and its op mixins (conv, sequence, updates), up to Backend
    own = cls.__mro__[:cls.__mro__.index(Backend)]
    overridden = sorted({n for c in own for n, f in vars(c).items()
                         if callable(f) and not n.startswith("_") and hasattr(Backend, n)})
    assert len(overridden) >= 45
    for name in overridden:
        assert inspect.signature(getattr(cls, name)) == inspect.signature(getattr(Backend, name)), name


def test_registry_lists_cuda_under_the_simulator(cuda_be):
    assert "cuda" in B.available()
    assert type(B.get("cuda")).__name__ == "CudaBackend"


def _run(code, **env):
    e = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__))))
    e.pop("NUMBA_ENABLE_CUDASIM", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], env=e, cwd=e["PYTHONPATH"],
                          capture_output=True, text=True,
                          timeout=120)


def test_import_pynn_does_not_import_numba_cuda():
    r = _run("import sys, pynn, pynn.backends; pynn.get_backend(); "
             "print('numba.cuda' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_without_gpu_or_simulator_the_backend_explains_why():
    pytest.importorskip("numba_cuda")
    r = _run("import pynn.backends as B\n"
             "from numba import cuda\n"
             "if cuda.is_available():\n"
             "    print('gpu')\n"
             "else:\n"
             "    print('cuda' in B.available(), B.why_unavailable('cuda'))\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    if out != "gpu":
        assert out.startswith("False RuntimeError") and "NUMBA_ENABLE_CUDASIM" in out
