"""``PyDataset`` (alias ``Sequence``): batches computed by Python code (Keras 3's class)."""
from __future__ import annotations

import itertools

__all__ = ["PyDataset", "Sequence"]


class PyDataset:
    """Base class of a dataset that gives whole batches by index (``keras.utils.PyDataset``).

    Subclass it and implement ``__getitem__(index)`` (returns one batch: ``x``, ``(x,)``,
    ``(x, y)`` or ``(x, y, sample_weight)``) and ``__len__`` (the number of batches per
    epoch), or the ``num_batches`` property (``None`` for an infinite dataset). Pass the
    instance as ``x`` to ``fit``, ``evaluate`` or ``predict``. ``on_epoch_begin`` and
    ``on_epoch_end`` are called around every epoch. With ``fit(shuffle=True)`` the batch
    indices of each epoch are visited in a random order drawn from the model's generator.

    Parameters
    ----------
    workers, use_multiprocessing, max_queue_size
        Accepted for Keras code, but pynn calls ``__getitem__`` in the training thread,
        one batch at a time (no thread or process pool): ``fit`` warns once when
        ``workers > 1`` or ``use_multiprocessing=True``.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position ``index``."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    @property
    def num_batches(self):
        """Batches per epoch (``len(self)``), or ``None`` for an infinite dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ or the "
                                  f"num_batches property")

    def __iter__(self):
        n = self.num_batches
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


#: Keras 2's name, kept by Keras 3 as an alias
Sequence = PyDataset
