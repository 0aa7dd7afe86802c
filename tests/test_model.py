"""Sequential: whole-model gradients, training loop semantics, summary, weights, config."""
import io
import contextlib

import numpy as np
import pytest

import pynn
from pynn import optimizers as _optimizers  # noqa: F401  (pynn.optimizers attribute)
from pynn import _config
from pynn.callbacks import Callback, EarlyStopping, ReduceLROnPlateau
from pynn.layers import (Activation, BatchNormalization, Dense, Dropout, Flatten, Input,
                         clear_session)
from pynn.models import Sequential
from pynn.regularizers import L2

from helpers import numerical_grad


@pytest.fixture
def float64():
    old = _config.floatx()
    _config.set_floatx("float64")
    yield
    _config.set_floatx(old)


def xor_data():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    return x, y


def small_classification(n=64, k=3, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = (x[:, :k].argmax(1)).astype(np.int64)
    return x, y


# -------------------------------------------------------------------------------------------
# gradients of the whole model
# -------------------------------------------------------------------------------------------
def model_loss_gradient_check(model, x, y, fused_expected):
    model.build((None,) + x.shape[1:])
    for layer in model.layers:
        if isinstance(layer, Dropout):
            layer._next_seed = lambda: 777  # fixed mask
    xs, ys, sw = model._prepare_xy(x, y)
    fused = model._fused()
    assert fused == (fused_expected,)
    loss = model._compute_gradients(xs, ys, sw, fused)[0]
    analytic = np.array(model._layout.grads, copy=True)

    def f():
        return model._compute_gradients(xs, ys, sw, fused)[0]

    numeric = numerical_grad(f, model._layout.params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    return loss


def test_model_gradient_fused_softmax_with_bn_dropout_l2(backend, float64):
    pynn.set_seed(3)
    x, y = small_classification(n=12)
    model = Sequential([
        Dense(6, kernel_regularizer=L2(0.01), bias_initializer="random_normal"),
        BatchNormalization(gamma_initializer="random_normal"),
        Activation("tanh"),
        Dropout(0.3),
        Dense(3, activation="softmax", kernel_regularizer=L2(0.05)),
    ])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    loss = model_loss_gradient_check(model, x, y, fused_expected=True)
    # the loss includes the L2 penalties (Keras adds them to the reported loss)
    w1, w2 = model.layers[0].kernel.numpy(), model.layers[4].kernel.numpy()
    penalty = 0.01 * np.sum(w1 ** 2) + 0.05 * np.sum(w2 ** 2)
    assert loss > penalty > 0


@pytest.mark.parametrize("loss,last", [("binary_crossentropy", "sigmoid"),
                                       ("mse", "softmax"), ("categorical_crossentropy", None)])
def test_model_gradient_other_losses(backend, float64, loss, last):
    pynn.set_seed(4)
    x, labels = small_classification(n=10)
    if loss == "binary_crossentropy":
        y = (labels == 0).astype(np.float64)[:, None]
        out = [Dense(1, activation=last)]
    else:
        y = np.eye(3)[labels]
        out = [Dense(3), Activation("softmax")] if last is None else [Dense(3, activation=last)]
    model = Sequential([Dense(4, activation="elu", input_shape=(5,))] + out)
    model.compile("adam", loss)
    model_loss_gradient_check(model, x, y, fused_expected=loss != "mse")


def test_fused_loss_matches_unfused_value(float64):
    pynn.set_seed(5)
    x, y = small_classification(n=20)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    fused = model.evaluate(x, y, verbose=0)
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(1), 1.0)  # predict returns probabilities
    assert fused == pytest.approx(-np.mean(np.log(p[np.arange(20), y])), rel=1e-10)


# -------------------------------------------------------------------------------------------
# summary, weights, config
# -------------------------------------------------------------------------------------------
def seed_model():
    return Sequential([Dense(4, activation="relu", input_shape=(2,)),
                       Dense(1, activation="sigmoid")])


def test_summary_matches_keras_numbers():
    clear_session()
    lines = []
    model = seed_model()
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "sequential"'
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    rows = [l.split() for l in lines if l.startswith(" dense")]
    assert rows[0][:5] == ["dense", "(Dense)", "(None,", "4)", "12"]
    assert rows[1][:5] == ["dense_1", "(Dense)", "(None,", "1)", "5"]
    assert "Total params: 17 (68.00 B)" in text
    assert "Trainable params: 17" in text and "Non-trainable params: 0" in text
    assert model.count_params() == 17


def test_summary_counts_non_trainable_and_needs_build():
    model = Sequential([Input(shape=(3,)), Dense(4), BatchNormalization(), Dense(2)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.summary()
    text = out.getvalue()
    assert "Total params: 42" in text and "Trainable params: 34" in text
    assert "Non-trainable params: 8" in text
    # an unbuilt model lists its layers (Keras 3 prints '?' shapes) instead of failing
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        Sequential([Dense(2, name="later")]).summary()
    text = out.getvalue()
    assert "later (Dense)" in text and "?" in text and "unknown until the model is built" in text


def test_get_set_weights_order_and_errors():
    model = Sequential([Dense(3, input_shape=(2,)), BatchNormalization(), Dense(1)])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(2, 3), (3,), (3,), (3,), (3,), (3,), (3, 1), (1,)]
    rng = np.random.default_rng(0)
    new = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="length 7.*expecting 8"):
        model.set_weights(new[:-1])
    bad = list(new)
    bad[0] = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"kernel.*\(2, 3\).*\(3, 2\)"):
        model.set_weights(bad)


def test_all_parameters_live_in_one_flat_buffer():
    model = Sequential([Dense(3, input_shape=(2,)), BatchNormalization(), Dense(1)])
    for w in model.trainable_weights:
        assert np.shares_memory(w.value, model._layout.params)
        assert np.shares_memory(w.grad, model._layout.grads)
    for w in model.non_trainable_weights:
        assert not np.shares_memory(w.value, model._layout.params)
    assert model._layout.params.size == sum(w.size for w in model.trainable_weights) == 6 + 9 + 4


def test_config_round_trip_rebuilds_same_architecture():
    model = Sequential([Dense(8, activation="relu", input_shape=(4,),
                              kernel_regularizer=L2(0.001)),
                        Dropout(0.2), BatchNormalization(), Dense(2, activation="softmax")])
    clone = Sequential.from_config(model.get_config())
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert clone.count_params() == model.count_params()
    assert clone.layers[0].kernel_regularizer.l2 == 0.001


def test_add_pop_and_unique_names():
    model = Sequential(name="m")
    model.add(Input(shape=(3,)))
    model.add(Dense(2, name="a"))
    assert model.built and model.output_shape == (None, 2)
    model.add(Dense(5, name="b"))
    assert model.output_shape == (None, 5)
    first = model.layers[0].kernel.numpy()
    assert model.pop().name == "b"
    assert model.output_shape == (None, 2)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), first)
    with pytest.raises(ValueError, match="unique names"):
        model.add(Dense(1, name="a"))
    with pytest.raises(TypeError, match="Only instances"):
        model.add("dense")
    empty = Sequential(name="e")
    with pytest.raises(IndexError, match="pop from an empty model.*'e'"):  # Keras 3: IndexError
        empty.pop()


# -------------------------------------------------------------------------------------------
# training
# -------------------------------------------------------------------------------------------
def train_once(seed, x, y, epochs=3):
    pynn.set_seed(seed)
    model = Sequential([Dense(16, activation="relu", input_shape=(x.shape[1],)),
                        Dropout(0.3), BatchNormalization(),
                        Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=8, epochs=epochs, validation_split=0.25, verbose=0)
    return model, hist


def test_same_seed_gives_bit_identical_training(backend):
    x, y = small_classification(n=48)
    m1, h1 = train_once(11, x, y)
    m2, h2 = train_once(11, x, y)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history == h2.history
    m3, _ = train_once(12, x, y)
    assert not np.array_equal(m1.get_weights()[0], m3.get_weights()[0])


def _trajectory(backend_name, optimizer, layered):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((96, 30)).astype(np.float32)
    y = rng.integers(0, 5, 96)
    with pynn.use_backend(backend_name):
        pynn.set_seed(4)
        hidden = [Dense(32, activation="relu", input_shape=(30,)),
                  Dense(16, activation="relu")]
        if layered:  # Dropout: the layer-by-layer path (its masks follow the seed)
            hidden.insert(1, Dropout(0.2))
        model = Sequential(hidden + [Dense(5, activation="softmax")])
        model.compile(optimizer=optimizer(), loss="sparse_categorical_crossentropy")
        hist = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    return hist.history["loss"], model.get_weights()


@pytest.mark.parametrize("optimizer", ["adam", "sgd_momentum", "rmsprop"])
@pytest.mark.parametrize("layered", [False, True], ids=["fused", "layered"])
def test_compiled_backends_follow_the_reference_trajectory_bit_for_bit(optimizer, layered):
    """Same seed, same float32 training of a ReLU/softmax network (the tutorial's kind) on
    every CPU backend: the compiled kernels do the reference's arithmetic in the
    reference's order (no FMA contraction, no approximate math, the same BLAS products),
    so the weights after 3 epochs are EQUAL, not close. Only the reported loss is a
    float64 sum taken in another order. Not covered: plain SGD (the compiled step folds
    the update into the GEMM, rounding once where the reference rounds twice) and
    transcendental activations (libm's tanhf and NumPy's SIMD tanh may differ in the
    last bit)."""
    make = {"adam": lambda: "adam",
            "sgd_momentum": lambda: pynn.optimizers.SGD(0.05, momentum=0.9),
            "rmsprop": lambda: "rmsprop"}[optimizer]
    ref_loss, ref_w = _trajectory("numpy", make, layered)
    for name in pynn.backends.available():
        if name in ("numpy", "cuda"):
            continue
        loss, weights = _trajectory(name, make, layered)
        # the reported loss is a float64 sum whose order differs per kernel
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-6, err_msg=name)
        for a, b in zip(weights, ref_w):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_xor_learns_with_adam(backend):
    pynn.set_seed(0)
    x, y = xor_data()
    model = Sequential([Dense(8, activation="tanh", input_shape=(2,)),
                        Dense(1, activation="sigmoid")])
    model.compile(optimizer=pynn.optimizers.Adam(learning_rate=0.05),
                  loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=300, batch_size=4, verbose=0)
    assert hist.history["loss"][-1] < 0.1 < hist.history["loss"][0]
    assert hist.history["accuracy"][-1] == 1.0
    np.testing.assert_array_equal(model.predict(x, verbose=0)[:, 0] > 0.5, y == 1)


def test_history_keys_and_learning_rate():
    """Keras 3: ``learning_rate`` is in the epoch logs only when an LR callback puts it
    there (LearningRateScheduler, ReduceLROnPlateau)."""
    x, y = small_classification(n=40)
    pynn.set_seed(1)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile(pynn.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=4, validation_data=(x[:10], y[:10]), verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2, 3] and model.history is hist
    sched = pynn.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    hist = model.fit(x, y, epochs=2, verbose=0, callbacks=[sched])
    assert set(hist.history) == {"loss", "accuracy", "learning_rate"}
    assert hist.history["learning_rate"] == [pytest.approx(0.1), pytest.approx(0.05)]


def test_validation_split_takes_the_last_fraction():
    x, y = small_classification(n=40)
    pynn.set_seed(2)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0, shuffle=True)
    assert hist.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[30:], y[30:], verbose=0), rel=1e-6)


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    x, y = small_classification(n=10)
    pynn.set_seed(3)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile(pynn.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    # lr 0: weights never change, so the epoch loss equals the full-data loss
    assert hist.history["loss"][0] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)


def test_class_weight_equals_sample_weight():
    x, y = small_classification(n=32)
    cw = {0: 1.0, 1: 3.0, 2: 0.5}

    def run(**kw):
        pynn.set_seed(9)
        model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, **kw)
        return model.get_weights()

    a = run(class_weight=cw)
    b = run(sample_weight=np.array([cw[int(c)] for c in y]))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = run()
    assert not np.array_equal(a[0], c[0])
    with pytest.raises(ValueError, match="class_weight"):
        run(class_weight=cw, sample_weight=np.ones(32))


def test_regularization_is_in_the_reported_loss(float64):
    x, y = small_classification(n=16)
    pynn.set_seed(4)
    plain = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    reg = Sequential([Dense(3, activation="softmax", input_shape=(5,),
                            kernel_regularizer=L2(0.1))])
    reg.set_weights(plain.get_weights())
    for m in (plain, reg):
        m.compile("sgd", "sparse_categorical_crossentropy")
    W = plain.layers[0].kernel.numpy()
    assert reg.evaluate(x, y, verbose=0) == pytest.approx(
        plain.evaluate(x, y, verbose=0) + 0.1 * np.sum(W * W), rel=1e-10)
    assert reg.losses == [pytest.approx(0.1 * np.sum(W * W))]


def test_evaluate_return_forms_and_batch_apis():
    x, y = small_classification(n=20)
    pynn.set_seed(5)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert isinstance(model.evaluate(x, y, verbose=0), float)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, acc = model.evaluate(x, y, verbose=0)
    d = model.evaluate(x, y, verbose=0, return_dict=True)
    assert d == {"loss": loss, "accuracy": acc}
    p = model.predict(x, verbose=0)
    assert p.dtype == np.float32 and p.shape == (20, 3)
    assert acc == pytest.approx(np.mean(p.argmax(1) == y))
    np.testing.assert_allclose(model.predict(x, batch_size=3, verbose=0), p, rtol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(x), p, rtol=1e-6)
    t = model.test_on_batch(x, y)
    assert t[0] == pytest.approx(loss, rel=1e-6)
    before = model.get_weights()[0]
    r = model.train_on_batch(x, y, return_dict=True)
    assert set(r) == {"loss", "accuracy"}
    assert not np.array_equal(before, model.get_weights()[0])


def test_train_on_batch_running_mean_restarts_on_compile():
    """A new compile() starts fresh trackers (loss and metrics)."""
    x, y = small_classification(n=20)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    first = model.train_on_batch(x[:10], y[:10], return_dict=True)
    model.train_on_batch(x[10:] * 50.0, y[10:], return_dict=True)  # a much larger loss
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    w = model.get_weights()
    fresh = model.train_on_batch(x[:10], y[:10], return_dict=True)
    alone = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    alone.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    alone.set_weights(w)
    want = alone.train_on_batch(x[:10], y[:10], return_dict=True)
    assert fresh == pytest.approx(want)
    assert first["loss"] > 0


def test_input_validation_errors():
    x, y = small_classification(n=20)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="layer 'dense.*expected axis -1.*value 5.*\\(20, 4\\)"):
        model.fit(x[:, :4], y, verbose=0)
    with pytest.raises(ValueError, match="cardinality.*20.*19"):
        model.fit(x, y[:19], verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    for split in (1.0, -0.1):
        with pytest.raises(ValueError, match="validation_split"):
            model.fit(x, y, validation_split=split, verbose=0)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.full((2, 5), np.inf), verbose=0)
    with pytest.raises(ValueError, match="labels must be in"):
        model.fit(x, y + 3, verbose=0)
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.ones(5), verbose=0)


def test_frozen_layer_is_not_updated_and_bn_statistics_move():
    x, y = small_classification(n=32)
    pynn.set_seed(6)
    model = Sequential([Dense(4, input_shape=(5,)), BatchNormalization(),
                        Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.layers[0].trainable = False
    w0 = model.layers[0].kernel.numpy()
    mm0 = model.layers[1].moving_mean.numpy()
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), w0)
    assert not np.array_equal(model.layers[1].moving_mean.numpy(), mm0)
    assert len(model.trainable_weights) == 4  # gamma, beta, kernel, bias
    model.layers[0].trainable = True
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(model.layers[0].kernel.numpy(), w0)


def test_callbacks_stop_training_and_reduce_lr():
    x, y = small_classification(n=32)
    pynn.set_seed(7)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile(pynn.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=20, verbose=0, validation_split=0.25,
                     callbacks=[EarlyStopping(patience=2),
                                ReduceLROnPlateau(factor=0.5, patience=1, min_delta=1.0)])
    assert len(hist.epoch) < 20  # nothing improves with lr 0
    model.compile(pynn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=4, verbose=0, validation_split=0.25,
                     callbacks=[ReduceLROnPlateau(factor=0.5, patience=1, min_delta=10.0)])
    assert hist.history["learning_rate"][0] == pytest.approx(0.1)
    assert model.optimizer.learning_rate < 0.1

    class StopAtBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            assert set(logs) == {"loss"}
            if batch == 1:
                self.model.stop_training = True

    hist = model.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[StopAtBatch()])
    assert len(hist.epoch) == 1


def test_verbose_output(capsys):
    x, y = small_classification(n=20)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "loss" in out and "accuracy" in out


def test_dropout_is_identity_at_inference_and_flatten_input():
    pynn.set_seed(8)
    model = Sequential([Flatten(input_shape=(2, 3)), Dense(4), Dropout(0.5), Dense(2)])
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    assert not np.array_equal(model(x, training=True), model(x, training=True))


def test_loss_weights_scale_the_loss():
    x, y = small_classification(n=12)
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    base = model.evaluate(x, y, verbose=0)
    model.compile("sgd", "sparse_categorical_crossentropy", loss_weights=2.0)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(2 * base, rel=1e-6)


def test_backend_switch_after_build():
    import pynn.backends as B
    x, y = small_classification(n=16)
    with B.use_backend("numpy"):
        pynn.set_seed(1)
        model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, verbose=0)
    other = [n for n in B.available() if n != "numpy" and B.get(n).host_memory]
    for name in other:
        with B.use_backend(name):
            model.fit(x, y, epochs=1, verbose=0)
            assert model._backend is B.get(name)


def test_one_feature_model_takes_a_1d_array_as_keras():
    """Keras 3 adds the missing last axis of 1 (and drops an extra one)."""
    model = Sequential([Input(shape=(1,)), Dense(2)])
    x = np.array([1.0, 2.0, 3.0])
    want = model.predict(x.reshape(-1, 1), verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), want)
    np.testing.assert_array_equal(model.predict(x.reshape(-1, 1, 1), verbose=0), want)
    model.compile(loss="mse", optimizer="sgd")
    assert np.isfinite(model.evaluate(x, np.zeros((3, 2)), verbose=0))
    model.fit(x, np.zeros((3, 2)), epochs=1, verbose=0)
    wide = Sequential([Input(shape=(3,)), Dense(2)])
    with pytest.raises(ValueError, match=r"expected an array of shape \(samples, features"):
        wide.predict(x, verbose=0)
