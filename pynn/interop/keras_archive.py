"""Keras 3's ``.keras`` archive and ``.weights.h5`` file, both ways.

A ``.keras`` file is a zip of ``metadata.json`` (Keras version, date), ``config.json``
(the model config in Keras's form, with its compile config) and ``model.weights.h5``
(the weights, :mod:`.keras_weights`). pynn writes what ``keras.models.load_model``
reads, and reads what Keras writes, for every layer both have.

Reading is as guarded as pynn's own format (:mod:`pynn.saving`): only regular files,
only those three entries, the JSON read up to 16 MiB however compressed, the weights
entry uncompressed (as Keras stores it) and opened in place, never read whole; in
it, only plain datasets of the declared shapes are read (links to other objects or
files, virtual and external-storage datasets are refused), each checked before it is
read. Nothing is unpickled or executed: layer classes come from pynn's registry (and
``custom_objects``). Damage of any kind is a ``ValueError`` naming the file.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import zipfile

from .. import saving as _pynn_saving
from .._files import NotRegularFileError, open_regular, replace_atomically
from . import keras_config, keras_weights

__all__ = ["save_keras_model", "load_keras_model", "save_keras_weights",
           "load_keras_weights", "is_keras_archive", "KERAS_VERSION"]

#: the Keras version pynn writes its files for (and tests them with)
KERAS_VERSION = "3.15.1"
_META, _CONFIG, _WEIGHTS = "metadata.json", "config.json", "model.weights.h5"
_ENTRIES = {_META, _CONFIG, _WEIGHTS}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading and writing Keras files needs h5py: pip install h5py (or "
                          "pip install 'pynn[keras]')") from None
    return h5py


def is_keras_archive(names):
    """Whether the zip entry ``names`` are a Keras 3 ``.keras`` archive's."""
    return _CONFIG in names and _WEIGHTS in names


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def _tensor_shapes(model):
    """``(layer name, node index, tensor index) -> (shape, dtype)`` of a graph's tensors."""
    out = {}
    layers = getattr(model, "layers", [])
    for layer in layers:
        for k, node in enumerate(layer._inbound_nodes):
            for j, t in enumerate(node.outputs):
                out[(layer.name, k, j)] = (list(t.shape), t.dtype)
        if hasattr(layer, "layers") and layer is not model:
            out.update(_tensor_shapes(layer))
    return out


def _weights_bytes(model):
    h5py = _h5py()
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        keras_weights.write_weights(model, f)
    return bio.getvalue()


def keras_model_config(model):
    """``model``'s config in Keras 3's form (what ``config.json`` holds)."""
    from ..layers import serialization
    cfg = keras_config.to_keras(serialization.serialize(model), _tensor_shapes(model))
    if getattr(model, "compiled", False):
        try:
            cc = model.get_compile_config()
            json.dumps(cc, default=_pynn_saving._json_default)
            cfg["compile_config"] = keras_config.compile_to_keras(
                json.loads(json.dumps(cc, default=_pynn_saving._json_default)))
        except (TypeError, ValueError):
            cfg["compile_config"] = None
    return cfg


def save_keras_model(model, filepath, overwrite=True):
    """Write ``model`` as a Keras 3 ``.keras`` archive (atomically)."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath!r} exists and overwrite=False")
    meta = {"keras_version": KERAS_VERSION,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "saved_by": "pynn"}
    config = keras_model_config(model)
    text = json.dumps(config, default=_pynn_saving._json_default).encode("utf-8")
    weights = _weights_bytes(model)

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(_META, json.dumps(meta))
            zf.writestr(_CONFIG, text)
            zf.writestr(_WEIGHTS, weights)
    replace_atomically(filepath, write)


def save_keras_weights(model, filepath, overwrite=True):
    """Write ``model``'s weights as Keras 3's ``.weights.h5`` (atomically)."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath!r} exists and overwrite=False")
    data = _weights_bytes(model)
    replace_atomically(filepath, lambda f: f.write(data))


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
def _open(filepath, what):
    filepath = os.fspath(filepath)
    try:
        return filepath, open_regular(filepath)
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {filepath!r}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{filepath!r} is a directory, not {what}") from None
    except NotRegularFileError as exc:
        raise ValueError(f"{filepath!r} is not a valid {what}: {exc}") from None


def _guarded(filepath, bad_prefix, fn):
    def bad(msg):
        return ValueError(f"{bad_prefix}: {msg}")
    try:
        return fn(bad)
    except ValueError:
        raise
    except (OSError, *_pynn_saving._DAMAGE) as exc:
        raise ValueError(f"{bad_prefix}: damaged file ({type(exc).__name__}: {exc})") from None


def _read_archive(f, prefix, bad):
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise bad(f"not a zip archive, or truncated ({exc})") from None
    names = [i.filename for i in zf.infolist()]
    if len(set(names)) != len(names):
        raise bad("duplicate archive entries")
    extra = set(names) - _ENTRIES
    if extra or not is_keras_archive(names):
        raise bad(f"entries {sorted(names)}; a Keras archive holds {sorted(_ENTRIES)}")
    config = _pynn_saving._read_config(zf, _CONFIG, prefix)
    if not isinstance(config, dict):
        raise bad("config.json is not an object")
    info = zf.getinfo(_WEIGHTS)
    if info.compress_type != zipfile.ZIP_STORED:
        raise bad(f"{_WEIGHTS} is compressed; Keras stores it uncompressed and pynn reads "
                  f"only that")
    return zf, config, _pynn_saving._stored_member(zf, f, info, prefix)


def model_from_keras_config(config, custom_objects, filepath):
    """A pynn model (weights not set) from a Keras model config; the architecture is
    first built shapes-only, so a config that cannot be built fails before any weight
    is allocated."""
    from ..layers import serialization
    from ..layers.layer import shapes_only
    try:
        pcfg = keras_config.from_keras(config, lambda n: serialization.get(n, custom_objects))
    except keras_config.KerasConfigError as exc:
        raise ValueError(f"{filepath!r}: {exc}") from None
    cls = serialization.get(pcfg["class_name"], custom_objects)
    mcfg = {"config": pcfg["config"], "build_config": config.get("build_config")}
    with shapes_only():
        _pynn_saving._model_from_config(cls, mcfg, custom_objects)
    return _pynn_saving._model_from_config(cls, mcfg, custom_objects)


def load_keras_model(filepath, custom_objects=None, compile=True):
    """A pynn model from a Keras 3 ``.keras`` archive (written by Keras or by pynn)."""
    filepath, f = _open(filepath, "Keras file")
    prefix = f"{filepath!r} is not a valid Keras file"

    def load(bad):
        with f:
            zf, config, span = _read_archive(f, prefix, bad)
            with zf:
                model = model_from_keras_config(config, custom_objects, filepath)
                if model.built:  # an unbuilt model (no input shape yet) has no weights
                    h5py = _h5py()
                    with h5py.File(span, "r") as h5:
                        values = keras_weights.read_weights(model, h5, bad)
                    model.set_weights(values)
                cc = config.get("compile_config")
                if compile and cc:
                    _compile(model, cc, filepath)
                return model
    return _guarded(filepath, prefix, load)


def _compile(model, cc, filepath):
    import warnings
    try:
        model.compile(**keras_config.compile_from_keras(cc))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        warnings.warn(f"{filepath!r}: the model's compile config could not be used ({exc}); "
                      f"the model is loaded uncompiled", stacklevel=4)


def load_keras_weights(model, filepath):
    """Set ``model``'s weights from a Keras 3 ``.weights.h5`` file."""
    filepath, f = _open(filepath, "Keras weights file")
    prefix = f"{filepath!r} is not a valid Keras weights file"
    if not model.built:
        raise ValueError(f"load_weights: model {model.name!r} is not built; build it (or give "
                         f"it an input shape) before loading weights")

    def load(bad):
        h5py = _h5py()
        with f:
            head = f.read(8)
            f.seek(0)
            if head != b"\x89HDF\r\n\x1a\n":
                raise bad("not an HDF5 file")
            with h5py.File(f, "r") as h5:
                values = keras_weights.read_weights(model, h5, bad)
        model.set_weights(values)
    return _guarded(filepath, prefix, load)
