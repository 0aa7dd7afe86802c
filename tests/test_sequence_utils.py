"""pad_sequences: Keras's padding/truncation rules, dtypes and errors."""
import numpy as np
import pytest

import pynn
from pynn.preprocessing.sequence import pad_sequences as legacy_pad_sequences
from pynn.utils import pad_sequences

from helpers import import_keras

SEQS = [[1], [2, 3], [4, 5, 6], [], [7, 8, 9, 10]]


def test_plain_cases():
    seqs = [[1], [2, 3], [4, 5, 6]]
    got = pad_sequences(seqs)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, value=-1),
                                  [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, padding="post"),
                                  [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2, truncating="post"),
                                  [[0, 1], [2, 3], [4, 5]])
    assert pad_sequences(seqs, maxlen=0).shape == (3, 0)
    assert pad_sequences([]).shape == (0, 0)
    np.testing.assert_array_equal(pad_sequences([[], []], maxlen=2), [[0, 0], [0, 0]])


def test_legacy_path_and_package_attribute():
    assert legacy_pad_sequences is pad_sequences
    assert pynn.utils.pad_sequences is pad_sequences
    assert pynn.preprocessing.sequence.pad_sequences is pad_sequences


def test_float_dtype_and_sample_shape():
    got = pad_sequences([[0.5, 1.5], [2.5]], dtype="float32", value=-1.0)
    np.testing.assert_array_equal(got, np.array([[0.5, 1.5], [-1.0, 2.5]], np.float32))
    assert got.dtype == np.float32
    vecs = [np.ones((2, 3)), np.full((1, 3), 2.0)]
    got = pad_sequences(vecs, dtype="float64", padding="post")
    assert got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got[1, 1], 0.0)
    np.testing.assert_array_equal(got[1, 0], 2.0)


def test_strings_need_object_dtype():
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences([["a"]], value="x")
    got = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert got.tolist() == [["a", "b"], ["<pad>", "c"]]


@pytest.mark.parametrize("kwargs, match", [
    (dict(padding="middle"), "Padding type"),
    (dict(truncating="both"), "Truncating type"),
    (dict(maxlen=-1), "maxlen"),
    (dict(maxlen=2.5), "maxlen"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pad_sequences(SEQS, **kwargs)


def test_bad_sequences():
    with pytest.raises(ValueError, match="iterable"):
        pad_sequences(5)
    with pytest.raises(ValueError, match="non-iterable"):
        pad_sequences([[1, 2], 3])
    with pytest.raises(ValueError, match="different from expected shape"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))], dtype="float32")


@pytest.mark.parametrize("maxlen", [None, 1, 3, 6])
@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("dtype, value", [("int32", 0), ("int64", -3), ("float32", 0.5)])
def test_equals_keras(maxlen, padding, truncating, dtype, value):
    import_keras()
    from keras.src.utils import sequence_utils
    kw = dict(maxlen=maxlen, padding=padding, truncating=truncating, dtype=dtype, value=value)
    want = sequence_utils.pad_sequences(SEQS, **kw)
    got = pad_sequences(SEQS, **kw)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    arrays = [np.asarray(s, np.int64) for s in SEQS]
    np.testing.assert_array_equal(pad_sequences(arrays, **kw),
                                  sequence_utils.pad_sequences(arrays, **kw))
