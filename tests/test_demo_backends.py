"""Issue 15, rule 10: the demo says which backends it found and why any is missing.

Run from a checkout whose Cython extension is not built, ``python -m pynn demo``
used to train on numba without a word; it now names the missing backend, the
reason, and how to get the compiled one.
"""
import os
import shutil
import subprocess
import sys
import threading

import pytest
from helpers import CPU_BACKENDS, PYNN_PATH

import pynn.backends as B
from pynn.__main__ import backend_report, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def restore_default(monkeypatch):
    """``--backend`` sets the process default: restore it (and this thread's choice)."""
    monkeypatch.setattr(B, "_default_name", B._default_name)
    monkeypatch.setattr(B, "_state", threading.local())


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_demo_names_the_active_available_and_missing_backends(name, capsys, restore_default):
    assert main(["demo", "--quick", "--backend", name, "--reference-epochs", "0"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("Backend: "))
    assert line == f"Backend: {name} (available: {', '.join(B.available())})"
    for missing, reason in B.unavailable().items():
        assert f"  {missing} unavailable: {reason}" in out


def test_backend_report_explains_a_missing_extension():
    lines = backend_report("numba", ["numpy", "numba"],
                           {"cython": "ImportError: cannot import name 'dense'"})
    assert lines[0] == "Backend: numba (available: numpy, numba)"
    assert lines[1] == "  cython unavailable: ImportError: cannot import name 'dense'"
    from_tree = os.path.exists(os.path.join(PYNN_PATH, "setup.py"))
    assert any("source tree" in ln and "pip install ." in ln for ln in lines) == from_tree
    assert backend_report("cython", ["numpy", "cython"], {}) == [
        "Backend: cython (available: numpy, cython)"]


def test_demo_from_an_unbuilt_checkout_says_why_cython_is_missing(tmp_path):
    """``python -m pynn demo`` in a checkout without the built extension (what the
    README's command did when run from the checkout root before it used the
    installed ``pynn`` script)."""
    if not os.path.exists(os.path.join(ROOT, "setup.py")):
        pytest.skip("needs the source checkout")
    tree = tmp_path / "checkout"
    shutil.copytree(os.path.join(ROOT, "pynn"), tree / "pynn",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    shutil.copy(os.path.join(ROOT, "setup.py"), tree / "setup.py")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    for name in ("PYTHONPATH", "PYNN_BACKEND", "PYNN_BLAS"):
        env.pop(name, None)
    r = subprocess.run([sys.executable, "-m", "pynn", "demo", "--quick", "--reference-epochs",
                        "0"], cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "  cython unavailable: " in r.stdout
    assert f"pynn was imported from the source tree {tree}" in r.stdout
    assert "pip install ." in r.stdout


def test_demo_reports_a_bad_environment_variable():
    r = subprocess.run([sys.executable, "-m", "pynn", "demo", "--quick"], cwd=PYNN_PATH,
                       env=dict(os.environ, PYNN_BACKEND="nmba"), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("pynn demo: PYNN_BACKEND='nmba' names no backend")
