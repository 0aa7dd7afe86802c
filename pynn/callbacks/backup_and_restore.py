"""``BackupAndRestore``: resume an interrupted ``fit`` where it stopped (Keras 3)."""
from __future__ import annotations

import os
import shutil

from .callback import Callback
from .save_frequency import BatchSaveFrequency

__all__ = ["BackupAndRestore"]

_STATE = "latest.weights.npz"


class BackupAndRestore(BatchSaveFrequency, Callback):
    """Back up the training state during ``fit``; a later ``fit`` with the same
    ``backup_dir`` resumes from it (Keras 3's callback).

    The state (weights, the optimizer's state and step count, the learning rate, the
    model generator's state, and the epoch to resume at) is one file,
    ``backup_dir/latest.weights.npz``, written atomically through
    :func:`pynn.saving.save_training_state` (never pickled): a crash while it is written
    leaves the previous backup whole. At ``on_train_begin`` a backup found there is
    restored and ``fit`` starts at its epoch; at the end of a ``fit`` that completes, the
    directory is removed (``delete_checkpoint``). With the backup taken at the end of
    each epoch, the resumed run draws the same shuffles and gives the same weights as an
    uninterrupted one; a backup taken mid-epoch (``save_freq`` an int) restarts that
    epoch from the weights of that batch.

    Parameters
    ----------
    backup_dir : str or os.PathLike
        A directory used by this callback only.
    save_freq : 'epoch', int or False
        Back up at the end of every epoch, or every ``save_freq`` batches (False: never).
    double_checkpoint : bool
        Keep the previous backup too (``latest.weights.npz.bkp``), restored when the
        latest cannot be read.
    delete_checkpoint : bool
        Remove ``backup_dir`` when ``fit`` completes.
    """

    rank_zero_only = True  # writes files / prints: rank 0 of a data-parallel job

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq not in ("epoch", False) and (isinstance(save_freq, bool) or not
                                                   isinstance(save_freq, int)
                                                   or save_freq <= 0):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: "
                             f"save_freq={save_freq}. Expected either 'epoch', False or a "
                             f"positive integer.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._state_path = os.path.join(self.backup_dir, _STATE)
        self._prev_state_path = self._state_path + ".bkp"
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0

    def on_train_begin(self, logs=None):
        path = self._state_path
        if not os.path.exists(path):
            if not (self.double_checkpoint and os.path.exists(self._prev_state_path)):
                return
            path = self._prev_state_path
        if not self.model.built:
            raise ValueError(f"To use the BackupAndRestore callback, your model must be "
                             f"built before you call `fit()`. Model {self.model.name!r} is "
                             f"unbuilt; give it an input shape.")
        try:
            meta = self._restore(path)
        except (OSError, ValueError):
            # a damaged latest backup: the previous one, when kept
            if path == self._prev_state_path or not os.path.exists(self._prev_state_path):
                raise
            meta = self._restore(self._prev_state_path)
        epoch = meta.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"BackupAndRestore: {path!r} holds no valid epoch to resume at "
                             f"(got {epoch!r})")
        self._current_epoch = epoch
        self.model._initial_epoch = epoch

    def _restore(self, path):
        from ..saving import load_training_state
        meta = load_training_state(self.model, path)
        lr = meta.get("learning_rate")
        optimizer = getattr(self.model, "optimizer", None)
        if lr is not None and optimizer is not None:
            optimizer.learning_rate = lr
        return meta

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if self.save_freq == "epoch":
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save()

    def _save(self):
        from .._files import replace_atomically
        from ..saving import save_training_state
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._state_path):
            with open(self._state_path, "rb") as f:
                data = f.read()
            replace_atomically(self._prev_state_path, lambda out: out.write(data))
        meta = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        optimizer = getattr(self.model, "optimizer", None)
        try:
            meta["learning_rate"] = float(optimizer.learning_rate)
        except (AttributeError, TypeError, ValueError):
            pass  # no optimizer, or a schedule (restored with the step count)
        save_training_state(self.model, self._state_path, metadata=meta)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)
