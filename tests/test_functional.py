"""The functional API: graphs of layer calls, shared layers, nested models, several inputs
and outputs, introspection, configs and saving (issue 14)."""
import contextlib
import io
import json

import numpy as np
import pytest

import pynn
from pynn import layers, losses
from pynn.layers import Dense, Input
from pynn.models import Functional, Model, Sequential
from pynn.trainers import explain

from helpers import numerical_grad


def gradient_check(model, x, y, rtol=1e-5, atol=1e-7):
    """The flat gradient of the compiled loss equals float64 central differences."""
    xs, ys, sw = model._prepare_xy(x, y)
    fused = model._fused()
    loss = model._compute_gradients(xs, ys, sw, fused)[0]
    analytic = np.array(model._layout.grads, copy=True)

    def f():
        return model._compute_gradients(xs, ys, sw, fused)[0]

    numeric = numerical_grad(f, model._layout.params)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)
    assert np.abs(analytic).max() > 0
    return loss


def data(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


# -------------------------------------------------------------------------------------------
# gradients through graphs
# -------------------------------------------------------------------------------------------
def test_shared_layer_gradient_is_the_sum_over_its_uses(backend):
    pynn.set_seed(1)
    a, b = Input(shape=(4,), name="a", dtype="float64"), Input(shape=(4,), name="b")
    shared = Dense(5, activation="tanh", dtype="float64", name="shared")
    oa = Dense(2, name="oa", dtype="float64")(shared(a))
    ob = Dense(3, activation="softmax", name="ob", dtype="float64")(shared(b))
    model = Model([a, b], [oa, ob])
    assert len(model.weights) == 6  # the shared kernel and bias once
    model.compile("sgd", loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[1, 0.5])
    xa, xb, ya = data(2, (7, 4), (7, 4), (7, 2))
    gradient_check(model, [xa, xb], [ya, np.arange(7) % 3])


def test_fan_out_tensor_gets_the_sum_of_its_readers_gradients(backend):
    pynn.set_seed(2)
    x = Input(shape=(3,), dtype="float64")
    h = Dense(6, activation="sigmoid", dtype="float64", bias_initializer="random_normal")(x)
    o1 = Dense(2, dtype="float64", name="o1")(h)
    o2 = Dense(1, activation="relu", dtype="float64", name="o2")(h)
    o3 = Dense(2, dtype="float64", name="o3")(Dense(4, activation="tanh", dtype="float64")(h))
    model = Model(x, [o1, o2, o3])
    model.compile("sgd", loss=["mse", "mae", "mse"], loss_weights=[0.3, 1.0, 2.0])
    xa, y1, y2, y3 = data(3, (9, 3), (9, 2), (9, 1), (9, 2))
    gradient_check(model, xa, [y1, np.abs(y2), y3])


def test_merging_layers_in_a_graph(backend):
    pynn.set_seed(3)
    a, b = Input(shape=(4,), dtype="float64"), Input(shape=(4,), dtype="float64")
    da = Dense(5, activation="tanh", dtype="float64")(a)
    db = Dense(5, activation="tanh", dtype="float64")(b)
    merged = [layers.add([da, db]), layers.subtract([da, db]), layers.multiply([da, db]),
              layers.average([da, db]), layers.maximum([da, db]), layers.minimum([da, db]),
              layers.concatenate([da, db]), layers.dot([da, db], axes=1)]
    out = Dense(2, dtype="float64")(layers.concatenate(merged))
    model = Model([a, b], out)
    model.compile("sgd", "mse")
    xa, xb, y = data(4, (6, 4), (6, 4), (6, 2))
    gradient_check(model, [xa, xb], y)


def test_nested_models_gradients_and_training(backend):
    pynn.set_seed(4)
    block = Sequential([Input(shape=(5,)), Dense(6, activation="relu", dtype="float64"),
                        Dense(5, dtype="float64")], name="block")
    x = Input(shape=(5,), dtype="float64")
    y = layers.add([x, block(x)])  # a residual block that is itself a model
    y = layers.add([y, block(y)])  # the same model used twice: shared weights
    inner = Model(x, Dense(3, dtype="float64")(y), name="inner")
    outer = Sequential([inner, layers.Softmax()])
    assert outer.weights[:4] == block.weights and len(outer.weights) == 6  # block's once
    outer.compile("sgd", "sparse_categorical_crossentropy")
    xa, = data(5, (8, 5))
    gradient_check(outer, xa, np.arange(8) % 3)


def test_frozen_nested_model_gets_no_gradient(backend):
    pynn.set_seed(5)
    base = Sequential([Input(shape=(4,)), Dense(6, activation="relu")], name="base")
    base.trainable = False
    model = Sequential([base, Dense(2)])
    assert [w.path for w in model.trainable_weights] == [model.layers[1].name + "/kernel",
                                                         model.layers[1].name + "/bias"]
    before = base.get_weights()
    model.compile("adam", "mse")
    x, y = data(6, (16, 4), (16, 2))
    model.fit(x, y, epochs=2, verbose=0)
    for w0, w1 in zip(before, base.get_weights()):
        np.testing.assert_array_equal(w0, w1)


# -------------------------------------------------------------------------------------------
# the Keras functional-API guide, with only the imports changed
# -------------------------------------------------------------------------------------------
def test_guide_two_inputs_two_outputs_losses_weights_metrics():
    from pynn import Input as kInput  # "from tensorflow import keras" -> pynn
    num_tags, num_departments = 12, 4
    title_input = kInput(shape=(10,), name="title")
    body_input = kInput(shape=(20,), name="body")
    tags_input = kInput(shape=(num_tags,), name="tags")
    title_features = layers.Dense(16, activation="relu")(title_input)
    body_features = layers.Dense(8, activation="relu")(body_input)
    x = layers.concatenate([title_features, body_features, tags_input])
    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(num_departments, name="department")(x)
    model = pynn.Model(inputs=[title_input, body_input, tags_input],
                       outputs={"priority": priority_pred, "department": department_pred})
    model.compile(
        optimizer=pynn.optimizers.RMSprop(1e-3),
        loss={"priority": losses.BinaryCrossentropy(from_logits=True),
              "department": losses.CategoricalCrossentropy(from_logits=True)},
        loss_weights={"priority": 1.0, "department": 0.2},
        metrics={"department": ["accuracy"]})
    rng = np.random.default_rng(0)
    title_data = rng.random((64, 10))
    body_data = rng.random((64, 20))
    tags_data = rng.integers(0, 2, (64, num_tags)).astype("float32")
    priority_targets = rng.random((64, 1)).round()
    dept_targets = np.eye(num_departments)[rng.integers(0, num_departments, 64)]
    hist = model.fit({"title": title_data, "body": body_data, "tags": tags_data},
                     {"priority": priority_targets, "department": dept_targets},
                     epochs=3, batch_size=32, validation_split=0.25, verbose=0)
    assert set(hist.history) == {"loss", "priority_loss", "department_loss",
                                 "department_accuracy", "val_loss", "val_priority_loss",
                                 "val_department_loss", "val_department_accuracy"}
    h = hist.history
    for i in range(3):  # the total is the weighted sum of the per-output losses
        assert h["loss"][i] == pytest.approx(h["priority_loss"][i]
                                             + 0.2 * h["department_loss"][i], rel=1e-6)
    out = model.predict([title_data, body_data, tags_data], verbose=0)
    assert set(out) == {"priority", "department"} and out["department"].shape == (64, 4)
    res = model.evaluate([title_data, body_data, tags_data], [priority_targets, dept_targets],
                         verbose=0, return_dict=True)
    assert set(res) == {"loss", "priority_loss", "department_loss", "department_accuracy"}


def test_guide_toy_resnet_trains():
    pynn.set_seed(0)
    pynn.clear_session()
    inputs = pynn.Input(shape=(32,), name="img")
    x = layers.Dense(32, activation="relu")(inputs)
    block_1_output = layers.Dense(16, activation="relu")(x)
    x = layers.Dense(16, activation="relu")(block_1_output)
    x = layers.Dense(16, activation="relu")(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Dense(16, activation="relu")(block_2_output)
    x = layers.Dense(16, activation="relu")(x)
    block_3_output = layers.add([x, block_2_output])
    x = layers.Dense(16, activation="relu")(block_3_output)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(3)(x)
    model = pynn.Model(inputs, outputs, name="toy_resnet")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.summary()
    assert "Connected to" in out.getvalue() and "add (Add)" in out.getvalue()
    text = out.getvalue()
    at = text.index("add (Add)")
    assert "dense_3[0][0]," in text[at:] and "dense_1[0][0]" in text[at:]
    model.compile(optimizer="adam",
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["acc"])
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((3, 32)) * 2
    y = rng.integers(0, 3, 300)
    x = centers[y] + rng.standard_normal((300, 32))
    hist = model.fit(x, y, batch_size=32, epochs=8, validation_split=0.2, verbose=0)
    assert hist.history["val_acc"][-1] > 0.9
    assert not explain(model)["train"]  # a graph, not a chain: layer by layer


def test_guide_shared_layer_between_two_inputs():
    shared_embedding = layers.Dense(8, activation="tanh")
    text_input_a = pynn.Input(shape=(10,))
    text_input_b = pynn.Input(shape=(10,))
    encoded_input_a = shared_embedding(text_input_a)
    encoded_input_b = shared_embedding(text_input_b)
    assert len(shared_embedding._inbound_nodes) == 2
    model = pynn.Model([text_input_a, text_input_b],
                       layers.Dense(1, activation="sigmoid")(
                           layers.concatenate([encoded_input_a, encoded_input_b])))
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((40, 10)), rng.standard_normal((40, 10))
    y = (a.sum(1) > b.sum(1)).astype("float32")
    model.fit([a, b], y, epochs=2, verbose=0)
    assert shared_embedding.input is text_input_a
    assert shared_embedding.output is encoded_input_a


def test_tf_first_tutorial_model_then_softmax():
    model = Sequential([layers.Flatten(input_shape=(28, 28)), layers.Dense(16, activation="relu"),
                        layers.Dropout(0.2), layers.Dense(10)])
    model.compile(optimizer="adam",
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    rng = np.random.default_rng(3)
    x, y = rng.random((50, 28, 28)), rng.integers(0, 10, 50)
    model.fit(x, y, epochs=1, verbose=0)
    probability_model = Sequential([model, layers.Softmax()])
    p = probability_model(x[:5])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    logits = model.predict(x[:5], verbose=0)
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_feature_extraction_from_a_trained_model():
    pynn.set_seed(6)
    initial_model = Sequential([pynn.Input(shape=(6,)), layers.Dense(5, activation="relu"),
                                layers.Dense(4, activation="relu"), layers.Dense(3)])
    initial_model.compile("sgd", "mse")
    x, y = data(7, (20, 6), (20, 3))
    initial_model.fit(x, y, epochs=1, verbose=0)
    feature_extractor = pynn.Model(inputs=initial_model.inputs,
                                   outputs=[l.output for l in initial_model.layers])
    feats = feature_extractor.predict(x, verbose=0)
    assert [f.shape for f in feats] == [(20, 5), (20, 4), (20, 3)]
    w = initial_model.get_weights()
    h1 = np.maximum(x.astype(np.float32) @ w[0] + w[1], 0)
    np.testing.assert_allclose(feats[0], h1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats[2], initial_model.predict(x, verbose=0), rtol=1e-6)
    middle = pynn.Model(initial_model.inputs, initial_model.get_layer(index=1).output)
    np.testing.assert_array_equal(middle.predict(x, verbose=0), feats[1])


# -------------------------------------------------------------------------------------------
# one engine: Sequential and Model
# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_bn", [False, True], ids=["dense-chain", "batchnorm"])
def test_sequential_and_model_train_bit_identically(backend_name, with_bn):
    def make(kind):
        pynn.set_seed(7)
        stack = [Dense(16, activation="relu"), Dense(8, activation="tanh"),
                 Dense(3, activation="softmax")]
        if with_bn:
            stack.insert(1, layers.BatchNormalization())
        with pynn.use_backend(backend_name):
            if kind == "seq":
                m = Sequential([Input(shape=(6,))] + stack, seed=11)
            else:
                x = y = Input(shape=(6,))
                for layer in stack:
                    y = layer(y)
                m = Model(x, y, seed=11)
        return m

    seq, fun = make("seq"), make("fun")
    fun.set_weights(seq.get_weights())
    # the same training randomness too: shuffles and dropout come from the model's
    # Generator, which a Sequential has also drawn its initial weights from
    fun._rng.bit_generator.state = seq._rng.bit_generator.state
    x, = data(8, (100, 6))
    y = np.arange(100) % 3
    hists = []
    for m in (seq, fun):
        with pynn.use_backend(backend_name):
            m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            assert explain(m)["train"] is not with_bn
            hists.append(m.fit(x, y, batch_size=16, epochs=2, verbose=0).history)
    assert hists[0] == hists[1]
    for a, b in zip(seq.get_weights(), fun.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_public_switch_forces_the_layered_path_with_the_same_result(backend_name):
    def run(jit):
        pynn.set_seed(9)
        with pynn.use_backend(backend_name):
            m = Sequential([Input(shape=(5,)), Dense(7, activation="relu", dtype="float64"),
                            Dense(2, dtype="float64")])
            m.compile("sgd", "mse", jit_compile=jit)
            assert explain(m) == {"train": jit, "inference": jit, "conv_pool": 0}
            x, y = data(10, (30, 5), (30, 2))
            m.fit(x, y, epochs=2, batch_size=8, verbose=0)
            return m.get_weights()

    for a, b in zip(run(True), run(False)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# -------------------------------------------------------------------------------------------
# introspection, configs, saving
# -------------------------------------------------------------------------------------------
def make_graph():
    pynn.clear_session()
    a, b = Input(shape=(4,), name="a"), Input(shape=(3,), name="b")
    shared = Dense(5, activation="relu", name="shared")
    head = Sequential([Input(shape=(5,)), Dense(4, activation="tanh"), Dense(2)], name="head")
    x = layers.concatenate([shared(a), shared(layers.Dense(4, name="lift")(b))])
    x = layers.Dense(5, name="mix")(x)
    out1 = head(x)
    out2 = layers.Dense(1, activation="sigmoid", name="p")(layers.add([x, shared(a)]))
    return Model({"a": a, "b": b}, [out1, out2], name="graph")


def test_introspection():
    m = make_graph()
    # Keras's order: by depth from the outputs, the deepest first ('b' feeds 'lift')
    names = [l.name for l in m.layers]
    assert names[0] == "b" and names.index("lift") < names.index("shared") < names.index("mix")
    assert sorted(names) == sorted(["a", "b", "lift", "shared", "concatenate", "mix", "head",
                                    "add", "p"])
    assert m.input_names == ["a", "b"] and m.output_names == ["head", "p"]
    assert m.get_layer("shared") is m.get_layer(index=m.layers.index(m.get_layer("shared")))
    assert len(m.inputs) == 2 and len(m.outputs) == 2 and m.outputs[1].shape == (None, 1)
    with pytest.raises(ValueError, match="No such layer: nope"):
        m.get_layer("nope")


def test_graph_and_nested_models_save_load_bit_exact_and_configs_round_trip(tmp_path):
    pynn.set_seed(12)
    m = make_graph()
    m.compile("adam", ["mse", "binary_crossentropy"], metrics=[["mae"], ["accuracy"]])
    xa, xb, y1 = data(13, (24, 4), (24, 3), (24, 2))
    y2 = (xa[:, :1] > 0).astype("float64")
    m.fit({"a": xa, "b": xb}, [y1, y2], epochs=2, verbose=0)
    cfg = m.get_config()
    again = Functional.from_config(json.loads(json.dumps(cfg)))
    assert json.dumps(again.get_config()) == json.dumps(cfg)
    path = tmp_path / "graph.keras"
    m.save(path)
    loaded = pynn.load_model(path)
    for a, b in zip(m.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(m.predict({"a": xa, "b": xb}, verbose=0),
                    loaded.predict({"a": xa, "b": xb}, verbose=0)):
        np.testing.assert_array_equal(a, b)
    # training resumes identically (optimizer state saved)
    h1 = m.fit({"a": xa, "b": xb}, [y1, y2], epochs=1, shuffle=False, verbose=0).history
    h2 = loaded.fit({"a": xa, "b": xb}, [y1, y2], epochs=1, shuffle=False, verbose=0).history
    assert h1 == h2
    seq = Sequential([m.get_layer("head"), layers.Softmax()])
    seq.save(tmp_path / "seq.keras")
    back = pynn.load_model(tmp_path / "seq.keras")
    h, = data(14, (5, 5))
    np.testing.assert_array_equal(back.predict(h, verbose=0), seq.predict(h, verbose=0))


# -------------------------------------------------------------------------------------------
# bad input
# -------------------------------------------------------------------------------------------
def test_clear_errors():
    a, b = Input(shape=(4,), name="ia"), Input(shape=(4,), name="ib")
    out = Dense(2)(layers.add([a, b]))
    with pytest.raises(ValueError, match=r"Graph disconnected.*'ib'.*add.*\['ia'\]"):
        Model(a, out)
    with pytest.raises(ValueError, match="pynn.Input"):
        Model(Dense(3)(a), out)
    with pytest.raises(ValueError, match="two different layers are named 'twin'"):
        Model(a, Dense(2, name="twin")(Dense(3, name="twin")(a)))
    m = Model([a, b], out)
    with pytest.raises(ValueError, match=r"takes 2 input\(s\).*called on 1"):
        m(Input(shape=(4,)))
    with pytest.raises(ValueError, match=r"x: the model has 2 inputs \['ia', 'ib'\], but 3"):
        m.predict([np.ones((2, 4))] * 3, verbose=0)
    with pytest.raises(ValueError, match=r"keys \['ic'\] match no name"):
        m.predict({"ia": np.ones((2, 4)), "ic": np.ones((2, 4))}, verbose=0)
    with pytest.raises(ValueError,
                       match=r"loss: keys \['out'\] match no name of the model's outputs"):
        m.compile("sgd", loss={"out": "mse"})
    with pytest.raises(ValueError, match=r"Add.*\(None, 4\).*\(None, 3\)"):
        layers.add([a, Input(shape=(3,))])
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"y: keys \['nope'\] match no name"):
        m.fit([np.ones((2, 4))] * 2, {"nope": np.ones((2, 2))}, verbose=0)
    with pytest.raises(ValueError, match="Input 0 of layer .*expected axis -1.*value 4"):
        m.predict([np.ones((2, 5)), np.ones((2, 4))], verbose=0)
