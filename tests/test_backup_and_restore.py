"""``BackupAndRestore`` (issue 18): an interrupted ``fit`` resumes at the epoch it
stopped, with the same weights, optimizer state and shuffles, through the atomic save
path (a ``.weights.npz`` zip, never a pickle)."""
import os
import zipfile

import numpy as np
import pytest

import pynn
from pynn.callbacks import BackupAndRestore, Callback
from pynn.layers import Dense
from pynn.models import Sequential


class Interrupt(Exception):
    pass


class InterruptAt(Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise Interrupt


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40)


def _model(seed):
    pynn.set_seed(seed)
    m = Sequential([Dense(6, activation="relu", input_shape=(4,)),
                    Dense(3, activation="softmax")])
    m.compile(pynn.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


def test_interrupted_fit_resumes_at_the_epoch_with_the_same_state(tmp_path):
    x, y = _data()
    ref = _model(1)
    href = ref.fit(x, y, batch_size=8, epochs=5, verbose=0)  # shuffled
    backup = tmp_path / "backup"
    m = _model(1)
    with pytest.raises(Interrupt):
        m.fit(x, y, batch_size=8, epochs=5, verbose=0,
              callbacks=[BackupAndRestore(backup), InterruptAt(3, 2)])
    state = backup / "latest.weights.npz"
    assert zipfile.is_zipfile(state)  # the pynn zip (config + npz), not a pickle
    assert sorted(zipfile.ZipFile(state).namelist()) == ["weights.json", "weights.npz"]
    # a new process: a fresh model (other initial weights, other generator state)
    resumed = _model(99)
    h = resumed.fit(x, y, batch_size=8, epochs=5, verbose=0,
                    callbacks=[BackupAndRestore(backup)])
    assert h.epoch == [3, 4]  # epochs 0-2 were backed up, epoch 3 was cut
    for a, b in zip(resumed.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert resumed.optimizer.iterations == ref.optimizer.iterations
    assert h.history["loss"] == href.history["loss"][3:]
    assert not backup.exists()  # delete_checkpoint: removed once fit completes


def test_save_freq_batches_double_checkpoint_and_keep(tmp_path):
    x, y = _data()
    backup = tmp_path / "b"
    m = _model(2)
    cb = BackupAndRestore(backup, save_freq=3, double_checkpoint=True,
                          delete_checkpoint=False)
    with pytest.raises(Interrupt):
        m.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[cb, InterruptAt(1, 4)])
    assert (backup / "latest.weights.npz").exists()
    assert (backup / "latest.weights.npz.bkp").exists()
    # a damaged latest backup: the previous one is restored
    (backup / "latest.weights.npz").write_bytes(b"not a zip")
    m2 = _model(3)
    h = m2.fit(x, y, batch_size=8, epochs=3, verbose=0,
               callbacks=[BackupAndRestore(backup, double_checkpoint=True,
                                           delete_checkpoint=False)])
    assert h.epoch[0] in (0, 1) and h.epoch[-1] == 2
    assert os.path.isdir(backup)  # kept


def test_no_backup_trains_from_the_start_and_bad_arguments(tmp_path):
    x, y = _data()
    h = _model(4).fit(x, y, epochs=2, verbose=0, callbacks=[BackupAndRestore(tmp_path / "n")])
    assert h.epoch == [0, 1]
    with pytest.raises(ValueError, match="backup_dir"):
        BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(tmp_path, save_freq="batch")


def test_a_damaged_backup_without_a_previous_one_is_an_error(tmp_path):
    x, y = _data()
    backup = tmp_path / "b"
    backup.mkdir()
    (backup / "latest.weights.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError):
        _model(5).fit(x, y, epochs=1, verbose=0, callbacks=[BackupAndRestore(backup)])
