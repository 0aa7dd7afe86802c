"""``TensorBoard`` (issue 18): real event files written by tensorboardX (the
``tensorboard`` extra), read back here and checked tag by tag, value by value."""
import glob
import os
import struct

import numpy as np
import pytest

tensorboardX = pytest.importorskip("tensorboardX")

import pynn  # noqa: E402
from pynn.callbacks import TensorBoard  # noqa: E402
from pynn.layers import Dense  # noqa: E402
from pynn.models import Sequential  # noqa: E402


def _read(run_dir):
    """``{tag: [(step, value)]}`` for scalars and ``{tag: [(step, count)]}`` for
    histograms of the event files in ``run_dir``: with TensorBoard's own
    EventAccumulator when installed, else by reading the TFRecord frames and parsing
    them with tensorboardX's Event proto."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            EventAccumulator)
    except ImportError:
        return _read_frames(run_dir)
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    hists = {t: [(e.step, e.histogram_value.num) for e in acc.Histograms(t)]
             for t in acc.Tags()["histograms"]}
    return scalars, hists


def _read_frames(run_dir):
    from tensorboardX.proto.event_pb2 import Event
    scalars, hists = {}, {}
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            ev = Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in ev.summary.value:
                if v.HasField("histo"):
                    hists.setdefault(v.tag, []).append((ev.step, v.histo.num))
                elif v.HasField("simple_value") or v.WhichOneof("value") == "simple_value":
                    scalars.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return scalars, hists


def _fit(tmp_path, **kw):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 4)).astype(np.float32), rng.integers(0, 3, 24)
    pynn.set_seed(0)
    m = Sequential([Dense(5, activation="relu", input_shape=(4,)),
                    Dense(3, activation="softmax")])
    m.compile(pynn.optimizers.SGD(0.05), "sparse_categorical_crossentropy",
              metrics=["accuracy"])
    h = m.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.25,
              callbacks=[TensorBoard(str(tmp_path), **kw)])
    return m, h


def test_epoch_scalars_train_and_validation(tmp_path):
    m, h = _fit(tmp_path)
    train, hist = _read(str(tmp_path / "train"))
    val, _ = _read(str(tmp_path / "validation"))
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(train)
    assert not hist and not any(t.startswith("batch_") for t in train)
    for name in ("loss", "accuracy"):
        assert [s for s, _ in train[f"epoch_{name}"]] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in train[f"epoch_{name}"]],
                                   h.history[name], rtol=1e-6)
        np.testing.assert_allclose([v for _, v in val[f"epoch_{name}"]],
                                   h.history[f"val_{name}"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in train["epoch_learning_rate"]], [0.05] * 3,
                               rtol=1e-6)
    # after each validation, at the optimizer's step count (18 samples: 3 steps an epoch)
    assert [s for s, _ in val["evaluation_loss_vs_iterations"]] == [3, 6, 9]


def test_update_freq_batches_and_histograms(tmp_path):
    m, h = _fit(tmp_path, update_freq=2, histogram_freq=2)
    train, hist = _read(str(tmp_path / "train"))
    # 3 batches per epoch, 9 in all: written at batches 2, 4, 6, 8
    assert [s for s, _ in train["batch_loss"]] == [2, 4, 6, 8]
    assert {t.split("/")[-1] for t in hist} == {"histogram"}
    assert len(hist) == len(m.weights)
    for w in m.weights:
        steps = hist[f"{w.path}/histogram"]
        assert [s for s, _ in steps] == [0, 2]
        assert all(n == w.numpy().size for _, n in steps)


def test_update_freq_batch_is_every_batch_and_bad_arguments(tmp_path):
    _fit(tmp_path, update_freq="batch")
    train, _ = _read(str(tmp_path / "train"))
    assert [s for s, _ in train["batch_loss"]] == list(range(1, 10))
    with pytest.raises(ValueError, match="update_freq"):
        TensorBoard(str(tmp_path), update_freq=0)
    with pytest.raises(ValueError, match="profil"):
        TensorBoard(str(tmp_path), profile_batch=2)
    with pytest.warns(UserWarning, match="write_images"):
        TensorBoard(str(tmp_path), write_images=True)


def test_hooks_take_logs_none(tmp_path):
    m, _ = _fit(tmp_path / "a")
    cb = TensorBoard(str(tmp_path / "b"), update_freq=1, histogram_freq=1)
    cb.set_model(m)
    for hook, args in (("on_train_begin", ()), ("on_epoch_begin", (0,)),
                       ("on_train_batch_begin", (0,)), ("on_train_batch_end", (0,)),
                       ("on_test_begin", ()), ("on_test_end", ()), ("on_epoch_end", (0,)),
                       ("on_train_end", ())):
        getattr(cb, hook)(*args, logs=None)


def test_missing_tensorboardx_names_the_extra(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_tbx(name, *args, **kwargs):
        if name.startswith("tensorboardX"):
            raise ImportError("No module named 'tensorboardX'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tbx)
    with pytest.raises(ImportError, match=r"pynn\[tensorboard\]"):
        TensorBoard("logs")
