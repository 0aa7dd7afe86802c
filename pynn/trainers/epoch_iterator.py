"""``EpochIterator``: the batches of one epoch, and how epochs follow one another
(Keras 3's ``trainers/epoch_iterator.py``).

* No ``steps_per_epoch``: an epoch is one pass over the adapter. Arrays and a PyDataset
  start over every epoch; a generator or iterator continues, so its first epoch runs
  until it is exhausted and a later epoch that gets no batch at all warns (Keras's
  "Your input ran out of data") and ends ``fit``.
* ``steps_per_epoch``: an epoch is that many batches, taken from one iterator that
  persists across epochs (an infinite generator continues where it was; arrays and a
  PyDataset continue mid-pass and start over once they have given every batch). When
  the data ends before ``steps_per_epoch`` batches, the epoch is cut short with the
  warning, and the next epoch asks the adapter for a new iterator.
"""
from __future__ import annotations

import warnings

__all__ = ["EpochIterator", "RAN_OUT"]

RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset "
            "or generator can generate at least `steps_per_epoch * epochs` batches.")


class EpochIterator:
    """Epochs of batches from ``adapter`` (see :mod:`.data_adapters`).

    Attributes
    ----------
    num_batches : int or None
        Batches per epoch when known (``steps_per_epoch`` when given).
    exhausted : bool
        Set when an epoch got no batch at all: the data is spent.
    """

    def __init__(self, adapter, steps_per_epoch=None, what="steps_per_epoch"):
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not
                                            isinstance(steps_per_epoch, int)
                                            or steps_per_epoch <= 0):
            raise ValueError(f"{what}: expected a positive integer or None, got "
                             f"{steps_per_epoch!r}")
        self.adapter = adapter
        self.steps_per_epoch = steps_per_epoch
        self.exhausted = False
        self._iterator = None
        self._seen = 0

    @property
    def num_batches(self):
        return self.steps_per_epoch or self.adapter.num_batches

    def reset(self):
        """Forget the current iterator: the next epoch asks the adapter for a new one
        (arrays and a PyDataset start over, a generator continues)."""
        self._iterator = None
        self._seen = 0

    def epoch(self):
        """The ``(step, batch)`` pairs of one epoch (close it when stopping early)."""
        self.adapter.on_epoch_begin()
        try:
            if self.steps_per_epoch is None:
                yield from self._one_pass()
            else:
                yield from self._steps()
        finally:
            self.adapter.on_epoch_end()

    def _one_pass(self):
        step = -1
        for step, batch in enumerate(self.adapter):
            yield step, batch
        if step < 0:
            self._ran_out(empty=True)

    def _steps(self):
        known = self.adapter.num_batches
        if self._iterator is None:
            self._iterator = iter(self.adapter)
            self._seen = 0
        for step in range(self.steps_per_epoch):
            if known is not None and self._seen >= known:
                self._ran_out(empty=step == 0)
                break
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                self._ran_out(empty=step == 0)
                return
            self._seen += 1
            yield step, batch
        if known is not None and self._seen >= known:
            self._iterator = None

    def _ran_out(self, empty):
        if empty:
            self.exhausted = True
        warnings.warn(RAN_OUT, UserWarning, stacklevel=4)
