"""Training callbacks with Keras 3 names, arguments and behaviour.

Callbacks touch the model only through ``model.stop_training``,
``model.optimizer.learning_rate`` (settable), ``model.get_weights()`` /
``model.set_weights()``, ``model.save(path)`` and ``model.save_weights(path)``.
:class:`~pynn.progress.ProgbarLogger` lives in :mod:`pynn.progress` and is
re-exported here.
"""
from __future__ import annotations

import collections
import collections.abc
import csv
import math
import os
import sys
import warnings

import numpy as np

from .backends.validation import COUNT, NONNEGATIVE, UNIT_OPEN, check_hyper

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ReduceLROnPlateau",
           "ModelCheckpoint", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN",
           "LambdaCallback", "ProgbarLogger"]


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
    """

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


class CallbackList(Callback):
    """A container that forwards every hook to its callbacks, in order.

    Parameters
    ----------
    callbacks : list of Callback, optional
    add_history : bool
        Append a :class:`History` unless one is already in ``callbacks``.
    add_progbar : bool
        Append a :class:`~pynn.progress.ProgbarLogger` unless one is present.
    model : optional, passed to every callback's ``set_model``.
    **params : ``verbose``, ``epochs``, ``steps``: passed to ``set_params``.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        super().__init__()
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected Callback instances, got "
                                f"{type(cb).__name__}")
        self._add_default_callbacks(add_history, add_progbar)
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def _add_default_callbacks(self, add_history, add_progbar):
        from .progress import ProgbarLogger
        self._history = None
        self._progbar = None
        for cb in self.callbacks:
            if isinstance(cb, ProgbarLogger):
                self._progbar = cb
            elif isinstance(cb, History):
                self._history = cb
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)

    @property
    def history(self):
        """The :class:`History` callback in the list, or ``None``."""
        return self._history

    def append(self, callback):
        self.callbacks.append(callback)

    def set_params(self, params):
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def set_model(self, model):
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)


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


# --------------------------------------------------------------------------
# monitoring helpers
# --------------------------------------------------------------------------
_MAX_HINTS = ("acc", "auc", "precision", "recall", "f1", "fmeasure", "iou")
_MIN_HINTS = ("loss", "error", "crossentropy", "mse", "mae", "hinge", "divergence")


def _direction(model, monitor):
    """'max' or 'min' for ``monitor`` in auto mode, or None if unknown.

    A metric object of the model with a ``_direction`` attribute ('up'/'down')
    decides first; otherwise the name: loss-like names are minimised,
    accuracy/AUC/precision/recall/F1-like names maximised.
    """
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "min"
    for m in getattr(model, "metrics", None) or []:
        if getattr(m, "name", None) == name and hasattr(m, "_direction"):
            return "max" if m._direction == "up" else "min"
    lname = name.lower()
    if any(h in lname for h in _MIN_HINTS):
        return "min"
    if any(h in lname for h in _MAX_HINTS):
        return "max"
    return None


def _check_mode(mode, cls):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{cls} mode {mode} is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


def _scalar(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


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
_MODEL_SUFFIXES = (".pynn", ".keras")
_WEIGHTS_SUFFIXES = (".weights.npz", ".weights.h5")


class ModelCheckpoint(Callback):
    """Save the model (or its weights) every epoch or every ``save_freq`` batches.

    Parameters
    ----------
    filepath : str or os.PathLike
        Ends in ``.keras``/``.pynn`` (``.weights.h5``/``.weights.npz`` with
        ``save_weights_only``). May hold ``str.format`` fields filled from the epoch (1-based) and the
        logs, e.g. ``'ckpt-{epoch:02d}-{val_loss:.2f}.keras'``; ``{batch}`` too
        when saving by batches.
    monitor : str
    verbose : int
    save_best_only : bool
        Save only when ``monitor`` improves on the best value so far.
    save_weights_only : bool
        Call ``model.save_weights`` instead of ``model.save``.
    mode : {'auto', 'min', 'max'}
        'auto' maximises monitors containing 'acc' (or starting with 'fmeasure').
    save_freq : 'epoch' or int
        An int saves every that many batches.
    initial_value_threshold : float, optional
        The value the first save must beat when ``save_best_only``.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.monitor = monitor
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0
        self.best = initial_value_threshold
        mode = _check_mode(mode, "ModelCheckpoint")
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.startswith("fmeasure")) else "min"
        if mode == "min":
            self.monitor_op = np.less
            if self.best is None:
                self.best = np.inf
        else:
            self.monitor_op = np.greater
            if self.best is None:
                self.best = -np.inf
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"Unrecognized save_freq: {save_freq}. Expected save_freq are "
                             "'epoch' or positive integer values")
        if save_weights_only:
            if not self.filepath.endswith(_WEIGHTS_SUFFIXES):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the "
                                 f"filepath provided must end in one of {_WEIGHTS_SUFFIXES}. "
                                 f"Received: filepath={self.filepath}")
        elif not self.filepath.endswith(_MODEL_SUFFIXES):
            raise ValueError(f"The filepath provided must end in one of {_MODEL_SUFFIXES}. "
                             f"Received: filepath={self.filepath}")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
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

    def _write(self, filepath):
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        dirname = os.path.dirname(filepath)
        if dirname and not os.path.exists(dirname):
            os.makedirs(dirname, exist_ok=True)
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. "
                          f"Filepath used is an existing directory: {filepath}")
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, "
                              "skipping.", stacklevel=2)
                return
            current = _scalar(current)
            if self.monitor_op(current, self.best):
                if self.verbose > 0:
                    _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} "
                           f"to {current:.5f}, saving model to {filepath}")
                self.best = current
                self._write(filepath)
            elif self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                       f"{self.best:.5f}")
        else:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            self._write(filepath)

    def _get_file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e}; available keys: {['epoch'] + list(logs)}") from None


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule``.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> new lr`` (``epoch`` 0-based); a one-argument
        ``schedule(epoch)`` is accepted too.
    verbose : int
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:
            lr = float(optimizer.learning_rate)
            lr = self.schedule(epoch, lr)
        except TypeError:  # the one-argument form
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (float, int, np.floating, np.integer)):
            raise ValueError(f"The output of the `schedule` function should be a float. "
                             f"Got: {lr}")
        lr = check_hyper(f"LearningRateScheduler: the learning rate schedule({epoch}, ...) "
                         f"returned", lr, NONNEGATIVE)
        optimizer.learning_rate = lr
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """Stream epoch results to a CSV file.

    The header is ``epoch`` then the sorted log keys of the first epoch (plus the
    model's expected ``val_*`` names, when it exposes ``metrics_names``); missing
    values are written as ``NA``.

    Parameters
    ----------
    filename : str or os.PathLike
    separator : str
    append : bool
        Append to an existing file (without repeating its header).
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(k):
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not (
                    isinstance(k, np.ndarray) and k.ndim == 0):
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
            for name in getattr(self.model, "metrics_names", None) or []:
                if isinstance(name, str) and name.startswith("val_") and name not in self.keys:
                    self.keys.append(name)
        if self.writer is None:
            class CustomDialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict({"epoch": epoch})
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch reports a NaN or infinite loss."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None:
            loss = _scalar(loss)
            if math.isnan(loss) or math.isinf(loss):
                _print(f"Batch {batch}: Invalid loss, terminating training")
                self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback built from plain functions (Keras's ``LambdaCallback``).

    Each argument is a function taking the same arguments as the hook of that
    name, e.g. ``on_epoch_end=lambda epoch, logs: print(epoch, logs['loss'])``.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}")
            if fn is not None:
                setattr(self, name, fn)


def __getattr__(name):
    if name == "ProgbarLogger":
        from .progress import ProgbarLogger
        return ProgbarLogger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
