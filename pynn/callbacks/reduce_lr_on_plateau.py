"""``ReduceLROnPlateau``."""
from __future__ import annotations

import warnings

import numpy as np

from ..backends.validation import COUNT, NONNEGATIVE, UNIT_OPEN, check_hyper
from .callback import Callback, _print
from .monitoring import _check_mode, _scalar

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving (Keras 3).

    Parameters
    ----------
    monitor : str
    factor : float
        ``new_lr = max(lr * factor, min_lr)``; in [0, 1).
    patience : int
        Epochs without improvement before the rate is cut.
    verbose : int
    mode : {'auto', 'min', 'max'}
        'auto' maximises monitors whose name contains 'acc', minimises others.
    min_delta : float
        Threshold for an improvement.
    cooldown : int
        Epochs to wait after a cut before counting again.
    min_lr : float
        Lower bound on the learning rate.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {sorted(kwargs)}")
        self.monitor = monitor
        self.factor = check_hyper("ReduceLROnPlateau: factor", factor, UNIT_OPEN)
        self.min_lr = check_hyper("ReduceLROnPlateau: min_lr", min_lr, NONNEGATIVE)
        self.min_delta = check_hyper("ReduceLROnPlateau: min_delta", min_delta, NONNEGATIVE)
        self.patience = check_hyper("ReduceLROnPlateau: patience", patience, COUNT)
        self.verbose = verbose
        self.cooldown = check_hyper("ReduceLROnPlateau: cooldown", cooldown, COUNT)
        self.cooldown_counter = 0
        self.wait = 0
        self.best = 0
        self.mode = mode
        self.monitor_op = None
        self._reset()

    def _reset(self):
        self.mode = _check_mode(self.mode, "Learning rate reduction")
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: np.less(a, b - self.min_delta)
            self.best = np.inf
        else:
            self.monitor_op = lambda a, b: np.greater(a, b + self.min_delta)
            self.best = -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          f"which is not available. Available metrics are: "
                          f"{','.join(logs.keys())}.", stacklevel=2)
            return
        current = _scalar(current)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                               f"to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0


#: File name endings ``model.save`` / ``model.save_weights`` accept (see pynn.saving).
