"""The global distribution state (Keras 3's ``keras.distribution`` functions).

``initialize()`` joins the MPI world when the script runs under ``mpiexec`` and does
nothing in a single process; ``set_distribution(DataParallel())`` then makes every
``fit``/``evaluate``/``predict`` data-parallel. Without them, or in one process, nothing
changes: the trainer asks :func:`distribution` and gets ``None``.
"""
from __future__ import annotations

import os

__all__ = ["initialize", "set_distribution", "distribution", "num_processes", "process_id",
           "is_writer", "communicator", "active"]

#: the world communicator once :func:`initialize` joined an MPI job of several ranks
_COMMUNICATOR = None
#: the distribution set by :func:`set_distribution`
_DISTRIBUTION = None

#: environment variables one of which every MPI launcher we know sets in its ranks
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                  "MPI_LOCALNRANKS", "HYDI_CONTROL_FD")


def _under_mpi_launcher():
    return any(v in os.environ for v in _LAUNCHER_VARS)


def initialize(job_addresses=None, num_processes=None, process_id=None):
    """Join the MPI job this process was started in (``mpiexec -n N python train.py``).

    In a process not started by an MPI launcher this does nothing (and imports nothing):
    the run is one process. Under a launcher it imports ``mpi4py`` (the ``pynn[mpi]``
    extra), makes an uncaught exception on any rank end the whole job
    (:mod:`.faults`) and reads ``PYNN_MPI_TIMEOUT`` (:mod:`.communicator`).

    The arguments are Keras's; MPI's launcher decides them, so ``num_processes`` and
    ``process_id`` are only checked against it, and ``job_addresses`` must be None.
    Calling it again is a no-op. Returns the number of processes.
    """
    global _COMMUNICATOR
    if job_addresses is not None:
        raise ValueError("initialize: job_addresses is decided by mpiexec under MPI; pass "
                         "the hosts to mpiexec (-hosts / -f hostfile) and leave it None")
    if _COMMUNICATOR is None and _under_mpi_launcher():
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ImportError("initialize: this process runs under an MPI launcher, but "
                              "mpi4py is missing; install pynn[mpi] (mpi4py and the mpich "
                              f"wheel) ({exc})") from None
        from .communicator import Communicator, timeout_from_env
        from .faults import install_excepthook
        comm = Communicator(MPI.COMM_WORLD, timeout_from_env())
        if comm.size > 1:
            install_excepthook(comm)
            _COMMUNICATOR = comm
    n, rank = (1, 0) if _COMMUNICATOR is None else (_COMMUNICATOR.size, _COMMUNICATOR.rank)
    if num_processes is not None and num_processes != n:
        raise ValueError(f"initialize: num_processes={num_processes}, but the job has {n} "
                         f"process(es) (set it with mpiexec -n)")
    if process_id is not None and process_id != rank:
        raise ValueError(f"initialize: process_id={process_id}, but this process is rank "
                         f"{rank}")
    return n


def communicator():
    """The world :class:`~.communicator.Communicator`, or None in a single process."""
    return _COMMUNICATOR


def num_processes():
    """How many processes the job has (1 without :func:`initialize` under mpiexec)."""
    return 1 if _COMMUNICATOR is None else _COMMUNICATOR.size


def process_id():
    """This process's rank, 0-based (0 in a single process)."""
    return 0 if _COMMUNICATOR is None else _COMMUNICATOR.rank


def is_writer():
    """True on the one process that writes files and prints progress (rank 0).

    The one place that decides it: :class:`~pynn.callbacks.CallbackList` leaves out the
    callbacks marked ``rank_zero_only`` on every other rank."""
    return process_id() == 0


def set_distribution(value):
    """Make ``value`` (a :class:`~.data_parallel.DataParallel`, or None to undo) the
    distribution of every later ``fit``/``evaluate``/``predict``."""
    from .data_parallel import DataParallel
    global _DISTRIBUTION
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(f"set_distribution: expected a DataParallel or None, got "
                        f"{type(value).__name__}")
    _DISTRIBUTION = value


def distribution():
    """The distribution :func:`set_distribution` set, or None (Keras)."""
    return _DISTRIBUTION


def active():
    """The distribution the trainer applies: the one set, unless the job is one process
    (then the run is the ordinary single-process one, fused step included)."""
    d = _DISTRIBUTION
    if d is None or d.num_processes == 1:
        return None
    return d


class suspended:
    """``with suspended():`` the trainer sees no distribution (one rank's local work)."""

    def __enter__(self):
        global _DISTRIBUTION
        self._saved, _DISTRIBUTION = _DISTRIBUTION, None
        return self

    def __exit__(self, *exc):
        global _DISTRIBUTION
        _DISTRIBUTION = self._saved
        return False
