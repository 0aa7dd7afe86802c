"""Saving and loading models: a zip of ``config.json`` + ``weights.npz``, never pickled.

Model files (``.pynn``, or ``.keras`` so Keras code runs unchanged) hold

* ``config.json``: ``format`` (``'pynn.model'``), ``format_version``, the model
  config (:meth:`Sequential.get_config`), the compile config, the model
  Generator's state, and for every stored array its key, weight path, shape and
  dtype, plus the SHA-256 of ``weights.npz``;
* ``weights.npz``: the weights (and the optimizer state, when built), read back
  with ``numpy.load(allow_pickle=False)``.

Weights-only files (:func:`save_weights`, ``*.weights.npz`` or ``*.weights.h5``;
the latter name is accepted for Keras code but the content is this zip, not HDF5)
hold ``weights.json`` + ``weights.npz`` the same way.

Files are written to a temporary file in the target directory and moved into
place with ``os.replace``, so a reader never sees a half-written file. Loading
verifies the format, version, checksum, archive entry names, and every array's
shape and dtype; a truncated, corrupted or foreign file raises ``ValueError``.
Save -> load is bit-exact.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import warnings
import zipfile
import zlib

import numpy as np

from ._files import replace_atomically

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_NAME",
           "FORMAT_VERSION"]

FORMAT_NAME = "pynn.model"
WEIGHTS_FORMAT_NAME = "pynn.weights"
FORMAT_VERSION = 1
MODEL_SUFFIXES = (".pynn", ".keras")
WEIGHTS_SUFFIXES = (".weights.npz", ".weights.h5")

_CONFIG = "config.json"
_WEIGHTS_CONFIG = "weights.json"
_ARRAYS = "weights.npz"
_MAX_JSON_BYTES = 16 * 2**20
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _array_specs(entries):
    """``[(key, path, array)]`` -> JSON specs."""
    return [{"key": k, "path": p, "shape": list(a.shape), "dtype": a.dtype.str}
            for k, p, a in entries]


def _atomic_write(path, files, overwrite):
    """Write zip ``files`` ({name: (bytes, compress)}) to ``path`` atomically."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory; give a file path")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")

    def write(f):
        with zipfile.ZipFile(f, "w") as zf:
            for name, (data, compress) in files.items():
                info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)

    replace_atomically(path, write)


def _check_suffix(path, suffixes, what):
    path = os.fspath(path)
    if not str(path).endswith(suffixes):
        raise ValueError(f"Invalid filepath extension for {what}: {path!r}. The filename must "
                         f"end in one of {list(suffixes)}.")
    return path


def _weight_entries(model):
    return [(f"w{i:04d}", w.path, w.numpy()) for i, w in enumerate(model.weights)]


def save_model(model, filepath, overwrite=True):
    """Save ``model`` (architecture, weights, compile config, optimizer state) to ``filepath``.

    ``filepath`` must end in ``.pynn`` or ``.keras``.
    """
    filepath = _check_suffix(filepath, MODEL_SUFFIXES, "saving a model")
    entries = _weight_entries(model)
    arrays = {k: a for k, _, a in entries}
    opt_specs = []
    compile_config = None
    if model.compiled:
        try:
            compile_config = model.get_compile_config()
            json.dumps(compile_config, default=_json_default)
        except (ValueError, TypeError) as exc:
            warnings.warn(f"save: the compile config cannot be serialised ({exc}); the model "
                          f"is saved uncompiled", stacklevel=3)
            compile_config = None
    opt = model.optimizer
    if compile_config is not None and opt is not None and getattr(opt, "built", False) \
            and model._opt_layout_id == model._layout.id:
        state = opt.get_state()
        for name in sorted(state):
            key = f"opt.{name}"
            arrays[key] = np.asarray(state[name])
            opt_specs.append((key, name, arrays[key]))
    data = _npz_bytes(arrays)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pynn_version": _pynn_version(),
        "model": {"class_name": type(model).__name__, "config": model.get_config()},
        "compile_config": compile_config,
        "weights": _array_specs(entries),
        "optimizer_state": _array_specs(opt_specs) if opt_specs else None,
        "rng_state": model._rng.bit_generator.state,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
    }
    text = json.dumps(config, default=_json_default, indent=1).encode("utf-8")
    _atomic_write(filepath, {_CONFIG: (text, True), _ARRAYS: (data, False)}, overwrite)


def save_weights(model, filepath, overwrite=True):
    """Save only the weights; ``filepath`` must end in ``.weights.npz`` or ``.weights.h5``."""
    filepath = _check_suffix(filepath, WEIGHTS_SUFFIXES, "saving weights")
    entries = _weight_entries(model)
    data = _npz_bytes({k: a for k, _, a in entries})
    config = {"format": WEIGHTS_FORMAT_NAME, "format_version": FORMAT_VERSION,
              "pynn_version": _pynn_version(), "weights": _array_specs(entries),
              "weights_sha256": hashlib.sha256(data).hexdigest()}
    text = json.dumps(config, default=_json_default, indent=1).encode("utf-8")
    _atomic_write(filepath, {_WEIGHTS_CONFIG: (text, True), _ARRAYS: (data, False)}, overwrite)


def _pynn_version():
    try:
        from . import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return None


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
_DRIVE = re.compile(r"^[A-Za-z]:")


def _safe_name(name):
    norm = name.replace("\\", "/")
    return not (norm.startswith("/") or _DRIVE.match(norm) or ".." in norm.split("/"))


#: what the zip/json/numpy readers raise on damaged input besides ValueError
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, struct.error,
           NotImplementedError, RuntimeError, OverflowError, KeyError, IndexError,
           TypeError, AttributeError, UnicodeError, MemoryError)


def _read_archive(filepath, config_name, format_name):
    """``(config dict, {key: array})`` from a pynn zip, fully verified.

    Damaged input of any kind surfaces as ``ValueError`` naming the file (a missing
    file as ``FileNotFoundError``, a directory as ``IsADirectoryError``).
    """
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No such file: {filepath!r}")
    if os.path.isdir(filepath):
        raise IsADirectoryError(f"{filepath!r} is a directory, not a pynn file")
    bad = f"{filepath!r} is not a valid pynn file"
    try:
        return _read_archive_unchecked(filepath, config_name, format_name, bad)
    except ValueError:
        raise
    except PermissionError:
        raise
    except (OSError, *_DAMAGE) as exc:
        # e.g. a damaged central directory pointing outside the file (seek errors), an
        # unknown compression method, a flipped "encrypted" flag, a non-dict JSON value
        raise ValueError(f"{bad}: damaged archive ({type(exc).__name__}: {exc})") from None


def _read_archive_unchecked(filepath, config_name, format_name, bad):
    try:
        zf = zipfile.ZipFile(filepath)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{bad}: not a zip archive, or truncated ({exc})") from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        for name in names:
            if not _safe_name(name):
                raise ValueError(f"{bad}: unsafe archive entry {name!r} (absolute path or '..')")
        if len(set(names)) != len(names):
            raise ValueError(f"{bad}: duplicate archive entries")
        if config_name not in names or _ARRAYS not in names:
            hint = ""
            if "model.weights.h5" in names or "metadata.json" in names:
                hint = " (it looks like a Keras .keras file; pynn reads only files it wrote)"
            raise ValueError(f"{bad}: missing {config_name!r} or {_ARRAYS!r}{hint}")
        extra = set(names) - {config_name, _ARRAYS}
        if extra:
            raise ValueError(f"{bad}: unexpected archive entries {sorted(extra)}")
        try:
            if zf.getinfo(config_name).file_size > _MAX_JSON_BYTES:
                raise ValueError(f"{bad}: {config_name} is implausibly large")
            config = json.loads(zf.read(config_name).decode("utf-8"))
        except (zipfile.BadZipFile, EOFError, zlib.error, UnicodeDecodeError,
                json.JSONDecodeError) as exc:
            raise ValueError(f"{bad}: {config_name} is corrupted ({exc})") from None
        if not isinstance(config, dict) or config.get("format") != format_name:
            got = config.get("format") if isinstance(config, dict) else None
            raise ValueError(f"{bad}: format {got!r}, expected {format_name!r}")
        version = config.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(f"{filepath!r}: unsupported format_version {version!r} (this pynn "
                             f"reads versions 1 to {FORMAT_VERSION}); upgrade pynn")
        specs = list(config.get("weights") or []) + list(config.get("optimizer_state") or [])
        expected = {}
        total = 0
        try:
            for spec in specs:
                key = str(spec["key"])
                shape = tuple(int(s) for s in spec["shape"])
                dtype = np.dtype(str(spec["dtype"]))
                if dtype.kind not in "biuf" or key in expected or any(s < 0 for s in shape):
                    raise ValueError(spec)
                expected[key] = (shape, dtype)
                total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{bad}: malformed array list in {config_name}") from None
        if zf.getinfo(_ARRAYS).file_size > total + 4096 + 512 * len(expected):
            raise ValueError(f"{bad}: {_ARRAYS} is larger than its arrays account for")
        try:
            data = zf.read(_ARRAYS)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
            raise ValueError(f"{bad}: {_ARRAYS} is corrupted or truncated ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != config.get("weights_sha256"):
        raise ValueError(f"{bad}: checksum mismatch for {_ARRAYS} (the file is corrupted)")
    arrays = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if set(npz.files) != set(expected):
                raise ValueError(f"{bad}: {_ARRAYS} holds {sorted(npz.files)}, the config "
                                 f"lists {sorted(expected)}")
            for key, (shape, dtype) in expected.items():
                a = npz[key]
                if a.shape != shape or a.dtype != dtype:
                    raise ValueError(f"{bad}: array {key!r} has shape {a.shape} and dtype "
                                     f"{a.dtype}, the config says {shape} and {dtype}")
                arrays[key] = a
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        raise ValueError(f"{bad}: {_ARRAYS} is corrupted ({exc})") from None
    except ValueError as exc:
        # numpy's own refusals (object arrays: never unpickled; malformed headers)
        if str(exc).startswith(bad):
            raise
        raise ValueError(f"{bad}: {_ARRAYS} holds an unreadable array ({exc})") from None
    return config, arrays


def _ordered_weights(config, arrays, model, filepath):
    specs = config.get("weights") or []
    mine = model.weights
    if len(specs) != len(mine):
        raise ValueError(f"{filepath!r} holds {len(specs)} weights, the model has {len(mine)}")
    out = []
    for spec, w in zip(specs, mine):
        a = arrays[spec["key"]]
        if tuple(a.shape) != w.shape:
            raise ValueError(f"{filepath!r}: weight {spec.get('path')!r} has shape {a.shape}, "
                             f"the model's {w.path!r} has {w.shape}")
        out.append(a)
    return out


def load_model(filepath, custom_objects=None, compile=True):
    """Rebuild (and compile, unless ``compile=False``) a model written by :func:`save_model`.

    ``custom_objects`` maps class names to custom layer classes.
    """
    config, arrays = _read_archive(filepath, _CONFIG, FORMAT_NAME)
    try:
        return _model_from_archive(filepath, config, arrays, custom_objects, compile)
    except ValueError:
        raise
    except (*_DAMAGE, OSError) as exc:
        # a config that passed the format checks but does not describe a valid model
        raise ValueError(f"{os.fspath(filepath)!r}: invalid model config "
                         f"({type(exc).__name__}: {exc})") from None


def _model_from_archive(filepath, config, arrays, custom_objects, compile):
    from .models import Functional, Sequential
    classes = {"Sequential": Sequential, "Functional": Functional, "Model": Functional}
    mcfg = config.get("model")
    cls = classes.get(mcfg.get("class_name")) if isinstance(mcfg, dict) else None
    if cls is None or not isinstance(mcfg.get("config"), dict):
        raise ValueError(f"{filepath!r}: unsupported model class "
                         f"{mcfg.get('class_name') if isinstance(mcfg, dict) else None!r}")
    model = cls.from_config(mcfg["config"], custom_objects=custom_objects)
    specs = config.get("weights") or []
    if specs and not model.built:
        raise ValueError(f"{filepath!r}: the saved config has no input shape, but weights")
    if model.built:
        model.set_weights(_ordered_weights(config, arrays, model, filepath))
    rng_state = config.get("rng_state")
    if rng_state is not None:
        try:
            model._rng.bit_generator.state = rng_state
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{filepath!r}: invalid generator state ({exc})") from None
    cc = config.get("compile_config")
    if compile and cc:
        model.compile(**cc)
        opt_specs = config.get("optimizer_state")
        if opt_specs:
            model._ensure_optimizer()
            model.optimizer.set_state({spec["path"]: arrays[spec["key"]] for spec in opt_specs})
    return model


def load_weights(model, filepath):
    """Set ``model``'s weights from a weights file or a full model file."""
    path = os.fspath(filepath)
    if path.endswith(MODEL_SUFFIXES):
        config, arrays = _read_archive(path, _CONFIG, FORMAT_NAME)
    else:
        config, arrays = _read_archive(path, _WEIGHTS_CONFIG, WEIGHTS_FORMAT_NAME)
    if not model.built:
        raise ValueError(f"load_weights: model {model.name!r} is not built; build it (or give "
                         f"it an input shape) before loading weights")
    model.set_weights(_ordered_weights(config, arrays, model, path))
