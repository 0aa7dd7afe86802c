"""Persistence safety (issue 5): atomic saves survive a kill, hostile files are refused.

* a child process killed (SIGKILL) in the middle of a large save leaves the previous
  file intact and loadable;
* truncated, corrupted, foreign, newer-version, absolute-path, '..' and pickle-carrying
  archives are rejected with a clear ValueError naming the file, never unpickled;
* the weights checksum and every array's shape/dtype are checked against the config;
* ModelCheckpoint goes through the same atomic path; dataset downloads are atomic;
* (issue 15) saving over a file keeps its permission bits; a new file follows the umask.
"""
import hashlib
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import pynn
from pynn import optimizers as _optimizers  # noqa: F401
from pynn import saving
from pynn.callbacks import ModelCheckpoint
from pynn.datasets import _files
from pynn.layers import Dense
from pynn.models import Sequential, load_model

from helpers import PYNN_PATH as ROOT  # the installed package, not the source tree


def small_model(seed=0, units=3):
    pynn.set_seed(seed)
    m = Sequential([Dense(4, activation="relu", input_shape=(5,)), Dense(units)])
    m.compile("adam", "mse")
    return m


@pytest.fixture
def saved(tmp_path):
    m = small_model()
    rng = np.random.default_rng(0)
    m.fit(rng.standard_normal((16, 5)), rng.standard_normal((16, 3)), epochs=1, verbose=0)
    path = tmp_path / "good.pynn"
    m.save(path)
    return path, m


def rewrite(src, dst, change=lambda n, b: (n, b), extra=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            name, blob = change(info.filename, zin.read(info.filename))
            if name is not None:
                zout.writestr(name, blob)
        for name, blob in extra:
            zout.writestr(name, blob)


def edit_config(mutate):
    def change(name, blob):
        if name == "config.json":
            cfg = json.loads(blob)
            mutate(cfg)
            blob = json.dumps(cfg).encode()
        return name, blob
    return change


def rejected(path, *fragments, exc=ValueError):
    with pytest.raises(exc) as info:
        load_model(path)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


# ------------------------------------------------------------------------------------------
# a save killed half-way
# ------------------------------------------------------------------------------------------
_SAVER = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    import pynn
    from pynn.layers import Dense
    from pynn.models import Sequential

    path = sys.argv[1]
    pynn.set_seed(0)
    m = Sequential([Dense(2500, input_shape=(2000,)), Dense(2)])   # 5M params, 20 MB
    m.save(path)
    h = hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest()
    print("SAVED", h, flush=True)
    m.set_weights([w + 1 for w in m.get_weights()])
    print("SAVING", flush=True)
    while True:                 # keep saving until killed
        m.save(path)
""")


def test_kill_during_a_large_save_keeps_the_previous_file(tmp_path):
    target = tmp_path / "big.pynn"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(target)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline().split()
        assert first[:1] == ["SAVED"], proc.stderr.read()
        assert proc.stdout.readline().strip() == "SAVING"
        # kill as soon as the temporary file holds part of the new content
        deadline = time.monotonic() + 60
        tmp = []
        while time.monotonic() < deadline:
            tmp = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            if tmp and tmp[0].stat().st_size > 1 << 20:
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert tmp, "the child never started writing its temporary file"
    assert proc.returncode == -signal.SIGKILL
    size = target.stat().st_size
    assert 10 << 20 < size, "the target was replaced by a partial file"
    m = load_model(target)
    h = hashlib.sha256(b"".join(w.tobytes() for w in m.get_weights())).hexdigest()
    assert h == first[1]          # exactly the first save, not a mix
    # the half-written temporary file is left behind by SIGKILL; it is not a model file
    with pytest.raises(ValueError, match="Invalid filepath extension|not a valid pynn"):
        load_model(tmp[0])


def test_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path, saved,
                                                                monkeypatch):
    path, m = saved
    before = path.read_bytes()
    m2 = small_model(seed=1)

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(saving.os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        m2.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["good.pynn"]


# ------------------------------------------------------------------------------------------
# hostile and damaged files
# ------------------------------------------------------------------------------------------
def test_truncated_files(tmp_path, saved):
    path, _ = saved
    blob = path.read_bytes()
    for cut in (0, 1, 21, len(blob) // 3, len(blob) // 2, len(blob) - 22, len(blob) - 1):
        bad = tmp_path / f"cut{cut}.pynn"
        bad.write_bytes(blob[:cut])
        rejected(bad, str(bad), "not a valid pynn file")


def test_corrupted_files(tmp_path, saved):
    """Every byte flipped in turn (~5,000 files): a clean ValueError, or (metadata the
    reader does not use, e.g. a timestamp) the very same weights; a flip inside the stored
    weights or the config is always refused. (Some flips in the zip directory make the
    zip module raise OSError/NotImplementedError: those must come out as ValueError.)"""
    path, m = saved
    blob = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        contents = {n: zf.read(n) for n in zf.namelist()}
    refused = 0
    for pos in range(len(blob)):
        b = bytearray(blob)
        b[pos] ^= 0x5A
        bad = tmp_path / "flip.pynn"
        bad.write_bytes(bytes(b))
        try:
            loaded = load_model(bad)
        except ValueError as exc:
            assert "not a valid pynn file" in str(exc) or "format_version" in str(exc)
            refused += 1
            continue
        # accepted only when the flip changed no content (zip metadata the reader does
        # not use, deflate padding bits): the decoded members are byte-identical
        with zipfile.ZipFile(bad) as zf:
            assert {n: zf.read(n) for n in zf.namelist()} == contents, \
                f"the flip at byte {pos} changed the content but was accepted"
        for x, y in zip(loaded.get_weights(), m.get_weights()):
            np.testing.assert_array_equal(x, y)
    assert refused > len(blob) * 0.9


def test_foreign_files(tmp_path):
    cases = {
        "random.pynn": os.urandom(4000),
        "text.keras": b"hello world\n" * 50,
        "empty.pynn": b"",
        "pickle.pynn": pickle.dumps({"weights": [1, 2, 3]}),
    }
    npz = io.BytesIO()
    np.savez(npz, a=np.ones(3))
    cases["numpy.pynn"] = npz.getvalue()        # an .npz is a zip, but not ours
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        rejected(p, "not a valid pynn file")
    other = tmp_path / "other.pynn"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("config.json", json.dumps({"format": "some.other.tool"}))
        zf.writestr("weights.npz", npz.getvalue())
    rejected(other, "format 'some.other.tool'", "expected 'pynn.model'")
    keras = tmp_path / "k.keras"
    with zipfile.ZipFile(keras, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"\x89HDF\r\n")
    rejected(keras, "Keras")
    rejected(tmp_path / "missing.pynn", "missing.pynn", exc=FileNotFoundError)
    d = tmp_path / "dir.pynn"
    d.mkdir()
    with pytest.raises((ValueError, OSError)):
        load_model(d)


def test_newer_and_invalid_versions(tmp_path, saved):
    path, _ = saved
    for version in (saving.FORMAT_VERSION + 1, 999, 0, "1", None, 1.5):
        bad = tmp_path / f"v{version}.pynn"
        rewrite(path, bad, edit_config(lambda c: c.update(format_version=version)))
        rejected(bad, "unsupported format_version", repr(version))


def test_unsafe_entry_names(tmp_path, saved):
    path, _ = saved
    for i, evil in enumerate(("../escape.txt", "/etc/passwd", "a/../../b", "C:/x",
                              "..\\win.txt", "\\\\server\\share")):
        bad = tmp_path / f"evil{i}.pynn"
        rewrite(path, bad, extra=[(evil, b"x")])
        rejected(bad, "unsafe archive entry")
        assert not (tmp_path.parent / "escape.txt").exists()
    renamed = tmp_path / "abs.pynn"
    rewrite(path, renamed, lambda n, b: ("/" + n if n == "weights.npz" else n, b))
    rejected(renamed, "unsafe archive entry")
    extra = tmp_path / "extra.pynn"
    rewrite(path, extra, extra=[("payload.py", b"import os")])
    rejected(extra, "unexpected archive entries", "payload.py")


def test_pickled_arrays_are_never_unpickled(tmp_path, saved):
    path, _ = saved
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    def change(name, blob):
        return name, blob

    with zipfile.ZipFile(path) as zf:
        cfg = json.loads(zf.read("config.json"))
        arrays = dict(np.load(io.BytesIO(zf.read("weights.npz")), allow_pickle=False))
    key = cfg["weights"][0]["key"]
    obj = np.empty(arrays[key].shape, dtype=object)
    obj.fill(Evil())
    arrays[key] = obj
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    cfg["weights_sha256"] = hashlib.sha256(data).hexdigest()     # a deliberate attacker
    bad = tmp_path / "pickle_inside.pynn"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("weights.npz", data)
    rejected(bad, "not a valid pynn file")
    assert not marker.exists()
    # an object dtype declared in the config is refused before numpy is asked
    bad2 = tmp_path / "odtype.pynn"
    rewrite(path, bad2, edit_config(lambda c: c["weights"][0].update(dtype="|O")))
    rejected(bad2, "malformed array list")


def test_checksum_and_config_checks(tmp_path, saved):
    path, m = saved
    cases = {
        "sha": (lambda c: c.update(weights_sha256="0" * 64), ["checksum mismatch"]),
        "no_sha": (lambda c: c.pop("weights_sha256"), ["checksum mismatch"]),
        "shape": (lambda c: c["weights"][0].update(shape=[5, 5]), ["shape", "(5, 5)"]),
        "dtype": (lambda c: c["weights"][0].update(dtype="<f8"), []),
        "neg_shape": (lambda c: c["weights"][0].update(shape=[-1, 4]), ["malformed"]),
        "missing_key": (lambda c: c["weights"].pop(), ["weights.npz holds"]),
        "units": (lambda c: c["model"]["config"]["layers"][-1]["config"].update(units=7),
                  ["shape", "(4, 3)", "(4, 7)"]),
        "class": (lambda c: c["model"].update(class_name="Subclassed"),
                  ["unsupported model class 'Subclassed'"]),
        "layer": (lambda c: c["model"]["config"]["layers"][-1].update(class_name="Lambada"),
                  ["Unknown layer class 'Lambada'"]),
        "lambda": (lambda c: c["model"]["config"]["layers"][-1].update(class_name="Lambda"),
                   ["its function None is not in custom_objects"]),
    }
    for key, (mutate, fragments) in cases.items():
        bad = tmp_path / f"{key}.pynn"
        rewrite(path, bad, edit_config(mutate))
        msg = rejected(bad, *fragments)
        assert msg
    # an array whose stored dtype differs from the config, with a matching checksum
    with zipfile.ZipFile(path) as zf:
        cfg = json.loads(zf.read("config.json"))
        arrays = dict(np.load(io.BytesIO(zf.read("weights.npz")), allow_pickle=False))
    key = cfg["weights"][1]["key"]
    arrays[key] = arrays[key].astype(np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    cfg["weights_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    bad = tmp_path / "dtype_swap.pynn"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("weights.npz", buf.getvalue())
    rejected(bad, f"array {key!r}", "float64", "float32")
    # the good file still loads bit-exactly
    loaded = load_model(path)
    for a, b in zip(loaded.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------
# ModelCheckpoint and the dataset cache use atomic writes
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weights_only", [False, True])
def test_model_checkpoint_writes_atomically(tmp_path, monkeypatch, weights_only):
    m = small_model()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 3))
    name = "ckpt.weights.npz" if weights_only else "ckpt.pynn"
    path = tmp_path / name
    cb = ModelCheckpoint(str(path), save_weights_only=weights_only, monitor="loss")
    writes = []
    real = saving._atomic_write

    def spy(p, files, overwrite):
        writes.append(os.fspath(p))
        return real(p, files, overwrite)

    monkeypatch.setattr(saving, "_atomic_write", spy)
    m.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    assert writes == [str(path)] * 2
    good = path.read_bytes()

    def crash(src, dst):
        raise OSError("killed during rename (simulated)")

    monkeypatch.setattr(saving.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


class _FakeResponse:
    def __init__(self, chunks, fail_after=None):
        self.chunks, self.fail_after = list(chunks), fail_after

    def read(self, n):
        if self.fail_after is not None and self.fail_after == 0:
            raise OSError("connection reset (simulated)")
        if self.fail_after is not None:
            self.fail_after -= 1
        return self.chunks.pop(0) if self.chunks else b""

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_dataset_downloads_are_atomic_and_checksummed(tmp_path, monkeypatch):
    import urllib.request
    payload = os.urandom(3000)
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "train.gz"
    # interrupted mid-stream: nothing at the destination, no partial file left
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: _FakeResponse([payload[:1000]] * 3, 1))
    with pytest.raises(OSError, match="simulated"):
        _files._download("http://example.invalid/train.gz", str(dest), sha)
    assert list(tmp_path.iterdir()) == []
    # wrong bytes: ChecksumError, nothing written
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: _FakeResponse([b"evil" * 100]))
    with pytest.raises(_files.ChecksumError, match="does not match"):
        _files._download("http://example.invalid/train.gz", str(dest), sha)
    assert list(tmp_path.iterdir()) == []
    # a previous good file survives a failed re-download
    dest.write_bytes(payload)
    with pytest.raises(_files.ChecksumError):
        _files._download("http://example.invalid/train.gz", str(dest), sha)
    assert dest.read_bytes() == payload
    # good bytes: renamed into place
    dest.unlink()
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: _FakeResponse([payload[:1500],
                                                                 payload[1500:]]))
    _files._download("http://example.invalid/train.gz", str(dest), sha)
    assert dest.read_bytes() == payload and sorted(os.listdir(tmp_path)) == ["train.gz"]


def test_dataset_fetch_failure_leaves_the_cache_clean(tmp_path, monkeypatch):
    import urllib.request
    spec = _files.DatasetSpec(name="toy", title="Toy", files={"a.gz": "0" * 64},
                              mirrors=["http://m1.invalid/", "http://m2.invalid/"])

    def unreachable(url, timeout=None):
        raise OSError(f"unreachable {url}")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(_files.DatasetNotFoundError, match="m1.invalid.*m2.invalid"):
        _files.fetch(spec, path=tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# issue 15, rule 2: a save keeps the permission bits of the file it replaces
# ------------------------------------------------------------------------------------------
def _mode(path):
    return os.stat(path).st_mode & 0o777


@pytest.fixture
def umask():
    """Set the process umask for one test, restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604, 0o755], ids=oct)
@pytest.mark.parametrize("kind", ["model", "weights", "checkpoint"])
def test_saving_over_a_file_keeps_its_permission_bits(tmp_path, backend, umask, mode, kind):
    m = small_model()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 3))
    m.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / ("m.weights.npz" if kind == "weights" else "m.pynn")
    umask(0o022)
    saver = {"model": m.save, "weights": m.save_weights,
             "checkpoint": lambda p: m.fit(x, y, epochs=1, verbose=0, callbacks=[
                 ModelCheckpoint(str(p), monitor="loss")])}[kind]
    saver(path)
    assert _mode(path) == 0o644  # a new file follows the umask
    os.chmod(path, mode)
    before = path.read_bytes()
    m.fit(x, y, epochs=1, verbose=0)
    saver(path)
    assert _mode(path) == mode, f"{oct(_mode(path))} after saving over a {oct(mode)} file"
    assert path.read_bytes() != before  # it was really replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    loaded = load_model(path) if kind != "weights" else None
    if loaded is not None:
        for a, b in zip(loaded.get_weights(), m.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask-022", "umask-077", "umask-002"])
def test_a_new_file_follows_the_umask(tmp_path, umask, mask, expected):
    m = small_model()
    umask(mask)
    m.save(tmp_path / "m.pynn")
    m.save_weights(tmp_path / "m.weights.npz")
    assert _mode(tmp_path / "m.pynn") == expected
    assert _mode(tmp_path / "m.weights.npz") == expected


def test_a_private_file_is_never_readable_while_it_is_written(tmp_path, monkeypatch):
    """The temporary file gets the final bits before any byte is written, so a
    0o600 model is not readable by others even half-way through a save."""
    m = small_model()
    path = tmp_path / "m.pynn"
    m.save(path)
    os.chmod(path, 0o600)
    seen = []
    real = zipfile.ZipFile.writestr

    def spy(self, info, data, *a, **k):
        tmp = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        seen.extend(_mode(p) for p in tmp)
        return real(self, info, data, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", spy)
    m.save(path)
    assert seen and set(seen) == {0o600}
