"""Two independent calls at once, one on the calling thread and one on a persistent
worker thread: :func:`run_pair` (``Bidirectional`` runs its two directions with it).

Whether to run them at once is decided here, in :func:`pair_runner`, from three things:

* the backend: :attr:`~pynn.backends.base.Backend.pair_blas_threads` is ``None`` unless
  its ops release the GIL for their work, keep their scratch per thread and call a BLAS
  whose thread count can be pinned (the ``cython`` backend with NumPy's OpenBLAS). The
  NumPy reference (GIL-bound), Numba (a second BLAS) and CUDA backends run in turn;
* the machine: at least two CPUs;
* the work: at least :data:`MIN_PAIR_WORK` multiply-adds (the hand-off costs tens of
  microseconds); a caller passes 0 for calls that must run in turn.

While a pair runs, the BLAS runs single-threaded (each call's products on its own core
instead of both calls' products fighting over two threads each) and the thread count
is restored afterwards. Results are those of running the two calls in turn (each call
writes only its own outputs; OpenBLAS splits a product's output, not its sums, over
threads), which the tests check bit for bit. One pair runs at a time per process: a
pair asked for while another runs (a nested or second model on another thread) runs
in turn on its own thread. After ``fork`` the child starts a fresh worker.
"""
from __future__ import annotations

import os
import threading

__all__ = ["run_pair", "pair_runner", "MIN_PAIR_WORK"]

#: the least work (multiply-adds of the two calls together) worth running at once
MIN_PAIR_WORK = 2_000_000


class _Worker:
    """A daemon thread that runs one task at a time for :class:`PairRunner`."""

    def __init__(self):
        self._todo = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._task = None
        self._result = self._error = None
        self._thread = threading.Thread(target=self._loop, name="pynn-pair-worker",
                                        daemon=True)
        self._thread.start()

    def _loop(self):
        from . import use_backend
        while True:
            self._todo.acquire()
            fn, backend = self._task
            try:
                with use_backend(backend):  # the active backend is per thread
                    self._result = fn()
            except BaseException as exc:  # handed to the caller by wait()
                self._error = exc
            self._task = None
            self._done.release()

    def submit(self, fn, backend):
        self._result = self._error = None
        self._task = (fn, backend)
        self._todo.release()

    def wait(self):
        """The task's result; its exception is raised here. Waits for the task's end
        even through a ``KeyboardInterrupt`` (raised afterwards): the task is still
        writing into its workspaces."""
        interrupted = None
        while True:
            try:
                self._done.acquire()
                break
            except BaseException as exc:  # an interrupted acquire took nothing
                interrupted = exc
        if interrupted is not None:
            raise interrupted
        result, error = self._result, self._error
        self._result = self._error = None
        if error is not None:
            raise error
        return result


class PairRunner:
    """Runs two calls at once with the BLAS pinned to one thread (see the module
    docstring); one pair at a time."""

    def __init__(self, get_threads, set_threads):
        self._get_threads, self._set_threads = get_threads, set_threads
        self._lock = threading.Lock()
        self._worker = None

    def run(self, backend, first, second):
        """``(first(), second())``; ``None`` when another pair is running (the caller
        then runs them in turn). An exception of ``first`` is raised after ``second``
        finished; else one of ``second``."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._worker is None:
                self._worker = _Worker()
            threads = self._get_threads()
            self._set_threads(1)
            try:
                self._worker.submit(second, backend)
                try:
                    a = first()
                except BaseException:
                    try:
                        self._worker.wait()
                    except BaseException:
                        pass  # the first call's exception is the one raised
                    raise
                b = self._worker.wait()
            finally:
                self._set_threads(threads)
            return a, b
        finally:
            self._lock.release()


_runners = {}
_runners_lock = threading.Lock()


def _forget_runners():
    _runners.clear()  # the parent's worker threads do not exist in a forked child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_runners)


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def pair_runner(backend, work):
    """The :class:`PairRunner` that runs two of ``backend``'s calls of ``work``
    multiply-adds in all at once, or ``None`` where they run in turn (the one place
    this is decided; see the module docstring)."""
    if work <= 0 or work < MIN_PAIR_WORK or _cpus() < 2:
        return None
    control = backend.pair_blas_threads
    if control is None:
        return None
    key = id(control)  # ctypes functions do not hash; the runner keeps control alive
    runner = _runners.get(key)
    if runner is None:
        with _runners_lock:
            runner = _runners.setdefault(key, PairRunner(*control))
    return runner


def run_pair(backend, first, second, work):
    """``(first(), second())``: two independent calls on ``backend`` (neither reads what
    the other writes, and neither depends on the order of random draws), at once when
    :func:`pair_runner` says so, else in turn. ``work`` estimates their multiply-adds
    (0: always in turn)."""
    runner = pair_runner(backend, work)
    if runner is not None:
        both = runner.run(backend, first, second)
        if both is not None:
            return both
    return first(), second()
