"""pynn.utils.to_categorical, normalize and set_random_seed (issue 18): Keras 3's results
(compared with Keras itself where installed), and bad input."""
import random

import numpy as np
import pytest

import pynn
from pynn.layers import Dense, Dropout, GaussianNoise, Input
from pynn.models import Sequential
from pynn.utils import normalize, set_random_seed, to_categorical

from helpers import import_keras

LABELS = [
    ([0, 1, 2, 3], 4),
    ([2, 0, 1], None),
    (np.array([[1], [0], [2]]), None),           # a trailing axis of 1 is dropped
    (np.array([[1, 0], [3, 2]], np.int32), 5),   # any shape: one-hot on a new last axis
    (np.array([1.0, 0.0, 2.0]), 0),              # whole floats; num_classes=0 -> inferred
    (np.array([], np.int64), 3),
]


@pytest.mark.parametrize("x,num_classes", LABELS, ids=[str(i) for i in range(len(LABELS))])
def test_to_categorical_equals_keras(x, num_classes):
    keras = import_keras()
    want = keras.utils.to_categorical(x, num_classes=num_classes)
    got = to_categorical(x, num_classes=num_classes)
    assert got.dtype == want.dtype == np.float64
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_to_categorical_by_hand():
    np.testing.assert_array_equal(to_categorical([1, 0, 2], 3),
                                  [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert to_categorical(np.zeros((2, 3, 1), int), 4).shape == (2, 3, 4)


def test_to_categorical_bad_input():
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 3\) for num_classes=3; "
                                         r"labels of shape \(3,\) hold -1"):
        to_categorical([0, -1, 2], 3)
    with pytest.raises(ValueError, match=r"labels of shape \(2,\) hold 3"):
        to_categorical([0, 3], 3)
    with pytest.raises(ValueError, match=r"class labels must be whole numbers, got 1.5"):
        to_categorical([0.0, 1.5])
    with pytest.raises(ValueError, match=r"got nan"):
        to_categorical([0.0, np.nan])
    with pytest.raises(ValueError, match=r"cannot infer num_classes from empty labels"):
        to_categorical([])
    with pytest.raises(ValueError, match=r"num_classes must be a non-negative int or None, "
                                         r"got 2.5"):
        to_categorical([0, 1], 2.5)
    with pytest.raises(TypeError, match=r"expected integer class labels, got dtype <U1"):
        to_categorical(["a", "b"])


ARRAYS = [
    (np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), -1, 2),
    (np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), 1, 2),   # a zero row stays zero
    (np.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]]), -1, 1),
    (np.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]]), -1, np.inf),
    (np.arange(24, dtype=np.float32).reshape(2, 3, 4), 1, 2),
    (np.array([[3, 4], [6, 8]]), -1, 2),                     # integers -> floats
    (np.array([3.0, 4.0]), -1, 2),
]


@pytest.mark.parametrize("x,axis,order", ARRAYS, ids=[str(i) for i in range(len(ARRAYS))])
def test_normalize_equals_keras(x, axis, order):
    keras = import_keras()
    want = keras.utils.normalize(x, axis=axis, order=order)
    got = normalize(x, axis=axis, order=order)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-7)


def test_normalize_axis0_by_hand():
    """Unit columns (Keras 3.15 re-inserts the norm's axis at -1 for axis=0)."""
    x = np.array([[3.0, 1.0, 0.0], [4.0, 0.0, 0.0]])
    got = normalize(x, axis=0)
    np.testing.assert_allclose(got, [[0.6, 1.0, 0.0], [0.8, 0.0, 0.0]])


def test_normalize_bad_input():
    with pytest.raises(ValueError, match=r"axis 2 is out of bounds for an array of shape "
                                         r"\(2, 2\)"):
        normalize(np.ones((2, 2)), axis=2)
    with pytest.raises(ValueError, match=r"got a scalar"):
        normalize(3.0)
    with pytest.raises(TypeError, match=r"expected a numeric array"):
        normalize(np.array(["a"]))


def _draws():
    return random.random(), np.random.random(3).tolist()


def test_set_random_seed_seeds_python_and_numpy_as_keras():
    keras = import_keras()
    keras.utils.set_random_seed(1234)
    theirs = _draws()
    set_random_seed(1234)
    assert _draws() == theirs
    set_random_seed(99)
    assert _draws() != theirs


def test_set_random_seed_makes_pynn_runs_identical():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 5)), rng.standard_normal((64, 1))

    def run(seed):
        set_random_seed(seed)
        model = Sequential([Input((5,)), Dense(8, activation="relu"), Dropout(0.3),
                            GaussianNoise(0.1), Dense(1)])
        model.compile("sgd", "mse")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return model.get_weights()

    first, again, other = run(7), run(7), run(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_set_random_seed_bad_input():
    with pytest.raises(ValueError, match=r"Expected `seed` argument to be an integer. "
                                         r"Received: seed=1.5"):
        set_random_seed(1.5)
    with pytest.raises(ValueError, match=r"Received: seed=None"):
        set_random_seed(None)
    with pytest.raises(ValueError, match=r"seed must lie in \[0, 2\*\*32\)"):
        set_random_seed(-1)


def test_utils_are_public():
    assert pynn.utils.to_categorical is to_categorical
    assert {"to_categorical", "normalize", "set_random_seed", "pad_sequences"} <= set(
        pynn.utils.__all__)
