"""Data-parallel training over MPI (pynn.distribution): the scripts in tests/mpi/ run
under ``mpiexec -n 2`` and ``-n 3`` (uneven shards) on loopback, each launch with a
timeout, and their results are compared here with one process running the same code
(tests/mpi/common.py): the tutorial MLP, a functional model and a synchronized
BatchNormalization (whose per-rank statistics would differ from one process's by ~1e-2,
far outside the tolerance)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import pynn
from pynn.distribution import distribution_lib

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "mpi")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pynn.__file__)))
sys.path.insert(0, SCRIPTS)
import common  # noqa: E402


def _mpiexec():
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.access(local, os.X_OK) else shutil.which("mpiexec")


def _have_mpi4py():
    try:
        import importlib.util
        return importlib.util.find_spec("mpi4py") is not None
    except ImportError:
        return False


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not _have_mpi4py(),
    reason="needs mpi4py and an mpiexec (pip install 'pynn[mpi]': mpi4py + the mpich wheel)")


def launch(n, script, *args, timeout=180, env=None):
    """``mpiexec -n n python tests/mpi/script args``: (returncode, output, seconds)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_"))}
    e.update(PYTHONPATH=ROOT + os.pathsep + e.get("PYTHONPATH", ""),
             OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    e.update(env or {})
    start = time.monotonic()
    proc = subprocess.run([MPIEXEC, "-n", str(n), sys.executable,
                           os.path.join(SCRIPTS, script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=e)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def load(path):
    z = np.load(path)
    weights = [z[f"arr_{i}"] for i in range(len([k for k in z.files if k.startswith("arr_")]))]
    return weights, json.loads(str(z["history"])), z["evaluate"], z["predict"]


# ---------------------------------------------------------------------------------------
# one process: nothing changes, nothing is imported
# ---------------------------------------------------------------------------------------
def test_single_process_imports_no_mpi_and_changes_nothing():
    code = ("import sys, pynn\n"
            "assert 'mpi4py' not in sys.modules\n"
            "assert pynn.distribution.initialize() == 1\n"
            "assert 'mpi4py' not in sys.modules\n"
            "assert (pynn.distribution.num_processes(), pynn.distribution.process_id()) "
            "== (1, 0)\n"
            "assert pynn.distribution.is_writer()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_"))}
    env["PYTHONPATH"] = ROOT
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_data_parallel_in_one_process_is_the_plain_run():
    ref_model, ref_hist = common.train("mlp", epochs=1)
    dp = pynn.distribution.DataParallel()
    pynn.distribution.set_distribution(dp)
    try:
        assert pynn.distribution.distribution() is dp
        assert distribution_lib.active() is None  # one process: the fused step stays
        model, hist = common.train("mlp", epochs=1)
    finally:
        pynn.distribution.set_distribution(None)
    assert hist == ref_hist
    for a, b in zip(model.get_weights(), ref_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="set_distribution"):
        pynn.distribution.set_distribution("data")
    with pytest.raises(ValueError, match="auto_shard_dataset"):
        pynn.distribution.DataParallel(auto_shard_dataset=1)
    with pytest.raises(ValueError, match="num_processes=2"):
        pynn.distribution.initialize(num_processes=2)
    with pytest.raises(ValueError, match="job_addresses"):
        pynn.distribution.initialize(job_addresses="a:1,b:1")
    with pytest.raises(ValueError, match=r"devices \['cpu:0', 'cpu:1'\].*\['cpu:0'\]"):
        pynn.distribution.DataParallel(devices=["cpu:0", "cpu:1"])
    with pytest.raises(ValueError, match="1-D mesh"):
        pynn.distribution.DataParallel(
            device_mesh=pynn.distribution.DeviceMesh((1, 1), ["batch", "model"]))
    with pytest.raises(ValueError, match="holds 2 devices"):
        pynn.distribution.DeviceMesh((2,), ["batch"], ["cpu:0"])
    with pytest.raises(ValueError, match="device_type='gpu'"):
        pynn.distribution.list_devices("gpu")


def test_keras_device_arguments_name_every_process():
    # the keras-io distribution guide's spelling, in one process
    devices = pynn.distribution.list_devices()
    assert devices == ["cpu:0"]
    mesh = pynn.distribution.DeviceMesh((len(devices),), ["batch"], devices)
    for dp in (pynn.distribution.DataParallel(devices=devices),
               pynn.distribution.DataParallel(device_mesh=mesh)):
        assert dp.num_processes == 1


def test_bounds_split_uneven_batches_like_array_split():
    dp = pynn.distribution.DataParallel()
    for n, rows in ((3, 22), (3, 32), (2, 7), (3, 2)):
        parts = []
        for r in range(n):
            dp_rank = type("R", (), {"num_processes": n, "process_id": r})()
            parts.append(pynn.distribution.DataParallel.bounds(dp_rank, rows))
        expect = np.array_split(np.arange(rows), n)
        assert [list(range(a, b)) for a, b in parts] == [list(e) for e in expect]
    assert dp.bounds(5) == (0, 5)


# ---------------------------------------------------------------------------------------
# N ranks against one process
# ---------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_ranks_train_like_one_process(tmp_path, n):
    kinds = ["mlp", "functional", "bn"]  # bn: BatchNormalization(synchronized=True)
    rc, out, _ = launch(n, "train.py", tmp_path, *kinds)
    assert rc == 0, out
    for kind in kinds:
        ranks = [load(tmp_path / f"{kind}_rank{r}.npz") for r in range(n)]
        ref_model, ref_hist = common.train(kind)
        x, y = common.data()
        ref_eval = ref_model.evaluate(x, y, batch_size=common.BATCH, verbose=0)
        ref_pred = ref_model.predict(x, batch_size=common.BATCH, verbose=0)
        w0, h0, e0, p0 = ranks[0]
        for w, h, e, p in ranks[1:]:  # every rank bit-identical, same History
            for a, b in zip(w, w0):
                np.testing.assert_array_equal(a, b)
            assert h == h0
            np.testing.assert_array_equal(e, e0)
            np.testing.assert_array_equal(p, p0)
        # 20 steps of Adam: the same weights as one process up to float32 summation order
        assert len(h0["loss"]) == common.EPOCHS and set(h0) == set(ref_hist)
        for a, b in zip(w0, ref_model.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
        if kind == "mlp":  # the plateau callback acted, alike on every rank
            assert min(h0["learning_rate"]) < max(h0["learning_rate"]), h0
        for key, values in ref_hist.items():
            np.testing.assert_allclose(h0[key], values, rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(e0, ref_eval, rtol=1e-5)
        np.testing.assert_allclose(p0, ref_pred, rtol=1e-4, atol=1e-6)
    # only rank 0 wrote its CSV log and its checkpoint
    written = sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".npz")
    assert written == sorted(f"{k}_{f}" for k in kinds
                             for f in ("log_rank0.csv", "rank0.keras")), written


@needs_mpi
def test_checkpoint_of_two_ranks_resumes_on_three(tmp_path):
    rc, out, _ = launch(2, "resume.py", tmp_path, "first")
    assert rc == 0, out
    rc, out, _ = launch(3, "resume.py", tmp_path, "second")
    assert rc == 0, out
    ref_dir = tmp_path / "one"
    ref_dir.mkdir()
    path = str(ref_dir / "ckpt.keras")
    common.train("mlp", [pynn.callbacks.ModelCheckpoint(path)], epochs=2, shuffle=False)
    model, _ = common.train("mlp", epochs=4, shuffle=False,
                            model=pynn.models.load_model(path), initial_epoch=2)
    ranks = [np.load(tmp_path / f"resumed_rank{r}.npz") for r in range(3)]
    for i, ref in enumerate(model.get_weights()):
        for z in ranks:
            np.testing.assert_array_equal(z[f"arr_{i}"], ranks[0][f"arr_{i}"])
        np.testing.assert_allclose(ranks[0][f"arr_{i}"], ref, rtol=1e-4, atol=2e-5)


# ---------------------------------------------------------------------------------------
# faults: never a hang
# ---------------------------------------------------------------------------------------
@needs_mpi
def test_raising_rank_ends_every_rank_with_its_error():
    rc, out, seconds = launch(2, "faults.py", "raise", timeout=120)
    assert rc != 0
    assert "finished without the failure" not in out
    assert "RuntimeError: injected failure on rank 1" in out
    assert "rank 1 of 2" in out


@needs_mpi
def test_killed_rank_ends_the_job():
    rc, out, seconds = launch(2, "faults.py", "kill", timeout=120)
    assert rc != 0
    assert "finished without the failure" not in out


@needs_mpi
def test_hanging_rank_times_out_with_a_clear_error():
    rc, out, seconds = launch(2, "faults.py", "hang", timeout=120,
                              env={"PYNN_MPI_TIMEOUT": "2"})
    assert rc != 0
    assert "rank 0 of 2" in out and "PYNN_MPI_TIMEOUT=2.0" in out, (rc, out)
    assert "finished without the failure" not in out


# ---------------------------------------------------------------------------------------
# the benchmark (python -m pynn bench --mpi)
# ---------------------------------------------------------------------------------------
def test_scaling_estimate_is_the_ring_model():
    from pynn.bench.mpi_section import fit_allreduce, scaling_estimate
    rows = [{"bytes": 4096, "seconds": 20e-6}, {"bytes": 4096 * 1024, "seconds": 2.02e-3}]
    a, b = fit_allreduce(rows)
    assert a == 20e-6 and b == pytest.approx(4096 * 1024 / 2e-3)
    (n, comm, batch), = scaling_estimate(a, b, 1000, 1e-5, nodes=(4,))
    # gradients: 2*3 latencies + 2*3/4 of 4000 bytes; statistics: 2*3 latencies
    expect = 6 * 10e-6 + 1.5 * 4000 / b + 6 * 10e-6
    assert (n, comm) == (4, pytest.approx(expect))
    assert batch == int(np.ceil(9 * 4 * expect / 1e-5))  # comm = 10% of the step there


@needs_mpi
def test_bench_mpi_runs(capsys):
    from pynn.bench.mpi_section import run_mpi
    result = run_mpi(models=("mlp",), mlp_batches=(16,), steps=2, repeats=1, rounds=1,
                     timeout=180)
    out = capsys.readouterr().out
    assert "2 ranks x 1 thr" in out and "Scaling estimate, mlp" in out
    (row,) = result["steps"]
    assert row["gradient_floats"] == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert 0 < row["gradient_comm_s"] <= row["comm_s"] < row["two_ranks_s"]
    assert [r["floats"] for r in result["allreduce"]][0] == 1024


@needs_mpi
def test_train_on_batch_broadcasts_rank_0_first(tmp_path):
    rc, out, _ = launch(2, "on_batch.py", tmp_path)
    assert rc == 0, out
    model = common.build("mlp", seed=0)
    x, y = common.data()
    losses = [model.train_on_batch(x[s * 16:(s + 1) * 16], y[s * 16:(s + 1) * 16])
              for s in range(3)]
    ranks = [np.load(tmp_path / f"on_batch_rank{r}.npz", allow_pickle=True) for r in (0, 1)]
    for i, ref in enumerate(model.get_weights()):
        np.testing.assert_array_equal(ranks[1][f"arr_{i}"], ranks[0][f"arr_{i}"])
        np.testing.assert_allclose(ranks[0][f"arr_{i}"], ref, rtol=1e-4, atol=2e-5)
    for z in ranks:  # each call's logs are the global batch's
        np.testing.assert_allclose(np.array(z["losses"].tolist(), dtype=float),
                                   np.array(losses, dtype=float), rtol=1e-5)


def test_file_writers_and_progress_bar_run_on_rank_0_only(tmp_path, monkeypatch):
    """The one place that decides: CallbackList leaves out every rank_zero_only callback
    on a rank other than 0, and keeps the others (they must decide alike everywhere)."""
    import importlib.util

    from pynn import callbacks as cbm
    # TensorBoard needs tensorboardX (pynn's tensorboard extra, not the test extra)
    board = importlib.util.find_spec("tensorboardX") is not None
    assert cbm.TensorBoard.rank_zero_only

    def made():
        return [cbm.CSVLogger(str(tmp_path / "log.csv")),
                cbm.ModelCheckpoint(str(tmp_path / "m.keras"))] + (
            [cbm.TensorBoard(str(tmp_path / "tb"))] if board else []) + [
                cbm.BackupAndRestore(str(tmp_path / "backup")),
                cbm.EarlyStopping(), cbm.ReduceLROnPlateau()]
    fake = type("Comm", (), {"rank": 1, "size": 2})()
    monkeypatch.setattr(distribution_lib, "_COMMUNICATOR", fake)
    kept = cbm.CallbackList(made(), add_history=True, add_progbar=True)
    assert [type(c).__name__ for c in kept] == ["EarlyStopping", "ReduceLROnPlateau",
                                                "History"]
    fake.rank = 0
    kept = cbm.CallbackList(made(), add_history=True, add_progbar=True)
    assert len(list(kept)) == 7 + board and kept._progbar is not None


@needs_mpi
def test_backup_of_an_aborted_job_resumes_on_another_rank_count(tmp_path):
    rc, out, _ = launch(2, "backup.py", tmp_path, "crash")
    assert rc != 0 and "crash after the backup of epoch 2" in out
    assert not list(tmp_path.glob("backup_rank*.npz"))
    rc, out, _ = launch(3, "backup.py", tmp_path, "resume")
    assert rc == 0, out
    ref, _ = common.train("mlp", shuffle=False)  # the uninterrupted run
    ranks = [np.load(tmp_path / f"backup_rank{r}.npz") for r in range(3)]
    for z in ranks:
        assert list(z["epochs"]) == [2, 3]  # every rank resumed at epoch 3 (0-based 2)
    for i, w in enumerate(ref.get_weights()):
        for z in ranks:
            np.testing.assert_array_equal(z[f"arr_{i}"], ranks[0][f"arr_{i}"])
        np.testing.assert_allclose(ranks[0][f"arr_{i}"], w, rtol=1e-4, atol=2e-5)


@needs_mpi
def test_each_rank_its_own_data_without_auto_sharding(tmp_path):
    rc, out, _ = launch(2, "own_data.py", tmp_path)
    assert rc == 0, out
    x, y = common.data()
    # one process sees, per step, rank 0's 15 rows then rank 1's 15 rows
    order = np.concatenate([np.r_[15 * i:15 * i + 15, 90 + 15 * i:90 + 15 * i + 15]
                            for i in range(6)])
    model = common.build("mlp")
    ref = model.fit(x[order], y[order], batch_size=30, epochs=2, shuffle=False, verbose=0)
    ranks = [np.load(tmp_path / f"own_rank{r}.npz") for r in (0, 1)]
    hists = [json.loads(str(z["history"])) for z in ranks]
    assert hists[0] == hists[1]
    for key, values in ref.history.items():
        np.testing.assert_allclose(hists[0][key], values, rtol=1e-5, err_msg=key)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(ranks[0][f"arr_{i}"], ranks[1][f"arr_{i}"])
        np.testing.assert_allclose(ranks[0][f"arr_{i}"], w, rtol=1e-4, atol=2e-5)


@needs_mpi
def test_masked_outputs_are_refused_on_every_rank():
    rc, out, _ = launch(2, "masked.py", timeout=120)
    assert rc != 0, out
    assert "trained a masked output" not in out
    assert "carry a mask" in out and "not supported" in out, out
