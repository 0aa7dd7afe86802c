"""What is particular to the ``numba`` backend's convolution and pooling kernels
(:mod:`pynn.backends._numba_conv`); their values on the grid of odd cases, for
every CPU backend, are checked in ``test_conv_ops.py``.

* Nothing compiles on import; a kernel compiles on its first call, once per float
  dtype (one specialisation serves every activation, with or without a bias,
  grouped or not), and a second process loads it from pynn's cache directory.
* The rows are processed in blocks (:func:`~pynn.backends._numba_conv.block_rows`):
  blocks of a few rows, with a remainder, give the reference's results.
* Scratch arrays are per thread and reused: a warm call allocates nothing, and
  threads calling one backend at once get their own buffers.
"""
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("numba")

import pynn.backends as B  # noqa: E402

from helpers import PYNN_PATH, REFERENCE, assert_close  # noqa: E402

if B.why_unavailable("numba") is not None:  # e.g. NUMBA_DISABLE_JIT in the environment
    pytest.skip(f"numba backend unavailable: {B.why_unavailable('numba')}",
                allow_module_level=True)

from pynn.backends import _numba_conv as C  # noqa: E402


@pytest.fixture(scope="module")
def nb():
    return B.get("numba")


def _run(code, cache_dir, path=PYNN_PATH):
    """Run ``code`` in a child importing pynn from ``path``; its stdout."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir),
               PYTHONPATH=str(path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NUMBA_DISABLE_JIT", None)
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=str(path),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


# --------------------------------------------------------------------------
# lazy compilation, one specialisation per dtype, the disk cache
# --------------------------------------------------------------------------
#: Every op once (grouped, 1x1, each activation, with and without a bias) in
#: float32 and float64; prints per kernel: signatures, cache hits, cache misses.
_ALL_OPS = """
    import numpy as np
    import pynn.backends as B
    from pynn.backends import _numba_conv as C
    be = B.get("numba")
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        x = rng.standard_normal((2, 7, 6, 4)).astype(dt)
        for k, groups in (((3, 2, 4, 6), 1), ((3, 3, 2, 6), 2), ((1, 1, 4, 5), 1)):
            kernel = rng.standard_normal(k).astype(dt)
            for act in ("linear", "relu", "tanh", "leaky_relu", "softmax"):
                for bias in (None, np.ones(k[3], dt)):
                    y = be.conv2d_forward(x, kernel, bias, padding=((1, 0), (0, 1)),
                                          groups=groups, activation=act)
            be.conv2d_backward_input(y, kernel, x.shape, padding=((1, 0), (0, 1)),
                                     groups=groups)
            be.conv2d_backward_kernel(x, y, k, padding=((1, 0), (0, 1)), groups=groups)
        for mode in ("max", "avg"):
            p, i = be.pool2d_forward(x, 2, 1, padding=((1, 0), (0, 1)), mode=mode)
            be.pool2d_backward(p, x.shape, 2, 1, padding=((1, 0), (0, 1)), mode=mode,
                               index=i)
    for k in C.KERNELS:
        print(k.__name__, len(k.signatures), sum(k.stats.cache_hits.values()),
              sum(k.stats.cache_misses.values()))
"""


def _kernel_stats(out):
    return {name: tuple(map(int, rest)) for name, *rest in
            (line.split() for line in out.strip().splitlines())}


def test_import_compiles_nothing(tmp_path):
    out = _run("""
        import pynn.backends as B
        from pynn.backends import _numba_conv as C
        B.get("numba")
        kernels = C.KERNELS + C.HELPERS
        print(len(kernels), sum(len(k.signatures) for k in kernels))
    """, tmp_path)
    assert out.split() == [str(len(C.KERNELS + C.HELPERS)), "0"]
    assert not any(tmp_path.rglob("*.nbi")), "nothing may be written to the cache on import"


def test_one_specialisation_per_dtype_and_a_cache_hit_in_the_next_process(tmp_path):
    first = _kernel_stats(_run(_ALL_OPS, tmp_path))
    assert set(first) == {k.__name__ for k in C.KERNELS}
    for name, (signatures, hits, misses) in first.items():
        assert signatures == 2, f"{name}: {signatures} specialisations for two dtypes"
        assert (hits, misses) == (0, 2), name
    assert any((tmp_path / "pynn").rglob("_numba_conv*.nbi")), "cached in pynn's directory"
    second = _kernel_stats(_run(_ALL_OPS, tmp_path))
    for name, (signatures, hits, misses) in second.items():
        assert (signatures, hits, misses) == (2, 2, 0), f"{name} was compiled again"


def test_a_call_compiles_only_its_own_kernel(tmp_path):
    out = _run("""
        import numpy as np
        import pynn.backends as B
        from pynn.backends import _numba_conv as C
        be = B.get("numba")
        x = np.ones((1, 4, 4, 2), np.float32)
        be.conv2d_forward(x, np.ones((2, 2, 2, 3), np.float32), activation="relu")
        be.pool2d_forward(x, 2)
        print(*[k.__name__ for k in C.KERNELS if k.signatures])
    """, tmp_path)
    assert out.split() == ["conv_forward", "max_pool_forward"]


def test_a_changed_kernels_module_invalidates_the_cached_conv_kernels(tmp_path):
    """The conv kernels compile in code of ``_numba_kernels.py`` (activations, BLAS
    intrinsics), so their cache entries are keyed on that file too."""
    copy = tmp_path / "src"
    shutil.copytree(os.path.join(PYNN_PATH, "pynn"), copy / "pynn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = """
        import numpy as np
        import pynn
        import pynn.backends as B
        from pynn.backends import _numba_conv as C
        assert pynn.__file__.startswith(%r)
        x = np.ones((1, 3, 3, 1))
        B.get("numba").conv2d_forward(x, np.ones((2, 2, 1, 1)), activation="relu")
        st = C.conv_forward.stats
        print(sum(st.cache_hits.values()), sum(st.cache_misses.values()))
    """ % str(copy)
    cache = tmp_path / "cache"
    assert _run(code, cache, copy).split() == ["0", "1"]
    assert _run(code, cache, copy).split() == ["1", "0"]
    with open(copy / "pynn" / "backends" / "_numba_kernels.py", "a") as f:
        f.write("\n# changed\n")
    assert _run(code, cache, copy).split() == ["0", "1"], "a stale kernel was loaded"


# --------------------------------------------------------------------------
# rows in blocks
# --------------------------------------------------------------------------
#: (x shape, kernel shape, strides, padding, dilation, groups)
GEOMETRIES = [
    ((3, 9, 8, 4), (3, 3, 4, 5), 1, ((1, 1), (1, 1)), 1, 1),
    ((2, 11, 7, 6), (2, 3, 3, 4), (2, 3), ((0, 1), (2, 0)), 1, 2),
    ((2, 10, 9, 4), (3, 2, 1, 8), 1, ((2, 2), (1, 0)), (2, 3), 4),   # depthwise, x2
    ((4, 5, 6, 7), (1, 1, 7, 3), 1, ((0, 0), (0, 0)), 1, 1),        # the image is col
    ((2, 5, 6, 4), (1, 1, 2, 6), 1, ((0, 0), (0, 0)), 1, 2),        # 1x1, grouped
    ((3, 6, 6, 3), (1, 1, 3, 2), 2, ((0, 1), (1, 0)), 1, 1),        # 1x1, strided, padded
    ((1, 4, 5, 1), (4, 5, 1, 2), 1, ((0, 0), (0, 0)), 1, 1),        # kernel = input
]


@pytest.mark.parametrize("block_bytes", [1, 200, C.BLOCK_BYTES])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=range(len(GEOMETRIES)))
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_rows_in_blocks_give_the_reference(nb, monkeypatch, geometry, block_bytes, dt):
    """One row per block, a few rows with a remainder, and the default."""
    monkeypatch.setattr(C, "BLOCK_BYTES", block_bytes)
    xs, ks, strides, padding, dilation, groups = geometry
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs).astype(dt)
    kernel = rng.standard_normal(ks).astype(dt)
    bias = rng.standard_normal(ks[3]).astype(dt)
    geo = dict(strides=strides, padding=padding, dilation=dilation, groups=groups)
    for act in ("leaky_relu", "softmax", "tanh"):  # in the epilogue, after it, after it
        want = REFERENCE.conv2d_forward(x, kernel, bias, activation=act, **geo)
        assert_close(nb.conv2d_forward(x, kernel, bias, activation=act, **geo), want, dt,
                     what=f"forward {act}")
    dy = rng.standard_normal(want.shape).astype(dt)
    assert_close(nb.conv2d_backward_input(dy, kernel, xs, **geo),
                 REFERENCE.conv2d_backward_input(dy, kernel, xs, **geo), dt, what="dx")
    assert_close(nb.conv2d_backward_kernel(x, dy, ks, **geo),
                 REFERENCE.conv2d_backward_kernel(x, dy, ks, **geo), dt, what="dkernel")


# --------------------------------------------------------------------------
# scratch: reused, per thread
# --------------------------------------------------------------------------
def _calls(rng, dt):
    """Every op once, on shapes whose columns and results are far larger than
    anything a call may allocate in the test below; ``(name, call)``."""
    x = rng.standard_normal((8, 16, 16, 8)).astype(dt)
    kernel = rng.standard_normal((3, 3, 4, 16)).astype(dt)
    bias = rng.standard_normal(16).astype(dt)
    geo = dict(strides=1, padding=((1, 1), (1, 1)), dilation=1, groups=2)
    y = np.empty((8, 16, 16, 16), dt)
    dx, dk = np.empty_like(x), np.empty_like(kernel)
    p, idx = np.empty((8, 8, 8, 8), dt), np.empty((8, 8, 8, 8), np.int64)
    return [
        ("conv2d_forward", lambda be: be.conv2d_forward(x, kernel, bias, activation="relu",
                                                        out=y, **geo)),
        ("conv2d_forward softmax", lambda be: be.conv2d_forward(
            x, kernel, None, activation="softmax", out=y, **geo)),
        ("conv2d_backward_input", lambda be: be.conv2d_backward_input(
            y, kernel, x.shape, out=dx, **geo)),
        ("conv2d_backward_kernel", lambda be: be.conv2d_backward_kernel(
            x, y, kernel.shape, out=dk, **geo)),
        ("pool2d_forward max", lambda be: be.pool2d_forward(x, 2, out=p, index=idx)),
        ("pool2d_backward max", lambda be: be.pool2d_backward(p, x.shape, 2, index=idx,
                                                              out=dx)),
        ("pool2d_forward avg", lambda be: be.pool2d_forward(x, 3, 2, ((1, 0), (1, 0)),
                                                            mode="avg", out=p)),
        ("pool2d_backward avg", lambda be: be.pool2d_backward(p, x.shape, 3, 2, ((1, 0), (1, 0)),
                                                              mode="avg", out=dx)),
    ]


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_a_warm_call_allocates_nothing(nb, dt):
    """The columns alone are 147 KB (float32) and every result at least 16 KB; a
    warm call may create a few small Python objects, never an array."""
    for name, call in _calls(np.random.default_rng(2), dt):
        call(nb)  # cold: compiles, grows the scratch
        buffers = dict(nb._scratch().buffers)
        tracemalloc.start()
        try:
            call(nb)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8192, f"{name}: a warm call allocated {peak} bytes"
        assert all(nb._scratch().buffers[k] is v for k, v in buffers.items()), name


def test_scratch_grows_and_is_reused(nb):
    rng = np.random.default_rng(4)
    small = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
    large = rng.standard_normal((3, 9, 9, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 3)).astype(np.float32)
    for x in (small, large, small):
        assert_close(nb.conv2d_forward(x, kernel), REFERENCE.conv2d_forward(x, kernel),
                     np.float32)
        if x is large:
            col = nb._scratch().buffers[("col", np.dtype(np.float32), False)]
    assert nb._scratch().buffers[("col", np.dtype(np.float32), False)] is col
    assert col.size >= 3 * 7 * 7 * 3 * 3 * 2


def test_threads_get_their_own_scratch(nb):
    """Several threads convolve different shapes on one backend at once (the
    kernels release the GIL); each gets the reference's results."""
    rng = np.random.default_rng(6)
    jobs = []
    for i in range(4):
        x = rng.standard_normal((2 + i, 12, 10 - i, 3)).astype(np.float64)
        kernel = rng.standard_normal((3, 2 + i % 2, 3, 4)).astype(np.float64)
        jobs.append((x, kernel, REFERENCE.conv2d_forward(x, kernel, padding=((1, 1), (0, 1)))))
    errors, buffers = [], {}
    start = threading.Barrier(len(jobs))

    def work(i, x, kernel, want):
        start.wait()
        try:
            for _ in range(20):
                got = nb.conv2d_forward(x, kernel, padding=((1, 1), (0, 1)))
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
            buffers[i] = nb._scratch().buffers[("col", np.dtype(np.float64), False)]
        except Exception as exc:  # reported below, with the thread
            errors.append((i, exc))

    threads = [threading.Thread(target=work, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({id(b) for b in buffers.values()}) == len(jobs)
