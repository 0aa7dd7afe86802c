"""One helper that runs an op on a backend and compares it with the reference.

The tolerance table: float32 kernels may order sums differently from NumPy
(BLAS blocking, fused loops), so they get rtol 1e-5 relative to the scale of the
result (atol = rtol * max|ref|) - the same as comparing with an ULP budget that
grows with the reduction length. float64 gets 1e-10 on the same basis.
"""
import numpy as np

import pynn.backends as B

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
REFERENCE = B.Backend()


def tol(dtype, loose=1.0):
    r = RTOL[np.dtype(dtype)] * loose
    return r


def assert_close(got, want, dtype, loose=1.0, what=""):
    """Compare arrays/floats/tuples with the dtype's tolerance (scaled to the result)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, dtype, loose, f"{what}[{i}]")
        return
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    if w.size == 0:
        return
    assert np.all(np.isfinite(g) == np.isfinite(w)), f"{what}: finiteness differs"
    fin = np.isfinite(w)
    r = tol(dtype, loose)
    scale = max(1.0, float(np.max(np.abs(w[fin])))) if fin.any() else 1.0
    np.testing.assert_allclose(g[fin], w[fin], rtol=r, atol=r * scale, err_msg=what)


def _copy_args(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def check_op(backend, op, args, kwargs=None, dtype=np.float64, loose=1.0, inplace=()):
    """Run ``op`` on ``backend`` and on the reference with copies of the same
    arguments; compare the results and every argument index in ``inplace``
    (arrays the op updates in place)."""
    kwargs = kwargs or {}
    ref_args, got_args = _copy_args(args), _copy_args(args)
    ref_kw = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    got_kw = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    want = getattr(REFERENCE, op)(*ref_args, **ref_kw)
    got = getattr(backend, op)(*got_args, **got_kw)
    assert_close(got, want, dtype, loose, f"{backend.name}.{op}")
    for i in inplace:
        assert_close(got_args[i], ref_args[i], dtype, loose, f"{backend.name}.{op} arg {i}")
    return got, want
