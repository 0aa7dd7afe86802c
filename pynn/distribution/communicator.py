"""``Communicator``: the few MPI collectives data-parallel training needs, on ``mpi4py``.

Only :func:`pynn.distribution.initialize` creates one (and so imports ``mpi4py``);
``import pynn`` never does. Every call is a collective: all ranks make the same calls in
the same order.

Dead peers: under mpich's ``mpiexec`` (hydra) a rank killed by a signal makes the
launcher end every other rank at once (measured: the blocked ``Allreduce`` of the
survivors ends within milliseconds). Other launchers may leave the survivors blocked, so
``PYNN_MPI_TIMEOUT`` (seconds) switches the gradient and statistics reductions to a
non-blocking ``Iallreduce`` polled until that deadline; past it the rank prints which
collective timed out and aborts the whole job (:mod:`.faults`).
"""
from __future__ import annotations

import os
import time

import numpy as np

from .faults import abort_job

__all__ = ["Communicator", "timeout_from_env"]


def timeout_from_env():
    """``PYNN_MPI_TIMEOUT`` as seconds (None: blocking collectives)."""
    raw = os.environ.get("PYNN_MPI_TIMEOUT", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"PYNN_MPI_TIMEOUT: expected a number of seconds, got {raw!r}") \
            from None
    if not value > 0:
        raise ValueError(f"PYNN_MPI_TIMEOUT: expected a positive number of seconds, got "
                         f"{raw!r}")
    return value


class Communicator:
    """The world communicator of one MPI job.

    Parameters
    ----------
    comm : an ``mpi4py.MPI.Comm`` (``MPI.COMM_WORLD``).
    timeout : float or None
        Seconds a reduction may wait for its peers before the job is aborted (None:
        wait as long as MPI does; see the module docstring).
    """

    def __init__(self, comm, timeout=None):
        from mpi4py import MPI
        self._mpi = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout = timeout

    def _wait(self, request, what):
        if self.timeout is None:
            request.Wait()
            return
        deadline = time.monotonic() + self.timeout
        pause = 1e-6
        while not request.Test():
            if time.monotonic() > deadline:
                abort_job(self, f"{what} waited more than PYNN_MPI_TIMEOUT={self.timeout} s "
                                f"for the other ranks (a rank died or hangs)")
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)

    def allreduce_(self, buf, what="allreduce"):
        """Sum the contiguous array ``buf`` over all ranks, in place. The flat buffer is
        reduced element by element in one fixed order, so every rank gets the same bits."""
        if self.size == 1:
            return buf
        if not buf.flags.c_contiguous:
            raise ValueError(f"{what}: the buffer must be C-contiguous")
        if self.timeout is None:
            self.comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
        else:
            self._wait(self.comm.Iallreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM), what)
        return buf

    def allreduce_max(self, value):
        """The largest of every rank's integer ``value``."""
        return self.comm.allreduce(int(value), op=self._mpi.MAX)

    def bcast(self, obj, root=0):
        """Rank ``root``'s Python object on every rank (pickled; for state, not steps)."""
        return self.comm.bcast(obj, root=root)

    def bcast_array(self, arr, root=0):
        """Rank ``root``'s array ``arr`` copied into ``arr`` on every rank (same shape and
        dtype everywhere)."""
        if self.size > 1:
            self.comm.Bcast(np.ascontiguousarray(arr) if self.rank == root else arr,
                            root=root)
        return arr

    def allgather(self, obj):
        """Every rank's Python object, in rank order."""
        return self.comm.allgather(obj)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        self.comm.Abort(code)
