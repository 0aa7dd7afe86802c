"""Fuzzing ``load_model`` (issue 5): random and mutated bytes, and mutated configs, give
only clean exceptions: ``ValueError`` (damaged/foreign file) or ``OSError`` — never
anything else, never a crash, never unpickling. Kept to a few seconds."""
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pynn
from pynn.layers import BatchNormalization, Dense
from pynn.models import Sequential, load_model

CLEAN = (ValueError, OSError)
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    pynn.set_seed(0)
    m = Sequential([Dense(4, activation="relu", input_shape=(3,)), BatchNormalization(),
                    Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    m.fit(rng.standard_normal((8, 3)), rng.integers(0, 2, 8), epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("fuzz") / "good.pynn"
    m.save(path)
    return path, path.read_bytes()


def try_load(path, blob):
    path.write_bytes(blob)
    try:
        load_model(path)
    except CLEAN:
        return False
    return True


@FUZZ
@given(blob=st.binary(max_size=2048))
def test_random_bytes(tmp_path, blob):
    assert not try_load(tmp_path / "r.pynn", blob)


@FUZZ
@given(data=st.data())
def test_mutated_bytes(tmp_path, good_file, data):
    _, good = good_file
    blob = bytearray(good)
    n_edits = data.draw(st.integers(1, 8), label="edits")
    for _ in range(n_edits):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(len(blob) - 1, 0)))
        if kind == "flip" and blob:
            blob[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and blob:
            blob[pos] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del blob[pos:]
        elif kind == "insert":
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del blob[pos:pos + data.draw(st.integers(1, 16))]
    # either a clean refusal or (a byte the reader does not use) a loadable model
    try_load(tmp_path / "m.pynn", bytes(blob))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                    | st.floats(allow_nan=True) | st.text(max_size=12),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                         c, max_size=4),
                    max_leaves=10)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(data=st.data())
def test_mutated_config(tmp_path, good_file, data):
    """The config is not covered by the weights checksum: any JSON value anywhere."""
    path, _ = good_file
    with zipfile.ZipFile(path) as zf:
        cfg = json.loads(zf.read("config.json"))
        weights = zf.read("weights.npz")
    paths = [p for p in _paths(cfg) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths))
        parent = cfg
        try:
            for key in where[:-1]:
                parent = parent[key]
            parent[where[-1]] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue
    out = tmp_path / "c.pynn"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("weights.npz", weights)
    try:
        load_model(out)
    except CLEAN:
        pass
