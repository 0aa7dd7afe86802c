"""ONNX export: every layer type's exported graph runs in ONNX Runtime with the same
outputs as ``model.predict`` (float32, within 1e-5), with a dynamic batch axis; a
functional model with several inputs and outputs; unsupported models give clear errors."""
import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn.models import Model, Sequential

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run_onnx(model, xs, tmp_path):
    path = tmp_path / "m.onnx"
    model.export(path, format="onnx", verbose=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), xs)}
    return sess.run(None, feeds)


def check(model, xs, tmp_path, atol=1e-5):
    xs = xs if isinstance(xs, list) else [xs]
    want = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    want = want if isinstance(want, list) else [want]
    for n in (len(xs[0]), 1):  # the batch axis is dynamic
        got = run_onnx(model, [x[:n] for x in xs], tmp_path)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w[:n], rtol=1e-5, atol=atol)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def randomize(model, seed=1):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.standard_normal(w.shape) * 0.5 + (1.0 if "variance" in w.path
                                                              else 0.0)).astype(np.float32)
                       if "variance" not in w.path else rng.uniform(0.5, 2, w.shape)
                       .astype(np.float32) for w in model.weights])
    return model


DENSE_ACTS = ["linear", "relu", "sigmoid", "tanh", "softmax", "elu", "leaky_relu", "gelu",
              "softplus", "selu", "silu", "exponential", "hard_sigmoid", "hard_silu", "softsign",
              "relu6", "mish", "celu", "squareplus", "tanh_shrink", "log_softmax", "glu"]


@pytest.mark.parametrize("act", DENSE_ACTS)
def test_dense_activations(act, tmp_path):
    m = randomize(Sequential([pynn.Input((5,)), L.Dense(4, activation=act), L.Dense(3)]))
    check(m, rand(6, 5), tmp_path)


def test_mlp_with_batchnorm_dropout_activation_layers(tmp_path):
    m = Sequential([pynn.Input((6,)), L.Dense(8), L.BatchNormalization(), L.Activation("relu"),
                    L.Dropout(0.5), L.Dense(4), L.LeakyReLU(0.1), L.Dense(3),
                    L.Softmax()])
    check(randomize(m), rand(7, 6), tmp_path)


@pytest.mark.parametrize("make, shape", [
    (lambda: [L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(), L.Flatten()], (9, 9, 2)),
    (lambda: [L.Conv2D(4, 3, strides=2, padding="same"), L.AveragePooling2D(padding="same"),
              L.GlobalAveragePooling2D()], (9, 8, 2)),
    (lambda: [L.Conv2D(4, (3, 2), dilation_rate=2, data_format="channels_first"),
              L.GlobalMaxPooling2D(data_format="channels_first")], (2, 9, 9)),
    (lambda: [L.Conv1D(3, 3, padding="causal"), L.MaxPooling1D(2), L.Conv1D(2, 2),
              L.GlobalAveragePooling1D()], (10, 3)),
    (lambda: [L.Conv1D(3, 3, padding="same"), L.AveragePooling1D(2, padding="same"),
              L.GlobalMaxPooling1D()], (9, 3)),
    (lambda: [L.DepthwiseConv2D(3, depth_multiplier=2), L.SeparableConv2D(3, 3, padding="same"),
              L.Flatten()], (8, 8, 2)),
    (lambda: [L.Conv2DTranspose(3, 3, strides=2), L.Flatten()], (4, 5, 2)),
    (lambda: [L.Conv2DTranspose(3, 4, strides=2, padding="same"), L.Flatten()], (4, 5, 2)),
    (lambda: [L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1)], (3, 4, 2)),
    (lambda: [L.ZeroPadding2D(((1, 2), (0, 1))), L.Cropping2D(((1, 0), (1, 1))),
              L.UpSampling2D((2, 3)), L.Reshape((-1, 2))], (4, 4, 2)),
    (lambda: [L.ZeroPadding1D(2), L.Cropping1D((1, 2)), L.UpSampling1D(2)], (5, 3)),
    (lambda: [L.BatchNormalization(axis=1), L.Flatten()], (3, 4, 2)),
])
def test_convolution_pooling_reshaping(make, shape, tmp_path):
    m = Sequential([pynn.Input(shape)] + make())
    check(randomize(m), rand(3, *shape), tmp_path)


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("kw", [dict(), dict(return_sequences=True),
                                dict(go_backwards=True, return_sequences=True),
                                dict(go_backwards=True), dict(use_bias=False)])
def test_recurrent(cell, kw, tmp_path):
    m = Sequential([pynn.Input((6, 3)), getattr(L, cell)(4, **kw)])
    check(randomize(m), rand(5, 6, 3), tmp_path)


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_recurrent_trained_with_recurrent_dropout_exports_the_inference_graph(cell, tmp_path):
    """Dropout is the identity at inference: the export of a model trained with
    ``dropout``/``recurrent_dropout`` equals its ``predict``."""
    m = Sequential([pynn.Input((6, 3)), getattr(L, cell)(4, dropout=0.2, recurrent_dropout=0.3,
                                                         return_sequences=True),
                    L.Bidirectional(getattr(L, cell)(3, recurrent_dropout=0.2)), L.Dense(1)])
    m.compile("adam", "mse")
    m.fit(rand(16, 6, 3), rand(16, 1, seed=1), epochs=2, batch_size=8, verbose=0)
    check(m, rand(5, 6, 3, seed=2), tmp_path)


@pytest.mark.parametrize("kw", [dict(reset_after=False), dict(reset_after=False,
                                                                use_bias=False)])
def test_gru_reset_before(kw, tmp_path):
    m = Sequential([pynn.Input((6, 3)), L.GRU(4, return_sequences=True, **kw)])
    check(randomize(m), rand(5, 6, 3), tmp_path)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_and_states(merge_mode, tmp_path):
    i = pynn.Input((5, 3))
    outs = L.Bidirectional(L.LSTM(4, return_sequences=True, return_state=True),
                           merge_mode=merge_mode)(i)
    m = randomize(Model(i, outs))
    check(m, rand(4, 5, 3), tmp_path)


def test_imdb_classifier_with_variable_length_and_token_ids(tmp_path):
    inputs = pynn.Input((None,), dtype="int32")
    x = L.Embedding(50, 8)(inputs)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
    x = L.Bidirectional(L.GRU(3))(x)
    m = Model(inputs, L.Dense(1, activation="sigmoid")(x))
    ids = np.random.default_rng(0).integers(0, 50, (4, 7)).astype(np.int32)
    check(m, ids, tmp_path)
    check(m, ids[:, :3], tmp_path)  # another length, same file


def test_encoder_decoder_with_symbolic_initial_states(tmp_path):
    enc_in, dec_in = pynn.Input((4, 3)), pynn.Input((5, 2))
    _, h, c = L.LSTM(6, return_state=True)(enc_in)
    y = L.TimeDistributed(L.Dense(2))(L.LSTM(6, return_sequences=True)(dec_in,
                                                                       initial_state=[h, c]))
    m = randomize(Model([enc_in, dec_in], y))
    check(m, [rand(3, 4, 3), rand(3, 5, 2, seed=1)], tmp_path)


def test_functional_model_with_several_inputs_and_outputs_and_merges(tmp_path):
    a, b = pynn.Input((4,), name="a"), pynn.Input((4,), name="b")
    da, db = L.Dense(4, activation="tanh")(a), L.Dense(4)(b)
    merged = [L.Add()([da, db]), L.Subtract()([da, db]), L.Multiply()([da, db]),
              L.Average()([da, db]), L.Maximum()([da, db]), L.Minimum()([da, db]),
              L.Concatenate()([da, db]), L.Dot(axes=1)([da, db])]
    inner = Sequential([pynn.Input((4,)), L.Dense(3)])  # a nested model
    m = randomize(Model([a, b], merged + [inner(da)]))
    check(m, [rand(5, 4), rand(5, 4, seed=3)], tmp_path)


def test_exported_file_is_checked_and_names_its_inputs(tmp_path):
    m = Sequential([pynn.Input((3,), name="features"), L.Dense(2, name="head")])
    path = tmp_path / "m.onnx"
    pynn.export.export_model(m, path, verbose=False)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["features"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_unsupported_models_give_clear_errors(tmp_path):
    m = Sequential([pynn.Input((5,), dtype="int32"), L.Embedding(9, 2, mask_zero=True),
                    L.LSTM(2)])
    with pytest.raises(ValueError, match="mask_zero"):
        m.export(tmp_path / "x.onnx", verbose=False)
    m = Sequential([pynn.Input((3, 2)), L.SimpleRNN(2, activation="elu")])
    with pytest.raises(ValueError, match="activation 'elu' of recurrent layer"):
        m.export(tmp_path / "x.onnx", verbose=False)
    m = Sequential([pynn.Input((3,)), L.Dense(4, activation="sparsemax")])
    with pytest.raises(ValueError, match="activation 'sparsemax' of layer"):
        m.export(tmp_path / "x.onnx", verbose=False)
    with pytest.raises(ValueError, match="unsupported format 'tf_saved_model'"):
        m.export(tmp_path / "x", format="tf_saved_model")

    class Custom(L.Layer):
        def forward(self, ctx, x, training=False):
            return x

    m = Sequential([pynn.Input((3,)), Custom(name="mine")])
    with pytest.raises(ValueError, match="'mine' of type Custom has no ONNX converter"):
        m.export(tmp_path / "x.onnx", verbose=False)
    assert not (tmp_path / "x.onnx").exists()


def test_normalization_layers(tmp_path):
    x = rand(6, 3, 4)
    norm = L.Normalization(axis=-1)
    norm.adapt(x)
    m = Sequential([pynn.Input((3, 4)), norm, L.LayerNormalization(),
                    L.LayerNormalization(axis=[1, 2], rms_scaling=True, center=False),
                    L.UnitNormalization(), L.GaussianNoise(0.3), L.GaussianDropout(0.2),
                    L.Normalization(mean=0.5, variance=4.0, invert=True)])
    randomize_keep = [w.numpy() for w in norm.weights]
    randomize(m)
    norm.set_weights(randomize_keep)
    check(m, x, tmp_path)
