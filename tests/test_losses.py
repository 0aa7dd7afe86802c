"""Losses: values by hand and by independent formulas, gradients by finite
differences, the fused-logits path, target preparation and lookup."""
import math

import numpy as np
import pytest

import pynn.losses as L
from pynn.backends import Backend

REF = Backend()


# --------------------------------------------------------------------------
# independent NumPy formulas (written from the Keras definitions)
# --------------------------------------------------------------------------
def np_bce(y, p, ls=0.0, logits=False):
    y = y * (1 - ls) + 0.5 * ls
    if logits:
        p = 1.0 / (1.0 + np.exp(-p))
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)


def np_cce(y, p, ls=0.0, logits=False):
    k = p.shape[1]
    y = y * (1 - ls) + ls / k
    if logits:
        e = np.exp(p - p.max(axis=1, keepdims=True))
        return -(y * np.log(e / e.sum(axis=1, keepdims=True))).sum(axis=1)
    p = p / p.sum(axis=1, keepdims=True)
    return -(y * np.log(np.clip(p, 1e-7, 1 - 1e-7))).sum(axis=1)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def data(rng):
    n, k = 6, 4
    logits = rng.normal(size=(n, k))
    labels = rng.integers(0, k, size=n)
    onehot = np.eye(k)[labels]
    bin_y = (rng.random((n, k)) > 0.5).astype(np.float64)
    return dict(n=n, k=k, logits=logits, probs=softmax(logits), labels=labels, onehot=onehot,
                bin_y=bin_y, bin_p=sigmoid(logits), target=rng.normal(size=(n, k)),
                w=rng.random(n) + 0.5, sign_y=2.0 * bin_y - 1.0,
                pos_t=rng.random((n, k)) * 3.0, pos_p=rng.random((n, k)) * 3.0 + 0.2)


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------
def test_hand_computed_values():
    assert L.MeanSquaredError()([[1.0, 2.0]], [[1.5, 1.0]]) == pytest.approx((0.25 + 1.0) / 2)
    assert L.MeanAbsoluteError()([[1.0, 2.0]], [[1.5, 1.0]]) == pytest.approx((0.5 + 1.0) / 2)
    assert L.BinaryCrossentropy()([[1.0], [0.0]], [[0.8], [0.4]]) == pytest.approx(
        (-math.log(0.8) - math.log(0.6)) / 2)
    assert L.CategoricalCrossentropy()([[0, 1, 0]], [[0.2, 0.7, 0.1]]) == pytest.approx(
        -math.log(0.7))
    assert L.SparseCategoricalCrossentropy()([1, 0], [[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]]) == \
        pytest.approx((-math.log(0.7) - math.log(0.5)) / 2)
    # logits: log(1 + e^-2) for a positive target with logit 2
    assert L.BinaryCrossentropy(from_logits=True)([[1.0]], [[2.0]]) == pytest.approx(
        math.log1p(math.exp(-2.0)))
    # binary label smoothing 0.2 turns target 1 into 0.9
    assert L.BinaryCrossentropy(label_smoothing=0.2)([[1.0]], [[0.8]]) == pytest.approx(
        -(0.9 * math.log(0.8) + 0.1 * math.log(0.2)))
    # categorical label smoothing 0.3 over 3 classes: [0.1, 0.8, 0.1]
    assert L.CategoricalCrossentropy(label_smoothing=0.3)([[0, 1, 0]], [[0.2, 0.7, 0.1]]) == \
        pytest.approx(-(0.1 * math.log(0.2) + 0.8 * math.log(0.7) + 0.1 * math.log(0.1)))


def test_new_losses_hand_computed_values():
    # Huber, delta 1: errors 0.5 (quadratic: 0.125) and 3 (linear: 3 - 0.5 = 2.5)
    assert L.Huber()([[0.0, 0.0]], [[0.5, -3.0]]) == pytest.approx((0.125 + 2.5) / 2)
    assert L.Huber(delta=2.0)([[0.0]], [[3.0]]) == pytest.approx(2 * 3 - 0.5 * 4)
    assert L.LogCosh()([[0.0, 1.0]], [[1.0, 1.0]]) == pytest.approx(math.log(math.cosh(1)) / 2)
    # large errors stay finite: log(cosh(1000)) = 1000 - log 2
    assert L.LogCosh()([[0.0]], [[1000.0]]) == pytest.approx(1000 - math.log(2))
    # MAPE: |2 - 1| / 2 = 50 %, and y_true 0 divides by 1e-7
    assert L.MeanAbsolutePercentageError()([[2.0]], [[1.0]]) == pytest.approx(50.0)
    assert L.mape([[0.0]], [[1e-7]]) == pytest.approx([100.0])
    assert L.MeanSquaredLogarithmicError()([[math.e - 1]], [[0.0]]) == pytest.approx(1.0, 1e-6)
    # cosine: parallel -> -1, orthogonal -> 0, a zero vector -> 0
    assert L.CosineSimilarity()([[1.0, 1.0]], [[2.0, 2.0]]) == pytest.approx(-1.0)
    assert L.CosineSimilarity()([[1.0, 0.0]], [[0.0, 3.0]]) == pytest.approx(0.0)
    assert L.cosine_similarity([[0.0, 0.0]], [[1.0, 2.0]]) == pytest.approx([0.0])
    # hinge: 0/1 labels become -1/1: 1 - 1 * 0.3 = 0.7 and 1 - (-1)(-2) -> 0
    assert L.Hinge()([[1.0, 0.0]], [[0.3, -2.0]]) == pytest.approx(0.7 / 2)
    assert L.SquaredHinge()([[1.0, 0.0]], [[0.3, 0.5]]) == pytest.approx((0.49 + 2.25) / 2)
    # labels not all 0/1 are used as given: 1 - 2 * 0.25 = 0.5
    assert L.Hinge()([[2.0, -1.0]], [[0.25, -1.0]]) == pytest.approx(0.5 / 2)
    # categorical hinge: neg = max of the wrong classes 0.6, pos 0.3 -> 1.3
    assert L.CategoricalHinge()([[0, 1, 0]], [[0.6, 0.3, 0.1]]) == pytest.approx(1.3)
    assert L.KLDivergence()([[0.5, 0.5]], [[0.25, 0.75]]) == pytest.approx(
        0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert L.kld([[0.0, 1.0]], [[0.5, 0.5]]) == pytest.approx([1e-7 * math.log(2e-7)
                                                             + math.log(2)])
    assert L.Poisson()([[2.0]], [[1.0]]) == pytest.approx(1.0 - 2.0 * math.log(1 + 1e-7))
    # binary focal: p = 0.8 for target 1 -> (0.2)**2 * -log 0.8; balancing * alpha 0.25
    f = 0.04 * -math.log(0.8)
    assert L.BinaryFocalCrossentropy()([[1.0]], [[0.8]]) == pytest.approx(f)
    assert L.BinaryFocalCrossentropy(apply_class_balancing=True)([[1.0]], [[0.8]]) == \
        pytest.approx(0.25 * f)
    assert L.BinaryFocalCrossentropy(gamma=0.0)([[0.0]], [[0.8]]) == pytest.approx(
        -math.log(0.2))
    # categorical focal: alpha 0.25 * (1 - 0.7)**2 * -log 0.7
    assert L.CategoricalFocalCrossentropy()([[0, 1, 0]], [[0.2, 0.7, 0.1]]) == pytest.approx(
        0.25 * 0.09 * -math.log(0.7))


def test_new_losses_train_a_model():
    import pynn
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")
    for loss in ("huber", "log_cosh", L.Huber(delta=0.5)):
        model = pynn.Sequential([pynn.layers.Dense(1)], seed=0)
        model.compile(optimizer=pynn.optimizers.SGD(0.1), loss=loss)
        hist = model.fit(x, y, epochs=20, batch_size=16, verbose=0).history["loss"]
        assert hist[-1] < 0.1 * hist[0], (loss, hist)
    labels = (x[:, :1] > 0).astype("float32")
    model = pynn.Sequential([pynn.layers.Dense(1, activation="sigmoid")], seed=0)
    model.compile(optimizer=pynn.optimizers.SGD(0.5), loss="binary_focal_crossentropy",
                  metrics=["accuracy"])
    logs = model.fit(x, labels, epochs=30, batch_size=16, verbose=0).history
    assert logs["accuracy"][-1] > 0.9


def test_probabilities_are_clipped_like_keras():
    # p = 0 for a positive target: -log(1e-7), finite
    assert L.BinaryCrossentropy()([[1.0]], [[0.0]]) == pytest.approx(-math.log(1e-7))
    assert L.SparseCategoricalCrossentropy()([0], [[0.0, 1.0]]) == pytest.approx(
        -math.log(1e-7))


def test_function_forms_return_per_sample_values(data):
    y, p = data["target"], data["probs"]
    v = L.mean_squared_error(y, p)
    assert v.shape == (data["n"],)
    np.testing.assert_allclose(v, ((y - p) ** 2).mean(axis=1))
    np.testing.assert_allclose(L.mae(y, p), np.abs(y - p).mean(axis=1))
    np.testing.assert_allclose(L.mse(y, p), v)
    np.testing.assert_allclose(L.binary_crossentropy(data["bin_y"], data["bin_p"]),
                               np_bce(data["bin_y"], data["bin_p"]))
    np.testing.assert_allclose(L.categorical_crossentropy(data["onehot"], data["probs"]),
                               np_cce(data["onehot"], data["probs"]))
    np.testing.assert_allclose(L.sparse_categorical_crossentropy(data["labels"], data["logits"],
                                                                 from_logits=True),
                               np_cce(data["onehot"], data["logits"], logits=True))
    # (n,) targets against (n, 1) predictions are expanded as in Keras
    np.testing.assert_allclose(L.mean_squared_error([1.0, 2.0], [[1.5], [1.0]]), [0.25, 1.0])


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight",
                                       "none"])
def test_call_reductions_and_sample_weight(data, reduction):
    y, p, w = data["bin_y"], data["bin_p"], data["w"]
    per = np_bce(y, p)
    got = L.BinaryCrossentropy(reduction=reduction)(y, p, sample_weight=w)
    want = {"sum_over_batch_size": (w * per).sum() / len(w), "sum": (w * per).sum(),
            "mean_with_sample_weight": (w * per).sum() / w.sum(), "none": w * per}[reduction]
    np.testing.assert_allclose(got, want, rtol=1e-12)


CASES = [
    # (loss factory, target key, output key, logits flag)
    (lambda: L.MeanSquaredError(), "target", "logits", False),
    (lambda: L.MeanAbsoluteError(), "target", "logits", False),
    (lambda: L.BinaryCrossentropy(), "bin_y", "bin_p", False),
    (lambda: L.BinaryCrossentropy(label_smoothing=0.1), "bin_y", "bin_p", False),
    (lambda: L.BinaryCrossentropy(from_logits=True), "bin_y", "logits", False),
    (lambda: L.BinaryCrossentropy(), "bin_y", "logits", True),
    (lambda: L.CategoricalCrossentropy(), "onehot", "probs", False),
    (lambda: L.CategoricalCrossentropy(label_smoothing=0.2), "onehot", "probs", False),
    (lambda: L.CategoricalCrossentropy(label_smoothing=0.2, from_logits=True), "onehot",
     "logits", False),
    (lambda: L.SparseCategoricalCrossentropy(), "labels", "probs", False),
    (lambda: L.SparseCategoricalCrossentropy(), "labels", "logits", True),
    (lambda: L.SparseCategoricalCrossentropy(from_logits=True), "labels", "logits", False),
    (lambda: L.Huber(), "target", "logits", False),
    (lambda: L.Huber(delta=0.3), "target", "logits", False),
    (lambda: L.LogCosh(), "target", "logits", False),
    (lambda: L.MeanAbsolutePercentageError(), "target", "logits", False),
    (lambda: L.MeanSquaredLogarithmicError(), "pos_t", "pos_p", False),
    (lambda: L.CosineSimilarity(), "target", "logits", False),
    (lambda: L.Hinge(), "bin_y", "logits", False),
    (lambda: L.Hinge(), "sign_y", "logits", False),
    (lambda: L.SquaredHinge(), "bin_y", "logits", False),
    (lambda: L.CategoricalHinge(), "onehot", "logits", False),
    (lambda: L.KLDivergence(), "probs", "bin_p", False),
    (lambda: L.Poisson(), "pos_t", "pos_p", False),
    (lambda: L.BinaryFocalCrossentropy(), "bin_y", "bin_p", False),
    (lambda: L.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4, gamma=1.5,
                                       label_smoothing=0.1), "bin_y", "bin_p", False),
    (lambda: L.BinaryFocalCrossentropy(from_logits=True, gamma=0.0), "bin_y", "logits", False),
    (lambda: L.CategoricalFocalCrossentropy(), "onehot", "probs", False),
    (lambda: L.CategoricalFocalCrossentropy(alpha=0.5, gamma=1.0, label_smoothing=0.2),
     "onehot", "probs", False),
    (lambda: L.CategoricalFocalCrossentropy(from_logits=True), "onehot", "logits", False),
    (lambda: L.MeanSquaredError(reduction="sum"), "target", "logits", False),
    (lambda: L.Huber(reduction="mean_with_sample_weight"), "target", "logits", False),
]


def _standalone(loss, y, out, logits, w=None):
    """The loss value computed without loss_and_grad, from the model output."""
    if logits and not getattr(loss, "from_logits", False):
        out = softmax(out) if loss.fused_activation == "softmax" else sigmoid(out)
    return loss(y, out, sample_weight=w)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_loss_and_grad_matches_standalone_value(backend, dtype, data, case):
    make, ykey, okey, logits = CASES[case]
    loss = make()
    y = loss.prepare_targets(data[ykey], data[okey].shape)
    out = data[okey].astype(dtype)
    grad = np.empty_like(out)
    val, g = loss.loss_and_grad(backend, y, out, sample_weight=data["w"], grad=grad,
                                logits=logits)
    assert g is grad and isinstance(val, float)
    want = _standalone(loss, data[ykey], data[okey], logits, data["w"])
    assert val == pytest.approx(want, rel=1e-5 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_gradient_by_finite_differences(data, case):
    make, ykey, okey, logits = CASES[case]
    loss = make()
    y = loss.prepare_targets(data[ykey], data[okey].shape)
    out = data[okey].copy()
    w = data["w"]
    _, g = loss.loss_and_grad(REF, y, out, sample_weight=w, logits=logits)
    h = 1e-6
    num = np.zeros_like(out)
    for idx in np.ndindex(*out.shape):
        plus, minus = out.copy(), out.copy()
        plus[idx] += h
        minus[idx] -= h
        num[idx] = (loss.loss_and_grad(REF, y, plus, sample_weight=w, logits=logits)[0]
                    - loss.loss_and_grad(REF, y, minus, sample_weight=w, logits=logits)[0]) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("make,ykey", [(L.CategoricalCrossentropy, "onehot"),
                                       (L.SparseCategoricalCrossentropy, "labels"),
                                       (L.BinaryCrossentropy, "bin_y")])
def test_fused_logits_path_equals_probability_path(backend, data, make, ykey):
    loss = make()
    z = data["logits"]
    act = loss.fused_activation
    probs = backend.activation_forward(z, act)
    y = loss.prepare_targets(data[ykey], z.shape)
    v_fused, g_fused = loss.loss_and_grad(backend, y, z, logits=True)
    v_prob, g_prob = loss.loss_and_grad(backend, y, probs)
    assert v_fused == pytest.approx(v_prob, rel=1e-10)
    # chain rule through the activation gives the logits gradient
    g_chain = backend.activation_backward(g_prob, probs, act)
    np.testing.assert_allclose(g_fused, g_chain, rtol=1e-8, atol=1e-12)


def test_reduction_sum_scales_loss_and_grad(data):
    y = data["target"]
    a_val, a_g = L.MeanSquaredError().loss_and_grad(REF, y, data["logits"])
    b_val, b_g = L.MeanSquaredError(reduction="sum").loss_and_grad(REF, y, data["logits"])
    assert b_val == pytest.approx(a_val * data["n"])
    np.testing.assert_allclose(b_g, a_g * data["n"])
    with pytest.raises(ValueError, match="reduction"):
        L.MeanSquaredError(reduction="none").loss_and_grad(REF, y, data["logits"])


def test_fused_activation_attribute():
    assert L.CategoricalCrossentropy().fused_activation == "softmax"
    assert L.SparseCategoricalCrossentropy().fused_activation == "softmax"
    assert L.BinaryCrossentropy().fused_activation == "sigmoid"
    assert L.MeanSquaredError().fused_activation is None
    assert L.MeanAbsoluteError().fused_activation is None
    with pytest.raises(ValueError, match="logits"):
        L.MeanSquaredError().loss_and_grad(REF, np.zeros((2, 1)), np.zeros((2, 1)), logits=True)


# --------------------------------------------------------------------------
# prepare_targets
# --------------------------------------------------------------------------
def test_prepare_targets_sparse():
    loss = L.SparseCategoricalCrossentropy()
    y = loss.prepare_targets(np.array([0, 2, 1], dtype=np.uint8), (None, 3))
    assert y.dtype.kind == "i" and y.shape == (3,)
    np.testing.assert_array_equal(loss.prepare_targets([[0], [2]], (None, 3)), [0, 2])
    np.testing.assert_array_equal(loss.prepare_targets([0.0, 2.0], (None, 3)), [0, 2])
    with pytest.raises(ValueError, match=r"SparseCategoricalCrossentropy.*\(4, 3\).*one-hot"):
        loss.prepare_targets(np.eye(3)[[0, 1, 2, 0]], (None, 3))
    with pytest.raises(ValueError, match=r"SparseCategoricalCrossentropy.*\[0, 3\).*\[0, 5\]"):
        loss.prepare_targets([0, 5], (None, 3))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        loss.prepare_targets([-1, 1], (None, 3))
    with pytest.raises(ValueError, match="non-integer"):
        loss.prepare_targets([0.5, 1.0], (None, 3))
    with pytest.raises(TypeError, match="dtype"):
        loss.prepare_targets(np.array(["a", "b"]), (None, 3))


def test_prepare_targets_dense():
    cce = L.CategoricalCrossentropy()
    y = cce.prepare_targets(np.eye(3, dtype=np.int64)[[0, 1]], (None, 3))
    assert y.dtype.kind == "f" and y.shape == (2, 3)
    with pytest.raises(ValueError, match=r"CategoricalCrossentropy.*\(4,\).*\(None, 3\).*sparse"):
        cce.prepare_targets(np.array([0, 1, 2, 1]), (None, 3))
    mse = L.MeanSquaredError()
    assert mse.prepare_targets([1.0, 2.0], (None, 1)).shape == (2, 1)
    assert mse.prepare_targets([[1.0], [2.0]], (None, 1)).shape == (2, 1)
    with pytest.raises(ValueError, match=r"MeanSquaredError.*\(2, 3\).*\(None, 2\)"):
        mse.prepare_targets(np.zeros((2, 3)), (None, 2))
    bce = L.BinaryCrossentropy()
    assert bce.prepare_targets(np.array([0, 1, 1]), (None, 1)).shape == (3, 1)
    with pytest.raises(ValueError, match=r"BinaryCrossentropy.*\(3,\).*\(None, 2\)"):
        bce.prepare_targets(np.array([0, 1, 1]), (None, 2))


# --------------------------------------------------------------------------
# lookup and config
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name,cls", [
    ("mse", L.MeanSquaredError), ("mean_squared_error", L.MeanSquaredError),
    ("mae", L.MeanAbsoluteError), ("mean_absolute_error", L.MeanAbsoluteError),
    ("binary_crossentropy", L.BinaryCrossentropy),
    ("categorical_crossentropy", L.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", L.SparseCategoricalCrossentropy),
    ("SparseCategoricalCrossentropy", L.SparseCategoricalCrossentropy),
    ("MSE", L.MeanSquaredError), ("huber", L.Huber), ("Huber", L.Huber),
    ("log_cosh", L.LogCosh), ("kl_divergence", L.KLDivergence), ("kld", L.KLDivergence),
    ("KLD", L.KLDivergence), ("hinge", L.Hinge), ("squared_hinge", L.SquaredHinge),
    ("categorical_hinge", L.CategoricalHinge), ("poisson", L.Poisson),
    ("mape", L.MeanAbsolutePercentageError), ("MAPE", L.MeanAbsolutePercentageError),
    ("mean_absolute_percentage_error", L.MeanAbsolutePercentageError),
    ("msle", L.MeanSquaredLogarithmicError),
    ("mean_squared_logarithmic_error", L.MeanSquaredLogarithmicError),
    ("cosine_similarity", L.CosineSimilarity),
    ("binary_focal_crossentropy", L.BinaryFocalCrossentropy),
    ("categorical_focal_crossentropy", L.CategoricalFocalCrossentropy)])
def test_get_by_name(name, cls):
    assert type(L.get(name)) is cls


def test_get_other_identifiers():
    inst = L.BinaryCrossentropy(from_logits=True)
    assert L.get(inst) is inst
    assert type(L.get(L.CategoricalCrossentropy)) is L.CategoricalCrossentropy
    assert type(L.get(L.mean_squared_error)) is L.MeanSquaredError
    cfg = L.serialize(L.CategoricalCrossentropy(label_smoothing=0.1, from_logits=True))
    back = L.get(cfg)
    assert back.label_smoothing == 0.1 and back.from_logits is True
    assert back.get_config() == cfg["config"]
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        L.get("cross_entropy_please")
    wrapped = L.get(lambda y, p: y - p)  # a function of (y_true, y_pred): the tape's gradient
    assert isinstance(wrapped, L.LossFunctionWrapper) and wrapped.name == "<lambda>"


def test_config_round_trip_all():
    for cls in L._CLASSES.values():
        loss = cls()
        again = cls.from_config(loss.get_config())
        assert again.get_config() == loss.get_config()
        assert again.name == loss.name


ARGUMENT_ERRORS = [
    (ValueError, "label_smoothing", lambda: L.BinaryCrossentropy(label_smoothing=1.5)),
    (ValueError, "reduction", lambda: L.MeanSquaredError(reduction="median")),
    (ValueError, "axis", lambda: L.CategoricalCrossentropy(axis=0)),
    (ValueError, "delta", lambda: L.Huber(delta=-1.0)),
    (ValueError, "gamma", lambda: L.BinaryFocalCrossentropy(gamma=-2.0)),
    (ValueError, "alpha", lambda: L.BinaryFocalCrossentropy(alpha=1.5)),
    (TypeError, "alpha", lambda: L.CategoricalFocalCrossentropy(alpha="high")),
    (ValueError, "axis", lambda: L.CosineSimilarity(axis=0)),
    (ValueError, "targets of shape",
     lambda: L.Huber().loss_and_grad(REF, np.zeros((3, 2)), np.zeros((3, 4)))),
    (ValueError, "does not match", lambda: L.Huber()(np.zeros((3, 2)), np.zeros((3, 4)))),
]


@pytest.mark.parametrize("exc,text,call", ARGUMENT_ERRORS)
def test_argument_errors(exc, text, call):
    with pytest.raises(exc, match=text):
        call()
