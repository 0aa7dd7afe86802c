"""Callbacks against a minimal fake model implementing only the calls the
callbacks may use (stop_training, optimizer.learning_rate, get/set_weights,
save, save_weights), driven by a tiny fit-like loop."""
import csv
import json
import math
import os

import numpy as np
import pytest

import pynn.callbacks as C
from pynn.optimizers import SGD
from pynn.callbacks import ProgbarLogger


class FakeModel:
    def __init__(self, lr=0.1):
        self.stop_training = False
        self.optimizer = SGD(lr)
        self.weights = [np.zeros(2), np.zeros(1)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path):
        with open(path, "w") as f:
            json.dump({"w": float(self.weights[0][0])}, f)
        self.saved.append(("save", path))

    def save_weights(self, path):
        with open(path, "w") as f:
            json.dump({"weights_only": float(self.weights[0][0])}, f)
        self.saved.append(("save_weights", path))


def fit(model, callbacks, epoch_logs, steps=2, batch_losses=None, verbose=0):
    """Run the hooks as Sequential.fit does: the weights become ``epoch`` in epoch
    ``epoch``; ``epoch_logs[e]`` are the epoch-end logs."""
    cbl = C.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                         verbose=verbose, epochs=len(epoch_logs), steps=steps)
    model.stop_training = False
    cbl.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        cbl.on_epoch_begin(epoch)
        for b in range(steps):
            cbl.on_train_batch_begin(b)
            model.weights = [np.full(2, float(epoch)), np.full(1, float(epoch))]
            loss = batch_losses[epoch][b] if batch_losses else logs.get("loss", 1.0)
            cbl.on_train_batch_end(b, {"loss": loss})
            if model.stop_training:
                break
        logs = dict(logs)
        cbl.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbl.on_train_end()
    return model.history


def vals(name, values):
    return [{name: v} for v in values]


# --------------------------------------------------------------------------
# CallbackList and History
# --------------------------------------------------------------------------
def test_history_records_epoch_logs_and_is_set_on_the_model():
    m = FakeModel()
    h = fit(m, [], [{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5, "val_loss": 1.5}])
    assert isinstance(h, C.History) and m.history is h
    assert h.history == {"loss": [1.0, 0.5], "val_loss": [2.0, 1.5]}
    assert h.epoch == [0, 1]


def test_callback_list_adds_defaults_once():
    hist, bar = C.History(), ProgbarLogger()
    cbl = C.CallbackList([hist, bar], add_history=True, add_progbar=True)
    assert cbl.callbacks == [hist, bar]
    cbl = C.CallbackList([C.TerminateOnNaN()], add_history=True, add_progbar=True,
                         verbose=0, epochs=3, steps=5)
    kinds = [type(c) for c in cbl.callbacks]
    assert kinds == [C.TerminateOnNaN, C.History, ProgbarLogger]
    assert cbl.callbacks[0].params == {"verbose": 0, "epochs": 3, "steps": 5}
    assert C.ProgbarLogger is ProgbarLogger


def test_callback_list_forwards_every_hook():
    seen = []

    class Rec(C.Callback):
        pass

    rec = Rec()
    for hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
                 "on_predict_begin", "on_predict_end"):
        setattr(rec, hook, lambda logs=None, h=hook: seen.append(h))
    for hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
                 "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
                 "on_predict_batch_end"):
        setattr(rec, hook, lambda i, logs=None, h=hook: seen.append(h))
    cbl = C.CallbackList([rec])
    for hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
                 "on_predict_begin", "on_predict_end"):
        getattr(cbl, hook)({})
    for hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
                 "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
                 "on_predict_batch_end"):
        getattr(cbl, hook)(0, {})
    assert len(seen) == 14 and len(set(seen)) == 14


def test_lambda_callback():
    out = []
    m = FakeModel()
    fit(m, [C.LambdaCallback(on_epoch_end=lambda e, logs: out.append((e, logs["loss"])))],
        vals("loss", [3.0, 2.0]))
    assert out == [(0, 3.0), (1, 2.0)]


# --------------------------------------------------------------------------
# EarlyStopping
# --------------------------------------------------------------------------
def test_early_stopping_patience_and_restore_best_weights(capsys):
    m = FakeModel()
    es = C.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    h = fit(m, [es], vals("val_loss", [1.0, 0.8, 0.9, 0.85, 0.7, 0.6]))
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3
    assert h.epoch == [0, 1, 2, 3]
    assert es.stopped_epoch == 3 and es.best == 0.8 and es.best_epoch == 1
    np.testing.assert_array_equal(m.weights[0], [1.0, 1.0])
    out = capsys.readouterr().out
    assert "Epoch 4: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 2." in out


def test_early_stopping_restores_at_train_end_without_stopping():
    m = FakeModel()
    es = C.EarlyStopping(patience=5, restore_best_weights=True)
    fit(m, [es], vals("val_loss", [1.0, 0.5, 0.7]))
    assert es.stopped_epoch == 0
    np.testing.assert_array_equal(m.weights[0], [1.0, 1.0])


def test_early_stopping_keeps_last_weights_by_default():
    m = FakeModel()
    fit(m, [C.EarlyStopping(patience=1)], vals("val_loss", [1.0, 1.2, 1.3, 0.1]))
    np.testing.assert_array_equal(m.weights[0], [1.0, 1.0])  # stopped after epoch 1
    assert len(m.history.epoch) == 2


def test_early_stopping_min_delta():
    m = FakeModel()
    es = C.EarlyStopping(monitor="loss", min_delta=0.1, patience=1)
    # 1.0 -> 0.95 is not an improvement of more than 0.1
    h = fit(m, [es], vals("loss", [1.0, 0.95, 0.5]))
    assert h.epoch == [0, 1] and es.stopped_epoch == 1
    m = FakeModel()
    h = fit(m, [C.EarlyStopping(monitor="loss", min_delta=0.1, patience=1)],
            vals("loss", [1.0, 0.85, 0.7, 0.65]))
    assert h.epoch == [0, 1, 2, 3]


def test_early_stopping_start_from_epoch():
    m = FakeModel()
    es = C.EarlyStopping(patience=1, start_from_epoch=3)
    h = fit(m, [es], vals("val_loss", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    # epochs 0-2 are ignored; epoch 3 sets the best, epoch 4 does not improve
    assert h.epoch == [0, 1, 2, 3, 4] and es.best == 4.0


def test_early_stopping_auto_mode_maximises_accuracy_and_baseline():
    m = FakeModel()
    es = C.EarlyStopping(monitor="val_accuracy", patience=1)
    h = fit(m, [es], vals("val_accuracy", [0.5, 0.6, 0.55, 0.9]))
    assert h.epoch == [0, 1, 2] and es.best == 0.6
    m = FakeModel()
    es = C.EarlyStopping(monitor="val_loss", patience=2, baseline=0.5)
    h = fit(m, [es], vals("val_loss", [0.9, 0.8, 0.85, 0.7]))
    assert h.epoch == [0, 1, 2]  # improvements that miss the baseline do not reset wait
    m = FakeModel()
    h = fit(m, [C.EarlyStopping(monitor="val_loss", patience=2)],
            vals("val_loss", [0.9, 0.8, 0.85, 0.7]))
    assert h.epoch == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="mode='max'"):
        fit(FakeModel(), [C.EarlyStopping(monitor="val_wobble")], vals("val_wobble", [1.0]))
    m = FakeModel()
    es = C.EarlyStopping(monitor="val_wobble", mode="max", patience=0)
    h = fit(m, [es], vals("val_wobble", [1.0, 0.5, 2.0]))
    assert h.epoch == [0, 1]


def test_early_stopping_missing_monitor_warns():
    with pytest.warns(UserWarning, match="val_loss.*not available.*loss"):
        fit(FakeModel(), [C.EarlyStopping()], vals("loss", [1.0, 2.0]))


# --------------------------------------------------------------------------
# ReduceLROnPlateau
# --------------------------------------------------------------------------
def test_reduce_lr_after_patience(capsys):
    m = FakeModel(lr=0.1)
    cb = C.ReduceLROnPlateau(factor=0.5, patience=2, verbose=1)
    h = fit(m, [cb], vals("val_loss", [1.0, 1.0, 1.0, 1.0, 1.0]))
    # reduce after epochs 2 and 4 (two epochs without improvement each time)
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])
    assert m.optimizer.learning_rate == pytest.approx(0.025)
    assert "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.05." in capsys.readouterr().out


def test_reduce_lr_cooldown_and_min_lr():
    m = FakeModel(lr=1.0)
    cb = C.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=1, cooldown=2, min_lr=0.005)
    h = fit(m, [cb], vals("loss", [1.0] * 10))
    lrs = h.history["learning_rate"]
    # cut after epoch 1; cooldown counts down in epochs 2 and 3, and epoch 3 already
    # counts as a new epoch of patience (Keras): cuts after epochs 1, 3 and 5
    assert lrs[:7] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.005])
    assert m.optimizer.learning_rate == pytest.approx(0.005)  # clamped at min_lr
    assert min(lrs) >= 0.005


def test_reduce_lr_improvement_resets_and_mode():
    m = FakeModel(lr=1.0)
    fit(m, [C.ReduceLROnPlateau(monitor="loss", patience=2)],
        vals("loss", [1.0, 0.9, 0.8, 0.7, 0.6]))
    assert m.optimizer.learning_rate == 1.0
    m = FakeModel(lr=1.0)
    fit(m, [C.ReduceLROnPlateau(monitor="val_acc", patience=1, factor=0.5)],
        vals("val_acc", [0.5, 0.6, 0.7, 0.6]))
    assert m.optimizer.learning_rate == 0.5
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.0)


# --------------------------------------------------------------------------
# ModelCheckpoint
# --------------------------------------------------------------------------
def test_checkpoint_formats_names(tmp_path):
    m = FakeModel()
    path = str(tmp_path / "ck-{epoch:02d}-{val_loss:.2f}.keras")
    fit(m, [C.ModelCheckpoint(path)], vals("val_loss", [0.5, 0.25]))
    assert sorted(os.listdir(tmp_path)) == ["ck-01-0.50.keras", "ck-02-0.25.keras"]
    assert [k for k, _ in m.saved] == ["save", "save"]
    with pytest.raises(KeyError, match="val_acc"):
        fit(FakeModel(), [C.ModelCheckpoint(str(tmp_path / "{val_acc}.keras"))],
            vals("val_loss", [1.0]))


def test_checkpoint_save_best_only(tmp_path, capsys):
    m = FakeModel()
    path = tmp_path / "sub" / "best.keras"
    cb = C.ModelCheckpoint(path, save_best_only=True, verbose=1)
    fit(m, [cb], vals("val_loss", [1.0, 0.5, 0.7, 0.6]))
    with open(path) as f:
        assert json.load(f) == {"w": 1.0}  # written at epoch 1 (the best)
    assert len(m.saved) == 2 and cb.best == 0.5
    out = capsys.readouterr().out
    assert "Epoch 2: val_loss improved from 1.00000 to 0.50000, saving model to" in out
    assert "Epoch 3: val_loss did not improve from 0.50000" in out


def test_checkpoint_weights_only_max_mode_and_batch_freq(tmp_path):
    m = FakeModel()
    path = str(tmp_path / "w-{epoch}.weights.h5")
    fit(m, [C.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True,
                              save_weights_only=True)],
        vals("val_accuracy", [0.5, 0.4, 0.9]))
    assert m.saved == [("save_weights", str(tmp_path / "w-1.weights.h5")),
                       ("save_weights", str(tmp_path / "w-3.weights.h5"))]
    m = FakeModel()
    path = str(tmp_path / "b-{epoch}-{batch}.keras")
    fit(m, [C.ModelCheckpoint(path, save_freq=3)], vals("loss", [1.0, 1.0, 1.0]), steps=2)
    # 6 batches, one save every 3: after epoch 1 batch 1 and epoch 3 batch 2
    assert [p for _, p in m.saved] == [str(tmp_path / "b-2-1.keras"),
                                       str(tmp_path / "b-3-2.keras")]
    with pytest.raises(ValueError, match="save_freq"):
        C.ModelCheckpoint("x.keras", save_freq="sometimes")
    with pytest.raises(ValueError, match="must end in"):
        C.ModelCheckpoint("model.h5")
    with pytest.raises(ValueError, match="save_weights_only"):
        C.ModelCheckpoint("model.keras", save_weights_only=True)


# --------------------------------------------------------------------------
# CSVLogger, TerminateOnNaN, LearningRateScheduler
# --------------------------------------------------------------------------
def test_csv_logger(tmp_path):
    path = str(tmp_path / "log.csv")
    logs = [{"loss": 1.0, "accuracy": 0.5, "val_loss": 1.5}, {"loss": 0.5, "accuracy": 0.75}]
    fit(FakeModel(), [C.CSVLogger(path)], logs)
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows == [["epoch", "accuracy", "loss", "val_loss"], ["0", "0.5", "1.0", "1.5"],
                    ["1", "0.75", "0.5", "NA"]]
    fit(FakeModel(), [C.CSVLogger(path, append=True)], logs[:1])
    with open(path) as f:
        assert len(list(csv.reader(f))) == 4  # no second header
    path2 = str(tmp_path / "semi.csv")
    fit(FakeModel(), [C.CSVLogger(path2, separator=";")], logs[:1])
    with open(path2) as f:
        assert f.readline().strip() == "epoch;accuracy;loss;val_loss"


def test_terminate_on_nan(capsys):
    m = FakeModel()
    h = fit(m, [C.TerminateOnNaN()], vals("loss", [1.0, 1.0, 1.0]), steps=3,
            batch_losses=[[1.0, 1.0, 1.0], [1.0, float("nan"), 1.0], [1.0, 1.0, 1.0]])
    assert m.stop_training is True and h.epoch == [0, 1]
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out
    m = FakeModel()
    fit(m, [C.TerminateOnNaN()], vals("loss", [1.0]), batch_losses=[[1.0, math.inf]])
    assert m.stop_training is True


def test_learning_rate_scheduler(capsys):
    m = FakeModel(lr=1.0)
    h = fit(m, [C.LearningRateScheduler(lambda epoch, lr: lr * 0.5, verbose=1)],
            vals("loss", [1.0, 1.0, 1.0]))
    assert h.history["learning_rate"] == pytest.approx([0.5, 0.25, 0.125])
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.25." in \
        capsys.readouterr().out
    m = FakeModel(lr=1.0)
    fit(m, [C.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], vals("loss", [1, 1]))
    assert m.optimizer.learning_rate == pytest.approx(0.05)
    with pytest.raises(ValueError, match="should be a float"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: "fast")], vals("loss", [1]))


# --------------------------------------------------------------------------
# integration: each callback through a real Sequential.fit on tiny data
# --------------------------------------------------------------------------
def tiny_model(lr=0.1, optimizer=None):
    from pynn import layers
    from pynn._config import set_seed
    from pynn.models import Sequential
    set_seed(7)
    m = Sequential([layers.Input((4,)), layers.Dense(8, activation="relu"),
                    layers.Dense(2, activation="softmax")])
    m.compile(optimizer=optimizer or SGD(lr), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


@pytest.fixture
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def test_fit_early_stopping_restores_best_weights(tiny_data):
    x, y = tiny_data
    m = tiny_model(lr=0.5)
    seen = {}

    class Snap(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = (logs["val_loss"], self.model.get_weights())

    es = C.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    # a huge learning rate after epoch 1 makes validation loss go up
    sched = C.LearningRateScheduler(lambda e, lr: 0.5 if e < 2 else 50.0)
    h = m.fit(x, y, epochs=30, batch_size=16, validation_split=0.25, verbose=0,
              callbacks=[sched, es, Snap()])
    assert es.stopped_epoch > 0 and len(h.epoch) == es.stopped_epoch + 1 < 30
    best = min(seen, key=lambda e: seen[e][0])
    assert best == es.best_epoch
    for got, want in zip(m.get_weights(), seen[best][1]):
        np.testing.assert_array_equal(got, want)


def test_fit_reduce_lr_on_plateau(tiny_data):
    x, y = tiny_data
    m = tiny_model(lr=0.1)
    cb = C.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)
    h = m.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[cb])
    # min_delta=10: only the first epoch improves (on +inf); cuts after epochs 1, 2, 3
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert m.optimizer.learning_rate == pytest.approx(0.0125)


def test_fit_model_checkpoint_and_load(tiny_data, tmp_path):
    from pynn.models import load_model
    x, y = tiny_data
    m = tiny_model()
    path = str(tmp_path / "ck-{epoch:02d}-{val_loss:.2f}.keras")
    best = str(tmp_path / "best.keras")
    h = m.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
              callbacks=[C.ModelCheckpoint(path),
                         C.ModelCheckpoint(best, save_best_only=True)])
    names = sorted(os.listdir(tmp_path))
    want = sorted([f"ck-{e + 1:02d}-{v:.2f}.keras" for e, v in
                   enumerate(h.history["val_loss"])] + ["best.keras"])
    assert names == want
    last = load_model(str(tmp_path / f"ck-03-{h.history['val_loss'][2]:.2f}.keras"))
    for a, b in zip(last.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert os.path.getsize(best) > 0
    m2 = tiny_model()
    m2.fit(x, y, epochs=2, batch_size=16, verbose=0,
           callbacks=[C.ModelCheckpoint(str(tmp_path / "w.weights.h5"), monitor="loss",
                                        save_weights_only=True)])
    assert os.path.exists(tmp_path / "w.weights.h5")


def test_fit_csv_logger(tiny_data, tmp_path):
    x, y = tiny_data
    path = tmp_path / "log.csv"
    h = tiny_model().fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0,
                         callbacks=[C.CSVLogger(path)])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert set(rows[0]) == {"epoch", *h.history}
    for key, values in h.history.items():
        assert [float(r[key]) for r in rows] == pytest.approx(values)


def test_fit_terminate_on_nan(tiny_data):
    x, y = tiny_data
    m = tiny_model()
    # an absurd learning rate overflows the float32 weights within a few steps
    m = tiny_model(lr=1e30)
    h = m.fit(x * 1e5, y, epochs=5, batch_size=4, verbose=0, callbacks=[C.TerminateOnNaN()])
    assert m.stop_training is True and len(h.epoch) == 1


def test_fit_learning_rate_scheduler(tiny_data):
    x, y = tiny_data
    m = tiny_model(lr=0.1)
    h = m.fit(x, y, epochs=3, batch_size=16, verbose=0,
              callbacks=[C.LearningRateScheduler(lambda e: 0.1 * 0.5 ** e)])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])


def test_fit_history_and_progbar_output(tiny_data, capsys):
    import re
    x, y = tiny_data
    m = tiny_model()
    h = m.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=2)
    assert m.history is h and h.epoch == [0, 1]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and len(lines) == 4
    assert re.match(r"^3/3 - \d+s - \d+(us|ms|s)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4} - "
                    r"val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}", lines[1]), lines[1]
