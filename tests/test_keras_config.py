"""Sequential.from_config(<a config written by Keras 3>) (issue 18): the same architecture
(layer classes, names, weight shapes), and, given Keras's weights, the same predictions;
Keras's dtype policies, initializer and regularizer entries and inert extra keys are
read; what pynn cannot build is a clear error."""
import json

import numpy as np
import pytest

import pynn
from pynn.layers import deserialize
from pynn.layers.keras_config import dtype_name

from helpers import import_keras


def _keras_models(keras):
    L = keras.layers
    return {
        "cnn": (keras.Sequential([
            keras.Input((12, 12, 1)),
            L.Conv2D(4, 3, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-4)),
            L.MaxPooling2D(), L.Flatten(), L.Dropout(0.3),
            L.Dense(5, activation="softmax",
                    kernel_initializer=keras.initializers.HeNormal(seed=1))]), (3, 12, 12, 1)),
        "mlp": (keras.Sequential([
            keras.Input((8,)), L.Dense(16, activation="tanh"), L.BatchNormalization(),
            L.LayerNormalization(epsilon=1e-5), L.GaussianNoise(0.1), L.Dense(1)],
            name="regressor"), (4, 8)),
        "rnn": (keras.Sequential([
            keras.Input((5,), dtype="int32"), L.Embedding(20, 4, mask_zero=True),
            L.LSTM(6, return_sequences=True), L.GRU(3), L.Dense(2)]), None),
        # recurrent_dropout is read, and predict (inference) drops nothing
        "rnn_dropout": (keras.Sequential([
            keras.Input((5,), dtype="int32"), L.Embedding(20, 4, mask_zero=True),
            L.LSTM(6, return_sequences=True, recurrent_dropout=0.3),
            L.GRU(3, dropout=0.2, recurrent_dropout=0.25, return_sequences=True),
            L.SimpleRNN(2, recurrent_dropout=0.1), L.Dense(2)]), None),
        "nested": (keras.Sequential([
            keras.Input((3,)), keras.Sequential([L.Dense(4, use_bias=False)], name="inner"),
            L.UnitNormalization(), L.Dense(1)]), (2, 3)),
    }


def _config(model):
    return json.loads(json.dumps(model.get_config()))  # as read from a config.json


@pytest.mark.parametrize("case", ["cnn", "mlp", "rnn", "rnn_dropout", "nested"])
def test_keras_sequential_config_builds_the_same_model(case):
    keras = import_keras()
    theirs, x_shape = _keras_models(keras)[case]
    ours = pynn.Sequential.from_config(_config(theirs))
    assert ours.name == theirs.name
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(0)
    if x_shape is None:
        x = rng.integers(1, 20, (3, 5))
        x[:, -2:] = 0  # masked steps
    else:
        x = rng.standard_normal(x_shape).astype(np.float32)
    want = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)


def test_keras_entries_inside_layer_configs_are_read():
    keras = import_keras()
    ours = pynn.Sequential.from_config(_config(_keras_models(keras)["cnn"][0]))
    conv, dense = ours.layers[0], ours.layers[-1]
    assert conv.kernel_regularizer.get_config() == {"l2": pytest.approx(1e-4)}
    assert type(dense.kernel_initializer).__name__ == "HeNormal"
    assert dense.kernel_initializer.seed == 1
    assert ours.dtype == "float32"


def test_keras_config_without_input_builds_on_first_call():
    keras = import_keras()
    theirs = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(1)])
    ours = pynn.Sequential.from_config(_config(theirs))
    assert not ours.built
    assert ours.predict(np.ones((2, 3)), verbose=0).shape == (2, 1)


def test_what_pynn_cannot_build_is_a_clear_error():
    keras = import_keras()
    L = keras.layers
    cfg = _config(keras.Sequential([keras.Input((3,)), L.Dense(2, kernel_constraint="non_neg")]))
    with pytest.raises(ValueError, match=r"Dense 'dense\w*' \(a Keras config\): "
                                         r"kernel_constraint=\{.*NonNeg.*\} is not supported"):
        pynn.Sequential.from_config(cfg)
    cfg = _config(keras.Sequential([keras.Input((3, 2)), L.Permute((2, 1))]))
    with pytest.raises(ValueError, match=r"Unknown layer class 'Permute'"):
        pynn.Sequential.from_config(cfg)
    policy = {"module": "keras", "class_name": "DTypePolicy",
              "config": {"name": "mixed_float16"}, "registered_name": None}
    with pytest.raises(ValueError, match=r"dtype policy 'mixed_float16' is not supported; pynn "
                                         r"computes in float32 or float64"):
        deserialize({"module": "keras.layers", "class_name": "Dense",
                     "config": {"units": 2, "dtype": policy}})
    with pytest.raises(ValueError, match=r"cannot read the dtype policy"):
        dtype_name({"class_name": "DTypePolicy", "config": {}}, "here")


def test_inert_keras_keys_are_dropped_and_pynn_configs_untouched():
    layer = deserialize({"module": "keras.layers", "class_name": "BatchNormalization",
                         "config": {"name": "bn", "renorm": False, "renorm_momentum": 0.99,
                                    "renorm_clipping": None, "synchronized": False,
                                    "gamma_constraint": None}})
    assert layer.name == "bn"
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments passed to "
                                         r"BatchNormalization"):
        # a pynn entry is taken as written: no keys are dropped
        deserialize({"module": "pynn.layers", "class_name": "BatchNormalization",
                     "config": {"renorm": False}})
