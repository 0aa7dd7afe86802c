"""Smoke tests of the benchmark tables (pynn.bench) and of examples/drop_in_numpy.py.

They check that everything runs on every available backend and that the JSON report is
complete; they never assert a timing.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import PYNN_PATH

import pynn
import pynn.backends as B
from pynn import bench
from pynn.bench import contestants, pynn_api, tables
from pynn.ops import _OPS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_op_cases_cover_every_op():
    assert sorted({c.op for c in bench.op_cases(batches=(4,), n_params=64)}) == sorted(_OPS)


def test_quick_bench_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    printed = capsys.readouterr().out
    backends = B.available()
    assert report["meta"]["backends"] == backends

    # (a) one row per op case and backend, every one measured
    cases = bench.op_cases(batches=bench.QUICK_BATCHES, n_params=4096)
    for name in backends:
        rows = [r for r in report["ops"] if r["backend"] == name]
        assert len(rows) == len(cases), name
        assert {r["op"] for r in rows} == set(_OPS)
        bad = [(r["op"], r["status"]) for r in rows if r["status"] != "ok"]
        assert not bad, (name, bad)
        assert all(r["median_us"] > 0 for r in rows)
        if name != "numpy":
            assert all(r["speedup_vs_numpy"] > 0 for r in rows)
    assert "## (a) Ops" in printed

    # (b) one dense row per backend and batch, plus the bare-GEMM floor
    for batch in bench.QUICK_BATCHES:
        dense = {r["backend"]: r for r in report["dense"] if r["batch"] == batch}
        assert set(dense) == set(backends) | {"numpy GEMMs only"}
        for name in backends:
            assert dense[name]["status"] == "ok", dense[name]["status"]
            for part in ("forward_us", "backward_us", "step_us"):
                assert dense[name][part] > 0
    assert "## (b) Dense 784->256" in printed

    # (c) training rows per backend, optimizer and batch when pynn.models works
    if bench.models_status() is not None:
        assert "train" not in report
        return
    for opt in ("sgd", "adam"):
        for batch in bench.QUICK_TRAIN_BATCHES:
            rows = {r["contestant"]: r for r in report["train"]
                    if r["optimizer"] == opt and r["batch"] == batch}
            for name in backends:
                row = rows[f"pynn[{name}]"]
                assert row["status"] == "ok", row["status"]
                assert row["median_s"] > 0 and row["n_samples"] == bench.QUICK_SAMPLES
            for peer in ("PyTorch", "NumPy MLP", "scikit-learn"):
                assert rows[peer]["status"] in ("ok", bench.NOT_INSTALLED), rows[peer]
            assert rows["NumPy MLP"]["status"] == "ok"
            assert rows["GEMM floor"]["median_s"] > 0
            # one step of each backend beside the products of the same batch
            steps = {r["contestant"]: r for r in report["train_step"]
                     if r["optimizer"] == opt and r["batch"] == batch}
            assert set(steps) == {f"pynn[{n}]" for n in backends} | {"GEMM floor"}
            assert all(r["status"] == "ok" and r["median_s"] > 0 for r in steps.values())
            assert all(r["rows"] == batch for r in steps.values())
    for pb in bench.QUICK_PREDICT_BATCHES:
        rows = {r["contestant"]: r for r in report["predict"] if r["batch"] == pb}
        for name in backends:
            assert rows[f"pynn[{name}]"]["status"] == "ok"
    assert "## (c) Training" in printed
    assert "One training step beside its matrix products" in printed


def test_step_table_ratios_from_medians():
    rows = [{"optimizer": "sgd", "batch": 32, "contestant": c, "median_s": t}
            for c, t in (("pynn[cython]", 150e-6), ("pynn[numba]", 180e-6),
                         ("GEMM floor", 120e-6))]
    cs = [contestants.Pynn("cython"), contestants.Pynn("numba")]
    table = tables.step_table(rows, ["sgd", "adam"], [32], cs, "GEMM floor")
    lines = table.splitlines()
    assert lines[0].split("|")[3:-1] == [" pynn[cython] ", " pynn[numba] ", " GEMM floor ",
                                         " pynn[cython] / floor ", " pynn[numba] / floor "]
    assert [c.strip() for c in lines[2].split("|")[1:-1]] == [
        "sgd", "32", "150", "180", "120", "1.25x", "1.50x"]
    assert [c.strip() for c in lines[3].split("|")[1:-1]] == [
        "adam", "32", "-", "-", "-", "-", "-"]
    assert tables.step_table([], ["sgd"], [32], cs, "GEMM floor") == ""


def test_bench_rejects_unknown_backend(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--ops", "--backends", "no_such_backend"])
    assert "no_such_backend" in capsys.readouterr().err


def _section(text, title):
    start = text.index(title)
    end = text.find("\n\n", start)
    return text[start:end if end >= 0 else len(text)]


def test_drop_in_example_matches_numpy_on_xor():
    env = dict(os.environ)
    env["PYTHONPATH"] = PYNN_PATH + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "drop_in_numpy.py"),
         "--epochs", "1500", "--samples", "60"],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    xor = _section(proc.stdout, "XOR")
    found = re.findall(r"^\s*(NumPy|pynn\.ops)\s+([\d.]+)%\s+([\d.]+)", xor, re.M)
    rows = {name: (float(acc), float(loss)) for name, acc, loss in found}
    assert set(rows) == {"NumPy", "pynn.ops"}, proc.stdout
    (acc_np, loss_np), (acc_pynn, loss_pynn) = rows["NumPy"], rows["pynn.ops"]
    assert acc_pynn == acc_np == 100.0, xor
    assert abs(loss_pynn - loss_np) < 1e-3, xor
    assert "speed-up of pynn.ops over NumPy" in xor
    assert "Two moons" in proc.stdout


def test_default_backends_leave_out_the_simulated_gpu(monkeypatch):
    class Sim:
        _simulator = True

    class Gpu:
        _simulator = False

    monkeypatch.setattr(B, "get", lambda name: Sim())
    assert bench.default_backends(["numpy", "cython", "cuda"]) == ["numpy", "cython"]
    monkeypatch.setattr(B, "get", lambda name: Gpu())
    assert bench.default_backends(["numpy", "cuda"]) == ["numpy", "cuda"]

    def broken(name):
        raise RuntimeError("no driver")

    monkeypatch.setattr(B, "get", broken)
    assert bench.default_backends(["numpy", "cuda"]) == ["numpy"]


def test_torch_gpu_peer_says_why_it_cannot_run(capsys):
    """Without a GPU the PyTorch-CUDA column is not a default peer; asked for, its rows
    say it is unavailable and why (never a number)."""
    peer = contestants.TorchCuda()
    if peer.status == "ok":
        pytest.skip("a GPU is present: the peer runs")
    assert peer.status in (bench.NOT_INSTALLED, "no GPU") or peer.status.startswith("no GPU")
    assert "torch-cuda" not in bench.default_peers()
    assert bench.main(["--quick", "--train", "--backends", "numpy", "--optimizers", "sgd",
                       "--peers", "torch-cuda"]) == 0
    printed = capsys.readouterr().out
    assert "PyTorch CUDA" in printed
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--train", "--peers", "torch-gpu"])
    assert "torch-gpu" in capsys.readouterr().err


def test_quick_startup_section(tmp_path, capsys):
    """Section (d): import time, cold/warm first epochs in fresh processes, allocations."""
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--startup", "--optimizers", "sgd", "--json",
                       str(path)]) == 0
    report = json.loads(path.read_text())["startup"]
    printed = capsys.readouterr().out
    assert "## (d) Start-up" in printed
    assert len(report["import"]) == 1 and report["import"][0] > 0
    backends = B.available()
    rows = {(r["backend"], r["cache"]): r for r in report["first_epoch"]}
    assert set(rows) == {(b, c) for b in backends for c in ("cold", "warm")}
    for key, row in rows.items():
        assert row["status"] == "ok", (key, row["status"])
        assert row["first_epoch_s"] > 0 and row["second_epoch_s"] > 0
        assert row["compile_s"] == row["first_epoch_s"] - row["second_epoch_s"]
    alloc = {r["backend"]: r for r in report["allocations"]}
    assert set(alloc) == set(backends)
    for name, row in alloc.items():
        assert row["status"] == "ok", (name, row["status"])
        assert row["transient_bytes"] >= 0 and row["held_bytes"] >= 0
    # the NumPy reference composes allocating expressions: the measurement sees them
    assert alloc["numpy"]["transient_bytes"] > 100_000


def test_train_ratios_are_the_quotients_of_the_medians():
    """The ratio table the speed targets are read from: synthetic medians in, the
    quotients out (best backend, speed-up over PyTorch, over the floor, Adam / SGD)."""
    med = {("sgd", 32, "pynn[cython]"): 1.0, ("sgd", 32, "pynn[numba]"): 1.25,
           ("sgd", 32, "PyTorch"): 3.0, ("sgd", 32, "GEMM floor"): 0.8,
           ("adam", 32, "pynn[cython]"): 1.1, ("adam", 32, "pynn[numba]"): 1.0,
           ("adam", 32, "PyTorch"): 4.0, ("adam", 32, "GEMM floor"): 0.8}
    rows = [{"optimizer": o, "batch": b, "contestant": c, "median_s": t}
            for (o, b, c), t in med.items()]
    cs = [contestants.Pynn("cython"), contestants.Pynn("numba")]
    table = tables.train_ratios(rows, ["sgd", "adam"], [32], cs, "GEMM floor")
    lines = [[c.strip() for c in ln.strip("|").split("|")] for ln in table.splitlines()[2:]]
    assert lines[0] == ["sgd", "32", "pynn[cython]", "3.00x", "1.25x", "1.00x", "1.25x",
                        "-", "-"]
    assert lines[1] == ["adam", "32", "pynn[numba]", "4.00x", "1.25x", "1.10x", "1.00x",
                        "1.10x", "0.80x"]


def test_gemm_floor_runs_every_step_of_an_epoch(monkeypatch):
    """The floor contestant does one step of products per batch, the last partial
    batch at its own size."""
    calls = []
    monkeypatch.setattr(contestants, "mlp_gemm_floor",
                        lambda n, seed=0: (lambda: calls.append(n)))
    floor = contestants.GemmFloor()
    floor.build("sgd", 32, seed=0)
    floor.epoch(np.zeros((100, 2)), None)
    assert calls == [32, 32, 32, 4]


def test_train_one_step_is_the_step_train_on_batch_takes(backend_name):
    """pynn_api.train_one_step on a gathered batch moves the weights exactly as
    ``train_on_batch`` does on the same batch."""
    rng = np.random.default_rng(1)
    x = rng.random((40, 6), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    weights = []
    with B.use_backend(backend_name) as be:
        for take_step in (pynn_api.train_one_step, lambda m, xb, yb: m.train_on_batch(xb, yb)):
            model = bench.tutorial_model("adam", arch=(6, 5, 3), seed=3)
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
            before = [np.array(w, copy=True) for w in model.get_weights()]
            take_step(model, be.asarray(x[:8], np.float32), y[:8])
            weights.append(model.get_weights())
    for w0, w_api, w_public in zip(before, *weights):
        assert not np.array_equal(w0, w_api)
        np.testing.assert_array_equal(w_api, w_public)


def test_uses_fused_step_says_which_step_the_model_takes(backend_name):
    """The tutorial Dense stack takes the fused step; a Dropout layer in it does not."""
    x = np.zeros((4, 6), np.float32)
    with B.use_backend(backend_name):
        model = bench.tutorial_model("sgd", arch=(6, 5, 3))
        assert pynn_api.uses_fused_step(model, x) is True
        with_dropout = pynn.Sequential([pynn.layers.Input(shape=(6,)),
                                        pynn.layers.Dense(5, activation="relu"),
                                        pynn.layers.Dropout(0.5),
                                        pynn.layers.Dense(3, activation="softmax")])
        with_dropout.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        assert pynn_api.uses_fused_step(with_dropout, x) is False


def test_bench_uses_only_the_public_api():
    """The benchmark package reads no private attribute of anything but its own objects
    (``self``), by ``x._name`` or ``getattr(x, "_name")``; the one exception is a
    backend probe (whether CUDA is simulated)."""
    import ast
    import pathlib

    allowed = {("environment.py", "getattr(_backends.get('cuda'), '_simulator', False)")}
    found = set()
    for path in pathlib.Path(bench.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
                found.add((path.name, ast.unparse(node)))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant)
                    and str(node.args[1].value).startswith("_")):
                found.add((path.name, ast.unparse(node)))
    assert found == allowed
