"""``fit``/``evaluate``/``predict``/``*_on_batch`` and their logs against Keras 3 itself
(issue 18; skipped without keras): the same model, weights and data in both, then the
History, the returned values, ``metrics_names`` and the CSVLogger file are compared.

Keras runs on the torch backend (``KERAS_BACKEND=torch`` is set here unless already set)
in float32; SGD without shuffling keeps the two runs on the same batches.
"""
import csv
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import pynn  # noqa: E402
from pynn.layers import Dense, Input  # noqa: E402
from pynn.models import Model, Sequential  # noqa: E402

pytestmark = [pytest.mark.skipif(not keras.__version__.startswith("3."),
                                 reason="compares with Keras 3"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*__array__.*"),
              pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")]

RTOL = 2e-5


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n)


def _pair(metrics=("accuracy",), lr=0.1):
    """The same two-layer classifier in pynn and in Keras, with the same weights."""
    pynn.set_seed(0)
    p = Sequential([Dense(5, activation="tanh", input_shape=(4,)),
                    Dense(3, activation="softmax")])
    p.compile(pynn.optimizers.SGD(lr), "sparse_categorical_crossentropy",
              metrics=list(metrics) if metrics is not None else None)
    k = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                          keras.layers.Dense(3, activation="softmax")])
    k.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy",
              metrics=list(metrics) if metrics is not None else None)
    k.set_weights(p.get_weights())
    return p, k


def _same_history(hp, hk, rtol=RTOL):
    assert sorted(hp.history) == sorted(hk.history)
    for key, want in hk.history.items():
        np.testing.assert_allclose(hp.history[key], want, rtol=rtol, atol=1e-6, err_msg=key)


def _same_weights(p, k, rtol=1e-5):
    for a, b in zip(p.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


def _gen(x, y, bs, repeat=False):
    while True:
        for s in range(0, len(x), bs):
            yield x[s:s + bs], y[s:s + bs]
        if not repeat:
            return


# ------------------------------------------------------------------------------------------
# metrics_names, train_on_batch / test_on_batch
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metrics", [None, ("accuracy",), ()])
def test_metrics_names_single_output(metrics):
    x, y = _data()
    p, k = _pair(metrics)
    assert p.metrics_names == k.metrics_names
    p.fit(x, y, verbose=0, shuffle=False)
    k.fit(x, y, verbose=0, shuffle=False)
    assert p.metrics_names == k.metrics_names


def test_metrics_names_two_outputs_and_evaluate_order():
    x, y = _data()
    z = x[:, :1] * 2.0
    metrics = {"a": "accuracy", "b": ["mae", "mse"]}
    pin = Input((4,), name="in")
    p = Model(pin, [Dense(3, activation="softmax", name="a")(pin), Dense(1, name="b")(pin)])
    kin = keras.Input((4,), name="in")
    k = keras.Model(kin, [keras.layers.Dense(3, activation="softmax", name="a")(kin),
                          keras.layers.Dense(1, name="b")(kin)])
    assert p.metrics_names == k.metrics_names == []
    for m, opt in ((p, pynn.optimizers.SGD(0.1)), (k, keras.optimizers.SGD(0.1))):
        m.compile(opt, ["sparse_categorical_crossentropy", "mse"], metrics=metrics)
    k.set_weights(p.get_weights())
    assert p.metrics_names == k.metrics_names
    hp = p.fit(x, [y, z], verbose=0, shuffle=False, epochs=2)
    hk = k.fit(x, [y, z], verbose=0, shuffle=False, epochs=2)
    assert p.metrics_names == k.metrics_names
    _same_history(hp, hk)
    np.testing.assert_allclose(p.evaluate(x, [y, z], verbose=0),
                               k.evaluate(x, [y, z], verbose=0), rtol=RTOL)


def test_train_and_test_on_batch_reset_the_metrics_per_call():
    x, y = _data()
    p, k = _pair()
    for s in (0, 10, 0):
        rp = p.train_on_batch(x[s:s + 10], y[s:s + 10], return_dict=True)
        rk = k.train_on_batch(x[s:s + 10], y[s:s + 10], return_dict=True)
        assert rp == pytest.approx(rk, rel=RTOL)
        tp = p.test_on_batch(x[s:s + 10], y[s:s + 10])
        tk = k.test_on_batch(x[s:s + 10], y[s:s + 10])
        np.testing.assert_allclose(tp, tk, rtol=RTOL)
    _same_weights(p, k)


def test_train_on_batch_reset_metrics_false_keeps_the_running_mean():
    x, y = _data()
    p, _ = _pair()
    a = p.train_on_batch(x[:10], y[:10], return_dict=True)
    b_alone = p.test_on_batch(x[10:], y[10:], return_dict=True)  # loss of batch 2 before
    p2, _ = _pair()
    p2.train_on_batch(x[:10], y[:10])
    b = p2.train_on_batch(x[10:], y[10:], return_dict=True, reset_metrics=False)
    assert b["loss"] == pytest.approx((a["loss"] + b_alone["loss"]) / 2, rel=1e-6)
    t = p2.test_on_batch(x[:10], y[:10], return_dict=True)
    t2 = p2.test_on_batch(x[10:], y[10:], return_dict=True, reset_metrics=False)
    t_alone = p2.test_on_batch(x[10:], y[10:], return_dict=True)
    assert t2["loss"] == pytest.approx((t["loss"] + t_alone["loss"]) / 2, rel=1e-6)


# ------------------------------------------------------------------------------------------
# History: class_weight with validation_split, learning_rate, validation_freq
# ------------------------------------------------------------------------------------------
def test_class_weight_applies_to_training_only_not_to_the_validation_split():
    x, y = _data(n=40)
    cw = {0: 3.0, 1: 0.25, 2: 1.0}
    p, k = _pair()
    hp = p.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, class_weight=cw,
               shuffle=False, verbose=0)
    hk = k.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, class_weight=cw,
               shuffle=False, verbose=0)
    _same_history(hp, hk)
    _same_weights(p, k)


def test_sample_weight_is_split_with_validation_split():
    x, y = _data(n=40)
    sw = np.linspace(0.2, 2.0, 40)
    p, k = _pair()
    hp = p.fit(x, y, batch_size=8, validation_split=0.25, sample_weight=sw, shuffle=False,
               verbose=0)
    hk = k.fit(x, y, batch_size=8, validation_split=0.25, sample_weight=sw, shuffle=False,
               verbose=0)
    _same_history(hp, hk)


@pytest.mark.parametrize("which", ["none", "scheduler", "plateau"])
def test_learning_rate_key_only_with_an_lr_callback(which):
    x, y = _data()

    def cbs(mod):
        if which == "scheduler":
            return [mod.callbacks.LearningRateScheduler(lambda e, lr: 0.1 * 0.5 ** e)]
        if which == "plateau":
            return [mod.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=0,
                                                    min_delta=10.0)]
        return []

    p, k = _pair()
    hp = p.fit(x, y, epochs=3, shuffle=False, verbose=0, callbacks=cbs(pynn))
    hk = k.fit(x, y, epochs=3, shuffle=False, verbose=0, callbacks=cbs(keras))
    _same_history(hp, hk)
    assert ("learning_rate" in hp.history) == (which != "none")


def test_validation_freq_list_and_int():
    x, y = _data(n=20)
    for freq in ([1, 3], 2):
        p, k = _pair()
        hp = p.fit(x, y, epochs=4, batch_size=5, shuffle=False, verbose=0,
                   validation_data=(x[:8], y[:8]), validation_freq=freq)
        hk = k.fit(x, y, epochs=4, batch_size=5, shuffle=False, verbose=0,
                   validation_data=(x[:8], y[:8]), validation_freq=freq)
        _same_history(hp, hk)


@pytest.mark.parametrize("with_val", [False, True])
def test_csv_logger_columns_as_keras(tmp_path, with_val):
    x, y = _data()
    kw = {"validation_data": (x[:8], y[:8])} if with_val else {}
    rows = {}
    for name, mod in (("pynn", pynn), ("keras", keras)):
        p, k = _pair()
        model = p if name == "pynn" else k
        path = tmp_path / f"{name}.csv"
        model.fit(x, y, epochs=2, shuffle=False, verbose=0, callbacks=[
            mod.callbacks.CSVLogger(str(path))], **kw)
        with open(path) as f:
            rows[name] = list(csv.reader(f))
    assert rows["pynn"][0] == rows["keras"][0]
    for rp, rk in zip(rows["pynn"][1:], rows["keras"][1:]):
        assert [c == "NA" for c in rp] == [c == "NA" for c in rk]
        np.testing.assert_allclose([float(c) for c in rp if c != "NA"],
                                   [float(c) for c in rk if c != "NA"], rtol=RTOL)


# ------------------------------------------------------------------------------------------
# generators, PyDataset, steps
# ------------------------------------------------------------------------------------------
def test_generator_with_steps_per_epoch_as_keras():
    x, y = _data(n=20)
    p, k = _pair()
    hp = p.fit(_gen(x, y, 4, repeat=True), steps_per_epoch=3, epochs=3, verbose=0)
    hk = k.fit(_gen(x, y, 4, repeat=True), steps_per_epoch=3, epochs=3, verbose=0)
    _same_history(hp, hk)
    _same_weights(p, k)


def test_finite_generator_one_epoch_and_validation_generator_as_keras():
    x, y = _data(n=20)
    p, k = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns "ran out of data" at the end
        hp = p.fit(_gen(x, y, 6), verbose=0,
                   validation_data=_gen(x[:8], y[:8], 4, repeat=True), validation_steps=2)
        hk = k.fit(_gen(x, y, 6), verbose=0,
                   validation_data=_gen(x[:8], y[:8], 4, repeat=True), validation_steps=2)
    _same_history(hp, hk)
    _same_weights(p, k)


def test_arrays_with_steps_per_epoch_as_keras():
    x, y = _data(n=16)
    p, k = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hp = p.fit(x, y, batch_size=4, steps_per_epoch=3, epochs=4, shuffle=False, verbose=0)
        hk = k.fit(x, y, batch_size=4, steps_per_epoch=3, epochs=4, shuffle=False, verbose=0)
    _same_history(hp, hk)
    _same_weights(p, k)


def _datasets(x, y, bs):
    class P(pynn.utils.PyDataset):
        def __len__(self):
            return -(-len(x) // bs)

        def __getitem__(self, i):
            return x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs]

    class K(keras.utils.PyDataset):
        __len__ = P.__len__
        __getitem__ = P.__getitem__

    return P(), K()


def test_pydataset_as_keras():
    x, y = _data(n=18)
    dp, dk = _datasets(x, y, 4)
    p, k = _pair()
    hp = p.fit(dp, epochs=2, shuffle=False, verbose=0, validation_data=dp)
    hk = k.fit(dk, epochs=2, shuffle=False, verbose=0, validation_data=dk)
    _same_history(hp, hk)
    _same_weights(p, k)
    assert p.evaluate(dp, verbose=0) == pytest.approx(k.evaluate(dk, verbose=0), rel=RTOL)
    np.testing.assert_allclose(p.predict(dp, verbose=0), k.predict(dk, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_evaluate_and_predict_steps_as_keras():
    x, y = _data(n=20)
    p, k = _pair()
    for kw in ({"steps": 2}, {"steps": 3, "batch_size": 4}):
        np.testing.assert_allclose(p.evaluate(x, y, verbose=0, **kw),
                                   k.evaluate(x, y, verbose=0, **kw), rtol=RTOL)
        a = p.predict(x, verbose=0, **kw)
        b = k.predict(x, verbose=0, **kw)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.evaluate(_gen(x, y, 4, repeat=True), steps=3, verbose=0),
                               k.evaluate(_gen(x, y, 4, repeat=True), steps=3, verbose=0),
                               rtol=RTOL)


# ------------------------------------------------------------------------------------------
# BackupAndRestore
# ------------------------------------------------------------------------------------------
def test_backup_and_restore_resumes_as_keras(tmp_path):
    x, y = _data(n=20)

    def interrupter(mod):
        class Stop(mod.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if self.epoch == 2 and batch == 1:
                    raise KeyboardInterrupt

        return Stop()

    histories = {}
    p, k = _pair()
    for name, mod, model in (("pynn", pynn, p), ("keras", keras, k)):
        cb = mod.callbacks.BackupAndRestore(str(tmp_path / name))
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=5, epochs=4, shuffle=False, verbose=0,
                      callbacks=[cb, interrupter(mod)])
        histories[name] = model.fit(x, y, batch_size=5, epochs=4, shuffle=False, verbose=0,
                                    callbacks=[mod.callbacks.BackupAndRestore(
                                        str(tmp_path / name))])
    assert histories["pynn"].epoch == histories["keras"].epoch == [2, 3]
    _same_history(histories["pynn"], histories["keras"])
    _same_weights(p, k)
