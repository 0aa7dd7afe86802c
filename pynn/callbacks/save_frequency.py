"""Keras's ``save_freq`` batch counting, shared by the callbacks that write files."""
from __future__ import annotations

__all__ = ["BatchSaveFrequency"]


class BatchSaveFrequency:
    """Mixin: ``_should_save_on_batch(batch)`` is True every ``self.save_freq`` batches
    (counted across epochs, as Keras counts them); never for ``"epoch"`` or ``False``.
    The class sets ``_batches_seen_since_last_saving`` and ``_last_batch_seen`` to 0."""

    def _should_save_on_batch(self, batch):
        if self.save_freq in ("epoch", False):
            return False
        if batch <= self._last_batch_seen:  # a new epoch
            add_batches = batch + 1
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False
