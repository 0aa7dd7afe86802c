"""Run under mpiexec by tests/test_mpi.py: ``backup.py OUT crash|resume``.

``crash``: train the MLP (no shuffling) with a BackupAndRestore; rank 0 raises at the
end of the second epoch, after the backup, which aborts the job. ``resume`` (on another
number of ranks): the same fit resumes from rank 0's backup at epoch 3 and saves
``OUT/backup_rank{r}.npz`` (weights, the epochs it ran)."""
import os
import sys

import numpy as np

import pynn

pynn.distribution.initialize()
pynn.distribution.set_distribution(pynn.distribution.DataParallel())

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


class Crash(pynn.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1 and pynn.distribution.process_id() == 0:
            raise RuntimeError("crash after the backup of epoch 2")


class Epochs(pynn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


out, stage = sys.argv[1], sys.argv[2]
backup = pynn.callbacks.BackupAndRestore(os.path.join(out, "backup"))
epochs = Epochs()
model, _ = common.train("mlp", [backup, epochs] + ([Crash()] if stage == "crash" else []),
                        shuffle=False)
np.savez(os.path.join(out, f"backup_rank{pynn.distribution.process_id()}.npz"),
         *model.get_weights(), epochs=np.array(epochs.seen))
