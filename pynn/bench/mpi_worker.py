"""One process of the ``--mpi`` table, run by :mod:`pynn.bench.mpi_section` either alone
(``python -m pynn.bench.mpi_worker``) or as each rank of ``mpiexec -n N``.

It measures, and rank 0 writes as JSON to ``--out``:

* ``allreduce`` (only under mpiexec): seconds of one in-place float32 ``Allreduce`` of
  each size (median of the repeats, each the mean of a block of calls after a barrier);
* ``steps``: per model and global batch, seconds per training step (median over
  ``--repeats`` blocks of ``--steps`` steps after a warm-up epoch) and, under mpiexec,
  the seconds per step this rank spent inside the step's collectives (the gradient
  allreduce, the statistics allreduce; waiting for a slower peer included), and in the
  gradient allreduce alone;
* the model's gradient size and the threads in use.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

#: float32 elements of the allreduce sizes (1k .. 4M)
ALLREDUCE_SIZES = (1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


def _median_block(fn, calls, repeats, barrier):
    times = []
    for _ in range(repeats):
        barrier()
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) / calls)
    return float(np.median(times))


def allreduce_table(comm, repeats):
    out = []
    for n in ALLREDUCE_SIZES:
        buf = np.ones(n, np.float32)
        calls = max(3, min(200, int(2e7 // (n * 4 + 20000))))
        comm.allreduce_(buf)  # warm-up (first-touch, connection set-up)
        s = _median_block(lambda: comm.allreduce_(buf), calls, repeats, comm.barrier)
        out.append({"floats": n, "bytes": 4 * n, "seconds": s,
                    "gbytes_per_s": 4 * n / s / 1e9})
    return out


class _Timed:
    """A DataParallel's ``reduce_`` wrapped to add up the seconds spent in it: in all,
    and in the gradient allreduce alone (the statistics allreduce comes first in a step,
    so it is where a rank waits for a slower peer)."""

    def __init__(self, dp):
        self.seconds = self.gradient_seconds = 0.0
        inner = dp.reduce_

        def reduce_(buf, what="allreduce"):
            t = time.perf_counter()
            try:
                return inner(buf, what)
            finally:
                dt = time.perf_counter() - t
                self.seconds += dt
                if "gradient" in what:
                    self.gradient_seconds += dt
        dp.reduce_ = reduce_


def _model(kind):
    from pynn import layers
    from pynn.models import Sequential
    from pynn.optimizers import Adam
    if kind == "mlp":
        m = Sequential([layers.Input((784,)), layers.Dense(256, activation="relu"),
                        layers.Dense(128, activation="relu"),
                        layers.Dense(10, activation="softmax")], seed=0)
        m.compile(optimizer=Adam(1e-3), loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        return m, lambda n: (rng.random((n, 784), dtype=np.float32),
                             rng.integers(0, 10, n))
    from .cnn import cnn_data, cnn_model, one_hot
    m = cnn_model()

    def data(n):
        x, y = cnn_data(n)
        return x, one_hot(y)
    return m, data


def time_steps(kind, batch, steps, repeats, dp):
    model, data = _model(kind)
    x, y = data(batch * steps)
    timed = _Timed(dp) if dp is not None else None
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)  # warm-up
    per_step, comm, grad = [], [], []
    for _ in range(repeats):
        if dp is not None:
            dp.comm.barrier()
            timed.seconds = timed.gradient_seconds = 0.0
        t = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        per_step.append((time.perf_counter() - t) / steps)
        if dp is not None:
            comm.append(timed.seconds / steps)
            grad.append(timed.gradient_seconds / steps)
    i = int(np.argsort(per_step)[len(per_step) // 2])
    return {"model": kind, "batch": batch, "step_s": per_step[i],
            "comm_s": comm[i] if comm else 0.0, "gradient_comm_s": grad[i] if grad else 0.0,
            "gradient_floats": sum(int(np.prod(w.shape)) for w in model.trainable_weights)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m pynn.bench.mpi_worker")
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--mlp-batches", default="128,1024")
    p.add_argument("--cnn-batches", default="128")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-allreduce", action="store_true")
    args = p.parse_args(argv)

    import pynn
    from threadpoolctl import threadpool_info
    pynn.distribution.initialize()
    dp = None
    if pynn.distribution.num_processes() > 1:
        dp = pynn.distribution.DataParallel()
        pynn.distribution.set_distribution(dp)
    result = {"processes": pynn.distribution.num_processes(),
              "blas_threads": max([i["num_threads"] for i in threadpool_info()] or [0])}
    if dp is not None and not args.no_allreduce:
        result["allreduce"] = allreduce_table(dp.comm, args.repeats)
    rows = []
    for kind in filter(None, args.models.split(",")):
        batches = getattr(args, f"{kind}_batches")
        for batch in (int(b) for b in batches.split(",")):
            steps = args.steps if kind == "mlp" else max(4, args.steps // 4)
            rows.append(time_steps(kind, batch, steps, args.repeats, dp))
    result["steps"] = rows
    if pynn.distribution.process_id() == 0:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
