"""pynn.datasets: IDX parsing, file search order, (mocked) downloads, synthetic sets, utilities.

Real MNIST / Fashion-MNIST come from $PYNN_DATA_DIR (conftest points it at ../shared/data).
Nothing here touches the network: the autouse fixture lets only file:// URLs through.
"""
import gzip
import hashlib
import os
import shutil
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest

from pynn import datasets as D
from pynn.datasets import _files, fashion_mnist, mnist

try:
    import sklearn.datasets as skd
    import sklearn.model_selection as skms
except ImportError:  # pragma: no cover
    skd = skms = None

needs_sklearn = pytest.mark.skipif(skd is None, reason="scikit-learn not installed")

DATA_DIR = os.environ.get("PYNN_DATA_DIR")
SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
if not (DATA_DIR and os.path.isdir(os.path.join(DATA_DIR, "mnist"))):
    DATA_DIR = SHARED if os.path.isdir(os.path.join(SHARED, "mnist")) else None
needs_data = pytest.mark.skipif(DATA_DIR is None, reason="MNIST files not available")

MNIST_TRAIN_HIST = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_HIST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Only file:// URLs may be opened; anything else fails as if offline."""
    real = urllib.request.urlopen
    opened = []

    def guarded(url, *args, **kwargs):
        target = url if isinstance(url, str) else url.full_url
        opened.append(target)
        if not target.startswith("file:"):
            raise urllib.error.URLError(f"network disabled in tests: {target}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
    return opened


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No PYNN_DATA_DIR, HOME in tmp (so ~/.cache/pynn is empty)."""
    monkeypatch.delenv("PYNN_DATA_DIR", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return tmp_path


# --------------------------------------------------------------------------- helpers
def idx_bytes(arr, type_code=0x08):
    arr = np.asarray(arr)
    dtype = D._idx.IDX_TYPES[type_code]
    header = bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(dtype).tobytes()


def write_fake_mnist(directory, label, n=3, compress=True, names=None):
    """Four tiny valid IDX files whose labels are all ``label``."""
    os.makedirs(directory, exist_ok=True)
    images = np.full((n, 28, 28), label, dtype=np.uint8)
    labels = np.full(n, label, dtype=np.uint8)
    for split in ("train", "t10k"):
        for kind, arr, nd in (("images", images, 3), ("labels", labels, 1)):
            name = f"{split}-{kind}-idx{nd}-ubyte"
            data = idx_bytes(arr)
            if compress:
                with gzip.open(os.path.join(directory, name + ".gz"), "wb") as f:
                    f.write(data)
            else:
                with open(os.path.join(directory, name), "wb") as f:
                    f.write(data)


# --------------------------------------------------------------------------- real files
@pytest.fixture(scope="module")
def real_mnist():
    if DATA_DIR is None:
        pytest.skip("MNIST files not available")
    return mnist.load_data(DATA_DIR, download=False)


@needs_data
def test_mnist_real_files(real_mnist):
    (x_train, y_train), (x_test, y_test) = real_mnist
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert x_train.flags.writeable and x_train.flags.c_contiguous
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_HIST
    assert np.bincount(y_test).tolist() == MNIST_TEST_HIST
    assert x_train.min() == 0 and x_train.max() == 255
    assert x_train.mean() == pytest.approx(33.3184, abs=1e-4)
    assert x_test.mean() == pytest.approx(33.7912, abs=1e-4)


@needs_data
def test_fashion_mnist_real_files():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(DATA_DIR, download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.dtype == np.uint8 and y_train.max() == 9
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert x_train.mean() == pytest.approx(72.9404, abs=1e-4)
    assert len(fashion_mnist.CLASS_NAMES) == 10


@needs_data
@pytest.mark.parametrize("spec, sub", [(mnist.SPEC, "mnist"),
                                       (fashion_mnist.SPEC, "fashion-mnist")])
def test_checksum_constants_match_the_original_files(spec, sub):
    for name, digest in spec.files.items():
        assert _files._sha256(os.path.join(DATA_DIR, sub, name)) == digest


@needs_data
def test_default_search_uses_pynn_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PYNN_DATA_DIR", DATA_DIR)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mnist.find() == os.path.join(DATA_DIR, "mnist")
    assert fashion_mnist.find() == os.path.join(DATA_DIR, "fashion-mnist")
    # a parent directory passed as `path` is searched for mnist/ too
    assert mnist.find(DATA_DIR) == os.path.join(DATA_DIR, "mnist")
    _, source = mnist.load_data_or_embedded()
    assert source.startswith("full MNIST")


# --------------------------------------------------------------------------- embedded set
def test_embedded_files_are_the_original_test_set():
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert _files._sha256(os.path.join(mnist.EMBEDDED_DIR, name)) == mnist.SPEC.files[name]
    assert os.path.isfile(os.path.join(mnist.EMBEDDED_DIR, "README.txt"))


def test_load_embedded_split_is_seeded():
    (xa, ya), (xb, yb) = mnist.load_embedded()
    assert xa.shape == (8000, 28, 28) and xb.shape == (2000, 28, 28)
    assert xa.dtype == ya.dtype == np.uint8
    assert (np.bincount(ya, minlength=10) + np.bincount(yb, minlength=10)).tolist() == \
        MNIST_TEST_HIST
    (xa2, ya2), _ = mnist.load_embedded()
    np.testing.assert_array_equal(ya, ya2)
    (_, ya3), _ = mnist.load_embedded(seed=1)
    assert not np.array_equal(ya, ya3)
    (xs, _), (xt, _) = mnist.load_embedded(train_size=9000)
    assert len(xs) == 9000 and len(xt) == 1000
    with pytest.raises(ValueError, match="train_size"):
        mnist.load_embedded(train_size=10000)


def test_load_data_or_embedded_falls_back(isolated):
    ((x_train, _), (x_test, _)), source = mnist.load_data_or_embedded()
    assert x_train.shape[0] == 8000 and x_test.shape[0] == 2000
    assert "embedded" in source
    with pytest.raises(D.DatasetNotFoundError):
        mnist.load_data_or_embedded(isolated / "nowhere")


# --------------------------------------------------------------------------- IDX parser
def test_parse_idx_types_and_big_endian():
    a = np.arange(12, dtype=np.int16).reshape(3, 4) - 5
    out = D.parse_idx(idx_bytes(a, 0x0B))
    assert out.dtype == np.int16 and out.dtype.isnative
    np.testing.assert_array_equal(out, a)
    f = np.linspace(-1, 1, 6).reshape(2, 3)
    np.testing.assert_array_equal(D.parse_idx(idx_bytes(f, 0x0E)), f)
    raw = idx_bytes(np.array([1, 2, 258], dtype=np.int32), 0x0C)
    assert raw[4:8] == b"\x00\x00\x00\x03" and raw[-4:] == b"\x00\x00\x01\x02"


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b"\x01" + b[1:], "magic"),                   # first byte must be 0
    (lambda b: b[:2] + b"\x07" + b[3:], "magic"),           # unknown type code
    (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    (lambda b: b[:-1], "truncated"),                        # one data byte short
    (lambda b: b + b"\x00", "trailing"),
    (lambda b: b[:10], "header"),                           # header cut inside dims
    (lambda b: b[:2], "too short"),
])
def test_parse_idx_rejects_corrupt_data(mutate, match):
    good = idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))
    with pytest.raises(D.IDXFormatError, match=match):
        D.parse_idx(mutate(good), source="x.idx")


def test_read_idx_corrupt_and_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 10, 10)))
    ok = tmp_path / "ok.gz"
    ok.write_bytes(data)
    assert D.read_idx(ok).shape == (2, 10, 10)
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(D.IDXFormatError, match="truncated.gz.*gzip"):
        D.read_idx(truncated)
    corrupt = bytearray(data)
    corrupt[-6] ^= 0xFF  # CRC32 trailer
    bad = tmp_path / "bad.gz"
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(D.IDXFormatError, match="gzip"):
        D.read_idx(bad)


def test_mnist_loader_checks_file_roles(isolated):
    d = isolated / "data"
    write_fake_mnist(d, 1)
    # labels and images swapped -> clear error naming the file
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8))))
    with pytest.raises(D.IDXFormatError, match="t10k-labels.*labels"):
        mnist.load_data(d, download=False)
    write_fake_mnist(d, 1)
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(D.IDXFormatError, match="3 images.*4 labels"):
        mnist.load_data(d, download=False)


# --------------------------------------------------------------------------- search order
def test_search_order_path_then_env_then_cache(isolated, monkeypatch):
    explicit, env, home = isolated / "explicit", isolated / "env", isolated / "home"
    write_fake_mnist(explicit, 1)
    write_fake_mnist(env / "mnist", 2)
    write_fake_mnist(home / ".cache" / "pynn" / "mnist", 3, compress=False)

    def first_label(**kw):
        return int(mnist.load_data(download=False, **kw)[0][1][0])

    assert first_label() == 3                       # cache only (uncompressed files work)
    monkeypatch.setenv("PYNN_DATA_DIR", str(env))
    assert first_label() == 2                       # env beats cache
    assert first_label(path=explicit) == 1          # path beats both
    assert first_label(path=env) == 2               # path holding mnist/
    # an incomplete directory is skipped
    os.remove(env / "mnist" / "train-labels-idx1-ubyte.gz")
    assert first_label() == 3
    # an explicit path is authoritative: no fallback to env / cache
    with pytest.raises(D.DatasetNotFoundError, match="empty"):
        mnist.load_data(isolated / "empty", download=False)


def test_missing_files_without_download_names_directory(isolated):
    with pytest.raises(D.DatasetNotFoundError) as info:
        mnist.load_data(download=False)
    message = str(info.value)
    assert os.path.join(str(isolated), "home", ".cache", "pynn", "mnist") in message
    assert "train-images-idx3-ubyte.gz" in message and "PYNN_DATA_DIR" in message
    assert isinstance(info.value, FileNotFoundError)


# --------------------------------------------------------------------------- downloads
def _mirror(tmp_path, files, corrupt=()):
    """A local mirror directory holding ``files`` (name -> source path); file:// URL."""
    mirror = tmp_path / ("mirror_bad" if corrupt else "mirror")
    mirror.mkdir()
    for name, src in files.items():
        shutil.copyfile(src, mirror / name)
        if name in corrupt:
            with open(mirror / name, "r+b") as f:
                f.seek(100)
                f.write(b"\xff\xff\xff")
    return mirror.as_uri() + "/"


def _spec_with(monkeypatch, module, mirrors):
    spec = _files.DatasetSpec(module.SPEC.name, module.SPEC.title, dict(module.SPEC.files),
                              list(mirrors))
    monkeypatch.setattr(module, "SPEC", spec)
    return spec


@needs_data
def test_download_from_mirror_verifies_and_caches(isolated, monkeypatch, no_network):
    src = {n: os.path.join(DATA_DIR, "mnist", n) for n in mnist.SPEC.files}
    url = _mirror(isolated, src)
    _spec_with(monkeypatch, mnist, ["http://unreachable.invalid/mnist/", url])
    (x_train, y_train), (x_test, _) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and y_train[:3].tolist() == [5, 0, 4]
    cache = isolated / "home" / ".cache" / "pynn" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(mnist.SPEC.files)  # no temp files left
    assert any(u.startswith("http://unreachable.invalid") for u in no_network)
    # second call reads the cache without opening anything
    no_network.clear()
    mnist.load_data()
    assert no_network == []


@needs_data
def test_download_checksum_mismatch(isolated, monkeypatch, capsys):
    src = {n: os.path.join(DATA_DIR, "mnist", n) for n in mnist.SPEC.files}
    bad = _mirror(isolated, src, corrupt={"train-labels-idx1-ubyte.gz"})
    _spec_with(monkeypatch, mnist, [bad])
    with pytest.raises(D.ChecksumError, match="train-labels-idx1-ubyte.gz.*SHA-256") as info:
        mnist.load_data()
    assert ".cache" in str(info.value)
    cache = isolated / "home" / ".cache" / "pynn" / "mnist"
    left = os.listdir(cache)
    assert "train-labels-idx1-ubyte.gz" not in left
    assert not [n for n in left if n.endswith(".part")]
    # a good second mirror rescues the bad file; files already there are kept
    good = _mirror(isolated, src)
    _spec_with(monkeypatch, mnist, [bad, good])
    (_, y_train), _ = mnist.load_data()
    assert y_train.shape == (60000,)
    assert hashlib.sha256((cache / "train-labels-idx1-ubyte.gz").read_bytes()).hexdigest() == \
        mnist.SPEC.files["train-labels-idx1-ubyte.gz"]
    assert "Downloading" in capsys.readouterr().err


def test_download_into_explicit_path_and_offline_error(isolated, monkeypatch):
    fake = isolated / "fake"
    write_fake_mnist(fake, 7)
    files = {n: str(fake / n) for n in mnist.SPEC.files}
    spec = _files.DatasetSpec("fashion-mnist", "Fashion-MNIST",
                              {n: _files._sha256(p) for n, p in files.items()},
                              [_mirror(isolated, files)])
    monkeypatch.setattr(fashion_mnist, "SPEC", spec)
    dest = isolated / "dest"
    (_, y_train), _ = fashion_mnist.load_data(dest)
    assert y_train.tolist() == [7, 7, 7]
    assert sorted(os.listdir(dest)) == sorted(files)
    # offline: every mirror fails -> DatasetNotFoundError naming the directory
    _spec_with(monkeypatch, fashion_mnist, ["https://offline.invalid/"])
    with pytest.raises(D.DatasetNotFoundError, match="network disabled") as info:
        fashion_mnist.load_data()
    assert os.path.join(".cache", "pynn", "fashion-mnist") in str(info.value)


# --------------------------------------------------------------------------- synthetic
def test_xor_and_quadrants():
    X, y = D.xor()
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.ravel().tolist() == [0, 1, 1, 0]
    X, y = D.quadrants(500, random_state=42)
    np.random.seed(42)
    np.testing.assert_array_equal(X, np.random.randn(500, 2))
    assert y.shape == (500, 1)
    np.testing.assert_array_equal(y[:, 0] == 1, (X[:, 0] > 0) == (X[:, 1] > 0))


def test_make_classification_properties():
    X, y = D.make_classification(n_samples=1000, n_features=2, n_redundant=0, n_informative=2,
                                 random_state=42, n_clusters_per_class=1)
    assert X.shape == (1000, 2) and X.dtype == np.float64 and y.dtype == np.int64
    assert abs(np.bincount(y)[0] - 500) < 20  # 1% of labels flipped at random
    X2, y2 = D.make_classification(n_samples=1000, n_features=2, n_redundant=0,
                                   n_informative=2, random_state=42, n_clusters_per_class=1)
    np.testing.assert_array_equal(X, X2)
    X, y = D.make_classification(n_samples=90, n_features=6, n_informative=3, n_redundant=1,
                                 n_classes=3, n_clusters_per_class=1, flip_y=0, shuffle=False,
                                 random_state=0)
    assert y.tolist() == [0] * 30 + [1] * 30 + [2] * 30  # one contiguous block per cluster
    with pytest.raises(ValueError, match="n_features"):
        D.make_classification(n_features=3, n_informative=2, n_redundant=2)
    with pytest.raises(ValueError, match="2\\*\\*n_informative"):
        D.make_classification(n_classes=3, n_clusters_per_class=2, n_informative=2)


def test_moons_and_circles_geometry():
    X, y = D.make_circles(200, factor=0.5, shuffle=False)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.5)
    X, y = D.make_moons((30, 20), shuffle=False)
    assert np.bincount(y).tolist() == [30, 20]
    np.testing.assert_allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1.0)
    with pytest.raises(ValueError, match="factor"):
        D.make_circles(factor=1.0)


@needs_sklearn
@pytest.mark.parametrize("kwargs", [
    dict(n_samples=1000, n_features=2, n_redundant=0, n_informative=2, random_state=42,
         n_clusters_per_class=1),
    dict(n_samples=203, n_features=20, random_state=0),
    dict(n_samples=150, n_features=14, n_informative=10, n_clusters_per_class=1, n_repeated=1,
         random_state=3),                                     # tracking selection path
    dict(n_samples=150, n_features=3, n_informative=1, n_redundant=1, n_clusters_per_class=1,
         random_state=3),                                     # reservoir path
    dict(n_samples=99, n_features=8, n_informative=4, n_classes=3, weights=[0.2, 0.3],
         hypercube=False, shift=None, scale=None, random_state=7),
    dict(n_samples=60, n_features=35, n_informative=32, n_redundant=0, n_classes=4,
         random_state=1, shuffle=False),                      # > 30 informative dims
])
def test_make_classification_equals_sklearn(kwargs):
    ours, theirs = D.make_classification(**kwargs), skd.make_classification(**kwargs)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


@needs_sklearn
@pytest.mark.parametrize("name", ["make_moons", "make_circles"])
@pytest.mark.parametrize("kwargs", [dict(n_samples=101, noise=0.1, random_state=4),
                                    dict(n_samples=(10, 7), random_state=1),
                                    dict(n_samples=20, shuffle=False)])
def test_moons_circles_equal_sklearn(name, kwargs):
    ours, theirs = getattr(D, name)(**kwargs), getattr(skd, name)(**kwargs)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


# --------------------------------------------------------------------------- utilities
def test_train_test_split_sizes_and_content():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    X_tr, X_te, y_tr, y_te = D.train_test_split(X, y, random_state=0)
    assert len(X_te) == 3 and len(X_tr) == 7  # ceil(0.25 * 10)
    np.testing.assert_array_equal(X_tr[:, 0] // 2, y_tr)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(10))
    a, b = D.train_test_split(list("abcdefghij"), test_size=0.2, shuffle=False)
    assert a == list("abcdefgh") and b == ["i", "j"]
    tr, te = D.train_test_split(y, test_size=4, train_size=5, random_state=1)
    assert len(tr) == 5 and len(te) == 4
    labels = np.repeat([0, 1], [80, 20])
    _, te = D.train_test_split(labels, test_size=0.25, stratify=labels, random_state=3)
    assert np.bincount(te).tolist() == [20, 5]
    with pytest.raises(ValueError, match="inconsistent"):
        D.train_test_split(X, y[:5])
    with pytest.raises(ValueError, match="test_size"):
        D.train_test_split(X, test_size=1.5)
    with pytest.raises(ValueError, match="least populated"):
        D.train_test_split(y, stratify=y)


@needs_sklearn
@pytest.mark.parametrize("kwargs", [
    dict(test_size=0.2, random_state=42), dict(random_state=0),
    dict(test_size=13, train_size=50, random_state=5), dict(shuffle=False, test_size=0.3),
    dict(stratify="y", random_state=3, test_size=0.33),
    dict(stratify="y", random_state=1, train_size=0.5)])
def test_train_test_split_equals_sklearn(kwargs):
    X = np.arange(200).reshape(100, 2)
    y = np.repeat([0, 1, 2, 2], 25)
    if kwargs.get("stratify") == "y":
        kwargs = dict(kwargs, stratify=y)
    for ours, theirs in zip(D.train_test_split(X, y, **kwargs),
                            skms.train_test_split(X, y, **kwargs)):
        np.testing.assert_array_equal(ours, theirs)


def test_to_categorical():
    out = D.to_categorical([0, 2, 1])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert D.to_categorical(np.array([[1], [0]]), num_classes=4).shape == (2, 4)
    assert D.to_categorical(np.zeros((2, 3), dtype=int), 2).shape == (2, 3, 2)
    assert D.to_categorical(np.array([1.0, 0.0]), dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match="num_classes=3"):
        D.to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match=">= 0"):
        D.to_categorical([-1, 0])
    with pytest.raises(ValueError, match="integer"):
        D.to_categorical([0.5, 1.0])
