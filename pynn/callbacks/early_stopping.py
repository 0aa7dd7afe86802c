"""``EarlyStopping``."""
from __future__ import annotations

import warnings

import numpy as np

from .callback import Callback, _print
from .monitoring import _check_mode, _direction, _scalar

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras 3).

    Parameters
    ----------
    monitor : str
    min_delta : float
        Changes smaller than this (in absolute value) are no improvement.
    patience : int
        Epochs without improvement after which training stops.
    verbose : int
    mode : {'auto', 'min', 'max'}
        'auto' minimises losses and errors, maximises accuracy/AUC-like metrics.
    baseline : float, optional
        The wait counter is reset only by values better than the baseline too.
    restore_best_weights : bool
        At the end of training, restore the weights of the best epoch.
    start_from_epoch : int
        Epochs of warm-up during which nothing is monitored.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.start_from_epoch = start_from_epoch
        self.mode = _check_mode(mode, "EarlyStopping")
        self.monitor_op = None
        self.best = None
        self.best_epoch = 0

    def _set_monitor_op(self):
        mode = self.mode
        if mode == "auto":
            mode = _direction(self.model, self.monitor)
            if mode is None:
                raise ValueError(
                    f"EarlyStopping callback received monitor={self.monitor} but pynn isn't "
                    "able to automatically determine whether that metric should be maximized "
                    "or minimized. Pass `mode='max'` in order to do early stopping based on the "
                    "highest metric value, or pass `mode='min'` in order to use the lowest value.")
        if mode == "min":
            self.monitor_op = np.less
            self.min_delta = -abs(self.min_delta)
        else:
            self.monitor_op = np.greater
            self.min_delta = abs(self.min_delta)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print("Restoring model weights from the end of the best epoch: "
                       f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs.keys())}",
                          stacklevel=2)
            return None
        return _scalar(value)

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        return bool(self.monitor_op(value - self.min_delta, reference))
