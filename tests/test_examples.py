"""The example scripts and ``python -m pynn demo`` run end to end (in subprocesses, --quick)."""
import os
import re
import subprocess
import sys

import pytest
from helpers import PYNN_PATH

from pynn.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
ACCURACY = re.compile(r"^(?:Final|Test)[\w ]*accuracy: (\d+\.\d+)", re.M)


def run(args, cwd, env_extra=None, timeout=300):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["PYTHONPATH"] = PYNN_PATH + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    out = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    matches = ACCURACY.findall(out.stdout)
    assert matches, f"no accuracy printed:\n{out.stdout[-2000:]}"
    accuracy = float(matches[-1])
    assert 0.0 <= accuracy <= 1.0
    return accuracy, out.stdout


# script, minimum accuracy with --quick, plots it must write
QUICK = [
    ("xor_2_4_1.py", 0.0, ["xor_history.png", "xor_decision_boundary.png"]),
    ("binary_classification_2_4_3_1.py", 0.75,
     ["binary_history.png", "binary_decision_boundary.png"]),
    ("quadrants_2_10_1.py", 0.8, ["quadrants_history.png", "quadrants_decision_boundary.png"]),
    ("keras_binary_2_4_1.py", 0.0, ["keras_binary_history.png"]),
    ("mnist_mlp.py", 0.7, ["mnist_history.png", "mnist_sample_42.png",
                           "mnist_confusion_matrix.png"]),
    ("mnist_regularized.py", 0.6, ["mnist_regularized_history.png",
                                   "mnist_regularized_confusion_matrix.png"]),
    # issue 21: custom code, one example per piece
    ("mnist_manual_loop.py", 0.6, []),
    ("subclassed_model.py", 0.7, ["subclassed_mlp.keras"]),
    ("custom_layer.py", 0.9, []),
    ("custom_loss.py", 0.9, []),
    ("custom_metric.py", 0.9, []),
]


@pytest.mark.parametrize("script, minimum, plots", QUICK, ids=[q[0] for q in QUICK])
def test_example_quick(script, minimum, plots, tmp_path):
    outdir = tmp_path / "plots"
    accuracy, stdout = run([os.path.join(EXAMPLES, script), "--quick", "--outdir", str(outdir)],
                           cwd=tmp_path)
    assert accuracy >= minimum, stdout[-2000:]
    for name in plots:
        assert (outdir / name).stat().st_size > 1000, name


def test_example_default_outdir(tmp_path):
    run([os.path.join(EXAMPLES, "xor_2_4_1.py"), "--quick", "--epochs", "10"], cwd=tmp_path)
    assert (tmp_path / "example_output" / "xor_history.png").exists()


def test_demo_quick_on_embedded_data(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    accuracy, stdout = run(["-m", "pynn", "demo", "--quick"], cwd=tmp_path,
                           env_extra={"PYNN_DATA_DIR": str(empty), "HOME": str(tmp_path)})
    assert accuracy >= 0.7
    assert "embedded MNIST test set" in stdout
    assert "   macro avg " in stdout and "weighted avg" in stdout
    assert re.search(r"\(active\)\s+\d+\.\d+ s", stdout)
    if "the active backend is the NumPy reference" not in stdout:
        assert re.search(r"numpy \(reference\)\s+\d+\.\d+ s\s+\(estimated: 1 epoch on 512", stdout)


# --------------------------------------------------------------------------- CLI plumbing
def test_cli_without_command_prints_help(capsys):
    assert main([]) == 1
    assert "demo" in capsys.readouterr().out


def test_demo_argument_errors(tmp_path, capsys):
    assert main(["demo", "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert main(["demo", "--backend", "no-such-backend"]) == 2
    assert "no-such-backend" in capsys.readouterr().err
    assert main(["demo", "--data", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")  # truncated
    assert main(["demo", "--data", str(tmp_path)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_bench_dispatch(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--help"])
    assert info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_bench_missing_module_message(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pynn.bench" else real(name, *a))
    assert main(["bench"]) == 1
    assert "not part of this installation" in capsys.readouterr().err


# --------------------------------------------------------------------------- full runs
# (the tutorials' settings; a few seconds each except the full-MNIST demo)
def test_xor_full_run_solves_xor(tmp_path):
    accuracy, _ = run([os.path.join(EXAMPLES, "xor_2_4_1.py"), "--outdir", str(tmp_path)],
                      cwd=tmp_path)
    assert accuracy == 1.0


def test_binary_classification_full_run(tmp_path):
    accuracy, _ = run([os.path.join(EXAMPLES, "binary_classification_2_4_3_1.py"), "--outdir",
                       str(tmp_path)], cwd=tmp_path)
    assert accuracy >= 0.85


def test_quadrants_full_run(tmp_path):
    accuracy, _ = run([os.path.join(EXAMPLES, "quadrants_2_10_1.py"), "--outdir",
                       str(tmp_path)], cwd=tmp_path)
    assert accuracy >= 0.9


@pytest.mark.slow
def test_demo_one_epoch_on_full_mnist(tmp_path):
    if not os.environ.get("PYNN_DATA_DIR"):
        pytest.skip("PYNN_DATA_DIR not set")
    accuracy, stdout = run(["-m", "pynn", "demo", "--epochs", "1"], cwd=tmp_path, timeout=600)
    assert "full MNIST" in stdout and "60,000 train" in stdout
    assert accuracy >= 0.94
