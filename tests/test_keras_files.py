"""Keras 3 ``.keras`` archives and ``.weights.h5`` files, both ways: a model saved by pynn
loads in Keras 3 (torch backend) with the same predictions and a model saved by Keras
loads in pynn with the same predictions, for MLP, functional two-branch, convnet and
recurrent models; damaged and hostile files are clean ValueErrors."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import pynn
from pynn.models import load_model

from helpers import import_keras

h5py = pytest.importorskip("h5py")


def mlp(lib):
    L = lib.layers
    return lib.Sequential([lib.Input((6,)), L.Dense(8, activation="relu"),
                           L.BatchNormalization(), L.Dropout(0.3), L.Dense(3, activation="softmax")])


def two_branch(lib):
    L = lib.layers
    a, b = lib.Input((4,), name="a"), lib.Input((3,), name="b")
    x = L.Dense(5, activation="tanh")(a)
    y = L.Dense(5)(b)
    s = L.Concatenate()([L.Add()([x, y]), L.Multiply()([x, y])])
    return lib.Model([a, b], [L.Dense(2, name="out1")(s), L.Dense(1, name="out2")(x)])


def convnet(lib):
    L = lib.layers
    return lib.Sequential([lib.Input((12, 12, 1)), L.Conv2D(4, 3, activation="relu"),
                           L.MaxPooling2D(), L.Conv2D(6, 3, padding="same"),
                           L.GlobalAveragePooling2D(), L.Dense(3)])


def recurrent(lib):
    L = lib.layers
    i = lib.Input((7,), dtype="int32")
    x = L.Embedding(20, 4)(i)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True))(x)
    x = L.TimeDistributed(L.Dense(4))(x)
    x = L.GRU(3, return_sequences=True)(x)
    x = L.SimpleRNN(2)(x)
    return lib.Model(i, L.Dense(1, activation="sigmoid")(x))


def recurrent_sequential(lib):
    # wrappers inside Sequential: their configs nest Keras layer entries
    L = lib.layers
    return lib.Sequential([
        lib.Input((6, 3)), L.Bidirectional(L.LSTM(4, return_sequences=True)),
        L.TimeDistributed(L.Dense(3)),
        L.Bidirectional(L.GRU(2), backward_layer=L.GRU(2, go_backwards=True),
                        merge_mode="sum"),
        L.Dense(1)])


def encoder_decoder(lib):
    L = lib.layers
    enc, dec = lib.Input((4, 3)), lib.Input((5, 2))
    _, h, c = L.LSTM(6, return_state=True)(enc)
    y = L.LSTM(6, return_sequences=True)(dec, initial_state=[h, c])
    b = L.Bidirectional(L.LSTM(6))(dec, initial_state=[h, c, c, h])
    return lib.Model([enc, dec], [L.Dense(2)(y), b])


def nested(lib):
    L = lib.layers
    inner = lib.Sequential([lib.Input((4,)), L.Dense(3, activation="relu")], name="inner")
    i = lib.Input((4,))
    return lib.Model(i, L.Dense(2)(inner(i)))


MODELS = {"mlp": (mlp, lambda r: r.standard_normal((5, 6))),
          "two_branch": (two_branch, lambda r: [r.standard_normal((5, 4)),
                                                r.standard_normal((5, 3))]),
          "convnet": (convnet, lambda r: r.standard_normal((3, 12, 12, 1))),
          "recurrent": (recurrent, lambda r: r.integers(0, 20, (4, 7)).astype("int32")),
          "recurrent_sequential": (recurrent_sequential,
                                   lambda r: r.standard_normal((3, 6, 3))),
          "encoder_decoder": (encoder_decoder, lambda r: [r.standard_normal((3, 4, 3)),
                                                          r.standard_normal((3, 5, 2))]),
          "nested": (nested, lambda r: r.standard_normal((5, 4)))}


def as_f32(x):
    if isinstance(x, list):
        return [as_f32(a) for a in x]
    return x if x.dtype.kind in "iu" else x.astype(np.float32)


def close(a, b):
    a = a if isinstance(a, list) else [a]
    b = b if isinstance(b, list) else [b]
    assert len(a) == len(b)
    for p, q in zip(a, b):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-5, atol=1e-5)


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([np.abs(rng.standard_normal(w.shape)).astype("float32") + 0.5
                       if "variance" in getattr(w, "path", "") else
                       (0.5 * rng.standard_normal(w.shape)).astype("float32")
                       for w in model.weights])
    return model


@pytest.mark.parametrize("name", list(MODELS))
def test_pynn_file_opens_in_keras(name, tmp_path):
    keras = import_keras()
    make, data = MODELS[name]
    x = as_f32(data(np.random.default_rng(1)))
    m = randomize(make(pynn))
    m.compile("adam", "mse")
    m.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    close(theirs.predict(x, verbose=0), m.predict(x, verbose=0))
    m.save_weights(tmp_path / "m.weights.h5")
    fresh = make(keras)
    fresh.load_weights(tmp_path / "m.weights.h5")
    close(fresh.predict(x, verbose=0), m.predict(x, verbose=0))


@pytest.mark.parametrize("name", list(MODELS))
def test_keras_file_opens_in_pynn(name, tmp_path):
    keras = import_keras()
    make, data = MODELS[name]
    x = as_f32(data(np.random.default_rng(2)))
    km = make(keras)
    randomize(km, seed=3)
    km.compile(optimizer="adam", loss="mse")
    km.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    close(ours.predict(x, verbose=0), km.predict(x, verbose=0))
    assert ours.optimizer is not None and type(ours.optimizer).__name__ == "Adam"
    km.save_weights(tmp_path / "k.weights.h5")
    fresh = make(pynn)
    fresh.load_weights(tmp_path / "k.weights.h5")
    close(fresh.predict(x, verbose=0), km.predict(x, verbose=0))


def test_trained_in_keras_then_trained_on_in_pynn(tmp_path):
    keras = import_keras()
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((64, 6)).astype("float32"), rng.integers(0, 3, 64)
    km = mlp(keras)
    km.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    km.fit(x, y, epochs=2, verbose=0)
    km.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    close(ours.predict(x, verbose=0), km.predict(x, verbose=0))
    h = ours.fit(x, y, epochs=2, verbose=0).history
    assert "accuracy" in h
    ours.save(tmp_path / "back.keras")
    close(keras.models.load_model(tmp_path / "back.keras").predict(x, verbose=0),
          ours.predict(x, verbose=0))


def test_round_trip_without_keras(tmp_path):
    m = randomize(recurrent(pynn))
    x = np.random.default_rng(5).integers(0, 20, (3, 7)).astype("int32")
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        cfg = json.loads(zf.read("config.json"))
    assert cfg["module"] == "keras.src.models.functional" and cfg["class_name"] == "Functional"
    back = load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    m.save(tmp_path / "m.pynn")  # pynn's own format keeps its extension
    np.testing.assert_array_equal(load_model(tmp_path / "m.pynn").predict(x, verbose=0),
                                  m.predict(x, verbose=0))


# --------------------------------------------------------------------------------------
# damaged and hostile files
# --------------------------------------------------------------------------------------
def _saved(tmp_path):
    m = randomize(mlp(pynn))
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        return m, {n: zf.read(n) for n in zf.namelist()}


def _write(path, entries, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
    return path


def _edit_h5(data, fn):
    bio = io.BytesIO(data)
    with h5py.File(bio, "r+") as f:
        fn(f)
    return bio.getvalue()


def test_truncated_file(tmp_path):
    _saved(tmp_path)
    data = (tmp_path / "m.keras").read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        (tmp_path / "t.keras").write_bytes(data[:cut])
        with pytest.raises(ValueError):
            load_model(tmp_path / "t.keras")


def test_wrong_and_huge_declared_shapes(tmp_path):
    _, entries = _saved(tmp_path)

    def wrong(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", data=np.zeros((5, 8), "f4"))

    bad = dict(entries, **{"model.weights.h5": _edit_h5(entries["model.weights.h5"], wrong)})
    with pytest.raises(ValueError, match=r"layers/dense/vars/0.*shape \(5, 8\).*\(6, 8\)"):
        load_model(_write(tmp_path / "w.keras", bad))

    def huge(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", shape=(2**20, 2**20), dtype="f4")

    bad = dict(entries, **{"model.weights.h5": _edit_h5(entries["model.weights.h5"], huge)})
    with pytest.raises(ValueError, match=r"shape \(1048576, 1048576\)"):
        load_model(_write(tmp_path / "h.keras", bad))


def test_compressed_weights_and_extra_entries_are_refused(tmp_path):
    _, entries = _saved(tmp_path)
    with pytest.raises(ValueError, match="compressed"):
        load_model(_write(tmp_path / "c.keras", entries, zipfile.ZIP_DEFLATED))
    with pytest.raises(ValueError, match="entries"):
        load_model(_write(tmp_path / "e.keras", dict(entries, **{"../evil.py": b"x"})))


def test_unknown_class_and_argument_are_named(tmp_path):
    _, entries = _saved(tmp_path)
    cfg = json.loads(entries["config.json"])
    cfg["config"]["layers"][1]["class_name"] = "FancyDense"
    with pytest.raises(ValueError, match="no layer class 'FancyDense'"):
        load_model(_write(tmp_path / "u.keras", dict(entries, **{
            "config.json": json.dumps(cfg).encode()})))
    cfg = json.loads(entries["config.json"])
    cfg["config"]["layers"][1]["config"]["kernel_constraint"] = {
        "module": "keras.constraints", "class_name": "MaxNorm", "config": {"max_value": 2}}
    with pytest.raises(ValueError, match="kernel_constraint=.* is not supported by pynn.s Dense"):
        load_model(_write(tmp_path / "a.keras", dict(entries, **{
            "config.json": json.dumps(cfg).encode()})))


def test_external_links_and_soft_links_are_refused(tmp_path):
    _, entries = _saved(tmp_path)
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f.create_dataset("secret", data=np.zeros((6, 8), "f4"))

    def external(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(outside), "secret")

    bad = dict(entries, **{"model.weights.h5": _edit_h5(entries["model.weights.h5"],
                                                        external)})
    with pytest.raises(ValueError, match="ExternalLink"):
        load_model(_write(tmp_path / "x.keras", bad))

    def external_storage(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", shape=(6, 8), dtype="f4",
                                              external=[(str(outside), 0, 6 * 8 * 4)])

    bad = dict(entries, **{"model.weights.h5": _edit_h5(entries["model.weights.h5"],
                                                        external_storage)})
    with pytest.raises(ValueError, match="external-storage"):
        load_model(_write(tmp_path / "s.keras", bad))


def test_weights_file_damage(tmp_path):
    m = randomize(mlp(pynn))
    m.save_weights(tmp_path / "m.weights.h5")
    data = (tmp_path / "m.weights.h5").read_bytes()
    (tmp_path / "t.weights.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        m.load_weights(tmp_path / "t.weights.h5")
    other = pynn.Sequential([pynn.Input((6,)), pynn.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"layers/dense/vars/0 .*has shape \(6, 8\), the "
                                         r"model expects \(6, 4\)"):
        other.load_weights(tmp_path / "m.weights.h5")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.keras")
        with pytest.raises(ValueError, match="regular"):
            load_model(tmp_path / "fifo.keras")


# --------------------------------------------------------------------------------------
# legacy HDF5 (.h5)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "two_branch", "convnet", "recurrent", "nested"])
def test_legacy_h5_both_ways(name, tmp_path):
    keras = import_keras()
    make, data = MODELS[name]
    x = as_f32(data(np.random.default_rng(6)))
    km = randomize(make(keras), seed=7)
    km.compile(optimizer="adam", loss="mse")
    km.save(tmp_path / "k.h5")
    ours = load_model(tmp_path / "k.h5")
    close(ours.predict(x, verbose=0), km.predict(x, verbose=0))
    ours.save(tmp_path / "p.h5")
    close(keras.models.load_model(tmp_path / "p.h5").predict(x, verbose=0),
          ours.predict(x, verbose=0))
    fresh = make(pynn)
    fresh.load_weights(tmp_path / "k.h5")  # the weights of a legacy model file
    close(fresh.predict(x, verbose=0), km.predict(x, verbose=0))


def _keras2_file(path, weights):
    """A model file as Keras 2 (tf.keras 2.x) wrote it: Keras 2's config spelling
    (batch_input_shape, initializers without modules, list inbound nodes)."""
    config = {"class_name": "Functional", "config": {
        "name": "model", "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 4], "dtype": "float32", "sparse": False,
                        "ragged": False, "name": "input_1"}},
            {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["input_1", 0, 0, {}]]],
             "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 3,
                        "activation": "relu", "use_bias": True,
                        "kernel_initializer": {"class_name": "GlorotUniform",
                                               "config": {"seed": None}},
                        "bias_initializer": {"class_name": "Zeros", "config": {}},
                        "kernel_regularizer": None, "bias_regularizer": None,
                        "activity_regularizer": None, "kernel_constraint": None,
                        "bias_constraint": None}}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]},
        "keras_version": "2.12.0", "backend": "tensorflow"}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.12.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"input_1", b"dense"]
        g.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        d = g.create_group("dense")
        d.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        d.create_dataset("dense/kernel:0", data=weights[0])
        d.create_dataset("dense/bias:0", data=weights[1])
    return path


def test_keras2_model_file_loads(tmp_path):
    rng = np.random.default_rng(8)
    k, b = rng.standard_normal((4, 3)).astype("f4"), rng.standard_normal(3).astype("f4")
    m = load_model(_keras2_file(tmp_path / "old.h5", (k, b)))
    x = rng.standard_normal((5, 4)).astype("f4")
    np.testing.assert_allclose(m.predict(x, verbose=0), np.maximum(x @ k + b, 0), rtol=1e-6)


def test_legacy_h5_hostile(tmp_path):
    rng = np.random.default_rng(9)
    path = _keras2_file(tmp_path / "old.h5", (rng.standard_normal((4, 3)).astype("f4"),
                                              rng.standard_normal(3).astype("f4")))
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as f:
        f.create_dataset("k", data=np.zeros((4, 3), "f4"))
    with h5py.File(path, "r+") as f:
        del f["model_weights/dense/dense/kernel:0"]
        f["model_weights/dense/dense/kernel:0"] = h5py.ExternalLink(str(outside), "k")
    with pytest.raises(ValueError, match="ExternalLink"):
        load_model(path)
    with h5py.File(path, "r+") as f:
        del f["model_weights/dense/dense/kernel:0"]
        f["model_weights/dense/dense"].create_dataset("kernel:0", shape=(40000, 40000),
                                                       dtype="f4")
    with pytest.raises(ValueError, match=r"shape \(40000, 40000\)"):
        load_model(path)
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError):
        load_model(tmp_path / "cut.h5")
