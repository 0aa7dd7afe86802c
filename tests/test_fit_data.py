"""What ``fit``/``evaluate``/``predict`` accept besides arrays (issue 18): generators,
iterables of batches and ``pynn.utils.PyDataset``, with ``steps_per_epoch``,
``validation_steps``, ``validation_freq``, ``evaluate(steps=)`` and ``predict(steps=)``.
The differential tests against Keras are in ``test_keras_fit.py``."""
import warnings

import numpy as np
import pytest

import pynn
from pynn.callbacks import Callback
from pynn.layers import Dense
from pynn.models import Sequential
from pynn.utils import PyDataset, Sequence

RAN_OUT = "ran out of data"


def _data(n=20, k=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)).astype(np.float32), rng.integers(0, classes, n)


def _model(seed=1, metrics=("accuracy",)):
    pynn.set_seed(seed)
    m = Sequential([Dense(5, activation="relu", input_shape=(4,)),
                    Dense(3, activation="softmax")])
    m.compile(pynn.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
              metrics=list(metrics))
    return m


def _gen(x, y, bs, sw=None, repeat=False):
    while True:
        for s in range(0, len(x), bs):
            b = (x[s:s + bs], y[s:s + bs])
            yield b if sw is None else b + (sw[s:s + bs],)
        if not repeat:
            return


class Batches(PyDataset):
    def __init__(self, x, y, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.bs = x, y, bs
        self.seen = []
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        self.seen.append(i)
        return self.x[i * self.bs:(i + 1) * self.bs], self.y[i * self.bs:(i + 1) * self.bs]

    def on_epoch_end(self):
        self.epochs_ended += 1


class Steps(Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1].append(batch)


def _same(m1, m2):
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_generator_trains_like_the_same_array_batches_ragged_last_batch_included():
    x, y = _data(n=10)
    sw = np.linspace(0.5, 1.5, 10)
    ref, got = _model(), _model()
    h1 = ref.fit(x, y, batch_size=4, shuffle=False, sample_weight=sw, verbose=0)
    with pytest.warns(UserWarning, match="shuffle=True"):
        h2 = got.fit(_gen(x, y, 4, sw), verbose=0)
    _same(ref, got)
    assert h2.history.keys() == h1.history.keys()
    for k in h1.history:
        assert h2.history[k] == pytest.approx(h1.history[k])


def test_finite_generator_without_steps_ends_fit_when_spent():
    x, y = _data(n=12)
    m, cb = _model(), Steps()
    with pytest.warns(UserWarning, match=RAN_OUT):
        h = m.fit(_gen(x, y, 4), epochs=3, shuffle=False, verbose=0, callbacks=[cb])
    assert cb.steps == [[0, 1, 2], []]  # epoch 2 got no batch: fit stops before its end
    assert h.epoch == [0] and m.stop_training


def test_infinite_generator_with_steps_per_epoch_continues_where_it_was():
    x, y = _data(n=20)
    seen = []

    def gen():
        i = 0
        while True:
            seen.append(i % 5)
            yield x[4 * (i % 5):4 * (i % 5) + 4], y[4 * (i % 5):4 * (i % 5) + 4]
            i += 1

    m, cb = _model(), Steps()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "ran out" warning
        h = m.fit(gen(), steps_per_epoch=3, epochs=3, shuffle=False, verbose=0,
                  callbacks=[cb])
    assert seen == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert cb.steps == [[0, 1, 2]] * 3 and h.epoch == [0, 1, 2]
    # the same 9 batches as arrays: the same weights
    order = np.concatenate([np.arange(4 * b, 4 * b + 4) for b in seen])
    ref = _model()
    ref.fit(x[order], y[order], batch_size=4, shuffle=False, verbose=0)
    _same(ref, m)


def test_steps_per_epoch_past_the_end_of_a_generator_warns_and_cuts_the_epoch():
    x, y = _data(n=16)
    m, cb = _model(), Steps()
    with pytest.warns(UserWarning, match=RAN_OUT):
        h = m.fit(_gen(x, y, 4), steps_per_epoch=3, epochs=3, shuffle=False, verbose=0,
                  callbacks=[cb])
    assert cb.steps == [[0, 1, 2], [0], []]
    assert h.epoch == [0, 1]


def test_a_reiterable_starts_over_every_epoch():
    x, y = _data(n=12)
    batches = [(x[s:s + 4], y[s:s + 4]) for s in range(0, 12, 4)]

    class Reiterable:
        def __iter__(self):
            return iter(batches)

    m, cb = _model(), Steps()
    m.fit(Reiterable(), epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    assert cb.steps == [[0, 1, 2], [0, 1, 2]]
    ref = _model()
    ref.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    _same(ref, m)
    # a tuple of arrays is data, not an iterable of batches (Keras: several inputs)
    with pytest.raises(ValueError):
        _model().fit(tuple(batches), verbose=0)


def test_pydataset_in_order_and_shuffled_and_epoch_hooks():
    x, y = _data(n=10)
    ds = Batches(x, y, 4)
    assert ds.num_batches == 3 and Sequence is PyDataset
    ref, got = _model(), _model()
    ref.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    got.fit(ds, epochs=2, shuffle=False, verbose=0)
    _same(ref, got)
    assert ds.seen == [0, 1, 2, 0, 1, 2] and ds.epochs_ended == 2
    ds.seen.clear()
    _model().fit(ds, epochs=3, verbose=0)  # shuffle=True: every batch once per epoch
    assert [sorted(ds.seen[i:i + 3]) for i in (0, 3, 6)] == [[0, 1, 2]] * 3
    # shuffled with the model's generator: one seed, one order
    a, b = Batches(x, y, 2), Batches(x, y, 2)
    _model(seed=5).fit(a, epochs=2, verbose=0)
    _model(seed=5).fit(b, epochs=2, verbose=0)
    assert a.seen == b.seen and a.seen != sorted(a.seen)


def test_pydataset_class_weight_and_workers_warning():
    x, y = _data(n=12)
    cw = {0: 2.0, 1: 0.5, 2: 1.0}
    ref, got = _model(), _model()
    ref.fit(x, y, batch_size=4, shuffle=False, class_weight=cw, verbose=0)
    got.fit(Batches(x, y, 4), shuffle=False, class_weight=cw, verbose=0)
    _same(ref, got)
    with pytest.warns(UserWarning, match="workers=4"):
        _model().fit(Batches(x, y, 4, workers=4), shuffle=False, verbose=0)


def test_pydataset_without_len_is_infinite_and_needs_steps():
    x, y = _data(n=8)

    class Forever(PyDataset):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, i):
            j = i % 2
            return x[4 * j:4 * j + 4], y[4 * j:4 * j + 4]

    m, cb = _model(), Steps()
    m.fit(Forever(), steps_per_epoch=3, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
    assert cb.steps == [[0, 1, 2]] * 2


@pytest.mark.parametrize("kwargs, match", [
    ({"y": np.zeros(4)}, "`y` should not be passed"),
    ({"sample_weight": np.ones(4)}, "`sample_weight` should not be passed"),
    ({"class_weight": {0: 1.0}}, "class_weight"),
    ({"validation_split": 0.2}, "validation_split"),
    ({"steps_per_epoch": 0}, "steps_per_epoch"),
])
def test_batch_source_argument_errors(kwargs, match):
    x, y = _data(n=8)
    with pytest.raises(ValueError, match=match):
        _model().fit(_gen(x, y, 4), shuffle=False, verbose=0, **kwargs)


def test_batch_size_with_a_generator_is_ignored_with_a_warning():
    x, y = _data(n=8)
    with pytest.warns(UserWarning, match="batch_size=16 is ignored"):
        _model().fit(_gen(x, y, 4), batch_size=16, shuffle=False, verbose=0)


def test_bad_batches_name_the_problem():
    x, y = _data(n=8)
    with pytest.raises(ValueError, match="tuple of 4"):
        _model().fit(iter([(x, y, None, None)]), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="0 samples"):
        _model().fit(iter([(x[:0], y[:0])]), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        _model().fit(iter([x]), shuffle=False, verbose=0)


def test_validation_from_a_generator_with_steps_and_freq():
    x, y = _data(n=16)
    xv, yv = _data(n=8, seed=3)
    vgen = _gen(xv, yv, 4, repeat=True)
    m = _model()
    h = m.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0,
              validation_data=vgen, validation_steps=1, validation_freq=[2, 4])
    assert len(h.history["loss"]) == 4 and len(h.history["val_loss"]) == 2
    # epoch 2 validated on the first val batch, epoch 4 on the second
    assert h.history["val_loss"][1] == pytest.approx(
        m.evaluate(xv[4:], yv[4:], verbose=0)[0])
    # validation arrays with validation_steps: the first steps batches, every time
    m2 = _model()
    h = m2.fit(x, y, batch_size=4, shuffle=False, verbose=0, validation_data=(xv, yv),
               validation_steps=1)
    assert h.history["val_loss"][0] == pytest.approx(
        m2.evaluate(xv[:4], yv[:4], verbose=0)[0])
    with pytest.raises(ValueError, match="validation_freq"):
        _model().fit(x, y, validation_freq=0, verbose=0)


def test_evaluate_and_predict_on_batch_sources_and_steps():
    x, y = _data(n=10)
    m = _model()
    want = m.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert m.evaluate(_gen(x, y, 4), verbose=0, return_dict=True) == pytest.approx(want)
    assert m.evaluate(Batches(x, y, 4), verbose=0, return_dict=True) == pytest.approx(want)
    assert m.evaluate(x, y, batch_size=4, steps=2, verbose=0) == pytest.approx(
        m.evaluate(x[:8], y[:8], verbose=0))
    # steps without batch_size: ceil(n / steps) rows per batch (Keras)
    calls = []
    m.evaluate(x, y, steps=2, verbose=0, callbacks=[pynn.callbacks.LambdaCallback(
        on_test_batch_end=lambda b, logs: calls.append(b))])
    assert calls == [0, 1]
    p = m.predict(x, verbose=0)
    np.testing.assert_allclose(m.predict(_gen(x, y, 3), verbose=0), p, rtol=1e-6)
    np.testing.assert_allclose(m.predict((b for b in np.split(x, 5)), verbose=0), p,
                               rtol=1e-6)
    np.testing.assert_allclose(m.predict(Batches(x, y, 4), verbose=0), p, rtol=1e-6)
    np.testing.assert_allclose(m.predict(x, batch_size=4, steps=2, verbose=0), p[:8],
                               rtol=1e-6)
    np.testing.assert_allclose(m.predict(_gen(x, y, 4, repeat=True), steps=2, verbose=0),
                               p[:8], rtol=1e-6)
    with pytest.warns(UserWarning, match=RAN_OUT):
        out = m.predict(x, batch_size=4, steps=5, verbose=0)
    np.testing.assert_allclose(out, p, rtol=1e-6)
    spent = _gen(x, y, 5)
    m.predict(spent, verbose=0)
    with pytest.warns(UserWarning, match=RAN_OUT), pytest.raises(ValueError, match="no batch"):
        m.predict(spent, verbose=0)


def test_arrays_with_steps_per_epoch_continue_mid_pass():
    x, y = _data(n=16)
    m, cb = _model(), Steps()
    with pytest.warns(UserWarning, match=RAN_OUT):  # as Keras, when a pass ends mid-epoch
        h = m.fit(x, y, batch_size=4, steps_per_epoch=3, epochs=4, shuffle=False, verbose=0,
                  callbacks=[cb])
    # 4 batches per pass: epochs take 3, then the 4th batch (the pass ends), then 3...
    assert cb.steps == [[0, 1, 2], [0], [0, 1, 2], [0]]
    assert h.epoch == [0, 1, 2, 3]
    ref = _model()
    ref.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    _same(ref, m)


def test_the_fused_step_runs_for_generator_batches(monkeypatch):
    x, y = _data(n=12)
    m = _model()
    if m._fast_path.train_spec(2) is None:
        pytest.skip("no fused step for this model on this backend")
    calls = []
    real = m._fast_path.train_step

    def spy(spec, xb, *args):
        calls.append(xb.shape[0])
        return real(spec, xb, *args)

    monkeypatch.setattr(m._fast_path, "train_step", spy)
    m.fit(_gen(x, y, 5), shuffle=False, verbose=0)
    assert calls == [5, 5, 2]


def test_unbuilt_model_builds_from_the_first_batch():
    x, y = _data(n=8)
    pynn.set_seed(1)
    m = Sequential([Dense(3, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    m.fit(_gen(x, y, 4), shuffle=False, verbose=0)
    assert m.built and m.predict(x, verbose=0).shape == (8, 3)


def test_class_weight_weights_training_only_not_the_validation_split():
    x, y = _data(n=20)
    m = _model()
    h = m.fit(x, y, batch_size=4, validation_split=0.2, class_weight={0: 5.0, 1: 0.1, 2: 1.0},
              shuffle=False, verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(m.evaluate(x[16:], y[16:], verbose=0)[0])
    with pytest.raises(ValueError, match="class_weight"):
        m.fit(x, y, validation_split=0.2, class_weight={0: 1.0}, sample_weight=np.ones(20),
              verbose=0)


def test_metrics_names_follow_keras_and_evaluate_lists_values():
    x, y = _data(n=8)
    pynn.set_seed(1)
    m = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    assert m.metrics_names == []
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert m.metrics_names == ["loss", "compile_metrics"]
    loss, acc = m.evaluate(x, y, verbose=0)
    assert m.evaluate(x, y, verbose=0, return_dict=True) == {"loss": loss, "accuracy": acc}
    m.compile("sgd", "sparse_categorical_crossentropy")
    assert m.metrics_names == ["loss"]
