"""Faults in a data-parallel job: one rank's error ends every rank, never a hang.

An uncaught exception on one rank would leave the other ranks blocked in their next
collective (measured under mpich's ``mpiexec``: the job hangs). :func:`install_excepthook`
(called by :func:`pynn.distribution.initialize`) replaces ``sys.excepthook`` so that the
rank prints its rank and traceback to stderr and then calls ``MPI_Abort``, which ends
every rank of the job with that exit code.
"""
from __future__ import annotations

import sys
import time
import traceback

__all__ = ["install_excepthook", "abort_job"]


#: seconds between printing the reason and aborting: the launcher forwards each rank's
#: output through a pipe, and an abort that wins the race drops what is still in it
#: (seen in CI: a timed-out job ended with no output at all)
ABORT_GRACE = 0.5


def abort_job(comm, message, code=1):
    """Print ``message`` naming the rank, then end every rank of the job."""
    sys.stderr.write(f"pynn.distribution: rank {comm.rank} of {comm.size}: {message}; "
                     f"aborting all ranks\n")
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(ABORT_GRACE)
    comm.abort(code)


def install_excepthook(comm):
    """Make an uncaught exception on this rank abort the whole job (see module doc)."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(f"pynn.distribution: rank {comm.rank} of {comm.size} raised:\n{text}")
        abort_job(comm, f"uncaught {exc_type.__name__}")

    hook.pynn_previous = previous
    sys.excepthook = hook
    return hook
