"""The backend registry: available(), get/set/use_backend, the default and its fallback."""
import os
import subprocess
import sys
import threading
import warnings

import pytest
from helpers import PYNN_PATH

import pynn
import pynn.backends as B

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter with the repository importable."""
    e = dict(os.environ)
    e.pop("PYNN_BACKEND", None)
    e["PYTHONPATH"] = PYNN_PATH + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], env=e, cwd=PYNN_PATH, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def clean_registry(monkeypatch):
    """A registry as a fresh process sees it; everything restored afterwards."""
    monkeypatch.delenv("PYNN_BACKEND", raising=False)
    monkeypatch.setattr(B, "_REGISTRY", dict(B._REGISTRY))
    monkeypatch.setattr(B, "_instances", {})
    monkeypatch.setattr(B, "_errors", {})
    monkeypatch.setattr(B, "_default_name", None)
    monkeypatch.setattr(B, "_warned", False)
    monkeypatch.setattr(B, "_state", threading.local())
    yield B


def test_available_has_reference_first():
    names = B.available()
    assert names[0] == "numpy"
    assert len(set(names)) == len(names)
    for name in names:
        assert B.get(name).name == name
        assert B.why_unavailable(name) is None
    for name in set(B._REGISTRY) - set(names):
        assert B.why_unavailable(name)  # a reason is recorded


def test_get_returns_one_instance_per_name():
    assert B.get("numpy") is B.get("numpy")
    assert isinstance(B.get("numpy"), B.Backend)


def test_set_and_get_backend(clean_registry):
    for name in B.available():
        be = B.set_backend(name)
        assert be is B.get(name) and B.get_backend() is be
    inst = B.Backend()
    assert B.set_backend(inst) is inst and B.get_backend() is inst
    assert pynn.set_backend is B.set_backend and pynn.get_backend is B.get_backend


def test_use_backend_restores(clean_registry):
    B.set_backend("numpy")
    before = B.get_backend()
    for name in B.available():
        with B.use_backend(name) as be:
            assert be is B.get(name) and B.get_backend() is be
            inner = B.Backend()
            with pynn.use_backend(inner):
                assert B.get_backend() is inner
            assert B.get_backend() is be
        assert B.get_backend() is before


def test_use_backend_restores_on_exception(clean_registry):
    B.set_backend("numpy")
    before = B.get_backend()
    other = B.Backend()
    with pytest.raises(KeyError):
        with B.use_backend(other):
            assert B.get_backend() is other
            raise KeyError("boom")
    assert B.get_backend() is before


def test_use_backend_is_per_thread(clean_registry):
    B.set_backend("numpy")
    seen = []
    other = B.Backend()
    with B.use_backend(other):
        t = threading.Thread(target=lambda: seen.append(B.get_backend()))
        t.start()
        t.join()
    assert seen == [B.get("numpy")]


@pytest.mark.parametrize("call", [B.set_backend, B.get, lambda n: B.use_backend(n).__enter__()])
def test_unknown_name_lists_valid_names(clean_registry, call):
    with pytest.raises(ValueError) as info:
        call("no_such_backend")
    msg = str(info.value)
    assert "no_such_backend" in msg
    for name in ("numpy", "cython", "numba"):
        assert repr(name) in msg


def test_unavailable_backend_raises_runtime_error(clean_registry):
    B.register("broken", "pynn_no_such_module_xyz:Nope")
    assert "broken" not in B.available()
    assert "ModuleNotFoundError" in B.why_unavailable("broken")
    with pytest.raises(RuntimeError, match="broken"):
        B.set_backend("broken")


def test_register_fake_backend(clean_registry):
    B.register("fake", "pynn.backends.base:Backend")
    assert "fake" in B.available()
    with B.use_backend("fake") as be:
        assert isinstance(be, B.Backend)


def test_register_replaces_the_default_instance(clean_registry):
    B.set_backend("numpy")
    B._state.current = None
    first = B.get_backend()
    B.register("numpy", "pynn.backends.base:Backend")  # drops the cached instance
    assert B.get_backend() is not first and B.get_backend().name == "numpy"


def test_fallback_to_numpy_warns_once(clean_registry):
    B.register("cython", "pynn_no_such_module_xyz:CythonBackend")
    B.register("numba", "pynn_no_such_module_xyz:NumbaBackend")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        be = B.get_backend()
        B.get_backend()
        B.get_backend()
        with B.use_backend("numpy"):
            pass
        B.get_backend()
    assert be.name == "numpy"
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1, [str(w.message) for w in caught]
    assert "numpy" in str(runtime[0].message).lower()


def test_no_warning_when_a_compiled_backend_loads(clean_registry):
    B.register("cython", "pynn_no_such_module_xyz:CythonBackend")
    B.register("numba", "pynn.backends.base:Backend")  # stands in for a working compiled one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        be = B.get_backend()
    assert be is B.get("numba")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_default_prefers_compiled_backends(clean_registry):
    expected = next(n for n in B._PREFERENCE if n in B.available())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert B.get_backend().name == expected


def test_explicit_numpy_env_does_not_warn(clean_registry, monkeypatch):
    monkeypatch.setenv("PYNN_BACKEND", "numpy")
    B.register("cython", "pynn_no_such_module_xyz:CythonBackend")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert B.get_backend().name == "numpy"


@pytest.mark.parametrize("name", B.available())
def test_pynn_backend_env_sets_default(name):
    r = run_python("import pynn; print(pynn.get_backend().name)", PYNN_BACKEND=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


def test_pynn_backend_env_is_only_a_default():
    r = run_python("import pynn; pynn.set_backend('numpy'); print(pynn.get_backend().name)",
                   PYNN_BACKEND=B.available()[-1])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy"


def test_pynn_backend_env_unknown_name_errors():
    r = run_python("import pynn; pynn.get_backend()", PYNN_BACKEND="no_such_backend")
    assert r.returncode != 0
    assert "BackendConfigError" in r.stderr  # a ValueError
    assert "PYNN_BACKEND='no_such_backend'" in r.stderr


# ------------------------------------------------------------------------------------------
# issue 15, rule 10: environment variables with invalid values are named, never ignored
# ------------------------------------------------------------------------------------------
def test_unknown_pynn_backend_names_the_variable_and_the_valid_values(clean_registry,
                                                                      monkeypatch):
    monkeypatch.setenv("PYNN_BACKEND", "nmba")
    with pytest.raises(B.BackendConfigError) as info:
        B.get_backend()
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "PYNN_BACKEND='nmba'" in msg
    for name in B._REGISTRY:
        assert repr(name) in msg


def test_unavailable_pynn_backend_names_the_variable_and_the_reason(clean_registry,
                                                                    monkeypatch):
    B.register("broken", "pynn_no_such_module_xyz:Nope")
    monkeypatch.setenv("PYNN_BACKEND", "broken")
    with pytest.raises(RuntimeError) as info:
        B.get_backend()
    assert "PYNN_BACKEND='broken'" in str(info.value)
    assert "ModuleNotFoundError" in str(info.value)


@pytest.mark.parametrize("call", ["available()", "get_backend()", "get('cython')"])
def test_mistyped_pynn_blas_raises_instead_of_dropping_cython(call):
    if B.why_unavailable("cython") is not None:
        pytest.skip(f"cython backend not built here: {B.why_unavailable('cython')}")
    r = run_python(f"import pynn.backends as B; B.{call}", PYNN_BLAS="scpy")
    assert r.returncode != 0, f"{call} with PYNN_BLAS='scpy' succeeded: {r.stdout}"
    last = r.stderr.strip().splitlines()[-1]
    assert "BackendConfigError" in last and "PYNN_BLAS='scpy'" in last, r.stderr
    assert "'numpy'" in last and "'scipy'" in last


def test_mistyped_pynn_blas_is_the_reason_the_diagnostics_give():
    if B.why_unavailable("cython") is not None:
        pytest.skip(f"cython backend not built here: {B.why_unavailable('cython')}")
    r = run_python("import pynn.backends as B; print(B.why_unavailable('cython')); "
                   "print(B.unavailable()['cython'])", PYNN_BLAS="scpy")
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        assert line.startswith("BackendConfigError: PYNN_BLAS='scpy' is not a BLAS choice")


@pytest.mark.parametrize("value", ["", "numpy", "scipy", " SciPy "])
def test_valid_pynn_blas_values_keep_cython(value):
    if B.why_unavailable("cython") is not None:
        pytest.skip(f"cython backend not built here: {B.why_unavailable('cython')}")
    if value.strip().lower() == "numpy":
        from pynn.backends import _blas
        if _blas.numpy_openblas_entry_points() is None:
            pytest.skip("NumPy is not linked with scipy-openblas64 here")
    r = run_python("import pynn.backends as B; print(B.available(), B.get('cython').name)",
                   PYNN_BLAS=value)
    assert r.returncode == 0, r.stderr
    assert "'cython'" in r.stdout


def test_unavailable_maps_each_missing_backend_to_its_reason(clean_registry):
    B.register("broken", "pynn_no_such_module_xyz:Nope")
    reasons = B.unavailable()
    assert "ModuleNotFoundError" in reasons["broken"]
    assert set(reasons) == set(B._REGISTRY) - set(B.available())
    for name, reason in reasons.items():
        assert reason == B.why_unavailable(name)


def test_import_is_light_and_fast():
    code = ("import sys, time; t = time.perf_counter(); import pynn; "
            "dt = time.perf_counter() - t; "
            "print(dt, 'numba' in sys.modules, 'pynn.backends.numba_backend' in sys.modules)")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    dt, numba_loaded, backend_loaded = r.stdout.split()
    assert numba_loaded == "False", "import pynn imported numba"
    assert backend_loaded == "False"
    assert float(dt) < 2.0, f"import pynn took {dt} s"


def test_required_backends_are_available():
    """A source install compiles the extension and has numba: no silent fallback.

    ``PYNN_REQUIRE_BACKENDS`` (comma-separated) overrides the list, e.g. ``numpy``
    on a machine without a compiler; CI sets it to all three CPU backends.
    """
    import os
    required = os.environ.get("PYNN_REQUIRE_BACKENDS", "numpy,cython,numba")
    for name in filter(None, (n.strip() for n in required.split(","))):
        assert B.why_unavailable(name) is None, (
            f"backend {name!r} is required but unavailable: {B.why_unavailable(name)}")
