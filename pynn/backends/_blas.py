"""Which BLAS the compiled (Cython) kernels call.

NumPy 2 wheels bundle their own OpenBLAS build, ``scipy-openblas64`` (64-bit integers,
symbols ``scipy_sgemm_64_`` ...), usually newer than SciPy's; on the small products of a
training step it measured 5-15% faster here, and sharing it keeps a single BLAS thread
pool in the process (two pools that wake and spin in turn are a known trap). When that
library is found already loaded by NumPy, its ``?gemm``/``?gemv`` entry points are
handed to the kernels and checked on a small product; otherwise, or with
``PYNN_BLAS=scipy``, the kernels keep SciPy's BLAS (``scipy.linalg.cython_blas``).
"""
import ctypes
import glob
import os

import numpy as np

_NAMES = ("sgemm", "dgemm", "sgemv", "dgemv")


def _candidates():
    """Paths of NumPy's scipy-openblas64 library: the loaded one first (Linux)."""
    seen = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip()
                if "scipy_openblas64_" in os.path.basename(path) and path not in seen:
                    seen.append(path)
    except OSError:
        pass
    root = os.path.dirname(np.__file__)
    for pattern in (os.path.join(root, os.pardir, "numpy.libs", "libscipy_openblas64_*"),
                    os.path.join(root, ".dylibs", "libscipy_openblas64_*")):
        for path in sorted(glob.glob(pattern)):
            if path not in seen:
                seen.append(path)
    return seen


def numpy_openblas_entry_points():
    """``(path, (sgemm, dgemm, sgemv, dgemv) addresses)`` of NumPy's ILP64 OpenBLAS, or
    ``None`` when NumPy is not linked with that build."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            fns = [getattr(lib, f"scipy_{n}_64_") for n in _NAMES]
        except (OSError, AttributeError):
            continue
        return path, tuple(ctypes.cast(f, ctypes.c_void_p).value for f in fns)
    return None


def select(modules):
    """Point every module's ``_use_blas`` at NumPy's OpenBLAS when it is there, works and
    ``PYNN_BLAS`` is not ``scipy``; returns a description of the BLAS in use."""
    choice = os.environ.get("PYNN_BLAS", "").strip().lower()
    if choice not in ("", "numpy", "scipy"):
        # raised, not taken for "cython is unavailable": a typo must not drop the backend
        from . import BackendConfigError
        raise BackendConfigError(f"PYNN_BLAS={os.environ['PYNN_BLAS']!r} is not a BLAS "
                                 f"choice; expected 'numpy' or 'scipy', or unset it for "
                                 f"NumPy's OpenBLAS when found, else SciPy's")
    found = None if choice == "scipy" else numpy_openblas_entry_points()
    if found is not None:
        path, addrs = found
        for mod in modules:
            mod._use_blas(*addrs)
        if all(mod._blas_selftest() for mod in modules):
            return f"numpy's OpenBLAS ({os.path.basename(path)})"
        for mod in modules:  # wrong results: never use it
            mod._use_blas(0, 0, 0, 0)
    if choice == "numpy" and found is None:
        raise RuntimeError("PYNN_BLAS=numpy: NumPy's scipy-openblas64 library was not found")
    return "scipy's BLAS (scipy.linalg.cython_blas)"


def numpy_openblas_threads():
    """``(get, set)``: ctypes functions reading and setting the thread count of NumPy's
    OpenBLAS (the library the kernels call when :func:`select` chose it; the setting is
    process-wide), or ``None`` when that library or its entry points are missing."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            get = lib.scipy_openblas_get_num_threads64_
            set_ = lib.scipy_openblas_set_num_threads64_
        except (OSError, AttributeError):
            continue
        get.restype, get.argtypes = ctypes.c_int, []
        set_.restype, set_.argtypes = None, [ctypes.c_int]
        return get, set_
    return None
