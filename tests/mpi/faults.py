"""Run under mpiexec by tests/test_mpi.py: ``faults.py raise|kill|hang``.

Rank 1 fails at its fourth training step: ``raise`` raises a RuntimeError from a
callback, ``kill`` sends itself SIGKILL, ``hang`` sleeps for ever (the others must give
up after ``PYNN_MPI_TIMEOUT`` seconds). The other ranks are inside the step's
collectives by then; the job must end (non-zero) instead of hanging."""
import os
import signal
import sys
import time

import pynn

pynn.distribution.initialize()
pynn.distribution.set_distribution(pynn.distribution.DataParallel())

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

mode = sys.argv[1]


class Fail(pynn.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if pynn.distribution.process_id() == 1 and batch == 3:
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "hang":
                time.sleep(3600)
            raise RuntimeError("injected failure on rank 1")


common.train("mlp", [Fail()], epochs=50)
print("finished without the failure", flush=True)
