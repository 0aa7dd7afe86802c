"""The machine the benchmarks run on: the backends worth timing, the BLAS and OpenMP
thread pools, OpenBLAS overrides, and the report's metadata and header."""
from __future__ import annotations

import contextlib
import os
import platform
import sys

import numpy as np

from .. import backends as _backends

#: Environment variables that change OpenBLAS's kernel choice and slow NumPy down.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def default_backends(available):
    """Every available backend, except ``cuda`` when it is Numba's CUDA simulator (which
    interprets each GPU thread in Python: a correctness tool, not something to time)."""
    names = list(available)
    if "cuda" in names:
        try:
            simulated = bool(getattr(_backends.get("cuda"), "_simulator", False))
        except Exception:  # it failed to start: leave it out, its row would say so
            simulated = True
        if simulated:
            names.remove("cuda")
    return names


def blas_info():
    """The thread pools threadpoolctl sees: BLAS kernels and OpenMP runtimes."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")
    return [{k: d.get(k) for k in keep} for d in threadpool_info()]


def openblas_overrides():
    """``{name: value}`` of the OpenBLAS override variables set in the environment."""
    return {k: os.environ[k] for k in OPENBLAS_OVERRIDES if k in os.environ}


def report_meta(args, backends):
    """The report's ``meta`` record: versions, machine, backends, thread pools, overrides."""
    import pynn
    return {
        "pynn": pynn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "backends": backends,
        "unavailable": {n: _backends.why_unavailable(n) for n in ("cython", "numba")
                        if n not in backends and _backends.why_unavailable(n)},
        "dtype": "float32",
        "quick": args.quick,
        "repeats": args.repeats,
        "thread_pools": blas_info(),
        "openblas_overrides": openblas_overrides(),
    }


def report_header(meta):
    """The Markdown header of the report, from :func:`report_meta`'s record."""
    lines = ["# pynn benchmarks", ""]
    lines.append(f"- pynn {meta['pynn']}, NumPy {meta['numpy']}, Python {meta['python']}, "
                 f"{meta['platform']}, {meta['cpus']} CPUs, float32"
                 + (", QUICK (smoke sizes, timings meaningless)" if meta["quick"] else ""))
    lines.append(f"- backends: {', '.join(meta['backends'])}")
    for name, why in meta["unavailable"].items():
        lines.append(f"- backend {name} unavailable: {why}")
    for p in meta["thread_pools"]:
        arch = f" {p['architecture']}" if p.get("architecture") else ""
        lines.append(f"- thread pool (threadpoolctl): {p['internal_api']} {p['version']}"
                     f"{arch}, {p['num_threads']} thread{'' if p['num_threads'] == 1 else 's'} "
                     f"({p['prefix']})")
    if meta["openblas_overrides"]:
        lines.append("- **warning**: " + override_warning(meta["openblas_overrides"]))
    lines.append(f"- medians of {meta['repeats']} samples")
    return "\n".join(lines)


def override_warning(env):
    """The warning printed when OpenBLAS override variables ``env`` are set."""
    set_ = " ".join(f"{k}={v}" for k, v in env.items())
    unset = " ".join(f"-u {k}" for k in env)
    return (f"{set_} is set: it makes OpenBLAS (NumPy's matrix products) slower. To "
            f"benchmark, unset it for this command only: `env {unset} python -m pynn bench`")


def child_env(**extra):
    """The environment of a fresh Python process that must import this very pynn: its
    parent directory goes first on ``PYTHONPATH`` (run the child in a directory of its
    own: ``python -c`` puts the working directory first, where a source checkout
    without the compiled extension could shadow an installed pynn), plus ``extra``."""
    import pynn
    root = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=root + os.pathsep + path if path else root, **extra)


@contextlib.contextmanager
def single_threaded():
    """One thread in every BLAS/OpenMP pool and in Numba while the block runs."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limiter = None
    else:
        limiter = threadpool_limits(limits=1)
    numba = sys.modules.get("numba")
    numba_threads = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        if numba is not None:
            numba.set_num_threads(numba_threads)
        if limiter is not None:
            limiter.restore_original_limits()
