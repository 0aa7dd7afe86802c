"""Issue 15, the model side: consistent snapshots under threads, one fit at a time,
aliasing-safe and overflow-checked set_weights, masked arrays, rank-3 Dense training."""
import hashlib
import threading

import numpy as np
import pytest

import pynn
from pynn import callbacks as C
from pynn.layers import Dense, Input
from pynn.models import Sequential


def digest(weights):
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


class Recorder(C.Callback):
    """Records the weights after every step (in the training thread)."""

    def __init__(self, go=None):
        super().__init__()
        self.states = []
        self.go = go

    def on_train_begin(self, logs=None):
        self.states.append(digest(w.numpy() for w in self.model.weights))

    def on_train_batch_end(self, batch, logs=None):
        self.states.append(digest(w.numpy() for w in self.model.weights))
        if self.go is not None:
            self.go.set()


def small_model():
    pynn.set_seed(0)
    m = Sequential([Input(shape=(20,)), Dense(64, activation="relu"), Dense(4)])
    m.compile("adam", "mse")
    return m


def test_snapshots_and_saves_under_a_concurrent_fit_lie_between_two_steps(backend_name,
                                                                         tmp_path):
    with pynn.use_backend(backend_name):
        m = small_model()
        rng = np.random.default_rng(1)
        x, y = rng.standard_normal((2000, 20)), rng.standard_normal((2000, 4))
        rec = Recorder(threading.Event())
        t = threading.Thread(target=m.fit, args=(x, y),
                             kwargs=dict(batch_size=8, epochs=2, verbose=0, callbacks=[rec]))
        t.start()
        rec.go.wait(30)
        snaps, saved = [], []
        for i in range(30):
            snaps.append(digest(m.get_weights()))
            if i % 10 == 0:
                path = tmp_path / f"ck{i}.keras"
                m.save(path)
                saved.append(path)
        t.join(120)
        assert not t.is_alive()
        states = set(rec.states)
        assert all(s in states for s in snaps)
        for path in saved:
            assert digest(pynn.load_model(path).get_weights()) in states


def test_second_fit_of_one_model_is_refused_while_the_first_runs():
    m = small_model()
    x, y = np.zeros((64, 20)), np.zeros((64, 4))
    started, release = threading.Event(), threading.Event()

    class Hold(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            started.set()
            release.wait(30)

    t = threading.Thread(target=m.fit, args=(x, y),
                         kwargs=dict(epochs=1, batch_size=64, verbose=0, callbacks=[Hold()]))
    t.start()
    assert started.wait(30)
    try:
        with pytest.raises(RuntimeError, match="already being trained by `fit`"):
            m.fit(x, y, verbose=0)
        assert m.predict(x[:2], verbose=0).shape == (2, 4)  # other calls wait their turn
    finally:
        release.set()
        t.join(30)
    m.fit(x, y, epochs=1, verbose=0)  # and after it, fit works again


def test_set_weights_reads_every_value_before_writing_any(backend):
    m = Sequential([Input(shape=(4,)), Dense(4, use_bias=False), Dense(4, use_bias=False)])
    a, b = m.get_weights()
    views = [w.value for w in m.weights]  # the model's own storage, swapped
    m.set_weights(views[::-1])
    got = m.get_weights()
    np.testing.assert_array_equal(got[0], b)
    np.testing.assert_array_equal(got[1], a)
    layer = m.layers[0]
    layer.set_weights([m.layers[1].kernel.value])
    np.testing.assert_array_equal(layer.get_weights()[0], a)


def test_set_weights_refuses_values_that_overflow_the_dtype():
    m = Sequential([Input(shape=(2,)), Dense(3)])
    before = m.get_weights()
    big = np.zeros((2, 3))
    big[1, 2] = 1e39
    with pytest.raises(ValueError, match=r"dense.*kernel.*float32.*index \(1, 2\).*1e\+39"):
        m.set_weights([big, np.zeros(3)])
    for w0, w1 in zip(before, m.get_weights()):  # nothing written
        np.testing.assert_array_equal(w0, w1)
    m.set_weights([np.full((2, 3), np.inf), np.zeros(3)])  # inf given is inf kept


def test_masked_arrays_are_refused_naming_the_mask():
    m = small_model()
    x = np.ma.masked_array(np.ones((4, 20)), mask=np.zeros((4, 20), bool))
    with pytest.raises(TypeError, match="masked arrays"):
        m.predict(x, verbose=0)
    with pytest.raises(TypeError, match="masked arrays"):
        m.fit(np.ones((4, 20)), np.ma.masked_array(np.ones((4, 4))), verbose=0)


def test_dense_on_rank3_input_trains_as_it_predicts(backend):
    pynn.set_seed(3)
    m = Sequential([Input(shape=(5, 6)), Dense(3, activation="softmax")])
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 5, 6))
    assert m.predict(x, verbose=0).shape == (16, 5, 3)
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    y = np.eye(3)[rng.integers(0, 3, (16, 5))]
    h = m.fit(x, y, epochs=2, verbose=0, batch_size=4)
    assert np.isfinite(h.history["loss"]).all()
    p = m.predict(x, verbose=0)
    want = -np.mean(np.sum(y * np.log(p), axis=-1))  # Keras: mean over every position
    assert m.evaluate(x, y, verbose=0)[0] == pytest.approx(want, rel=1e-5)
    sparse = Sequential([Input(shape=(5, 6)), Dense(3, activation="softmax")])
    sparse.compile("sgd", "sparse_categorical_crossentropy")
    sparse.fit(x, y.argmax(-1), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"targets of shape \(16, 4\).*\(None, 5, 3\)"):
        sparse.fit(x, np.zeros((16, 4)), verbose=0)


@pytest.mark.parametrize("bad, match", [
    ({0: float("nan")}, r"class_weight: the weight of class 0 must be a finite number"),
    ({1: float("inf")}, r"class_weight: the weight of class 1 must be a finite number"),
    ({0: "heavy"}, r"class_weight: expected \{int class index: float weight\}.*'heavy'"),
    ({"zero": 1.0}, r"class_weight: expected \{int class index: float weight\}.*'zero'"),
    ([1.0, 2.0], r"class_weight: expected a dict"),
])
def test_class_weight_errors_name_class_weight(bad, match):
    m = Sequential([Input(shape=(3,)), Dense(2, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=match):
        m.fit(np.zeros((4, 3)), np.array([0, 1, 0, 1]), class_weight=bad, verbose=0)


def test_sample_weight_errors_name_sample_weight():
    m = Sequential([Input(shape=(3,)), Dense(1)])
    m.compile("sgd", "mse")
    x, y = np.zeros((4, 3)), np.zeros(4)
    with pytest.raises(ValueError, match="sample_weight contains NaN"):
        m.fit(x, y, sample_weight=np.array([1.0, np.nan, 1.0, 1.0]), verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight: expected shape \(4,\)"):
        m.fit(x, y, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(ValueError, match="sample_weight: expected numbers"):
        m.fit(x, y, sample_weight=np.array(["a", "b", "c", "d"]), verbose=0)
