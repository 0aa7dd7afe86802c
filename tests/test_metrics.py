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
def test_binary_precision_recall_f1_hand_computed():
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.55]).reshape(-1, 1)
    # predicted positive: 0, 1, 3, 6, 7 -> tp = 3 (0, 1, 6), fp = 2 (3, 7), fn = 1 (2)
    assert M.Precision()(y, p) == pytest.approx(3 / 5)
    assert M.Recall()(y, p) == pytest.approx(3 / 4)
    assert M.F1Score()(y, p) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert M.Precision(thresholds=0.65)(y, p) == pytest.approx(3 / 3)
    # nothing predicted positive: precision 0, not NaN
    assert M.Precision()(y, np.zeros((8, 1))) == 0.0
    with pytest.raises(ValueError, match="thresholds"):
        M.Precision(thresholds=[0.3, 0.5])


def test_multiclass_macro_f1_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    probs = np.eye(3)[pred] * 0.8 + 0.05
    # class 0: tp 1 fp 1 fn 1 -> P .5 R .5 F .5 ; class 1: tp 2 fp 1 fn 0 -> P 2/3 R 1 F .8
    # class 2: tp 1 fp 0 fn 1 -> P 1 R .5 F 2/3
    assert M.Precision()(y, probs) == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert M.Recall()(y, probs) == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert M.F1Score()(y, probs) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert M.F1Score(average="micro")(y, probs) == pytest.approx(4 / 6)
    assert M.Recall(class_id=1)(y, probs) == pytest.approx(1.0)
    # one-hot targets give the same result
    assert M.F1Score()(np.eye(3)[y], probs) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    with pytest.raises(ValueError, match="labels must be in"):
        M.F1Score()(np.array([0, 5, 1, 1, 2, 2]), probs)
    with pytest.raises(ValueError, match="average"):
        M.F1Score(average="samples")


@needs_sklearn
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_streaming_prf_matches_sklearn_over_batches(average):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    probs = rng.random((300, 5)) + np.eye(5)[y] * 0.6
    pred = probs.argmax(1)
    for cls, fn in ((M.Precision, skm.precision_score), (M.Recall, skm.recall_score),
                    (M.F1Score, skm.f1_score)):
        m = cls(average=average)
        for start in range(0, 300, 64):
            m.update_state(y[start:start + 64], probs[start:start + 64])
        assert m.result() == pytest.approx(fn(y, pred, average=average, zero_division=0))


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
              M.Precision(class_id=2), M.get("accuracy"), M.MeanSquaredError(name="mse")):
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
