"""Weights in Keras 3's ``model.weights.h5`` layout.

Keras stores a model's variables by walking its object tree: a model's ``vars``
group, then ``layers/<key>`` for every layer of its layer list (a Sequential's list
leaves the InputLayer out, a functional model's keeps it), where ``<key>`` is the
snake_case class name, numbered ``_1``, ``_2``... among its siblings; inside a layer,
its own variables in ``vars/0``, ``vars/1``... in creation order, a recurrent layer's
in ``cell/vars``, a ``Bidirectional``'s under ``forward_layer`` and ``backward_layer``,
a wrapper's under ``layer``. A layer reached twice (shared) is stored once.
"""
from __future__ import annotations

import numpy as np

__all__ = ["weight_groups", "write_weights", "read_weights"]


def _join(*parts):
    return "/".join(p for p in parts if p)


def weight_groups(model):
    """``[(group path, layer name, [Weight, ...])]`` in Keras 3's order."""
    from ..layers.input_layer import InputLayer
    from ..layers.layer import to_snake_case
    from ..layers.core.wrapper import Wrapper
    from ..layers.rnn import BaseRNN, Bidirectional
    from ..models import Model, Sequential
    groups, visited = [], set()

    def walk(obj, path):
        if id(obj) in visited:
            return
        visited.add(id(obj))
        if isinstance(obj, Model):
            groups.append((_join(path, "vars"), obj.name, []))
            used = {}
            for layer in obj.layers:
                if isinstance(obj, Sequential) and isinstance(layer, InputLayer):
                    continue
                key = to_snake_case(type(layer).__name__)
                if key in used:
                    used[key] += 1
                    key = f"{key}_{used[key]}"
                else:
                    used[key] = 0
                walk(layer, _join(path, "layers", key))
        elif isinstance(obj, BaseRNN):
            groups.append((_join(path, "vars"), obj.name, []))
            groups.append((_join(path, "cell", "vars"), obj.name, list(obj._weights)))
        elif isinstance(obj, Bidirectional):
            groups.append((_join(path, "vars"), obj.name, []))
            walk(obj.forward_layer, _join(path, "forward_layer"))
            walk(obj.backward_layer, _join(path, "backward_layer"))
        elif isinstance(obj, Wrapper):
            groups.append((_join(path, "vars"), obj.name, list(obj._weights)))
            walk(obj.layer, _join(path, "layer"))
        else:
            groups.append((_join(path, "vars"), obj.name, list(obj.weights)))

    walk(model, "")
    return groups


def write_weights(model, f):
    """Write ``model``'s weights to the open ``h5py.File`` ``f``."""
    for path, name, weights in weight_groups(model):
        grp = f.require_group(path)
        grp.attrs["name"] = name
        for i, w in enumerate(weights):
            grp.create_dataset(str(i), data=w.numpy())


def _dataset(h5py, grp, key, where, bad):
    link = grp.get(key, getlink=True)
    if link is None:
        raise bad(f"{where}: missing dataset {key!r}")
    if not isinstance(link, h5py.HardLink):
        raise bad(f"{where}/{key}: a {type(link).__name__} (links to other objects or "
                  f"files are refused)")
    ds = grp[key]
    if not isinstance(ds, h5py.Dataset):
        raise bad(f"{where}/{key}: not a dataset")
    if ds.is_virtual or ds.external:
        raise bad(f"{where}/{key}: virtual or external-storage datasets are refused")
    return ds


def read_weights(model, f, bad):
    """Values for every weight of ``model`` from the open ``h5py.File`` ``f`` (a list in
    ``model.weights`` order), each shape and dtype checked before it is read; ``bad``
    makes the exception for a damaged file."""
    import h5py
    values = {}
    for path, name, weights in weight_groups(model):
        if not weights:
            continue
        link = f.get(path, getlink=True)
        if link is None:
            raise bad(f"no group {path!r} (the weights of layer {name!r}); the file holds "
                      f"another architecture")
        if not isinstance(link, h5py.HardLink) or not isinstance(f[path], h5py.Group):
            raise bad(f"{path!r} is not a group")
        grp = f[path]
        keys = set(grp.keys())
        want = {str(i) for i in range(len(weights))}
        if keys != want:
            raise bad(f"{path!r} (layer {name!r}) holds variables {sorted(keys)}, expected "
                      f"{sorted(want, key=int)} for its weights "
                      f"{[w.name for w in weights]}")
        for i, w in enumerate(weights):
            ds = _dataset(h5py, grp, str(i), path, bad)
            if tuple(ds.shape) != tuple(w.shape):
                raise bad(f"{path}/{i} (weight {w.path!r}) has shape {tuple(ds.shape)}, the "
                          f"model expects {tuple(w.shape)}")
            if ds.dtype.kind not in "fiu":
                raise bad(f"{path}/{i} (weight {w.path!r}) has dtype {ds.dtype}")
            values[id(w)] = np.asarray(ds[()], dtype=w.dtype)
    return [values[id(w)] for w in model.weights]
