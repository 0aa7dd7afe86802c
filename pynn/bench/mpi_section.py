"""The ``--mpi`` table (h): data-parallel training on this machine's loopback.

Runs :mod:`pynn.bench.mpi_worker` as ``mpiexec -n 2`` with one BLAS thread per rank and
as one process with two threads, alternately (``rounds`` times each, medians), then
prints:

* the ``Allreduce`` latency and bandwidth of float32 buffers of 1k..4M values, and the
  constants of ``t(bytes) = a + bytes / b`` (:func:`fit_allreduce`);
* per model and global batch: the step time of 1 process x 2 threads and of 2 ranks x 1
  thread (and of 1 process x 1 thread, for reference; the speed-up is against 2
  threads), and the share of the 2-rank step spent in its collectives (waiting for the
  other rank included) and in the gradient allreduce alone;
* the scaling estimate for N machines: a ring allreduce costs
  ``2 (N-1) alpha + 2 (N-1)/N * bytes / beta`` (alpha = a / 2 and beta = b from the
  2-rank fit: a 2-rank ring is ``2 alpha + bytes / beta``), plus one latency-bound
  statistics allreduce; a machine computes its ``B/N`` rows at the per-sample time of one
  process (the faster of 1 and 2 threads) at the largest batch measured. Communication
  stays under 10% of a step when ``B >= 9 N T_comm(N) / t_sample``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from .environment import child_env
from .tables import md_table

__all__ = ["run_mpi", "mpiexec_path", "scaling_estimate"]

#: machines of the scaling estimate
SCALING_NODES = (2, 4, 8, 16, 64)


def mpiexec_path():
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.access(local, os.X_OK) else shutil.which("mpiexec")


def _threads_env(n):
    return {k: str(n) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                "NUMBA_NUM_THREADS")}


def _run_worker(ranks, worker_args, timeout, threads=None):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, "-m", "pynn.bench.mpi_worker", "--out", out, *worker_args]
        if ranks > 1:
            cmd = [mpiexec_path(), "-n", str(ranks)] + cmd
        env = child_env(**_threads_env(threads or (2 if ranks == 1 else 1)))
        proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        with open(out) as f:
            return json.load(f)


def _median_rows(runs, key):
    """Per (model, batch): the row of the run with the median ``key``."""
    by = {}
    for run in runs:
        for row in run["steps"]:
            by.setdefault((row["model"], row["batch"]), []).append(row)
    return {k: sorted(v, key=lambda r: r[key])[len(v) // 2] for k, v in by.items()}


def fit_allreduce(rows):
    """``(a, b)`` of ``t = a + bytes / b``: ``a`` the time of the smallest buffer (the
    latency), ``b`` the bandwidth from the largest (a least-squares line would let the
    big, noisy sizes swamp the latency)."""
    rows = sorted(rows, key=lambda r: r["bytes"])
    a = rows[0]["seconds"]
    big = rows[-1]
    return a, big["bytes"] / max(big["seconds"] - a, 1e-12)


def scaling_estimate(a, b, gradient_floats, sample_s, nodes=SCALING_NODES):
    """Rows ``(N, T_comm seconds, smallest global batch with comm < 10% of a step)``."""
    alpha, beta = a / 2.0, b
    out = []
    for n in nodes:
        comm = 2 * (n - 1) * alpha + 2 * (n - 1) / n * 4 * gradient_floats / beta \
            + 2 * (n - 1) * alpha  # the statistics allreduce: latency only
        out.append((n, comm, int(np.ceil(9 * n * comm / sample_s))))
    return out


def run_mpi(models=("mlp", "cnn"), mlp_batches=(128, 1024), cnn_batches=(128,), steps=20,
            repeats=3, rounds=2, timeout=600):
    """Measure and print the ``--mpi`` table; returns the measurements (for JSON)."""
    if mpiexec_path() is None:
        print("\n(--mpi: no mpiexec found; pip install 'pynn[mpi]')")
        return {"status": "no mpiexec"}
    common = ["--models", ",".join(models), "--mlp-batches", ",".join(map(str, mlp_batches)),
              "--cnn-batches", ",".join(map(str, cnn_batches)), "--steps", str(steps),
              "--repeats", str(repeats)]
    one, single, two = [], [], []
    for _ in range(rounds):  # interleaved: a shared machine's load hits all alike
        one.append(_run_worker(1, common + ["--no-allreduce"], timeout))
        single.append(_run_worker(1, common + ["--no-allreduce"], timeout, threads=1))
        two.append(_run_worker(2, common, timeout))
    ar = {}
    for run in two:
        for r in run["allreduce"]:
            ar.setdefault(r["floats"], []).append(r)
    allreduce = [sorted(v, key=lambda r: r["seconds"])[len(v) // 2] for v in ar.values()]
    a, b = fit_allreduce(allreduce)
    print("\n### (h) Data parallel over MPI: 2 ranks x 1 thread vs 1 process x 2 threads "
          "(loopback)\n")
    print(md_table(["float32 values", "bytes", "allreduce (us)", "GB/s"],
                   [(r["floats"], r["bytes"], f"{r['seconds'] * 1e6:.0f}",
                     f"{r['gbytes_per_s']:.2f}") for r in allreduce], n_left=0))
    print(f"\nfit: t = {a * 1e6:.0f} us + bytes / ({b / 1e9:.2f} GB/s)\n")
    r1, r2 = _median_rows(one, "step_s"), _median_rows(two, "step_s")
    r11 = _median_rows(single, "step_s")
    rows, result_rows = [], []
    for key in r1:
        s1, s2 = r1[key]["step_s"], r2[key]["step_s"]
        comm, gcomm = r2[key]["comm_s"], r2[key]["gradient_comm_s"]
        rows.append((key[0], key[1], r1[key]["gradient_floats"],
                     f"{r11[key]['step_s'] * 1e3:.2f}", f"{s1 * 1e3:.2f}",
                     f"{s2 * 1e3:.2f}", f"{s1 / s2:.2f}x", f"{comm * 1e3:.2f}",
                     f"{100 * comm / s2:.0f}%", f"{gcomm * 1e3:.2f}",
                     f"{100 * gcomm / s2:.0f}%"))
        result_rows.append({"model": key[0], "batch": key[1],
                            "gradient_floats": r1[key]["gradient_floats"],
                            "one_process_s": s1, "one_thread_s": r11[key]["step_s"],
                            "two_ranks_s": s2, "comm_s": comm,
                            "gradient_comm_s": gcomm})
    print(md_table(["model", "global batch", "gradient floats", "1 proc x 1 thr (ms/step)",
                    "1 proc x 2 thr (ms/step)",
                    "2 ranks x 1 thr (ms/step)", "speed-up", "in collectives (ms)",
                    "share", "of which gradient allreduce (ms)", "share"], rows, n_left=1))
    estimates = {}
    for model in models:
        keys = [k for k in r1 if k[0] == model]
        if not keys:
            continue
        big = max(keys, key=lambda k: k[1])
        threads, step_s = min((2, r1[big]["step_s"]), (1, r11[big]["step_s"]),
                              key=lambda t: t[1])
        sample_s = step_s / big[1]
        est = scaling_estimate(a, b, r1[big]["gradient_floats"], sample_s)
        estimates[model] = [{"machines": n, "comm_s": c, "min_global_batch": m}
                            for n, c, m in est]
        print(f"\nScaling estimate, {model} ({r1[big]['gradient_floats']} gradient floats, "
              f"{sample_s * 1e6:.1f} us per sample on one {threads}-thread process at batch "
              f"{big[1]}, the faster of 1 and 2 threads), with this loopback's constants:\n")
        print(md_table(["machines N", "allreduce per step (ms)",
                        "global batch for comm < 10%"],
                       [(n, f"{c * 1e3:.2f}", m) for n, c, m in est], n_left=0))
    return {"allreduce": allreduce, "fit": {"latency_s": a, "bytes_per_s": b},
            "steps": result_rows, "scaling": estimates}
