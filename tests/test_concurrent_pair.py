"""Two calls at once (``pynn.backends.concurrent``): the runner's hand-off, exceptions,
BLAS thread pinning and fall-backs, and ``Bidirectional`` running its two directions at
once with results equal bit for bit to running them in turn."""
import signal
import threading
import time

import numpy as np
import pytest

import pynn
import pynn.backends as B
from pynn import layers as L
from pynn.backends import concurrent
from pynn.backends.concurrent import PairRunner, pair_runner, run_pair
from pynn.models import Model


class _Threads:
    """A stand-in BLAS thread control that records what was set."""

    def __init__(self, n=2):
        self.n, self.log = n, []

    def get(self):
        return self.n

    def set(self, n):
        self.n = n
        self.log.append(n)


def test_runner_runs_second_on_another_thread_with_one_blas_thread():
    threads = _Threads()
    runner = PairRunner(threads.get, threads.set)
    be = B.get("numpy")
    seen = {}

    def first():
        seen["first"] = (threading.get_ident(), threads.n)
        return "a"

    def second():
        seen["second"] = (threading.get_ident(), threads.n, B.get_backend())
        return "b"

    for _ in range(3):  # the worker persists and serves call after call
        assert runner.run(be, first, second) == ("a", "b")
    assert seen["first"] == (threading.get_ident(), 1)
    assert seen["second"][0] != threading.get_ident() and seen["second"][1] == 1
    assert seen["second"][2] is be  # the caller's backend is active on the worker
    assert threads.n == 2 and threads.log == [1, 2] * 3
    assert sum(t.name == "pynn-pair-worker" for t in threading.enumerate()) >= 1


def test_runner_exceptions_propagate_and_it_keeps_working():
    threads = _Threads(3)
    runner = PairRunner(threads.get, threads.set)
    be = B.get("numpy")
    done = []

    def boom(msg):
        def f():
            raise ValueError(msg)
        return f

    with pytest.raises(ValueError, match="worker"):
        runner.run(be, lambda: 1, boom("worker"))
    # the first call's exception wins, after the second finished
    with pytest.raises(ValueError, match="caller"):
        runner.run(be, boom("caller"), lambda: done.append(1))
    assert done == [1]
    with pytest.raises(ValueError, match="caller"):
        runner.run(be, boom("caller"), boom("worker"))
    assert threads.n == 3  # restored every time
    assert runner.run(be, lambda: 1, lambda: 2) == (1, 2)


def test_an_interrupt_while_waiting_still_waits_for_the_worker():
    threads = _Threads()
    runner = PairRunner(threads.get, threads.set)
    be = B.get("numpy")
    main = threading.get_ident()
    done = []

    def second():
        time.sleep(0.05)  # the caller is waiting by now
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(0.2)
        done.append(1)
        return "stale"

    with pytest.raises(KeyboardInterrupt):
        runner.run(be, lambda: None, second)
    assert done == [1] and threads.n == 2  # finished before run() returned
    assert runner.run(be, lambda: 1, lambda: 2) == (1, 2)  # no stale hand-off


def test_a_pair_inside_a_pair_runs_in_turn():
    threads = _Threads()
    runner = PairRunner(threads.get, threads.set)
    be = B.get("numpy")
    inner = []

    def nested():
        inner.append(runner.run(be, lambda: 1, lambda: 2))
        return 0

    assert runner.run(be, nested, lambda: 3) == (0, 3)
    assert inner == [None]  # busy: the caller runs the two in turn


def test_where_pairs_run(monkeypatch):
    monkeypatch.setattr(concurrent, "_cpus", lambda: 2)
    big = concurrent.MIN_PAIR_WORK
    for name in ("numpy", "numba"):
        if name in B.available():
            assert pair_runner(B.get(name), big) is None
    if "cython" in B.available():
        be = B.get("cython")
        control = be.pair_blas_threads
        if control is not None:
            assert pair_runner(be, big) is pair_runner(be, big)
            assert pair_runner(be, big - 1) is None
            monkeypatch.setattr(concurrent, "_cpus", lambda: 1)
            assert pair_runner(be, big) is None
    # in turn: the results and the exception of the first call, the second not run
    ran = []
    assert run_pair(B.get("numpy"), lambda: 1, lambda: 2, big) == (1, 2)
    with pytest.raises(KeyError):
        run_pair(B.get("numpy"), lambda: {}[0], lambda: ran.append(1), big)
    assert ran == []


def test_cython_pair_blas_threads_round_trip():
    if "cython" not in B.available():
        pytest.skip("cython backend not built")
    control = B.get("cython").pair_blas_threads
    if control is None:
        pytest.skip("the cython kernels call SciPy's BLAS (PYNN_BLAS=scipy)")
    get, set_ = control
    before = get()
    try:
        set_(1)
        assert get() == 1
    finally:
        set_(before)
    assert get() == before


@pytest.fixture
def counted_pairs(monkeypatch):
    """Pairs forced on (any size, two CPUs) on the cython backend, counted."""
    if "cython" not in B.available() or B.get("cython").pair_blas_threads is None:
        pytest.skip("needs the cython backend on NumPy's OpenBLAS")
    monkeypatch.setattr(concurrent, "MIN_PAIR_WORK", 0)
    monkeypatch.setattr(concurrent, "_cpus", lambda: 2)
    calls = []
    run = PairRunner.run

    def counted(self, backend, first, second):
        out = run(self, backend, first, second)
        calls.append(out is not None)
        return out
    monkeypatch.setattr(PairRunner, "run", counted)
    return calls


def _in_turn(monkeypatch):
    monkeypatch.setattr(concurrent, "pair_runner", lambda backend, work: None)


def _train(cell, dtype, steps=3, dropout=0.0):
    pynn.set_seed(5)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (16, 24)).astype("int32")
    ids[3, 10:] = 0   # right-padded
    ids[7, :5] = 0    # left-padded
    y = rng.integers(0, 2, (16, 1)).astype(dtype)
    rnn = getattr(L, cell)
    i = pynn.Input((None,), dtype="int32")
    h = L.Embedding(50, 8, mask_zero=True, dtype=dtype)(i)
    h = L.Bidirectional(rnn(6, return_sequences=True, dropout=dropout), dtype=dtype)(h)
    h = L.Bidirectional(rnn(5), merge_mode="mul", dtype=dtype)(h)
    m = Model(i, L.Dense(1, activation="sigmoid", dtype=dtype)(h))
    m.compile("adam", "binary_crossentropy")
    for s in range(steps):
        m.train_step((ids[s % 2 * 8:][:8], y[s % 2 * 8:][:8]))
    return m.get_weights(), m.predict(ids, verbose=0)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bidirectional_at_once_equals_in_turn_bit_for_bit(cell, dtype, counted_pairs,
                                                          monkeypatch):
    with B.use_backend("cython"):
        w_pair, p_pair = _train(cell, dtype)
        assert len(counted_pairs) >= 12 and all(counted_pairs)  # 2 layers x fwd/bwd x 3
        _in_turn(monkeypatch)
        w_seq, p_seq = _train(cell, dtype)
    for a, b in zip(w_pair + [p_pair], w_seq + [p_seq]):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)


def test_bidirectional_states_and_list_output_at_once_equal_in_turn(counted_pairs,
                                                                    monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7, 3)).astype("float32")
    mask = np.ones((4, 7), bool)
    mask[1, 4:] = False
    h0 = [rng.standard_normal((4, 2)).astype("float32") for _ in range(4)]

    def run():
        with B.use_backend("cython"):
            layer = L.Bidirectional(L.LSTM(2, return_sequences=True, return_state=True),
                                    merge_mode=None)
            layer(x)
            layer.set_weights([0.5 * np.random.default_rng(2).standard_normal(w.shape)
                               .astype("float32") for w in layer.weights])
            ctx = layer.context()
            outs = layer.forward(ctx, x, training=True, mask=mask, initial_state=h0)
            outs = [np.array(o) for o in outs]
            dx = layer.backward(ctx, [np.ones_like(o) for o in outs])
            return outs + [dx] + [w.grad.copy() for w in layer.weights]

    at_once = run()
    assert counted_pairs == [True] * 3  # the build call, forward, backward
    _in_turn(monkeypatch)
    for a, b in zip(at_once, run()):
        np.testing.assert_array_equal(a, b)


def test_bidirectional_with_dropout_trains_in_turn(counted_pairs):
    with B.use_backend("cython"):
        _train("LSTM", "float32", steps=1)
        plain = len(counted_pairs)
        _train("LSTM", "float32", steps=1, dropout=0.25)
    # only the training forward of the layer with dropout ran its directions in turn
    # (its draws keep their order); its backward reuses the drawn masks
    assert len(counted_pairs) - plain == plain - 1 and all(counted_pairs)
