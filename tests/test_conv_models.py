"""Convolutional models (issue 16): they train, save and load bit-exactly, in Sequential and
functional form, and the keras-io "Simple MNIST convnet" runs with only its imports
changed."""
import contextlib
import io

import numpy as np
import pytest

import pynn
from pynn import layers
from pynn.models import Model, Sequential, load_model


def bars(n=96, seed=0):
    """8x8 one-channel images of a horizontal (class 0) or vertical (class 1) bar."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.3, (n, 8, 8, 1))
    y = rng.integers(0, 2, n)
    pos = rng.integers(1, 7, n)
    for i in range(n):
        if y[i] == 0:
            x[i, pos[i], 1:7, 0] += 2.0
        else:
            x[i, 1:7, pos[i], 0] += 2.0
    return x, y


def small_sequential():
    return Sequential([pynn.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                       layers.MaxPooling2D(), layers.Flatten(),
                       layers.Dense(2, activation="softmax")])


def small_functional():
    inp = pynn.Input((8, 8, 1))
    h = layers.Conv2D(4, 3, activation="relu")(inp)
    h = layers.MaxPooling2D()(h)
    out = layers.Dense(2, activation="softmax")(layers.Flatten()(h))
    return Model(inp, out)


def assert_same_model(model, loaded, x):
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize("make", [small_sequential, small_functional],
                         ids=["sequential", "functional"])
def test_small_conv_model_trains_saves_and_loads(backend, make, tmp_path):
    pynn.set_seed(3)
    x, y = bars()
    model = make()
    model.compile(pynn.optimizers.Adam(learning_rate=0.02), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.6 * loss[0], loss
    assert hist.history["accuracy"][-1] > 0.8
    path = tmp_path / "conv.pynn"
    model.save(path)
    loaded = load_model(path)
    assert_same_model(model, loaded, x)
    # training goes on identically from the loaded file
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def every_layer_model():
    """A functional model using each new layer (and BatchNormalization on channels)."""
    img = pynn.Input((9, 8, 3), name="img")
    h = layers.ZeroPadding2D(1)(img)
    h = layers.Conv2D(6, 3, strides=2, padding="same", groups=3, activation="relu")(h)
    h = layers.BatchNormalization()(h)
    h = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(h)
    h = layers.SeparableConv2D(4, 2, padding="same", activation="elu")(h)
    h = layers.SpatialDropout2D(0.2)(h)
    h = layers.Conv2DTranspose(3, 3, strides=2, padding="same")(h)
    h = layers.Cropping2D(((1, 1), (0, 2)))(h)
    h = layers.AveragePooling2D(2, padding="same")(h)
    h = layers.UpSampling2D((1, 2))(h)
    h = layers.Conv2D(4, 2, data_format="channels_first")(h)
    h = layers.BatchNormalization(axis=1)(h)
    h = layers.MaxPooling2D(2, data_format="channels_first", padding="same")(h)
    a = layers.GlobalAveragePooling2D(data_format="channels_first")(h)
    s = layers.Reshape((-1, 4))(h)
    s = layers.Conv1D(5, 2, padding="causal", activation="tanh")(s)
    s = layers.ZeroPadding1D(1)(s)
    s = layers.Cropping1D((0, 1))(s)
    s = layers.UpSampling1D(2)(s)
    s = layers.SpatialDropout1D(0.1)(s)
    s = layers.MaxPooling1D(2)(s)
    s = layers.AveragePooling1D(2, padding="same")(s)
    b = layers.GlobalMaxPooling1D()(s)
    c = layers.GlobalMaxPooling2D()(layers.Reshape((-1, 5, 1))(s))
    d = layers.GlobalAveragePooling1D()(s)
    out = layers.Dense(3, activation="softmax")(layers.Concatenate()([a, b, c, d]))
    return Model(img, out)


def test_every_layer_in_one_functional_model(backend, tmp_path):
    pynn.set_seed(5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 9, 8, 3))
    y = rng.integers(0, 3, 24)
    model = every_layer_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        model.summary(line_length=200)  # wide enough not to wrap the class names
    text = buf.getvalue()
    for name in ["Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Conv1D",
                 "SpatialDropout2D", "GlobalMaxPooling1D", "UpSampling2D", "Cropping1D"]:
        assert f"({name})" in text
    model.save(tmp_path / "every.keras")
    loaded = load_model(tmp_path / "every.keras")
    assert_same_model(model, loaded, x)


def test_conv_weights_have_keras_shapes_and_counts():
    model = every_layer_model()
    by_type = {type(l).__name__: l for l in model.layers}
    assert {l.kernel.shape for l in model.layers if type(l).__name__ == "Conv2D"} == {
        (3, 3, 1, 6), (2, 2, 5, 4)}
    assert by_type["DepthwiseConv2D"].kernel.shape == (3, 3, 6, 2)
    assert by_type["SeparableConv2D"].count_params() == 2 * 2 * 12 + 12 * 4 + 4
    assert by_type["Conv2DTranspose"].kernel.shape == (3, 3, 3, 4)


# -------------------------------------------------------------------------------------------
# keras-io "Simple MNIST convnet" (https://keras.io/examples/vision/mnist_convnet/)
# -------------------------------------------------------------------------------------------
KERAS_IO_IMPORTS = """\
import numpy as np
import pynn as keras
from pynn import layers
"""

# the example's model definition and compile call, verbatim
KERAS_IO_MODEL = """\
num_classes = 10
input_shape = (28, 28, 1)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

batch_size = 128
epochs = 15

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
"""


def test_keras_io_mnist_convnet_runs_with_only_imports_changed():
    pynn.set_seed(0)
    scope = {}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(KERAS_IO_IMPORTS + KERAS_IO_MODEL, scope)  # noqa: S102 (our own source text)
    summary = buf.getvalue()
    assert "Total params: 34,826" in summary
    for count in ["320", "18,496", "16,010"]:
        assert count in summary
    model = scope["model"]
    assert model.output_shape == (None, 10)
    assert [l.output_shape for l in model.layers[:5]] == [
        (None, 26, 26, 32), (None, 13, 13, 32), (None, 11, 11, 64), (None, 5, 5, 64),
        (None, 1600)]
    # the example's data preparation (keras.utils.to_categorical is pynn.datasets'),
    # one epoch on 2,000 images with its batch size and validation split
    (x_train, y_train), _ = pynn.datasets.mnist.load_data()
    x = np.expand_dims(x_train[:2000].astype("float32") / 255, -1)
    y = pynn.datasets.to_categorical(y_train[:2000], 10)
    hist = model.fit(x, y, batch_size=scope["batch_size"], epochs=1, validation_split=0.1,
                     verbose=0)
    assert set(hist.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    # 14 steps already learn something (chance is 10%; this seed gives 62% here)
    assert hist.history["val_accuracy"][0] > 0.3, hist.history
