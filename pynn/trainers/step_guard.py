"""Ctrl-C during a training step waits for the step's end."""
from __future__ import annotations

import signal
import threading

__all__ = ["StepGuard"]


class StepGuard:
    """Defers a Ctrl-C (SIGINT) that arrives during a training step to the step's end.

    ``fit`` wraps every step in ``in_step = True`` ... :meth:`end_step`; a SIGINT in
    between is remembered and raised as ``KeyboardInterrupt`` once the step (forward,
    backward, optimizer update) has finished, so an interrupted model holds the
    weights of its last finished step, never a half-applied update. A second Ctrl-C
    during the same step interrupts at once. Installed only in the main thread and only
    over Python's default handler (a user's own SIGINT handler is left alone).
    """

    def __init__(self):
        self.in_step = False
        self.pending = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self._previous = signal.signal(signal.SIGINT, self._handler)
            except (ValueError, OSError):  # pragma: no cover - no signals here
                self._previous = None
        return self

    def _handler(self, signum, frame):
        if self.in_step and not self.pending:
            self.pending = True
            return
        raise KeyboardInterrupt

    def end_step(self):
        self.in_step = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False
