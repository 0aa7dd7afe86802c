"""``History``: the per-epoch logs ``fit`` returns."""
from __future__ import annotations

from .callback import Callback

__all__ = ["History"]


class History(Callback):
    """Records epoch logs: ``history.history['loss']`` etc. and ``history.epoch``.

    ``model.fit`` returns it; it is also set as ``model.history``.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self
