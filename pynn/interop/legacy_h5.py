"""Keras's legacy HDF5 model and weights files (``.h5``: Keras 2, and Keras 3's
``model.save("x.h5")``).

A model file has the attributes ``model_config`` (the architecture as JSON) and
``training_config`` (the compile arguments), and a ``model_weights`` group with one
group per layer, in the model's layer order, each listing its variables' paths in
``weight_names``; a weights file (``save_weights("x.h5")`` in Keras 2) has the same
layer groups at its root. Layers are matched to the file's groups in order, counting
only layers with weights, as Keras does.

Reading is guarded as :mod:`.keras_archive`'s is: regular files only, attributes up
to 16 MiB, only hard-linked plain datasets of the expected shapes.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .._files import replace_atomically
from .keras_weights import hard_dataset
from .keras_archive import (KERAS_VERSION, _guarded, _h5py, _open, keras_model_config,
                            model_from_keras_config)

__all__ = ["save_legacy_h5", "load_legacy_h5", "load_legacy_weights", "read_legacy_weights",
           "is_legacy_model", "is_legacy_weights", "hdf5_kind"]

_MAX_ATTR = 16 * 2**20


def _text(value, what, bad):
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str) or len(value) > _MAX_ATTR:
        raise bad(f"attribute {what} is not a JSON string of at most 16 MiB")
    return value


def _names(value):
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)
            if (v.decode("utf-8") if isinstance(v, bytes) else str(v))]


def is_legacy_model(h5):
    return "model_config" in h5.attrs


def is_legacy_weights(h5):
    return "layer_names" in h5.attrs or ("model_weights" in h5 and
                                         "layer_names" in h5["model_weights"].attrs)


def hdf5_kind(filepath):
    """``"legacy_model"``, ``"legacy_weights"`` or ``"weights"`` (Keras 3's
    ``.weights.h5`` layout) for an HDF5 file; ``"weights"`` when it cannot tell (the
    reader then names what is wrong)."""
    try:
        h5py = _h5py()
        with open(os.fspath(filepath), "rb") as fh, h5py.File(fh, "r") as h5:
            if is_legacy_model(h5):
                return "legacy_model"
            if is_legacy_weights(h5):
                return "legacy_weights"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return "weights"


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def _weighted_layers(model):
    from ..layers.input_layer import InputLayer
    from ..models import Sequential
    return [l for l in model.layers
            if not (isinstance(model, Sequential) and isinstance(l, InputLayer))]


def _write_weights_group(model, grp):
    layers = _weighted_layers(model)
    grp.attrs["layer_names"] = [l.name.encode() for l in layers]
    grp.attrs["backend"] = "torch"
    grp.attrs["keras_version"] = KERAS_VERSION
    for layer in layers:
        g = grp.create_group(layer.name)
        names = [f"{w.layer.name}/{w.name}" for w in layer.weights]
        g.attrs["weight_names"] = [n.encode() for n in names] or np.array([], np.float64)
        for n, w in zip(names, layer.weights):
            g.create_dataset(n, data=w.numpy())
    top = grp.create_group("top_level_model_weights")
    top.attrs["weight_names"] = np.array([], dtype=np.float64)


def save_legacy_h5(model, filepath, overwrite=True):
    """Write ``model`` in Keras's legacy HDF5 format (atomically); Keras 3 loads it."""
    import io
    h5py = _h5py()
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath!r} exists and overwrite=False")
    cfg = keras_model_config(model)
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        f.attrs["backend"] = "torch"
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["model_config"] = json.dumps({"class_name": cfg["class_name"],
                                              "config": cfg["config"]})
        cc = cfg.get("compile_config")
        if cc:
            opt = cc.get("optimizer")
            tc = {k: v for k, v in cc.items() if k != "optimizer"}
            if isinstance(opt, dict):
                tc["optimizer_config"] = {"class_name": opt["class_name"],
                                          "config": opt["config"]}
            f.attrs["training_config"] = json.dumps(tc)
        _write_weights_group(model, f.create_group("model_weights"))
    data = bio.getvalue()
    replace_atomically(filepath, lambda fh: fh.write(data))


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
def read_legacy_weights(model, grp, bad):
    """Values for ``model.weights`` from a legacy weights group (layers matched in order,
    counting only layers with weights)."""
    h5py = _h5py()
    names = [n for n in _names(grp.attrs.get("layer_names", []))]
    file_layers = []
    for n in names:
        link = grp.get(n, getlink=True)
        if not isinstance(link, h5py.HardLink) or not isinstance(grp[n], h5py.Group):
            raise bad(f"layer group {n!r} is missing or not a plain group")
        wn = _names(grp[n].attrs.get("weight_names", []))
        if wn:
            file_layers.append((n, wn))
    layers = [l for l in _weighted_layers(model) if l.weights]
    if len(layers) != len(file_layers):
        raise bad(f"the file holds weights for {len(file_layers)} layers "
                  f"{[n for n, _ in file_layers]}, the model has {len(layers)} layers with "
                  f"weights {[l.name for l in layers]}")
    values = {}
    for layer, (gname, wnames) in zip(layers, file_layers):
        if len(wnames) != len(layer.weights):
            raise bad(f"layer group {gname!r} holds {len(wnames)} weights, layer "
                      f"{layer.name!r} has {len(layer.weights)}")
        for w, wn in zip(layer.weights, wnames):
            ds = hard_dataset(h5py, grp[gname], wn, bad)
            if tuple(ds.shape) != tuple(w.shape):
                raise bad(f"{gname}/{wn} has shape {tuple(ds.shape)}, weight {w.path!r} of "
                          f"the model has {tuple(w.shape)}")
            if ds.dtype.kind not in "fiu":
                raise bad(f"{gname}/{wn} has dtype {ds.dtype}")
            values[id(w)] = np.asarray(ds[()], dtype=w.dtype)
    return [values[id(w)] for w in model.weights]


def _unwrap_single(cfg):
    """Keras 2 lists one input or output as ``[[name, node, index]]``; its models still
    take and return a single array, which Keras 3 writes as ``[name, node, index]``."""
    for key in ("input_layers", "output_layers"):
        v = cfg.get(key)
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], list):
            cfg[key] = v[0]


def load_legacy_h5(filepath, custom_objects=None, compile=True):
    """A pynn model from a legacy Keras ``.h5`` model file."""
    h5py = _h5py()
    filepath, f = _open(filepath, "Keras HDF5 file")
    prefix = f"{filepath!r} is not a valid Keras HDF5 model file"

    def load(bad):
        with f, h5py.File(f, "r") as h5:
            if not is_legacy_model(h5):
                raise bad("no model_config attribute (a weights-only file? use "
                          "load_weights)")
            config = json.loads(_text(h5.attrs["model_config"], "model_config", bad))
            version = h5.attrs.get("keras_version", b"")
            version = version.decode() if isinstance(version, bytes) else str(version)
            if version.startswith("2.") and isinstance(config.get("config"), dict):
                _unwrap_single(config["config"])
            model = model_from_keras_config(config, custom_objects, filepath)
            if "model_weights" not in h5:
                raise bad("no model_weights group")
            if model.built:
                model.set_weights(read_legacy_weights(model, h5["model_weights"], bad))
            tc = h5.attrs.get("training_config")
            if compile and tc is not None:
                tc = json.loads(_text(tc, "training_config", bad))
                cc = {k: v for k, v in tc.items() if k != "optimizer_config"}
                cc["optimizer"] = tc.get("optimizer_config")
                from .keras_archive import _compile
                _compile(model, cc, filepath)
            return model
    return _guarded(filepath, prefix, load)


def load_legacy_weights(model, filepath):
    """Set ``model``'s weights from a legacy ``.h5`` weights or model file."""
    h5py = _h5py()
    filepath, f = _open(filepath, "Keras HDF5 file")
    prefix = f"{filepath!r} is not a valid Keras HDF5 weights file"

    def load(bad):
        with f, h5py.File(f, "r") as h5:
            grp = h5["model_weights"] if "model_weights" in h5 else h5
            model.set_weights(read_legacy_weights(model, grp, bad))
    return _guarded(filepath, prefix, load)

