"""pynn.metrics: streaming metrics, identifier resolution and the scikit-learn-style reports."""
import numpy as np
import pytest

from pynn import metrics as M

try:
    import sklearn.metrics as skm
except ImportError:  # pragma: no cover - the comparisons below are skipped
    skm = None

needs_sklearn = pytest.mark.skipif(skm is None, reason="scikit-learn not installed")


# --------------------------------------------------------------------------- accuracy family
def test_sparse_categorical_accuracy_hand_computed():
    m = M.SparseCategoricalAccuracy()
    probs = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    assert m(np.array([1, 0, 0, 2]), probs) == pytest.approx(0.5)
    # accumulates over batches: 2/4 then 1/1 -> 3/5
    m.update_state(np.array([[2]]), np.array([[0.0, 0.1, 0.9]]))
    assert m.result() == pytest.approx(3 / 5)
    m.reset_state()
    assert m.result() == 0.0


def test_categorical_accuracy_and_sample_weight():
    m = M.CategoricalAccuracy()
    y = np.eye(3)[[0, 1, 2]]
    p = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    m.update_state(y, p, sample_weight=np.array([1.0, 3.0, 1.0]))
    assert m.result() == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="sample_weight"):
        m.update_state(y, p, sample_weight=np.ones(2))
    with pytest.raises(ValueError, match="one-hot"):
        M.CategoricalAccuracy()(np.array([0, 1, 2]), p)


def test_binary_accuracy_threshold_and_shapes():
    y = np.array([[1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.7], [0.6], [0.4], [0.1]])
    assert M.BinaryAccuracy()(y, p) == pytest.approx(0.5)
    assert M.BinaryAccuracy(threshold=0.3)(y, p) == pytest.approx(0.75)  # [1, 1, 1, 0]
    assert M.BinaryAccuracy(threshold=0.65)(y, p) == pytest.approx(0.75)
    # (n,) targets against a (n, 1) output
    assert M.BinaryAccuracy()(y[:, 0], p) == pytest.approx(0.5)
    assert M.BinaryAccuracy(threshold=0.65).get_config()["threshold"] == 0.65


def test_accuracy_exact_match():
    assert M.Accuracy()(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == pytest.approx(0.75)


def test_regression_metrics_and_mean():
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    p = np.array([[1.5, 2.0], [2.0, 6.0]])
    assert M.MeanSquaredError()(y, p) == pytest.approx((0.25 + 0 + 1 + 4) / 4)
    assert M.MeanAbsoluteError()(y, p) == pytest.approx((0.5 + 0 + 1 + 2) / 4)
    mae = M.MeanAbsoluteError()
    mae.update_state(y, p, sample_weight=np.array([1.0, 0.0]))
    assert mae.result() == pytest.approx(0.25)
    mean = M.Mean()
    mean.update_state([1.0, 2.0, 3.0])
    mean.update_state([10.0], sample_weight=[3.0])
    assert mean.result() == pytest.approx((6 + 30) / 6)


# --------------------------------------------------------------------------- precision etc.
def test_binary_precision_recall_hand_computed():
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.55]).reshape(-1, 1)
    # predicted positive (> 0.5): 0, 1, 3, 6, 7 -> tp = 3 (0, 1, 6), fp = 2 (3, 7), fn = 1 (2)
    assert M.Precision()(y, p) == pytest.approx(3 / 5)
    assert M.Recall()(y, p) == pytest.approx(3 / 4)
    assert M.Precision(thresholds=0.65)(y, p) == pytest.approx(3 / 3)
    # several thresholds: one value each; 0.0 -> all 8 positive (tp 4, fp 4)
    np.testing.assert_allclose(M.Precision(thresholds=[0.0, 0.5, 0.65])(y, p), [0.5, 0.6, 1.0])
    np.testing.assert_allclose(M.Recall(thresholds=[0.0, 0.5, 0.65])(y, p), [1.0, 0.75, 0.75])
    # nothing predicted positive: precision 0, not NaN
    assert M.Precision()(y, np.zeros((8, 1))) == 0.0
    # weights: sample 3 (a false positive) weighted 3 -> tp 3, fp 4
    w = np.array([1, 1, 1, 3, 1, 1, 1, 1.0])
    assert M.Precision()(y, p, sample_weight=w) == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="thresholds must be in"):
        M.Precision(thresholds=[0.3, 1.5])
    with pytest.raises(ValueError, match="top_k"):
        M.Recall(top_k=0)


def test_multiclass_precision_recall_threshold_every_output():
    # Keras: each of the n*k values is thresholded at 0.5; labels are one-hot positives
    y = np.eye(3)[[0, 1, 2, 2]]
    p = np.array([[0.6, 0.7, 0.1], [0.2, 0.3, 0.1], [0.1, 0.1, 0.9], [0.55, 0.2, 0.4]])
    # positives: (0,0) tp, (0,1) fp, (2,2) tp, (3,0) fp -> tp 2, fp 2; fn: (1,1), (3,2) -> 2
    assert M.Precision()(y, p) == pytest.approx(2 / 4)
    assert M.Recall()(y, p) == pytest.approx(2 / 4)
    # integer labels are one-hot encoded: the same counts
    assert M.Precision()(np.array([0, 1, 2, 2]), p) == pytest.approx(2 / 4)
    # top_k=1: only each row's maximum is a candidate, whatever its value (columns 1, 1, 2, 0)
    # -> tp rows 1, 2; fp rows 0, 3
    assert M.Precision(top_k=1)(y, p) == pytest.approx(2 / 4)
    assert M.Recall(top_k=1)(y, p) == pytest.approx(2 / 4)
    # top_k=1 with threshold 0.5: row 1's maximum 0.3 no longer counts -> tp 1, fp 2
    assert M.Precision(top_k=1, thresholds=0.5)(y, p) == pytest.approx(1 / 3)
    # class_id=2: column 2 only -> predictions [0.1, 0.1, 0.9, 0.4] vs labels [0, 0, 1, 1]
    assert M.Precision(class_id=2)(y, p) == pytest.approx(1.0)
    assert M.Recall(class_id=2)(y, p) == pytest.approx(0.5)
    # counts
    assert M.TruePositives()(y, p) == 2.0 and M.FalsePositives()(y, p) == 2.0
    assert M.FalseNegatives()(y, p) == 2.0 and M.TrueNegatives()(y, p) == 6.0
    np.testing.assert_allclose(M.TruePositives(thresholds=[0.05, 0.5])(y, p), [4.0, 2.0])
    with pytest.raises(ValueError, match="class_id=3 is out of range"):
        M.Precision(class_id=3)(y, p)
    with pytest.raises(ValueError, match="integer labels in"):
        M.Recall()(np.array([0, 5, 1, 1]), p)


def test_f1_fbeta_keras_docstring_values():
    # the examples in Keras's f_score_metrics.py
    y = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    p = np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]])
    np.testing.assert_allclose(M.F1Score(threshold=0.5)(y, p), [0.5, 0.8, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(M.FBetaScore(beta=2.0, threshold=0.5)(y, p),
                               [0.3846154, 0.90909094, 0.8333334], rtol=1e-6)


def test_f1_averages_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    probs = np.eye(3)[pred] * 0.8 + 0.05
    # threshold None: the row maximum is the prediction
    # class 0: tp 1 fp 1 fn 1 -> F .5 ; class 1: tp 2 fp 1 fn 0 -> F .8 ; class 2: tp 1 fn 1 -> 2/3
    per = [0.5, 0.8, 2 / 3]
    np.testing.assert_allclose(M.F1Score()(y, probs), per, rtol=1e-6)
    assert M.F1Score(average="macro")(y, probs) == pytest.approx(np.mean(per), rel=1e-6)
    assert M.F1Score(average="micro")(y, probs) == pytest.approx(4 / 6, rel=1e-6)
    assert M.F1Score(average="weighted")(y, probs) == pytest.approx(np.mean(per), rel=1e-6)
    # samples 4, 5 (class 2) weighted 2: class 0 gets fp 2 -> P 1/3 R 1/2 F 0.4; class 2
    # tp 2 fn 2 -> F 2/3; supports 2, 2, 4
    w = np.array([1, 1, 1, 1, 2, 2.0])
    m = M.F1Score(average="weighted")
    m.update_state(y, probs, sample_weight=w)
    assert m.result() == pytest.approx((0.4 * 2 + 0.8 * 2 + 2 / 3 * 4) / 8, rel=1e-6)
    with pytest.raises(ValueError, match="average"):
        M.F1Score(average="samples")
    with pytest.raises(ValueError, match="beta"):
        M.FBetaScore(beta=0.0)
    with pytest.raises(ValueError, match="threshold"):
        M.F1Score(threshold=1.5)
    with pytest.raises(ValueError, match="number of classes changed"):
        m.update_state(np.eye(4), np.eye(4))


def test_auc_hand_computed():
    # 4 samples, scores 0.1 0.4 0.35 0.8, labels 0 0 1 1: 3 of the 4 (pos, neg) pairs are
    # ordered right -> exact ROC AUC 0.75; with 200 thresholds the trapezoid sum gives it
    # too (no two scores share a threshold interval)
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    assert M.AUC()(y, p) == pytest.approx(0.75, abs=1e-9)
    # 3 thresholds (-eps, 0.5, 1+eps): points (fpr, tpr) = (1, 1), (0, 0.5), (0, 0)
    # -> trapezoids 1 * (1 + 0.5) / 2 = 0.75; minoring 0.5, majoring 1.0
    assert M.AUC(num_thresholds=3)(y, p) == pytest.approx(0.75)
    assert M.AUC(num_thresholds=3, summation_method="minoring")(y, p) == pytest.approx(0.5)
    assert M.AUC(num_thresholds=3, summation_method="majoring")(y, p) == pytest.approx(1.0)
    # PR, minoring, 3 thresholds: (recall, precision) = (1, 0.5), (0.5, 1), (0, 0)
    # -> 0.5 * min(0.5, 1) + 0.5 * min(1, 0) = 0.25
    assert M.AUC(num_thresholds=3, curve="PR", summation_method="minoring")(y, p) == \
        pytest.approx(0.25)
    # perfect ranking; weights do not change it; streaming over two batches
    m = M.AUC()
    m.update_state([0, 1], [0.2, 0.9], sample_weight=[1.0, 2.0])
    m.update_state([0, 1], [0.3, 0.7])
    assert m.result() == pytest.approx(1.0)
    m.reset_state()
    assert m.result() == 0.0
    # multi_label: one curve per column, averaged (column 1 reversed -> 0)
    yy = np.array([[0, 1], [1, 0]])
    pp = np.array([[0.2, 0.3], [0.8, 0.6]])
    assert M.AUC(multi_label=True)(yy, pp) == pytest.approx(0.5)
    assert M.AUC(multi_label=True, label_weights=[3.0, 1.0])(yy, pp) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="curve"):
        M.AUC(curve="roc_auc")
    with pytest.raises(ValueError, match="summation_method"):
        M.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match="num_thresholds"):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="num_labels"):
        M.AUC(num_labels=3)
    with pytest.raises(ValueError, match="rank 2"):
        M.AUC(multi_label=True)(np.array([0, 1]), np.array([0.1, 0.2]))


def test_top_k_and_regression_metrics_hand_computed():
    p = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.6, 0.1, 0.3]])
    labels = np.array([2, 0, 1])
    # ranks of the labels: 2nd, tied 2nd (ties count), 3rd
    assert M.SparseTopKCategoricalAccuracy(k=1)(labels, p) == 0.0
    assert M.SparseTopKCategoricalAccuracy(k=2)(labels, p) == pytest.approx(2 / 3)
    assert M.TopKCategoricalAccuracy(k=2)(np.eye(3)[labels], p) == pytest.approx(2 / 3)
    assert M.TopKCategoricalAccuracy()(np.eye(3)[labels], p) == 1.0  # k=5 >= 3 classes
    sorted_ids = np.argsort(-p, axis=1, kind="stable")
    assert M.SparseTopKCategoricalAccuracy(k=1, from_sorted_ids=True)(
        labels, sorted_ids) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        M.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="labels must be in"):
        M.SparseTopKCategoricalAccuracy(k=1)(np.array([0, 3, 1]), p)
    y = np.array([[1.0], [2.0], [4.0]])
    q = np.array([[2.0], [2.0], [2.0]])
    assert M.RootMeanSquaredError()(y, q) == pytest.approx(np.sqrt(5 / 3))
    assert M.MeanAbsolutePercentageError()(y, q) == pytest.approx(100 * (1 + 0 + 0.5) / 3)
    # R2: mean 7/3, SS_tot = 16/9 + 1/9 + 25/9 = 42/9, SS_res = 5 -> 1 - 45/42
    assert M.R2Score()(y, q) == pytest.approx(1 - 45 / 42)
    r2 = M.R2Score(class_aggregation=None)
    r2.update_state(np.c_[y, 2 * y], np.c_[y, 2 * y + 1.0])
    np.testing.assert_allclose(r2.result(), [1.0, 1 - 3 / (4 * 42 / 9)])
    # adjusted: n = 3 values, p = 1 -> 1 - (1 - r2) * 2 / 1
    assert M.R2Score(num_regressors=1)(y, q) == pytest.approx(1 - (45 / 42) * 2)
    with pytest.warns(UserWarning, match="adjusted R2"):
        assert M.R2Score(num_regressors=2)(y, q) == pytest.approx(1 - 45 / 42)
    with pytest.raises(ValueError, match="class_aggregation"):
        M.R2Score(class_aggregation="mean")


def test_loss_based_metrics_hand_computed():
    import math
    # the metric is the cosine itself: parallel rows give +1 (the loss gives -1)
    assert M.CosineSimilarity()([[1.0, 1.0], [1.0, 0.0]], [[2.0, 2.0], [0.0, 1.0]]) == \
        pytest.approx(0.5)
    assert M.LogCoshError()([[0.0]], [[1.0]]) == pytest.approx(math.log(math.cosh(1.0)))
    assert M.LogCoshError().name == "logcosh"
    assert M.Hinge()([[1.0, 0.0]], [[0.3, -2.0]]) == pytest.approx(0.35)
    assert M.Poisson()([[2.0]], [[1.0]]) == pytest.approx(1.0 - 2.0 * math.log(1 + 1e-7))
    m = M.MeanSquaredLogarithmicError()
    m.update_state([[math.e - 1]], [[0.0]], sample_weight=[3.0])
    m.update_state([[1.0]], [[1.0]])
    assert m.result() == pytest.approx(3 / 4, rel=1e-6)


def test_crossentropy_metrics_hand_computed():
    import math
    assert M.BinaryCrossentropy()([[1.0], [0.0]], [[0.8], [0.4]]) == pytest.approx(
        (-math.log(0.8) - math.log(0.6)) / 2)
    assert M.CategoricalCrossentropy()([[0, 1, 0]], [[0.2, 0.7, 0.1]]) == pytest.approx(
        -math.log(0.7))
    # integer labels against a (n, k) output are one-hot encoded
    assert M.CategoricalCrossentropy()([1], [[0.2, 0.7, 0.1]]) == pytest.approx(-math.log(0.7))
    m = M.SparseCategoricalCrossentropy()
    m.update_state([1, 0], [[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]], sample_weight=[1.0, 3.0])
    assert m.result() == pytest.approx((-math.log(0.7) - 3 * math.log(0.5)) / 4)
    with pytest.raises(ValueError, match="label_smoothing"):
        M.BinaryCrossentropy(label_smoothing=2.0)
    with pytest.raises(NotImplementedError, match="ignore_class"):
        M.SparseCategoricalCrossentropy(ignore_class=0)


@pytest.mark.parametrize("name,cls", [
    ("auc", M.AUC), ("AUC", M.AUC), ("top_k_categorical_accuracy", M.TopKCategoricalAccuracy),
    ("sparse_top_k_categorical_accuracy", M.SparseTopKCategoricalAccuracy),
    ("root_mean_squared_error", M.RootMeanSquaredError), ("r2_score", M.R2Score),
    ("mape", M.MeanAbsolutePercentageError), ("bce", M.BinaryCrossentropy),
    ("binary_crossentropy", M.BinaryCrossentropy),
    ("categorical_crossentropy", M.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", M.SparseCategoricalCrossentropy),
    ("true_negatives", M.TrueNegatives), ("false_positives", M.FalsePositives),
    ("TruePositives", M.TruePositives), ("f_beta_score", M.FBetaScore)])
def test_get_new_metric_names(name, cls):
    m = M.get(name)
    assert type(m) is cls


@needs_sklearn
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_streaming_f1_matches_sklearn_over_batches(average):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    probs = rng.random((300, 5)) + np.eye(5)[y] * 0.6
    pred = probs.argmax(1)
    m = M.F1Score(average=average)
    for start in range(0, 300, 64):
        m.update_state(y[start:start + 64], probs[start:start + 64])
    assert m.result() == pytest.approx(skm.f1_score(y, pred, average=average), abs=1e-6)


# --------------------------------------------------------------------------- get()
@pytest.mark.parametrize("loss, cls", [
    ("sparse_categorical_crossentropy", M.SparseCategoricalAccuracy),
    ("categorical_crossentropy", M.CategoricalAccuracy),
    ("binary_crossentropy", M.BinaryAccuracy),
    ({"class_name": "SparseCategoricalCrossentropy", "config": {}}, M.SparseCategoricalAccuracy),
])
def test_get_accuracy_resolves_from_loss_name(loss, cls):
    m = M.get("accuracy", loss=loss)
    assert type(m) is cls and m.name == "accuracy"
    assert M.get("acc", loss=loss).name == "acc"


def test_get_accuracy_resolves_from_loss_objects():
    losses = pytest.importorskip("pynn.losses")
    assert isinstance(M.get("accuracy", loss=losses.SparseCategoricalCrossentropy()),
                      M.SparseCategoricalAccuracy)
    assert isinstance(M.get("accuracy", loss=losses.BinaryCrossentropy()), M.BinaryAccuracy)
    assert isinstance(M.get("accuracy", loss=losses.CategoricalCrossentropy), M.CategoricalAccuracy)
    assert M.get("accuracy", loss=losses.BinaryCrossentropy()).threshold == 0.5


def test_get_accuracy_other_loss_resolves_by_output_width():
    binary = M.get("accuracy", loss="mse")
    assert binary(np.array([[1.0], [0.0]]), np.array([[0.8], [0.7]])) == pytest.approx(0.5)
    assert binary.kind == "binary"
    sparse = M.get("accuracy")
    assert sparse(np.array([2, 0]), np.array([[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]])) == 0.5
    assert sparse.kind == "sparse_categorical"
    onehot = M.get("accuracy", loss="mse")
    assert onehot(np.eye(3)[[2, 0]], np.array([[0.1, 0.2, 0.7], [0.9, 0.0, 0.1]])) == 1.0
    assert onehot.kind == "categorical"


def test_get_names_instances_classes_and_errors():
    assert isinstance(M.get("mse"), M.MeanSquaredError) and M.get("mse").name == "mse"
    assert isinstance(M.get("mae"), M.MeanAbsoluteError)
    assert isinstance(M.get("precision"), M.Precision)
    assert isinstance(M.get("recall"), M.Recall)
    assert isinstance(M.get("f1_score"), M.F1Score)
    assert isinstance(M.get("true_positives"), M.TruePositives)
    with pytest.raises(ValueError, match="f_beta_score"):  # Keras's snake_case name
        M.get("fbeta_score")
    assert isinstance(M.get("f_beta_score"), M.FBetaScore)
    assert isinstance(M.get("BinaryAccuracy"), M.BinaryAccuracy)
    m = M.Recall()
    assert M.get(m) is m
    assert isinstance(M.get(M.Precision), M.Precision)
    assert M.get(None) is None

    def my_metric(y_true, y_pred):
        return np.abs(y_true - y_pred).max(axis=-1)

    wrapped = M.get(my_metric)
    assert wrapped.name == "my_metric"
    assert wrapped(np.zeros((2, 2)), np.array([[1.0, 3.0], [1.0, 1.0]])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="Unknown metric 'accuracyy'.*sparse_categorical_accuracy"):
        M.get("accuracyy")
    with pytest.raises(ValueError):
        M.get(3.5)


def test_serialize_roundtrip():
    for m in (M.BinaryAccuracy(threshold=0.3), M.F1Score(average="weighted"),
              M.Precision(class_id=2), M.Recall(thresholds=[0.2, 0.7], top_k=2),
              M.FBetaScore(beta=0.5, threshold=0.4), M.FalseNegatives(0.3), M.get("accuracy"),
              M.MeanSquaredError(name="mse"), M.AUC(curve="PR", thresholds=[0.2, 0.6]),
              M.AUC(multi_label=True, num_labels=3, label_weights=[1.0, 2.0, 0.5]),
              M.TopKCategoricalAccuracy(k=2), M.SparseTopKCategoricalAccuracy(k=3),
              M.R2Score(class_aggregation=None, num_regressors=2), M.RootMeanSquaredError(),
              M.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
              M.CategoricalCrossentropy(label_smoothing=0.2), M.MeanAbsolutePercentageError(),
              M.SparseCategoricalCrossentropy(from_logits=True), M.CosineSimilarity(),
              M.LogCoshError(), M.KLDivergence(name="kl")):
        back = M.deserialize(M.serialize(m))
        assert type(back) is type(m) and back.get_config() == m.get_config()


# --------------------------------------------------------------------------- standalone
def test_confusion_matrix_hand_computed():
    y = np.array([0, 1, 2, 2, 1, 0])
    p = np.array([0, 2, 2, 2, 1, 1])
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 2]])
    np.testing.assert_array_equal(M.confusion_matrix(y, p), expected)
    np.testing.assert_array_equal(M.confusion_matrix(y, np.eye(3)[p] * 0.9), expected)
    cm = M.confusion_matrix(y, p, num_classes=4)
    assert cm.shape == (4, 4) and cm.dtype == np.int64 and cm[3].sum() == 0
    # uint8 labels (as MNIST's) work
    np.testing.assert_array_equal(M.confusion_matrix(y.astype(np.uint8), p.astype(np.uint8)),
                                  expected)
    with pytest.raises(ValueError, match="num_classes=2"):
        M.confusion_matrix(y, p, num_classes=2)
    with pytest.raises(ValueError, match="non-integer"):
        M.confusion_matrix(y, np.array([0.2, 0.9, 0.5, 0.1, 0.3, 0.4]))
    with pytest.raises(ValueError, match="same number of samples"):
        M.confusion_matrix(y, p[:4])


def test_precision_recall_fscore_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    prec, rec, f1, support = M.precision_recall_fscore(y, p)
    np.testing.assert_allclose(prec, [0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(rec, [0.5, 1.0, 0.5])
    np.testing.assert_allclose(f1, [0.5, 0.8, 2 / 3])
    np.testing.assert_array_equal(support, [2, 2, 2])
    assert M.precision_recall_fscore(y, p, average="micro")[:3] == pytest.approx((4 / 6,) * 3)
    mp, mr, mf, ms = M.precision_recall_fscore(y, p, average="macro")
    assert (mp, mr, mf, ms) == (pytest.approx(13 / 18), pytest.approx(2 / 3),
                                pytest.approx((0.5 + 0.8 + 2 / 3) / 3), None)
    # weighted by support: 3 true 0s, 1 true 1
    wp, wr, wf, _ = M.precision_recall_fscore([0, 0, 0, 1], [0, 0, 1, 1], average="weighted")
    assert wp == pytest.approx(0.75 * 1.0 + 0.25 * 0.5)
    assert wr == pytest.approx(0.75 * 2 / 3 + 0.25 * 1.0)
    # zero division -> 0.0: class 2 is never predicted, class 3 never true
    prec, rec, f1, support = M.precision_recall_fscore([0, 2, 2], [0, 3, 0])
    np.testing.assert_allclose(prec, [0.5, 0.0, 0.0])
    np.testing.assert_allclose(rec, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(support, [1, 2, 0])
    b = M.precision_recall_fscore([1, 0, 1, 1], [1, 1, 0, 1], average="binary")
    assert b[:3] == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    with pytest.raises(ValueError, match="binary"):
        M.precision_recall_fscore(y, p, average="binary")
    with pytest.raises(ValueError, match="average"):
        M.precision_recall_fscore(y, p, average="samples")


REPORT = """\
              precision    recall  f1-score   support

           0       0.50      0.50      0.50         2
           1       0.67      1.00      0.80         2
           2       1.00      0.50      0.67         2

    accuracy                           0.67         6
   macro avg       0.72      0.67      0.66         6
weighted avg       0.72      0.67      0.66         6
"""


def test_classification_report_layout_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    assert M.classification_report(y, p) == REPORT
    named = M.classification_report(y, p, target_names=["zero", "one", "a long name"], digits=3)
    lines = named.splitlines()
    assert lines[0] == "              precision    recall  f1-score   support"
    assert lines[2] == "        zero      0.500     0.500     0.500         2"
    assert lines[4] == " a long name      1.000     0.500     0.667         2"
    assert lines[6] == "    accuracy                          0.667         6"
    # a subset of the labels: micro avg instead of accuracy
    sub = M.classification_report(y, p, labels=[0, 1])
    assert "   micro avg       0.60      0.75      0.67         4" in sub.splitlines()
    with pytest.raises(ValueError, match="target_names"):
        M.classification_report(y, p, target_names=["a", "b"])


@needs_sklearn
def test_reports_match_sklearn_on_random_labels():
    rng = np.random.default_rng(42)
    for _ in range(60):
        k = int(rng.integers(2, 8))
        n = int(rng.integers(1, 80))
        y = rng.integers(0, k, n)
        p = rng.integers(0, k, n)
        p[0] = y[0]  # >= 1 hit: scikit-learn prints float supports when nothing is correct
        for average in (None, "micro", "macro", "weighted"):
            ours = M.precision_recall_fscore(y, p, average=average)
            theirs = skm.precision_recall_fscore_support(y, p, average=average, zero_division=0)
            for a, b in zip(ours, theirs):
                if b is None:
                    assert a is None
                else:
                    np.testing.assert_allclose(a, b)
        digits = int(rng.integers(1, 5))
        assert M.classification_report(y, p, digits=digits) == \
            skm.classification_report(y, p, digits=digits, zero_division=0)
        labels = list(range(k - 1))
        assert M.classification_report(y, p, labels=labels) == \
            skm.classification_report(y, p, labels=labels, zero_division=0)
        np.testing.assert_array_equal(M.confusion_matrix(y, p, num_classes=k),
                                      skm.confusion_matrix(y, p, labels=list(range(k))))
    names = ["setosa", "versicolor", "virginica"]
    y, p = np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 2, 1])
    assert M.classification_report(y, p, target_names=names) == \
        skm.classification_report(y, p, target_names=names, zero_division=0)
    s_true, s_pred = ["cat", "dog", "cat", "bird"], ["cat", "cat", "cat", "bird"]
    assert M.classification_report(s_true, s_pred) == \
        skm.classification_report(s_true, s_pred, zero_division=0)


def test_fit_logs_per_class_f1_as_array():
    pynn = pytest.importorskip("pynn")
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4)).astype("float32"), rng.integers(0, 3, 32)
    model = pynn.Sequential([pynn.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=[M.F1Score(), "precision"])
    hist = model.fit(x, y, epochs=1, batch_size=8, verbose=0).history
    assert hist["f1_score"][0].shape == (3,) and isinstance(hist["precision"][0], float)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    ref = M.F1Score()
    ref.update_state(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(logs["f1_score"], ref.result(), rtol=1e-5)


def test_evaluate_binary_metrics_equal_standalone():
    pynn = pytest.importorskip("pynn")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=40) > 0).astype("float32")
    model = pynn.Sequential([pynn.layers.Dense(1, activation="sigmoid")], seed=0)
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=["auc", "true_positives", "binary_crossentropy", "r2_score"])
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    for name in ("auc", "true_positives", "binary_crossentropy", "r2_score"):
        m = M.get(name)
        m.update_state(y, p)
        assert logs[name] == pytest.approx(m.result(), rel=1e-5), name
