"""Save -> load is bit-exact; bad files fail with a clear ValueError; writes are atomic."""
import json
import os
import zipfile

import numpy as np
import pytest

import pynn
from pynn import optimizers as _optimizers  # noqa: F401  (pynn.optimizers attribute)
from pynn import _config
from pynn.callbacks import ModelCheckpoint
from pynn.layers import BatchNormalization, Dense, Dropout
from pynn.models import Sequential, load_model
from pynn.regularizers import L2
from pynn.saving import FORMAT_VERSION


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)


def trained_model(epochs=2, seed=1):
    pynn.set_seed(seed)
    model = Sequential([Dense(8, activation="relu", input_shape=(6,),
                              kernel_regularizer=L2(0.001)),
                        BatchNormalization(), Dropout(0.2), Dense(3, activation="softmax")])
    model.compile(pynn.optimizers.Adam(learning_rate=0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = data()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ext", [".pynn", ".keras"])
def test_save_load_bit_exact(tmp_path, dtype, ext):
    old = _config.floatx()
    _config.set_floatx(dtype)
    try:
        model = trained_model()
    finally:
        _config.set_floatx(old)
    path = tmp_path / f"model{ext}"
    model.save(path)
    loaded = load_model(path)
    assert loaded.dtype == dtype
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    x, y = data(seed=5)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert model.evaluate(x, y, verbose=0) == loaded.evaluate(x, y, verbose=0)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate
    assert loaded.loss.get_config() == model.loss.get_config()
    assert [m.name for m in loaded.metrics] == ["accuracy"]
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert os.listdir(tmp_path) == [f"model{ext}"]  # no temporary file left behind


def test_training_resumes_bit_identically_after_load(tmp_path):
    x, y = data()
    model = trained_model()
    model.save(tmp_path / "m.pynn")
    loaded = load_model(tmp_path / "m.pynn")
    assert loaded.optimizer.iterations == model.optimizer.iterations
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_without_compile_and_unbuilt_model(tmp_path):
    model = trained_model(epochs=1)
    model.save(tmp_path / "m.pynn")
    plain = load_model(tmp_path / "m.pynn", compile=False)
    assert not plain.compiled and plain.optimizer is None
    unbuilt = Sequential([Dense(2)])
    unbuilt.save(tmp_path / "u.keras")
    again = load_model(tmp_path / "u.keras")
    assert not again.built and again.layers[0].units == 2


def test_extension_and_overwrite(tmp_path):
    model = trained_model(epochs=1)
    with pytest.raises(ValueError, match=r"extension.*\.pynn.*\.keras.*\.h5"):
        model.save(tmp_path / "m.hdf5")
    model.save(tmp_path / "m.pynn")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.pynn", overwrite=False)


def test_save_weights_round_trip(tmp_path):
    model = trained_model(epochs=1)
    model.save_weights(tmp_path / "w.weights.npz")
    other = Sequential.from_config(model.get_config())
    other.load_weights(tmp_path / "w.weights.npz")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    smaller = Sequential([Dense(2, input_shape=(6,))])
    with pytest.raises(ValueError, match="weights"):
        smaller.load_weights(tmp_path / "w.weights.npz")
    with pytest.raises(ValueError, match="weights.h5"):
        model.save_weights(tmp_path / "w.bin")


def test_model_checkpoint_writes_loadable_files(tmp_path):
    x, y = data()
    model = trained_model(epochs=1)
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.keras"))])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01.keras", "ckpt-02.keras"]
    last = load_model(tmp_path / "ckpt-02.keras")
    np.testing.assert_array_equal(last.predict(x, verbose=0), model.predict(x, verbose=0))


# -------------------------------------------------------------------------------------------
# damaged and foreign files
# -------------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.pynn"
    trained_model(epochs=1).save(path)
    return path


def rewrite(src, dst, change):
    """Copy zip ``src`` to ``dst`` with ``change(name, bytes) -> (name, bytes)`` applied."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            name, blob = change(info.filename, zin.read(info.filename))
            if name is not None:
                zout.writestr(name, blob)


def test_truncated_file(saved, tmp_path):
    blob = saved.read_bytes()
    for cut in (len(blob) // 2, len(blob) - 10, 3):
        bad = tmp_path / f"cut{cut}.pynn"
        bad.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match="not a valid pynn file"):
            load_model(bad)


def test_corrupted_weights(saved, tmp_path):
    bad = tmp_path / "bad.pynn"

    def flip(name, blob):
        if name == "weights.npz":
            blob = bytearray(blob)
            blob[len(blob) // 2] ^= 0xFF
        return name, bytes(blob)

    rewrite(saved, bad, flip)
    with pytest.raises(ValueError, match="checksum"):
        load_model(bad)
    # a flipped byte inside the stored entry is caught by the zip CRC as well
    blob = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("weights.npz")
    blob[info.header_offset + 200] ^= 0xFF
    raw = tmp_path / "raw.pynn"
    raw.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="not a valid pynn file"):
        load_model(raw)


def test_foreign_files(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ValueError, match="not a zip"):
        load_model(junk)
    keras_like = tmp_path / "k.keras"
    with zipfile.ZipFile(keras_like, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"\x89HDF")
    with pytest.raises(ValueError, match="Keras"):
        load_model(keras_like)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pynn")


def test_unsafe_entries_and_bad_config(saved, tmp_path):
    evil = tmp_path / "evil.pynn"
    rewrite(saved, evil, lambda n, b: (n, b))
    with zipfile.ZipFile(evil, "a") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(ValueError, match="unsafe"):
        load_model(evil)
    absolute = tmp_path / "abs.pynn"
    rewrite(saved, absolute, lambda n, b: ("/etc/" + n if n == "config.json" else n, b))
    with pytest.raises(ValueError, match="unsafe"):
        load_model(absolute)

    def edit(mutate):
        def change(name, blob):
            if name == "config.json":
                cfg = json.loads(blob)
                mutate(cfg)
                blob = json.dumps(cfg).encode()
            return name, blob
        return change

    cases = {
        "version": (lambda c: c.update(format_version=FORMAT_VERSION + 1), "format_version"),
        "format": (lambda c: c.update(format="something.else"), "format"),
        "shape": (lambda c: c["weights"][0].update(shape=[6, 9]), "shape"),
        "dtype": (lambda c: c["weights"][0].update(dtype="<f8"), "dtype|larger"),
        "sha": (lambda c: c.update(weights_sha256="0" * 64), "checksum"),
    }
    for key, (mutate, msg) in cases.items():
        bad = tmp_path / f"{key}.pynn"
        rewrite(saved, bad, edit(mutate))
        with pytest.raises(ValueError, match=msg):
            load_model(bad)
    notjson = tmp_path / "notjson.pynn"
    rewrite(saved, notjson, lambda n, b: (n, b"{nope" if n == "config.json" else b))
    with pytest.raises(ValueError, match="corrupted"):
        load_model(notjson)
