"""``Callback``: the base class of training callbacks (Keras 3 hooks)."""
from __future__ import annotations

import sys

__all__ = ["Callback"]


def _print(msg):
    """Print to the current ``sys.stdout`` (looked up at call time)."""
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


class Callback:
    """Base class: override any of the ``on_*`` hooks.

    Attributes
    ----------
    model : the model being trained (set by :meth:`set_model`).
    params : dict with ``verbose``, ``epochs`` and ``steps`` (set by :meth:`set_params`).
    rank_zero_only : bool (class attribute)
        True for a callback that writes files or prints progress: in a data-parallel job
        (:mod:`pynn.distribution`) it runs on rank 0 only (:class:`CallbackList` leaves
        it out elsewhere). The others run on every rank, with the same logs.
    """

    rank_zero_only = False

    def __init__(self):
        self.params = {}
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    # batch hooks (Keras keeps the on_batch_* names as aliases of the train ones)
    def on_batch_begin(self, batch, logs=None):
        """Alias of :meth:`on_train_batch_begin` (kept for compatibility)."""

    def on_batch_end(self, batch, logs=None):
        """Alias of :meth:`on_train_batch_end` (kept for compatibility)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Start of an epoch (0-based ``epoch``)."""

    def on_epoch_end(self, epoch, logs=None):
        """End of an epoch; ``logs`` holds ``loss``, metrics and ``val_*`` entries."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """``logs`` holds the running averages of the epoch so far."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass
