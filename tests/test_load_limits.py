"""Issue 15, rule 3: loading is bounded by what the file really holds.

* a FIFO, ``/dev/zero`` (or a link to it) or a directory is refused before anything
  is read: no hang, no memory growth;
* a compressed ``weights.npz`` (or a compressed array inside it) is refused: pynn
  never writes them compressed, and a small archive could inflate to gigabytes;
* every declared shape is checked against the bytes the archive stores before the
  array is allocated, so a header that claims a huge array without its bytes
  allocates nothing;
* :func:`pynn.saving.check_weight_shapes` lets the model loader compare the
  architecture's weight shapes with the file before any layer is built;
* the peak memory of reading a file is close to the size of its weights.

The hostile files are loaded in child processes with a time limit and an address
space limit of a few hundred MB, far below what the files declare (1 GiB and more).
"""
import hashlib
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from limits import run_limited

import pynn
from pynn import saving
from pynn.layers import Dense
from pynn.models import Sequential, load_model

#: What the hostile files declare: far above the children's memory budget.
HUGE = 1 << 30
BUDGET_MB = 256


def small_model(units=3):
    pynn.set_seed(0)
    m = Sequential([Dense(4, activation="relu", input_shape=(5,)), Dense(units)])
    m.compile("adam", "mse")
    return m


def _config(specs, sha, layers=None):
    """A model config.json for arrays ``specs`` ([(key, shape, dtype str)])."""
    layers = layers or [{"class_name": "Dense", "config": {"units": 4,
                                                           "batch_input_shape": [None, 5]}}]
    return {"format": saving.FORMAT_NAME, "format_version": saving.FORMAT_VERSION,
            "model": {"class_name": "Sequential", "config": {"name": "m", "layers": layers}},
            "compile_config": None,
            "weights": [{"key": k, "path": f"dense/{k}", "shape": list(s), "dtype": d}
                        for k, s, d in specs],
            "optimizer_state": None, "rng_state": None, "weights_sha256": sha}


def _npy_header(shape, dtype="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": tuple(shape)})
    return buf.getvalue()


class _Tee:
    """A write-only stream that hashes what passes through it (unseekable, so
    ``zipfile`` writes the inner archive with data descriptors)."""

    def __init__(self, out):
        self.out, self.sha = out, hashlib.sha256()

    def write(self, b):
        self.sha.update(b)
        return self.out.write(b)

    def flush(self):
        pass


def inflating_file(path, n_bytes, where):
    """A file of well under 2 MB whose one declared array of ``n_bytes`` zeros is
    deflate-compressed: the whole ``weights.npz`` (``where="outer"``) or the array's
    member inside it (``"inner"``). Checksums and sizes are all consistent."""
    shape = (n_bytes // 4,)
    chunk = bytes(1 << 20)
    outer_method = zipfile.ZIP_DEFLATED if where == "outer" else zipfile.ZIP_STORED
    inner_method = zipfile.ZIP_DEFLATED if where == "inner" else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w") as outer:
        info = zipfile.ZipInfo("weights.npz")
        info.compress_type = outer_method
        with outer.open(info, "w", force_zip64=True) as w:
            tee = _Tee(w)
            with zipfile.ZipFile(tee, "w") as inner:
                member = zipfile.ZipInfo("w0000.npy")
                member.compress_type = inner_method
                with inner.open(member, "w", force_zip64=True) as m:
                    m.write(_npy_header(shape))
                    for _ in range(n_bytes // len(chunk)):
                        m.write(chunk)
        cfg = _config([("w0000", shape, "<f4")], tee.sha.hexdigest())
        outer.writestr("config.json", json.dumps(cfg))
    assert os.path.getsize(path) < 8 * 2**20
    return path


def lying_header_file(path, n_bytes):
    """An uncompressed file whose array header (and config) declare ``n_bytes`` of
    float32 while only 64 bytes follow."""
    shape = (n_bytes // 4,)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as inner:
        inner.writestr("w0000.npy", _npy_header(shape) + bytes(64))
    data = buf.getvalue()
    with zipfile.ZipFile(path, "w") as outer:
        outer.writestr("weights.npz", data)
        outer.writestr("config.json", json.dumps(
            _config([("w0000", shape, "<f4")], hashlib.sha256(data).hexdigest())))
    return path


_LOAD = """
    import sys, time
    import numpy as np
    import pynn
    from pynn.models import load_model
    from pynn import saving
    pynn.get_backend()
    limit_memory(%d)
    how, path = sys.argv[1], sys.argv[2]
    t = time.perf_counter()
    try:
        if how == "model":
            load_model(path)
        else:
            m = pynn.Sequential([pynn.layers.Dense(4, input_shape=(5,))])
            m.load_weights(path)
    except Exception as exc:
        print("REFUSED", type(exc).__name__, exc)
    else:
        print("LOADED")
    print("SECONDS", time.perf_counter() - t)
""" % BUDGET_MB


def load_in_child(path, backend_name, how="model", timeout=60):
    """Load ``path`` in a child limited to :data:`BUDGET_MB` more memory; the line
    it printed (``REFUSED <exception> <message>`` or ``LOADED``)."""
    env = dict(os.environ, PYNN_BACKEND=backend_name)
    r = run_limited(_LOAD, timeout=timeout, env=env, args=(how, str(path)))
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()[0]


# ------------------------------------------------------------------------------------------
# not a regular file
# ------------------------------------------------------------------------------------------
def _fifo(tmp_path):
    p = tmp_path / "fifo.pynn"
    os.mkfifo(p)
    return p


def _zero_link(tmp_path):
    p = tmp_path / "zero.pynn"
    os.symlink("/dev/zero", p)
    return p


_NOT_REGULAR = {
    "fifo": (_fifo, "a FIFO"),
    "dev-zero": (lambda tmp_path: "/dev/zero", "a character device"),
    "link-to-dev-zero": (_zero_link, "a character device"),
}


@pytest.mark.parametrize("how", ["model", "weights"])
@pytest.mark.parametrize("kind", list(_NOT_REGULAR))
def test_non_regular_files_are_refused_before_reading(tmp_path, backend_name, kind, how):
    make, what = _NOT_REGULAR[kind]
    path = make(tmp_path)
    if how == "weights" and kind != "dev-zero":
        os.rename(path, tmp_path / "w.weights.npz")
        path = tmp_path / "w.weights.npz"
    line = load_in_child(path, backend_name, how, timeout=60)
    assert line.startswith("REFUSED ValueError"), line
    assert f"is {what}, not a regular file" in line and "not a valid pynn file" in line


def test_a_directory_is_refused(tmp_path):
    d = tmp_path / "dir.pynn"
    d.mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_model(d)
    with pytest.raises(FileNotFoundError, match="No such file"):
        load_model(tmp_path / "missing.pynn")


# ------------------------------------------------------------------------------------------
# compressed or lying archives
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["outer", "inner"])
def test_a_compressed_archive_is_refused_without_inflating(tmp_path, backend_name, where):
    path = inflating_file(tmp_path / f"{where}.pynn", HUGE, where)
    line = load_in_child(path, backend_name, timeout=120)
    assert line.startswith("REFUSED ValueError") and "MemoryError" not in line, line
    # outer: refused as compressed; inner: the archive stores far fewer bytes than declared
    assert ("is compressed" if where == "outer" else "weights.npz stores only") in line


def test_a_compressed_array_member_is_refused(tmp_path):
    """An array deflated inside weights.npz is refused even when its bytes do not
    compress (so the stored size matches the declared one)."""
    a = np.random.default_rng(0).integers(0, 256, 16384, dtype=np.uint8)  # incompressible
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as inner:
        inner.writestr(zipfile.ZipInfo("w0000.npy"), _npy_header(a.shape, "|u1") + a.tobytes(),
                       compress_type=zipfile.ZIP_DEFLATED)
    data = buf.getvalue()
    path = tmp_path / "deflated-member.pynn"
    with zipfile.ZipFile(path, "w") as outer:
        outer.writestr("weights.npz", data)
        outer.writestr("config.json", json.dumps(
            _config([("w0000", a.shape, "|u1")], hashlib.sha256(data).hexdigest())))
    with pytest.raises(ValueError, match="member 'w0000.npy' is compressed"):
        saving._read_archive(path, "config.json", saving.FORMAT_NAME)


def test_a_declared_shape_larger_than_the_stored_bytes_allocates_nothing(tmp_path,
                                                                        backend_name):
    path = lying_header_file(tmp_path / "lie.pynn", HUGE)
    line = load_in_child(path, backend_name)
    assert line.startswith("REFUSED ValueError"), line
    assert f"declares {HUGE:,} bytes of arrays" in line and "MemoryError" not in line


def test_an_array_whose_bytes_do_not_match_its_header_is_refused(tmp_path):
    """Sizes the outer checks cannot see: the config declares (and the archive holds)
    64 bytes, the array's own header agrees on a shape, but the member holds more."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as inner:
        inner.writestr("w0000.npy", _npy_header((4,)) + bytes(64))
    data = buf.getvalue()
    path = tmp_path / "extra.pynn"
    with zipfile.ZipFile(path, "w") as outer:
        outer.writestr("weights.npz", data)
        outer.writestr("config.json", json.dumps(
            _config([("w0000", (4,), "<f4")], hashlib.sha256(data).hexdigest())))
    with pytest.raises(ValueError, match=r"stores 64 bytes, its shape \(4,\) and dtype "
                                         r"float32 need 16"):
        saving._read_archive(path, "config.json", saving.FORMAT_NAME)


def inflating_config_file(path, n_bytes, stated_size=None):
    """A small file whose deflated config.json inflates to ``n_bytes`` (a valid
    config padded with spaces); with ``stated_size`` the central directory states
    that uncompressed size instead of the true one."""
    m = small_model()
    m.save(path.with_suffix(".good.pynn"))
    with zipfile.ZipFile(path.with_suffix(".good.pynn")) as zf:
        text = zf.read("config.json")
        data = zf.read("weights.npz")
    with zipfile.ZipFile(path, "w") as zout:
        zout.writestr("weights.npz", data)
        info = zipfile.ZipInfo("config.json")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zout.open(info, "w") as w:
            w.write(text[:-1])
            pad = b" " * (1 << 20)
            for _ in range((n_bytes - len(text)) // len(pad)):
                w.write(pad)
            w.write(b"}")
    if stated_size is not None:
        blob = bytearray(path.read_bytes())
        pos = blob.rindex(b"PK\x01\x02")  # config.json's central directory record (last)
        assert blob[pos + 46:pos + 57] == b"config.json"
        blob[pos + 24:pos + 28] = int(stated_size).to_bytes(4, "little")
        path.write_bytes(bytes(blob))
    assert os.path.getsize(path) < 8 * 2**20
    return path


@pytest.mark.parametrize("stated", ["true size", "understated"])
def test_a_compressed_config_is_read_only_up_to_its_limit(tmp_path, backend_name, stated):
    """config.json may be deflated (pynn writes it so), but no more than the limit is
    ever inflated, whatever size the archive states."""
    path = inflating_config_file(tmp_path / "config-bomb.pynn", HUGE,
                                 stated_size=None if stated == "true size" else 2000)
    line = load_in_child(path, backend_name, timeout=120)
    assert line.startswith("REFUSED ValueError") and "MemoryError" not in line, line
    assert ("implausibly large" if stated == "true size" else "config.json is corrupted") \
        in line


def test_good_files_still_load_bit_exactly(tmp_path, backend):
    m = small_model()
    rng = np.random.default_rng(0)
    m.fit(rng.standard_normal((16, 5)), rng.standard_normal((16, 3)), epochs=1, verbose=0)
    m.save(tmp_path / "m.pynn")
    m.save_weights(tmp_path / "m.weights.npz")
    loaded = load_model(tmp_path / "m.pynn")
    other = small_model()
    other.load_weights(tmp_path / "m.weights.npz")
    for a, b, c in zip(loaded.get_weights(), other.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
        assert a.flags.writeable and a.flags.c_contiguous


# ------------------------------------------------------------------------------------------
# the architecture against the file, before layers are built
# ------------------------------------------------------------------------------------------
def test_check_weight_shapes(tmp_path):
    m = small_model()
    path = tmp_path / "m.pynn"
    m.save(path)
    config, _ = saving._read_archive(path, "config.json", saving.FORMAT_NAME)
    declared = [(w.path, w.shape) for w in m.weights]
    assert saving.check_weight_shapes(path, config, declared) is None
    with pytest.raises(ValueError) as info:
        saving.check_weight_shapes(path, config, declared[:-1])
    assert "holds 4 weights" in str(info.value) and "declares 3" in str(info.value)
    huge = declared[:1] + [(declared[1][0], (1 << 20, 1 << 20))] + declared[2:]
    with pytest.raises(ValueError) as info:
        saving.check_weight_shapes(path, config, huge)
    msg = str(info.value)
    assert repr(declared[1][0]) in msg and "(1048576, 1048576)" in msg and "(4,)" in msg
    # a file without weights against an architecture with some: refused by count
    empty = dict(config, weights=[])
    with pytest.raises(ValueError, match="holds 0 weights"):
        saving.check_weight_shapes(path, empty, [("dense/kernel", (1 << 30, 1 << 20))])
    with pytest.raises(ValueError, match="shape"):
        saving.check_weight_shapes(path, config, [(p, "4x5") for p, _ in declared])


def test_a_tiny_file_declaring_a_huge_dense_allocates_nothing(tmp_path, backend_name):
    path = tmp_path / "huge-dense.pynn"
    data = io.BytesIO()
    np.savez(data)
    data = data.getvalue()
    layers = [{"class_name": "Dense", "config": {"units": 1 << 15,
                                                 "batch_input_shape": [None, 1 << 15]}}]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(
            _config([], hashlib.sha256(data).hexdigest(), layers=layers)))
        zf.writestr("weights.npz", data)
    assert os.path.getsize(path) < 4096
    line = load_in_child(path, backend_name)
    assert line.startswith("REFUSED ValueError") and "MemoryError" not in line, line


# ------------------------------------------------------------------------------------------
# peak memory
# ------------------------------------------------------------------------------------------
def test_reading_peaks_near_the_size_of_the_weights(tmp_path):
    pynn.set_seed(0)
    m = Sequential([Dense(2048, input_shape=(2048,)), Dense(4)])
    m.compile("adam", "mse")
    path = tmp_path / "m.pynn"
    m.save(path)
    nbytes = sum(w.nbytes for w in m.get_weights())
    tracemalloc.start()
    try:
        config, arrays = saving._read_archive(path, "config.json", saving.FORMAT_NAME)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(a.nbytes for a in arrays.values()) == nbytes
    assert peak < 1.1 * nbytes + 4 * 2**20, f"peak {peak / nbytes:.2f}x the weights"
