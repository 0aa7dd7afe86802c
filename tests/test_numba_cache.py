"""Issue 15, rule 1: nothing executable or unpickled from a directory another user can write.

pynn's Numba kernels are cached only in a directory owned by this user and
writable by nobody else (:mod:`pynn.backends._numba_cache`); otherwise a private
temporary directory is used, with one warning, and planted files are never
loaded. Generated kernel sources are opened without following links and only as
regular files; a damaged cache entry is recompiled, never fatal; with no usable
directory at all, the kernels compile without a disk cache.

Every scenario runs in a child process with a time limit (a FIFO must not hang
it) and an address-space limit (a link to ``/dev/zero`` must not exhaust memory).
"""
import os
import pickle
import stat
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

from limits import run_limited  # noqa: E402

import pynn.backends as B  # noqa: E402
from pynn.backends import _numba_cache as C  # noqa: E402

if B.why_unavailable("numba") is not None:  # e.g. NUMBA_DISABLE_JIT in the environment
    pytest.skip(f"numba backend unavailable: {B.why_unavailable('numba')}",
                allow_module_level=True)

#: One generic kernel (a GEMM with a ReLU epilogue) and one fused training step,
#: each generated from source, compiled and cached; prints the cache hits and misses
#: of both, the results, and the directory each kernel is cached in.
_OPS = """
    import sys, warnings
    warnings.simplefilter("always")
    import numpy as np
    import pynn.backends as B
    from pynn.backends import _numba_codegen as G
    be = B.get("numba")
    limit_memory(1536)
    a = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    y = be.gemm(a, a, trans_b=True, bias=np.ones(4, np.float32), activation="relu")
    rng = np.random.default_rng(0)
    ks = [rng.standard_normal(s).astype(np.float32) for s in [(5, 4), (4, 3)]]
    bs = [np.zeros(k.shape[1], np.float32) for k in ks]
    outs = [np.empty((6, k.shape[1]), np.float32) for k in ks]
    deltas = [np.empty_like(o) for o in outs]
    dks = [np.empty_like(k) for k in ks]
    dbs = [np.empty_like(b) for b in bs]
    x = rng.random((6, 5)).astype(np.float32)
    loss = be.dense_stack_forward_backward(x, np.array([0, 1, 2, 0, 1, 2]), ks, bs,
                                           ["relu", "softmax"], "softmax_cross_entropy",
                                           outs, deltas, dks, dbs)
    stats = [G.gemm(False, True, 1).stats, G.stack_step([1, 0], 0, 0, labels=True,
                                                       biases="all").stats]
    print(sum(sum(s.cache_hits.values()) for s in stats),
          sum(sum(s.cache_misses.values()) for s in stats),
          repr(float(y.sum())), repr(loss))
    print(stats[0].cache_path)
"""


def run_ops(cache, timeout=240, **env):
    """:data:`_OPS` in a child with ``NUMBA_CACHE_DIR=cache``; ``(hits, misses,
    results, cache path, stderr)``."""
    e = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    e.pop("NUMBA_DISABLE_JIT", None)
    e.update(env)
    r = run_limited(_OPS, timeout=timeout, env=e)
    assert r.returncode == 0, r.stderr
    first, path = r.stdout.strip().splitlines()[-2:]
    hits, misses, *results = first.split()
    return int(hits), int(misses), results, path, r.stderr


class _Plant:
    """Unpickling this creates the file ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(cache, marker):
    """Replace every cache index under ``cache`` with a well-formed entry whose
    unpickling creates ``marker``, and every generated source with code that
    creates it too; returns how many files were planted."""
    import numba
    n = 0
    for index in cache.rglob("*.nbi"):
        index.write_bytes(C._frame(numba.__version__, pickle.dumps(_Plant(str(marker)))))
        n += 1
    for source in cache.rglob("pynn_generated_*.py"):
        source.write_text(f"open({str(marker)!r}, 'w')\n")
        n += 1
    return n


def test_planted_files_are_loaded_from_a_trusted_directory(tmp_path):
    """The control for the tests below: the planted index files sit exactly where
    pynn looks, and pynn does unpickle its own (trusted) directory's entries, so a
    test in which the marker stays absent shows the directory was refused. The
    planted sources, though, are never executed: they are replaced."""
    cache, marker = tmp_path / "cache", tmp_path / "ran"
    hits, misses, first, path, _ = run_ops(cache)
    assert (hits, misses) == (0, 2)
    assert path.startswith(str(cache / "pynn"))
    assert plant(cache, marker) >= 3
    hits, misses, again, _, err = run_ops(cache)
    assert marker.exists(), "the planted entries were not where pynn reads its cache"
    assert again == first and misses == 2  # the bad entries are discarded, recompiled
    assert "discarded the damaged Numba cache file" in err
    sources = list(cache.rglob("pynn_generated_*.py"))
    assert sources and all(str(marker) not in s.read_text() for s in sources)


def _chown_away(path):
    os.chown(path, 54321, -1)


_UNSAFE = {
    "world-writable": lambda c: os.chmod(c / "pynn", 0o777),
    "group-writable": lambda c: os.chmod(c / "pynn", 0o770),
    "owned by another user": lambda c: _chown_away(c / "pynn"),
    "parent writable by others": lambda c: os.chmod(c, 0o777),
    "parent owned by another user": lambda c: _chown_away(c),
}


@pytest.mark.parametrize("how", list(_UNSAFE))
def test_a_directory_others_can_write_is_never_read(tmp_path, how):
    """NUMBA_CACHE_DIR as another local user could have prepared it: pynn warns once,
    compiles into a private temporary directory, and runs none of the planted files."""
    if "owned" in how and os.geteuid() != 0:
        pytest.skip("making a directory another user's needs root")
    cache, marker = tmp_path / "cache", tmp_path / "ran"
    _, _, first, _, _ = run_ops(cache)
    assert plant(cache, marker) >= 3
    _UNSAFE[how](cache)
    hits, misses, again, path, err = run_ops(cache)
    assert not marker.exists(), "a file from a directory others can write was unpickled or run"
    assert again == first
    assert (hits, misses) == (0, 2)
    assert not path.startswith(str(cache)) and "pynn-numba-" in path
    assert err.count("Numba's cache is not kept in") == 1, err
    assert "private temporary directory" in err
    assert not os.path.exists(os.path.dirname(path)), "the temporary directory is removed"


def test_fifo_and_link_to_dev_zero_at_a_generated_name(tmp_path):
    """Objects planted (in this user's own directory) under the predictable names of
    the generated sources are replaced, never opened: no hang, no memory growth."""
    cache = tmp_path / "cache"
    _, _, first, _, _ = run_ops(cache)
    sources = sorted(cache.rglob("pynn_generated_*.py"))
    assert len(sources) == 2
    text = {s: s.read_text() for s in sources}
    sources[0].unlink()
    os.mkfifo(sources[0])
    sources[1].unlink()
    os.symlink("/dev/zero", sources[1])
    hits, misses, again, _, _ = run_ops(cache, timeout=120)
    assert again == first
    for s in sources:
        st = os.lstat(s)
        assert stat.S_ISREG(st.st_mode) and s.read_text() == text[s]


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "fifo"])
def test_a_damaged_cache_entry_is_recompiled(tmp_path, damage):
    cache = tmp_path / "cache"
    _, _, first, _, _ = run_ops(cache)
    entries = sorted(cache.rglob("*.nbi")) + sorted(cache.rglob("*.nbc"))
    assert entries
    for p in entries:
        blob = p.read_bytes()
        if damage == "truncate":
            p.write_bytes(blob[: len(blob) // 2])
        elif damage == "flip":
            p.write_bytes(blob[:-10] + bytes([blob[-10] ^ 0x40]) + blob[-9:])
        elif damage == "empty":
            p.write_bytes(b"")
        else:
            p.unlink()
            os.mkfifo(p)
    hits, misses, again, _, err = run_ops(cache, timeout=120)
    assert again == first and (hits, misses) == (0, 2)
    assert "discarded the damaged Numba cache file" in err
    hits, misses, third, _, _ = run_ops(cache)
    assert third == first and (hits, misses) == (2, 0), "the entries were not rewritten"


def test_without_a_writable_directory_numba_runs_without_a_disk_cache(tmp_path):
    """No writable home, no NUMBA_CACHE_DIR and no usable temporary directory: the
    backend is still available and computes the same numbers, with a warning."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _, _, first, _, _ = run_ops(tmp_path / "reference")
    env = dict(os.environ, HOME=str(blocker / "home"), TMPDIR=str(blocker / "tmp"))
    for name in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "NUMBA_DISABLE_JIT"):
        env.pop(name, None)
    code = (f"import tempfile\ntempfile.tempdir = {str(blocker / 'tmp')!r}\n"
            + textwrap.dedent(_OPS))
    r = run_limited(code, timeout=240, env=env)
    assert r.returncode == 0, r.stderr
    hits, misses, *results = r.stdout.strip().splitlines()[-2].split()
    assert results == first and (int(hits), int(misses)) == (0, 2)
    assert "without a disk cache" in r.stderr
    written = [p for p in tmp_path.rglob("*") if (tmp_path / "reference") not in p.parents
               and p != tmp_path / "reference" and p != blocker]
    assert written == [], "nothing may be cached on disk"


def test_an_unwritable_home_uses_a_private_temporary_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = dict(os.environ, HOME=str(blocker / "home"), TMPDIR=str(tmp_path))
    for name in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "NUMBA_DISABLE_JIT"):
        env.pop(name, None)
    r = run_limited(_OPS, timeout=240, env=env)
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip().splitlines()[-1]
    assert path.startswith(str(tmp_path / "pynn-numba-"))
    assert "Numba's cache is not kept in" in r.stderr and str(blocker) in r.stderr
    assert not os.path.exists(os.path.dirname(path))


def test_check_private_dir(tmp_path):
    """The rule itself: owner, mode, the directories above, links resolved."""
    good, reason = C.check_private_dir(tmp_path / "new" / "dir")
    assert reason is None and good == os.path.realpath(tmp_path / "new" / "dir")
    assert stat.S_IMODE(os.stat(good).st_mode) & 0o077 == 0  # created private
    os.chmod(good, 0o755)
    assert C.check_private_dir(good)[1] is None  # readable by others is fine
    os.chmod(good, 0o775)
    assert "writable by group or others" in C.check_private_dir(good)[1]
    os.chmod(good, 0o700)
    os.chmod(tmp_path / "new", 0o777)
    assert "above it" in C.check_private_dir(good)[1]
    os.chmod(tmp_path / "new", 0o1777)  # sticky, as /tmp: others cannot rename ours
    assert C.check_private_dir(good)[1] is None
    link = tmp_path / "link"
    os.symlink(good, link)
    assert C.check_private_dir(link) == (good, None)
    afile = tmp_path / "file"
    afile.write_text("")
    assert "cannot be used" in C.check_private_dir(afile / "sub")[1]
    assert "not a directory" in C.check_private_dir(afile, create=False)[1]


def test_numba_disable_jit_leaves_numba_unlisted_with_a_reason():
    e = dict(os.environ, NUMBA_DISABLE_JIT="1")
    r = run_limited("""
        import pynn, numpy as np
        import pynn.backends as B
        print("numba" in B.available())
        print(B.unavailable()["numba"])
        m = pynn.Sequential([pynn.layers.Dense(2, input_shape=(3,))])
        m.compile("sgd", "mse")
        m.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)
        print("trained on", pynn.get_backend().name)
    """, timeout=120, env=e)
    assert r.returncode == 0, r.stderr
    listed, reason, trained = r.stdout.strip().splitlines()
    assert listed == "False"
    assert "NUMBA_DISABLE_JIT" in reason
    assert trained != "trained on numba"


def test_cached_leaves_plain_functions_alone():
    def f(x):
        return x
    assert C.cached(f) is f
    assert np.isfinite(C.cached(f)(1.0))
