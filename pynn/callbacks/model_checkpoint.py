"""``ModelCheckpoint``."""
from __future__ import annotations

import os
import warnings

import numpy as np

from .callback import Callback, _print
from .monitoring import _check_mode, _scalar
from .save_frequency import BatchSaveFrequency

__all__ = ["ModelCheckpoint"]


_MODEL_SUFFIXES = (".pynn", ".keras")
_WEIGHTS_SUFFIXES = (".weights.npz", ".weights.h5")


class ModelCheckpoint(BatchSaveFrequency, Callback):
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

    rank_zero_only = True  # writes files / prints: rank 0 of a data-parallel job

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
