"""Backend registry: choose which implementation of the ops runs.

>>> import pynn
>>> pynn.backends.available()          # e.g. ['numpy', 'cython', 'numba']
>>> pynn.set_backend("numba")
>>> with pynn.use_backend("numpy"):    # temporarily
...     ...

The default is ``$PYNN_BACKEND`` when set, otherwise the fastest available
compiled backend (``cython``, then ``numba``), falling back to ``numpy`` with
one warning when no compiled backend works. Nothing is compiled on import:
Numba kernels compile lazily on first use and are cached on disk.

A backend that cannot be used here is *unavailable*, with a reason
(:func:`unavailable`, :func:`why_unavailable`). A backend that is *misconfigured*
(an environment variable with an invalid value, such as ``PYNN_BLAS``) raises
:class:`BackendConfigError` from :func:`get`, :func:`available` and the default
instead, naming the variable and its valid values, so a typo never silently drops
a backend (:func:`why_unavailable` reports it); so does an unknown ``PYNN_BACKEND``.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
import warnings

from .base import ACTIVATIONS, Backend, StackUpdate

__all__ = ["Backend", "ACTIVATIONS", "StackUpdate", "BackendConfigError", "available",
           "unavailable", "why_unavailable", "get", "get_backend", "set_backend", "use_backend",
           "register"]

# name -> "module:Class" (imported lazily so `import pynn` stays cheap)
_REGISTRY = {
    "numpy": "pynn.backends.base:Backend",
    "cython": "pynn.backends.cython_backend:CythonBackend",
    "numba": "pynn.backends.numba_backend:NumbaBackend",
    "cuda": "pynn.backends.cuda_backend:CudaBackend",
}
#: Preference order for the default backend.
_PREFERENCE = ("cython", "numba", "numpy")

_instances: dict[str, Backend] = {}
_errors: dict[str, str] = {}
_state = threading.local()
_default_name: str | None = None
_warned = False


class BackendConfigError(ValueError):
    """A backend's configuration is invalid (e.g. an environment variable's value).

    Raised by a backend's module or constructor; the registry passes it on instead
    of recording the backend as unavailable."""


def register(name, spec):
    """Register a backend class given as ``"module:Class"`` under ``name``."""
    _REGISTRY[name] = spec
    _instances.pop(name, None)
    _errors.pop(name, None)


def _load(name):
    if name in _instances:
        return _instances[name]
    if name not in _REGISTRY:
        raise ValueError(f"Unknown backend {name!r}; expected one of {sorted(_REGISTRY)}")
    if name in _errors:
        raise RuntimeError(f"Backend {name!r} is not available: {_errors[name]}")
    mod_name, cls_name = _REGISTRY[name].split(":")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
        inst = cls()
    except BackendConfigError:
        raise
    except Exception as exc:  # ImportError, missing GPU, failed build...
        _errors[name] = f"{type(exc).__name__}: {exc}"
        raise RuntimeError(f"Backend {name!r} is not available: {_errors[name]}") from exc
    _instances[name] = inst
    return inst


def get(name):
    """The backend instance called ``name`` (raises if it cannot be used here)."""
    return _load(name)


def available():
    """Names of the backends that work on this machine, reference first."""
    names = []
    for name in _REGISTRY:
        try:
            _load(name)
        except RuntimeError:
            continue
        names.append(name)
    return names


def why_unavailable(name):
    """The reason backend ``name`` cannot be used here, or ``None``.

    A diagnostic: a configuration error (:class:`BackendConfigError`, which
    :func:`get` and :func:`available` raise) is returned as the reason."""
    try:
        _load(name)
    except BackendConfigError as exc:
        return f"{type(exc).__name__}: {exc}"
    except RuntimeError:
        return _errors.get(name)
    return None


def unavailable():
    """``{name: reason}`` for every registered backend that cannot be used here
    (:func:`why_unavailable` of each)."""
    reasons = {}
    for name in _REGISTRY:
        reason = why_unavailable(name)
        if reason is not None:
            reasons[name] = reason
    return reasons


def _default():
    global _default_name, _warned
    if _default_name is None:
        env = os.environ.get("PYNN_BACKEND", "").strip()
        if env:
            if env not in _REGISTRY:
                raise BackendConfigError(
                    f"PYNN_BACKEND={env!r} names no backend; expected one of "
                    f"{sorted(_REGISTRY)}, or unset it for the fastest available")
            try:
                _load(env)
            except RuntimeError as exc:
                raise RuntimeError(f"PYNN_BACKEND={env!r}: {exc}") from exc
            _default_name = env
        else:
            for name in _PREFERENCE:
                try:
                    _load(name)
                except RuntimeError:
                    continue
                _default_name = name
                break
            if _default_name == "numpy" and not _warned:
                _warned = True
                warnings.warn(
                    "pynn: no compiled backend is available "
                    f"(cython: {_errors.get('cython')}; numba: {_errors.get('numba')}); "
                    "using the slow NumPy reference backend",
                    RuntimeWarning, stacklevel=3)
    # _load, not _instances[...]: register() may have dropped the cached instance
    return _load(_default_name)


def get_backend():
    """The active backend for this thread."""
    current = getattr(_state, "current", None)
    return current if current is not None else _default()


def set_backend(name):
    """Make ``name`` the active backend (for this thread and new threads' default)."""
    global _default_name
    if isinstance(name, Backend):
        inst = name
    else:
        inst = _load(name)
        _default_name = name
    _state.current = inst
    return inst


@contextlib.contextmanager
def use_backend(name):
    """Context manager that switches the active backend and restores it afterwards."""
    inst = name if isinstance(name, Backend) else _load(name)
    previous = getattr(_state, "current", None)
    _state.current = inst
    try:
        yield inst
    finally:
        _state.current = previous
