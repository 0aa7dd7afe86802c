"""Losses and metrics against Keras 3 itself on the same inputs (skipped without keras).

Keras runs on the torch backend (``KERAS_BACKEND=torch`` is set here unless already set)
in float32, so values agree to float32 precision. The inputs keep away from Keras's
clips and thresholds, where float32 and float64 can round to different sides.
"""
import os
import re
import zlib

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import pynn.losses as L  # noqa: E402
import pynn.metrics as M  # noqa: E402

pytestmark = [pytest.mark.skipif(not keras.__version__.startswith("3."),
                                 reason="compares with Keras 3"),
              # Keras's torch backend and NumPy 2 (__array__ without copy=): not ours
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

RTOL, ATOL = 2e-5, 1e-6
#: Keras computes the focal losses in float32 and raises (1 - p_t) to gamma: its rounding,
#: amplified, reached 2.1e-5 relative on a loss of 8.2 (gamma 3, from logits)
FOCAL_RTOL = 1e-4


def _seed(*parts):
    """A seed that is the same in every process (``hash`` of a str is salted per
    process, which made the inputs, and so the tests, change from run to run)."""
    return zlib.crc32(repr(parts).encode())


def _f32(*arrays):
    return [None if a is None else np.asarray(a, dtype=np.float32) for a in arrays]


def _inputs(kind, rng, n, k):
    if kind == "regression":
        return rng.normal(size=(n, k)), rng.normal(size=(n, k)) * 2.0
    if kind == "positive":
        return rng.random((n, k)) * 3.0, rng.random((n, k)) * 3.0 + 0.2
    if kind == "binary":
        return (rng.random((n, k)) > 0.5) * 1.0, rng.uniform(0.02, 0.98, (n, k))
    if kind == "binary_logits":
        return (rng.random((n, k)) > 0.5) * 1.0, rng.normal(size=(n, k)) * 3.0
    if kind == "signs":
        return np.where(rng.random((n, k)) > 0.5, 1.0, -1.0), rng.normal(size=(n, k))
    if kind == "onehot":
        return np.eye(k)[rng.integers(0, k, n)], rng.dirichlet(np.ones(k) * 2.0, n)
    if kind == "onehot_logits":
        return np.eye(k)[rng.integers(0, k, n)], rng.normal(size=(n, k)) * 2.0
    if kind == "distributions":
        return rng.dirichlet(np.ones(k) * 2.0, n), rng.dirichlet(np.ones(k) * 2.0, n)
    raise AssertionError(kind)


LOSS_CASES = [
    ("Huber", {}, "regression"),
    ("Huber", {"delta": 0.4}, "regression"),
    ("LogCosh", {}, "regression"),
    ("KLDivergence", {}, "distributions"),
    ("Hinge", {}, "binary_logits"),
    ("Hinge", {}, "signs"),
    ("SquaredHinge", {}, "binary_logits"),
    ("SquaredHinge", {}, "signs"),
    ("CategoricalHinge", {}, "onehot_logits"),
    ("Poisson", {}, "positive"),
    ("MeanAbsolutePercentageError", {}, "regression"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("CosineSimilarity", {}, "regression"),
    ("BinaryFocalCrossentropy", {}, "binary"),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5,
                                 "label_smoothing": 0.1}, "binary"),
    ("BinaryFocalCrossentropy", {"from_logits": True, "gamma": 3.0}, "binary_logits"),
    ("CategoricalFocalCrossentropy", {}, "onehot"),
    ("CategoricalFocalCrossentropy", {"alpha": 0.6, "gamma": 0.5, "label_smoothing": 0.2},
     "onehot"),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, "onehot_logits"),
    ("MeanSquaredError", {}, "regression"),
    ("MeanAbsoluteError", {}, "regression"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, "binary"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot"),
]


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::SyntaxWarning")
@pytest.mark.parametrize("name,kwargs,kind", LOSS_CASES)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight",
                                       "none"])
@pytest.mark.parametrize("shape", [(7, 3), (1, 5), (4, 1)])
def test_loss_equals_keras(name, kwargs, kind, reduction, shape):
    rng = np.random.default_rng(_seed(name, kind, shape))
    y, p = _f32(*_inputs(kind, rng, *shape))
    w = _f32(rng.random(shape[0]) + 0.1)[0]
    ours = getattr(L, name)(reduction=reduction, **kwargs)
    theirs = getattr(keras.losses, name)(reduction=reduction, **kwargs)
    for sw in (None, w):
        np.testing.assert_allclose(ours(y, p, sample_weight=sw),
                                   np.asarray(theirs(y, p, sample_weight=sw)),
                                   rtol=FOCAL_RTOL if "Focal" in name else RTOL, atol=ATOL,
                                   err_msg=f"{name} {kwargs} {sw}")
    assert ours.name == theirs.name


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name,kwargs,kind", LOSS_CASES)
def test_loss_gradient_equals_torch_autograd(name, kwargs, kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    y, p = _inputs(kind, rng, 6, 4)
    w = rng.random(6) + 0.1
    from pynn.backends import Backend
    loss = getattr(L, name)(**kwargs)
    value, grad = loss.loss_and_grad(Backend(), loss.prepare_targets(y, p.shape),
                                     np.ascontiguousarray(p), sample_weight=w)
    tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    with torch.autograd.set_grad_enabled(True):
        out = getattr(keras.losses, name)(dtype="float64", **kwargs)(
            torch.tensor(y, dtype=torch.float64), tp,
            sample_weight=torch.tensor(w, dtype=torch.float64))
        out.backward()
    # Keras reduces in float32 here; the float64 finite-difference checks are in test_losses
    assert value == pytest.approx(float(out.detach()), rel=1e-6)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name,kind", [
    ("huber", "regression"), ("log_cosh", "regression"), ("kl_divergence", "distributions"),
    ("kld", "distributions"), ("hinge", "signs"), ("squared_hinge", "signs"),
    ("categorical_hinge", "onehot"), ("poisson", "positive"), ("mape", "regression"),
    ("msle", "positive"), ("cosine_similarity", "regression"),
    ("binary_focal_crossentropy", "binary"), ("categorical_focal_crossentropy", "onehot"),
    ("mean_absolute_percentage_error", "regression"),
    ("mean_squared_logarithmic_error", "positive")])
def test_loss_string_names_resolve_as_keras(name, kind):
    y, p = _f32(*_inputs(kind, np.random.default_rng(0), 5, 3))
    np.testing.assert_allclose(L.get(name)(y, p), np.mean(np.asarray(keras.losses.get(name)(y, p))),
                               rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------- metrics
def _metric_inputs(kind, rng, n, k):
    if kind == "binary":
        # scores on a 1/1000 grid offset by 1/2000: never on one of Keras's thresholds
        return ((rng.random((n, k)) > 0.5) * 1.0,
                (rng.integers(0, 1000, (n, k)) + 0.5) / 1000.0)
    if kind == "binary_logits":
        return (rng.random((n, k)) > 0.5) * 1.0, rng.normal(size=(n, k)) * 2.0
    if kind == "onehot":
        return np.eye(k)[rng.integers(0, k, n)], rng.dirichlet(np.ones(k), n)
    if kind == "sparse":
        return rng.integers(0, k, n), rng.dirichlet(np.ones(k), n)
    if kind == "regression":
        y = rng.normal(size=(n, k))
        return y, y + rng.normal(size=(n, k)) * 0.7
    raise AssertionError(kind)


METRIC_CASES = [
    ("Precision", {}, "binary"),
    ("Precision", {"thresholds": [0.1, 0.45, 0.8]}, "binary"),
    ("Precision", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, "binary"),
    ("Precision", {"top_k": 2}, "binary"),
    ("Precision", {"class_id": 1}, "binary"),
    ("Precision", {"top_k": 2, "class_id": 2, "thresholds": 0.3}, "binary"),
    ("Recall", {}, "binary"),
    ("Recall", {"thresholds": [0.3, 0.6]}, "binary"),
    ("Recall", {"top_k": 1}, "binary"),
    ("Recall", {"class_id": 0}, "binary"),
    ("TruePositives", {}, "binary"),
    ("FalsePositives", {"thresholds": [0.2, 0.7]}, "binary"),
    ("TrueNegatives", {}, "binary"),
    ("FalseNegatives", {"thresholds": 0.3}, "binary"),
    ("F1Score", {}, "onehot"),
    ("F1Score", {"average": "micro"}, "binary"),
    ("F1Score", {"average": "macro", "threshold": 0.4}, "binary"),
    ("F1Score", {"average": "weighted"}, "onehot"),
    ("FBetaScore", {"beta": 2.0}, "onehot"),
    ("FBetaScore", {"beta": 0.5, "threshold": 0.5, "average": "weighted"}, "binary"),
    ("AUC", {}, "binary"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
    ("AUC", {"summation_method": "minoring", "num_thresholds": 11}, "binary"),
    ("AUC", {"curve": "PRGAIN"}, "binary"),
    ("AUC", {"thresholds": [0.15, 0.55, 0.9]}, "binary"),
    ("AUC", {"multi_label": True}, "binary"),
    ("AUC", {"multi_label": True, "curve": "PR", "label_weights": [0.5, 2.0, 1.0]}, "binary"),
    ("AUC", {"label_weights": [0.5, 2.0, 1.0]}, "binary"),
    ("AUC", {"from_logits": True}, "binary_logits"),
    ("TopKCategoricalAccuracy", {"k": 2}, "onehot"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("SparseTopKCategoricalAccuracy", {"k": 1}, "sparse"),
    ("RootMeanSquaredError", {}, "regression"),
    ("MeanAbsolutePercentageError", {}, "regression"),
    ("R2Score", {}, "regression"),
    ("R2Score", {"class_aggregation": None}, "regression"),
    ("R2Score", {"class_aggregation": "variance_weighted_average", "num_regressors": 2},
     "regression"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary_logits"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.2}, "onehot"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse"),
    ("MeanSquaredLogarithmicError", {}, "regression"),
    ("CosineSimilarity", {}, "regression"),
    ("LogCoshError", {}, "regression"),
    ("Hinge", {}, "binary_logits"),
    ("SquaredHinge", {}, "binary_logits"),
    ("CategoricalHinge", {}, "onehot"),
    ("KLDivergence", {}, "onehot"),
    ("Poisson", {}, "binary"),
]


@pytest.mark.parametrize("name,kwargs,kind", METRIC_CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_metric_equals_keras_over_batches(name, kwargs, kind, weighted):
    rng = np.random.default_rng(_seed(name, kind, weighted))
    n, k = 23, 3
    y, p = _metric_inputs(kind, rng, n, k)
    y = y.astype(np.int32) if kind == "sparse" else y.astype(np.float32)
    p = p.astype(np.float32)
    w = (rng.random(n) + 0.1).astype(np.float32) if weighted else None
    ours, theirs = getattr(M, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    for lo, hi in ((0, 10), (10, 23)):  # two batches: the state accumulates
        sw = None if w is None else w[lo:hi]
        ours.update_state(y[lo:hi], p[lo:hi], sample_weight=sw)
        theirs.update_state(y[lo:hi], p[lo:hi], sample_weight=sw)
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=1e-5,
                               atol=1e-6, err_msg=f"{name} {kwargs}")
    assert ours.name == re.sub(r"_\d+$", "", theirs.name)  # Keras numbers repeated names
    ours.reset_state()
    theirs.reset_state()
    ours.update_state(y[:5], p[:5])
    theirs.update_state(y[:5], p[:5])
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name", ["auc", "true_positives", "false_negatives", "precision",
                                  "recall", "f1_score", "r2_score", "root_mean_squared_error",
                                  "mape", "bce", "binary_crossentropy", "msle",
                                  "log_cosh_error", "cosine_similarity", "kl_divergence",
                                  "top_k_categorical_accuracy"])
def test_metric_string_names_resolve_as_keras(name):
    assert type(M.get(name)).__name__ == type(keras.metrics.get(name)).__name__


EDGE_CASES = [
    # (loss, kwargs, y_true, y_pred): clips, zeros and exact boundaries
    ("Huber", {"delta": 1.0}, [[0.0, 0.0, 1.0]], [[1.0, -1.0, 1.0]]),  # |e| == delta
    ("MeanAbsolutePercentageError", {}, [[0.0, 1.0]], [[0.5, 1.0]]),  # y_true 0 -> / 1e-7
    ("MeanSquaredLogarithmicError", {}, [[-2.0, 0.0]], [[-5.0, 3.0]]),  # clipped below 1e-7
    ("CosineSimilarity", {}, [[0.0, 0.0], [1.0, 0.0]], [[1.0, 2.0], [0.0, 0.0]]),  # zeros
    ("KLDivergence", {}, [[0.0, 1.0]], [[0.0, 1.0]]),  # both clipped to 1e-7
    ("KLDivergence", {}, [[0.5, 0.5]], [[1.5, -0.5]]),  # predictions outside [0, 1]
    ("Poisson", {}, [[0.0, 2.0]], [[0.0, 1.0]]),  # log(0 + 1e-7)
    ("Hinge", {}, [[0.0, 1.0]], [[-1.0, 1.0]]),  # margin exactly 0
    ("Hinge", {}, [[0.5, 1.0]], [[-1.0, 1.0]]),  # not all 0/1: used as given
    ("CategoricalHinge", {}, [[0.0, 1.0, 0.0]], [[0.5, 0.5, 0.5]]),  # ties
    ("BinaryFocalCrossentropy", {}, [[1.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]]),  # p at 0 and 1
    ("BinaryFocalCrossentropy", {"from_logits": True}, [[1.0, 0.0]], [[40.0, -40.0]]),
    ("CategoricalFocalCrossentropy", {}, [[0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0]]),
    ("CategoricalFocalCrossentropy", {"gamma": 0.0}, [[0.0, 1.0]], [[3.0, 1.0]]),  # rescaled
]


@pytest.mark.parametrize("name,kwargs,y,p", EDGE_CASES)
def test_loss_edge_values_equal_keras(name, kwargs, y, p):
    y, p = _f32(y, p)
    ours = getattr(L, name)(reduction="none", **kwargs)(y, p)
    theirs = np.asarray(getattr(keras.losses, name)(reduction="none", **kwargs)(y, p))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", [
    ("Precision", {}), ("Recall", {"thresholds": [0.0, 0.5, 1.0]}), ("AUC", {}),
    ("AUC", {"curve": "PR", "num_thresholds": 5}), ("AUC", {"thresholds": [0.0, 0.5, 1.0]}),
    ("TruePositives", {"thresholds": [0.0, 0.5, 1.0]}), ("F1Score", {"threshold": 0.5}),
    ("FalsePositives", {})])
def test_metric_edge_values_equal_keras(name, kwargs):
    # predictions on the thresholds, at 0 and 1 and outside [0, 1]; labels other than 0/1
    y = np.array([[1, 0, 1], [0, 1, 2], [1, 1, 0], [0, 0, 0]], dtype=np.float32)
    p = np.array([[0.5, 0.0, 1.0], [1.2, -0.1, 0.5], [0.25, 0.75, 0.5], [1.0, 0.0, 0.5]],
                 dtype=np.float32)
    ours, theirs = getattr(M, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    ours.update_state(y, p)
    theirs.update_state(y, p)
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=1e-5,
                               atol=1e-6)


# ------------------------------------------------------------------------- whole models
_REGRESSION_METRICS = ["mape", "root_mean_squared_error", "r2_score", "log_cosh_error"]
_CLASS_METRICS = ["auc", "precision", "recall", "f1_score", "true_positives"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("loss,activation,kind,metrics", [
    ("huber", "linear", "regression", _REGRESSION_METRICS),
    ("log_cosh", "linear", "regression", _REGRESSION_METRICS),
    ("mape", "linear", "regression", _REGRESSION_METRICS),
    ("msle", "linear", "positive", _REGRESSION_METRICS),
    ("cosine_similarity", "linear", "regression", _REGRESSION_METRICS),
    ("poisson", "sigmoid", "positive", _REGRESSION_METRICS),
    ("hinge", "tanh", "signs", _REGRESSION_METRICS),
    ("squared_hinge", "linear", "binary", _CLASS_METRICS),
    ("categorical_hinge", "linear", "onehot", _CLASS_METRICS),
    ("kl_divergence", "softmax", "distributions", _CLASS_METRICS),
    ("binary_focal_crossentropy", "sigmoid", "binary", _CLASS_METRICS + ["bce"]),
    ("categorical_focal_crossentropy", "softmax", "onehot",
     _CLASS_METRICS + ["categorical_crossentropy"]),
])
def test_fit_equals_keras(loss, activation, kind, metrics):
    """The same Dense model, weights, data order and sample weights trained by Keras and by
    pynn: the per-epoch losses and metrics and the final weights agree (float32)."""
    rng = np.random.default_rng(0)
    n, d, k = 48, 4, 3
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = _f32(_inputs(kind, rng, n, k)[0])[0]
    w = (rng.random(n) + 0.5).astype(np.float32)
    weights = [(rng.normal(size=(d, k)) * 0.5).astype(np.float32), np.zeros(k, np.float32)]
    import pynn
    histories, finals = [], []
    for lib, opt in ((keras, keras.optimizers.SGD(0.1)), (pynn, pynn.optimizers.SGD(0.1))):
        model = lib.Sequential([lib.layers.Input((d,)),
                                lib.layers.Dense(k, activation=activation)])
        model.compile(optimizer=opt, loss=loss, metrics=metrics)
        model.set_weights(weights)
        hist = model.fit(x, y, sample_weight=w, batch_size=16, epochs=2, shuffle=False,
                         verbose=0).history
        histories.append(hist)
        finals.append(model.get_weights())
    for key, values in histories[0].items():
        np.testing.assert_allclose(np.asarray(histories[1][key], dtype=np.float64),
                                   np.asarray(values, dtype=np.float64), rtol=2e-5,
                                   atol=1e-5, err_msg=key)
    for ours, theirs in zip(finals[1], finals[0]):  # MAPE's steps are large: 2e-5 absolute
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["Huber", "LogCosh", "Poisson", "MeanAbsolutePercentageError",
                                  "MeanSquaredLogarithmicError", "Hinge", "SquaredHinge",
                                  "BinaryFocalCrossentropy"])
def test_loss_rank_mismatch_and_column_weights_equal_keras(name):
    # targets (n,) against predictions (n, 1), weights (n, 1): Keras squeezes/expands
    rng = np.random.default_rng(3)
    y = (rng.random(6) > 0.5).astype(np.float32)
    p = rng.uniform(0.05, 0.95, (6, 1)).astype(np.float32)
    w = (rng.random((6, 1)) + 0.1).astype(np.float32)
    for reduction in ("sum_over_batch_size", "none"):
        ours = getattr(L, name)(reduction=reduction)(y, p, sample_weight=w)
        theirs = getattr(keras.losses, name)(reduction=reduction)(y, p, sample_weight=w)
        np.testing.assert_allclose(np.reshape(ours, -1), np.reshape(np.asarray(theirs), -1),
                                   rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["Precision", "Recall", "AUC", "TruePositives",
                                  "RootMeanSquaredError", "R2Score"])
def test_metric_rank_mismatch_equals_keras(name):
    rng = np.random.default_rng(4)
    y = (rng.random(9) > 0.5).astype(np.float32)
    p = ((rng.integers(0, 1000, (9, 1)) + 0.5) / 1000).astype(np.float32)
    w = (rng.random(9) + 0.1).astype(np.float32)
    ours, theirs = getattr(M, name)(), getattr(keras.metrics, name)()
    ours.update_state(y, p, sample_weight=w)
    theirs.update_state(y, p, sample_weight=w)
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=1e-5,
                               atol=1e-6)
