"""Saving and loading custom code (issue 21): a subclassed model with ``get_config``
round-trips through ``.pynn`` and ``.keras`` with ``custom_objects`` or the
registration decorator; an unregistered class is refused by name, and nothing a file
names is ever imported."""
import json
import sys
import zipfile

import numpy as np
import pytest

import pynn
from pynn import layers as L
from pynn import ops
from pynn.models import load_model
from pynn.saving import register_keras_serializable


class Net(pynn.Model):
    def __init__(self, hidden=6, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.fc1 = L.Dense(hidden)
        self.fc2 = L.Dense(2)

    def call(self, x):
        return self.fc2(ops.relu(self.fc1(x)))

    def get_config(self):
        return {"hidden": self.hidden, "name": self.name}


@register_keras_serializable(package="tests")
class RegisteredNet(Net):
    pass


def trained(cls):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 4)), rng.standard_normal((10, 2))
    m = cls(hidden=5)
    m.compile("adam", "mse")
    m.fit(x, y, epochs=2, verbose=0)
    return m, x


@pytest.mark.parametrize("suffix", [".pynn", ".keras"])
def test_subclassed_model_round_trips_with_custom_objects(tmp_path, suffix):
    m, x = trained(Net)
    path = tmp_path / f"m{suffix}"
    m.save(path)
    back = load_model(path, custom_objects={"Net": Net})
    assert type(back).__name__ == "Net" and back.hidden == 5
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    assert back.optimizer is not None and back.loss is not None


@pytest.mark.parametrize("suffix", [".pynn", ".keras"])
def test_registered_model_loads_without_custom_objects(tmp_path, suffix):
    m, x = trained(RegisteredNet)
    m.save(tmp_path / f"m{suffix}")
    back = load_model(tmp_path / f"m{suffix}")
    assert isinstance(back, RegisteredNet)
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))


def _edit_module(path, module):
    """Rewrite a .keras file so its config names ``module`` for the model class."""
    with zipfile.ZipFile(path) as zf:
        entries = {i.filename: zf.read(i.filename) for i in zf.infolist()}
    cfg = json.loads(entries["config.json"])
    cfg["module"] = module
    entries["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("suffix", [".pynn", ".keras"])
def test_unregistered_class_is_named_and_nothing_is_imported(tmp_path, suffix):
    m, _ = trained(Net)
    path = tmp_path / f"m{suffix}"
    m.save(path)
    module = "pynn_test_never_imported_xyz"
    if suffix == ".keras":
        _edit_module(path, module)
    with pytest.raises(ValueError, match=r"'Net'.*custom_objects.*register_keras_serializable"):
        load_model(path)
    assert module not in sys.modules


def test_registration_refuses_a_second_class_under_one_name():
    with pytest.raises(ValueError, match="already registered"):
        register_keras_serializable()(type("RegisteredNet", (Net,), {}))
    with pytest.raises(TypeError, match="decorates a class"):
        register_keras_serializable()(lambda: None)
