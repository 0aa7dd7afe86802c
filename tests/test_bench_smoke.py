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
from pynn.bench import cnn_contestants as contestants_cnn
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
    # the MLP on every backend, the convnet on the compiled ones (numpy is not named)
    runs = ({("mlp", b) for b in backends}
            | {("cnn", b) for b in backends if b != "numpy"})
    rows = {(r["network"], r["backend"], r["cache"]): r for r in report["first_epoch"]}
    assert set(rows) == {(n, b, c) for n, b in runs for c in ("cold", "warm")}
    for key, row in rows.items():
        assert row["status"] == "ok", (key, row["status"])
        assert row["first_epoch_s"] > 0 and row["second_epoch_s"] > 0
        assert row["compile_s"] == row["first_epoch_s"] - row["second_epoch_s"]
    assert {r["optimizer"] for r in report["first_epoch"] if r["network"] == "cnn"} <= {
        "adam"}
    alloc = {(r["network"], r["backend"]): r for r in report["allocations"]}
    assert set(alloc) == runs
    for key, row in alloc.items():
        assert row["status"] == "ok", (key, row["status"])
        assert row["transient_bytes"] >= 0 and row["held_bytes"] >= 0
    # the NumPy reference composes allocating expressions: the measurement sees them
    assert alloc[("mlp", "numpy")]["transient_bytes"] > 100_000


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


# --- the convnet table (--cnn) ------------------------------------------------------

def test_quick_cnn_json(tmp_path, capsys):
    """--cnn --quick alone: the convnet rows of every compiled backend, PyTorch in both
    layouts and the products floor, predict rows, and none of the default tables."""
    path = tmp_path / "bench.json"
    assert bench.main(["--cnn", "--quick", "--peers", "torch", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    printed = capsys.readouterr().out
    assert set(report) == {"meta", "cnn"}
    cnn = report["cnn"]
    assert cnn["optimizer"] == "adam" and cnn["flops_per_sample"] > 0
    compiled = [b for b in B.available() if b != "numpy"]
    torch_names = ("PyTorch NCHW", "PyTorch channels-last")
    rows = {r["contestant"]: r for r in cnn["epochs"]}
    assert set(rows) == {f"pynn[{b}]" for b in compiled} | set(torch_names) | {
        "products only"}
    for r in rows.values():
        assert r["batch"] == bench.QUICK_CNN_BATCHES[0]
        assert r["n_samples"] == bench.QUICK_CNN_SAMPLES
        assert r["steps"] == -(-bench.QUICK_CNN_SAMPLES // r["batch"])
    torch_ok = rows["PyTorch NCHW"]["status"] == "ok"
    for name in torch_names:
        assert rows[name]["status"] == ("ok" if torch_ok else bench.NOT_INSTALLED)
    floor = rows["products only"]
    assert floor["status"] == "ok" and floor["median_s"] > 0
    for b in compiled:
        r = rows[f"pynn[{b}]"]
        assert r["status"] == "ok", r["status"]
        assert r["median_s"] > 0 and r["gflop_per_s"] > 0
        assert r["vs_floor"] == r["median_s"] / floor["median_s"]
        if torch_ok:
            assert r["vs_torch_nchw"] == rows["PyTorch NCHW"]["median_s"] / r["median_s"]
    assert floor["vs_floor"] is None
    pred = {r["contestant"]: r for r in cnn["predict"]}
    assert set(pred) == {f"pynn[{b}]" for b in compiled} | set(torch_names)
    for name, r in pred.items():
        if name.startswith("pynn") or torch_ok:
            assert r["status"] == "ok", (name, r["status"])
            assert r["batch"] == bench.QUICK_CNN_PREDICT_BATCH
            assert r["images_per_s"] == r["batch"] / r["median_s"]
    assert "## (e) Convnet" in printed and "images per second" in printed
    assert "Keras" not in printed  # not asked for


def test_cnn_names_numpy_only_when_asked_and_says_keras_is_missing(tmp_path, monkeypatch,
                                                                   capsys):
    """--backends numpy runs the reference; a missing Keras is a 'not installed' row."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "keras" else find_spec(name, *a))
    path = tmp_path / "bench.json"
    assert bench.main(["--cnn", "--quick", "--backends", "numpy", "--peers", "keras",
                       "--samples", "32", "--json", str(path)]) == 0
    assert "| Keras 3 (torch) | not installed |" in capsys.readouterr().out
    rows = {r["contestant"]: r for r in json.loads(path.read_text())["cnn"]["epochs"]}
    assert set(rows) == {"pynn[numpy]", "Keras 3 (torch)", "products only"}
    assert rows["pynn[numpy]"]["status"] == "ok"
    assert rows["Keras 3 (torch)"]["status"] == bench.NOT_INSTALLED
    assert rows["Keras 3 (torch)"]["median_s"] is None


def test_keras_contestant_trains_in_its_own_process():
    """The Keras peer (torch backend, own process) trains and times epochs on the first
    rows of its data; it refuses more rows than it holds, and ends its process."""
    from pynn.bench.cnn_contestants import KerasCNN
    peer = KerasCNN(n_samples=64, threads=1)
    try:
        if peer.status == bench.NOT_INSTALLED:
            pytest.skip("keras or torch is not installed")
        assert peer.status == "ok", peer.status
        x, y = bench.cnn_data(64)
        peer.build("adam", 32, seed=0)
        peer.epoch(x[:32], y[:32])
        peer.epoch(x, y)
        with pytest.raises(ValueError, match="holds 64 samples"):
            peer.epoch(np.zeros((65,) + x.shape[1:], np.float32), np.zeros(65))
        proc = peer.proc
    finally:
        peer.close()
    assert proc.returncode == 0 and peer.proc is None


def test_cnn_gemms_are_the_networks_products():
    """The floor's products follow the pynn model's layer shapes, and their work is
    the issue's count: 14.26 MFLOP per sample (forward 4.88, weight gradients 4.88,
    input gradients 4.49)."""
    from pynn.bench.cnn import cnn_gemm_shapes, cnn_layer_shapes
    model = bench.cnn_model()
    convs = [la for la in model.layers if type(la).__name__ == "Conv2D"]
    dense = [la for la in model.layers if type(la).__name__ == "Dense"]
    shapes = cnn_layer_shapes()
    assert [s[4] for s in shapes] == [la.output_shape[-1] for la in convs + dense]
    assert [s[3] for s in shapes] == [la.input_shape[-1] for la in convs + dense]
    by_name = {name: (m, k, n) for name, m, k, n in cnn_gemm_shapes(8)}
    assert by_name["conv1 forward"] == (8 * 26 * 26, 9, 32)
    assert by_name["conv2 weight gradient"] == (288, 8 * 11 * 11, 64)
    assert by_name["conv2 input gradient"] == (8 * 11 * 11, 64, 288)
    assert "conv1 input gradient" not in by_name
    assert by_name["dense forward"] == (8, 1600, 10)

    def mflop(kind):
        return sum(2 * m * k * n for name, m, k, n in cnn_gemm_shapes(1)
                   if name.endswith(kind)) / 1e6
    assert (round(mflop("forward"), 2), round(mflop("weight gradient"), 2),
            round(mflop("input gradient"), 2)) == (4.88, 4.88, 4.49)
    assert round(bench.cnn_flops_per_sample() / 1e6, 2) == 14.26


def test_cnn_gemm_floor_computes_its_products(monkeypatch):
    """One floor step makes each product of cnn_gemm_shapes once, into the
    preallocated outputs, with the operand shapes stated."""
    from pynn.bench import cnn
    calls = []
    matmul = np.matmul
    monkeypatch.setattr(cnn.np, "matmul",
                        lambda a, b, out: calls.append((a.shape, b.shape, out)) or
                        matmul(a, b, out=out))
    step = cnn.cnn_gemm_floor(2)
    step()
    step()
    shapes = cnn.cnn_gemm_shapes(2)
    assert [(a, b) for a, b, _ in calls] == [((m, k), (k, n)) for _, m, k, n in shapes] * 2
    n = len(shapes)
    assert all(calls[i][2] is calls[i + n][2] for i in range(n))


def test_cnn_ratios_and_table_from_medians():
    """The ratios of the --cnn table: PyTorch NCHW's median over each row's, and a
    pynn row's median over the products floor's, from synthetic medians."""
    from pynn.bench.cnn_section import add_epoch_ratios
    med = {"pynn[cython]": 2.0, "PyTorch NCHW": 6.0, "PyTorch channels-last": 5.0,
           "products only": 1.6}
    rows = [{"batch": 32, "contestant": c, "backend": "cython" if "pynn" in c else None,
             "status": "ok", "median_s": t, "n_samples": 1000} for c, t in med.items()]
    rows.append({"batch": 32, "contestant": "Keras 3 (torch)", "backend": None,
                 "status": bench.NOT_INSTALLED, "median_s": None, "n_samples": 1000})
    add_epoch_ratios(rows, flops_per_sample=2e6)
    by = {r["contestant"]: r for r in rows}
    assert by["pynn[cython]"]["vs_torch_nchw"] == 3.0
    assert by["pynn[cython]"]["vs_floor"] == 1.25
    assert by["pynn[cython]"]["gflop_per_s"] == 1.0
    assert by["PyTorch channels-last"]["vs_torch_nchw"] == 1.2
    assert by["PyTorch channels-last"]["vs_floor"] is None
    assert by["Keras 3 (torch)"]["vs_torch_nchw"] is None
    table = tables.cnn_epoch_table(rows, [32], list(by), ["pynn[cython]"],
                                   "PyTorch NCHW", "products only")
    lines = [[c.strip() for c in ln.strip("|").split("|")] for ln in table.splitlines()]
    assert lines[0] == ["contestant", "batch 32 (s)", "PyTorch NCHW / X, batch 32",
                        "X / products only, batch 32"]
    assert lines[2] == ["pynn[cython]", "2.000", "3.00x", "1.25x"]
    assert lines[3] == ["PyTorch NCHW", "6.000", "1.00x", "-"]
    assert lines[6] == ["Keras 3 (torch)", "not installed", "-", "-"]


def test_torch_cnn_layouts_are_one_network():
    """PyTorch's NCHW and channels-last contestants build the same network from the
    same seed: the same predictions."""
    peers = [contestants_cnn.TorchCNN(1), contestants_cnn.TorchCNN(1, channels_last=True)]
    if peers[0].status != "ok":
        pytest.skip("torch is not installed")
    x, y = bench.cnn_data(16)
    out = []
    for peer in peers:
        peer.build("adam", 8, seed=0)
        out.append(peer.predict(x))
    assert out[0].shape == (16, 10)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-4, atol=1e-6)


# --- the recurrent table (--rnn) ----------------------------------------------------

def test_quick_rnn_json(tmp_path, capsys):
    """--rnn --quick alone: per cell the epoch rows of every compiled backend, PyTorch
    and the products floor (epochs extrapolated from the timed batches), and the
    layer-step rows beside their products."""
    path = tmp_path / "bench.json"
    assert bench.main(["--rnn", "--quick", "--peers", "torch", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    printed = capsys.readouterr().out
    assert set(report) == {"meta", "rnn"}
    rnn = report["rnn"]
    compiled = [b for b in B.available() if b != "numpy"]
    batch = bench.QUICK_RNN_BATCHES[0]
    for cell in ("lstm", "gru"):
        rows = {r["contestant"]: r for r in rnn["epochs"] if r["cell"] == cell}
        assert set(rows) == {f"pynn[{b}]" for b in compiled} | {"PyTorch", "products only"}
        floor = rows["products only"]
        assert floor["status"] == "ok" and floor["epoch_s"] > 0
        torch_ok = rows["PyTorch"]["status"] == "ok"
        for name, r in rows.items():
            assert r["batch"] == batch
            assert r["timed_samples"] == batch * bench.QUICK_RNN_TIMED_STEPS
            if r["status"] == "ok":
                assert r["epoch_s"] == pytest.approx(
                    r["median_s"] * rnn["samples_per_epoch"] / r["timed_samples"])
        for b in compiled:
            r = rows[f"pynn[{b}]"]
            assert r["status"] == "ok", r["status"]
            assert r["vs_floor"] == r["epoch_s"] / floor["epoch_s"]
            if torch_ok:
                assert r["vs_torch"] == rows["PyTorch"]["epoch_s"] / r["epoch_s"]
        steps = {r["backend"]: r for r in rnn["layer_steps"] if r["cell"] == cell}
        assert set(steps) == set(compiled)
        for r in steps.values():
            assert r["status"] == "ok" and r["step_s"] > 0 and r["products_s"] > 0
            assert r["vs_products"] == r["step_s"] / r["products_s"]
    assert "## (f) Recurrent" in printed and "step / products" in printed
    assert "Keras" not in printed  # not asked for


def test_rnn_cells_option(tmp_path):
    """--rnn-cells runs only the cells named; an unknown one is refused by name."""
    path = tmp_path / "bench.json"
    assert bench.main(["--rnn", "--quick", "--no-peers", "--backends", "numpy",
                       "--rnn-cells", "gru", "--json", str(path)]) == 0
    rnn = json.loads(path.read_text())["rnn"]
    assert {r["cell"] for r in rnn["epochs"]} == {"gru"}
    assert {r["cell"] for r in rnn["layer_steps"]} == {"gru"}
    with pytest.raises(SystemExit):
        bench.main(["--rnn", "--rnn-cells", "lstm,rnn"])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_floor_runs_the_layers_products(cell):
    """The floor's products are the classifier's: the kernel shapes of its recurrent
    layers, and rnn_products computes the weight gradients the backward kernel would
    (x.T @ dgates over the kernel's columns) rather than timing nothing."""
    pytest.importorskip("pynn._ext.sequence")
    from pynn.bench.pynn_api import rnn_products_kernel
    from pynn.bench.rnn import RNN_CELLS, rnn_flops_per_sample, rnn_layer_flops
    model = bench.rnn_model(cell)
    rnns = [w for w in model.get_weights() if w.ndim == 2 and w.shape[0] in (64, 128)
            and w.shape[1] == RNN_CELLS[cell] * 64]
    assert len(rnns) == 8  # four directions: kernel (128, G) and recurrent kernel (64, G)
    assert rnn_flops_per_sample(cell, 200) == 4 * rnn_layer_flops(cell, 1, 200)
    rng = np.random.default_rng(0)
    n, t, d, u = 3, 5, 4, 2
    g = RNN_CELLS[cell] * u
    f = np.float32
    x, kern, rk = (rng.standard_normal(s).astype(f) for s in ((n, t, d), (d, g), (u, g)))
    hprev = rng.standard_normal((n, t, u)).astype(f)
    gates = np.zeros((n, t, 4 * u), f)
    dgates = rng.standard_normal((n, t, 4 * u)).astype(f)
    dx, dk, drk = np.zeros((n, t, d), f), np.zeros((d, g), f), np.zeros((u, g), f)
    rnn_products_kernel()({"lstm": 1, "gru": 2}[cell], True, x, kern, rk, hprev, gates,
                          dgates, dx, True, dk, drk, np.zeros(n * (g + 3 * u) + g * u, f), True,
                          True)
    cols = np.r_[0:2 * u, 3 * u:4 * u] if cell == "gru" else np.arange(g)
    dg = dgates.reshape(n * t, 4 * u)
    # the state (scratch) is zero, so the gates hold the input projection alone
    np.testing.assert_allclose(gates.reshape(n * t, -1)[:, :g], x.reshape(n * t, d) @ kern,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dk, x.reshape(n * t, d).T @ dg[:, cols], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx.reshape(n * t, d), dg[:, cols] @ kern.T, rtol=1e-5,
                               atol=1e-5)


def test_startup_rnn_rows(capsys):
    """--startup with --rnn: the LSTM classifier's first/second epoch in fresh
    processes (cold and warm Numba cache) and its warm-step allocations."""
    pytest.importorskip("pynn._ext.sequence")
    from pynn.bench.startup import run_startup
    res = run_startup([], ["adam"], 1, True, rnn_backends=["cython"])
    rows = res["first_epoch"]
    assert [(r["network"], r["backend"], r["cache"]) for r in rows] == [
        ("rnn", "cython", "cold"), ("rnn", "cython", "warm")]
    assert all(r["status"] == "ok" and r["first_epoch_s"] > 0 for r in rows), rows
    (alloc,) = res["allocations"]
    assert alloc["network"] == "rnn" and alloc["status"] == "ok", alloc
    assert "LSTM classifier" in capsys.readouterr().out
