"""Saving and loading models: a zip of ``config.json`` + ``weights.npz``, never pickled.

``.keras`` and ``.weights.h5`` paths are Keras 3's formats (written and read by
:mod:`pynn.interop.keras_archive`, which Keras itself reads and writes);
:func:`load_model` and :func:`load_weights` recognise a file by its content, so
``.keras`` files pynn wrote before it wrote Keras's format still load.

pynn's own model files (``.pynn``) hold

* ``config.json``: ``format`` (``'pynn.model'``), ``format_version``, the model
  config (:meth:`Sequential.get_config`), the compile config, the model
  Generator's state, and for every stored array its key, weight path, shape and
  dtype, plus the SHA-256 of ``weights.npz``;
* ``weights.npz``: the weights (and the optimizer state, when built), read back
  with ``numpy.load(allow_pickle=False)``.

pynn's weights-only files (:func:`save_weights`, ``*.weights.npz``) hold
``weights.json`` + ``weights.npz`` the same way.

Files are written to a temporary file in the target directory and moved into
place with ``os.replace``, so a reader never sees a half-written file; saving
over a file keeps its permission bits. Loading verifies the format, version,
checksum, archive entry names, and every array's shape and dtype; a truncated,
corrupted or foreign file raises ``ValueError``. Save -> load is bit-exact.

Loading is bounded by what the file really holds: only regular files are opened
(a FIFO or ``/dev/zero`` is refused before anything is read), the config is read
up to 16 MiB however it is compressed, ``weights.npz`` and its arrays must be
stored uncompressed (as pynn writes them), and each array's declared shape and
dtype are checked against the bytes stored for it before it is allocated, so the
arrays read never take more memory than the file's size. The model loader checks
the architecture's weight shapes against the file before building layers with
:func:`check_weight_shapes`.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import struct
import warnings
import zipfile
import zlib

import numpy as np

from ._files import NotRegularFileError, open_regular, replace_atomically

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "check_weight_shapes",
           "save_training_state", "load_training_state", "register_keras_serializable",
           "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "pynn.model"
WEIGHTS_FORMAT_NAME = "pynn.weights"
FORMAT_VERSION = 1
MODEL_SUFFIXES = (".pynn", ".keras", ".h5")
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


def register_keras_serializable(package="Custom", name=None):
    """Class decorator (Keras's ``keras.saving.register_keras_serializable``): make a
    custom layer or subclassed model loadable by its class name without
    ``custom_objects``. Files name classes; only registered ones are ever built, and a
    file never makes pynn import a module. ``package`` is accepted for Keras
    compatibility; ``name`` registers the class under an extra name."""
    from .layers import serialization

    def decorate(cls):
        if not isinstance(cls, type):
            raise TypeError(f"register_keras_serializable decorates a class, got "
                            f"{type(cls).__name__}")
        serialization.register_custom(cls, cls.__name__)
        if name is not None and name != cls.__name__:
            serialization.register_custom(cls, name)
        return cls
    return decorate


def save_model(model, filepath, overwrite=True):
    """Save ``model`` (architecture, weights, compile config, optimizer state) to ``filepath``.

    ``filepath`` must end in ``.pynn`` (pynn's format), ``.keras`` (Keras 3's format,
    :mod:`pynn.interop.keras_archive`) or ``.h5`` (Keras's legacy HDF5,
    :mod:`pynn.interop.legacy_h5`); Keras reads the last two.
    """
    filepath = _check_suffix(filepath, MODEL_SUFFIXES, "saving a model")
    if filepath.endswith(".h5"):
        from .interop.legacy_h5 import save_legacy_h5
        return save_legacy_h5(model, filepath, overwrite=overwrite)
    if filepath.endswith(".keras"):
        from .interop.keras_archive import save_keras_model
        return save_keras_model(model, filepath, overwrite=overwrite)
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
    if compile_config is not None:
        opt_specs = _optimizer_entries(model, arrays)
    data = _npz_bytes(arrays)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pynn_version": _pynn_version(),
        "model": {"class_name": type(model).__name__, "config": model.get_config(),
                  "build_config": model.get_build_config()},
        "compile_config": compile_config,
        "weights": _array_specs(entries),
        "optimizer_state": _array_specs(opt_specs) if opt_specs else None,
        "rng_state": model._rng.bit_generator.state,
        "weights_sha256": hashlib.sha256(data).hexdigest(),
    }
    text = json.dumps(config, default=_json_default, indent=1).encode("utf-8")
    _atomic_write(filepath, {_CONFIG: (text, True), _ARRAYS: (data, False)}, overwrite)


def _optimizer_entries(model, arrays):
    """Add the built optimizer's state to ``arrays``; its ``[(key, path, array)]``."""
    opt = model.optimizer
    specs = []
    if opt is not None and getattr(opt, "built", False) \
            and model._opt_layout_id == model._layout.id:
        state = opt.get_state()
        for name in sorted(state):
            key = f"opt.{name}"
            arrays[key] = np.asarray(state[name])
            specs.append((key, name, arrays[key]))
    return specs


def save_training_state(model, filepath, metadata=None):
    """Save what resuming ``fit`` needs: the weights, the optimizer's state (when
    built), the model generator's state and a JSON-able ``metadata`` dict, to a weights
    file (``.weights.npz``), written atomically. :func:`load_weights` reads it as a
    weights file; :func:`load_training_state` restores all of it (``BackupAndRestore``)."""
    filepath = _check_suffix(filepath, WEIGHTS_SUFFIXES, "saving a training state")
    entries = _weight_entries(model)
    arrays = {k: a for k, _, a in entries}
    opt_specs = _optimizer_entries(model, arrays)
    data = _npz_bytes(arrays)
    config = {"format": WEIGHTS_FORMAT_NAME, "format_version": FORMAT_VERSION,
              "pynn_version": _pynn_version(), "weights": _array_specs(entries),
              "optimizer_state": _array_specs(opt_specs) if opt_specs else None,
              "rng_state": model._rng.bit_generator.state,
              "training_metadata": dict(metadata or {}),
              "weights_sha256": hashlib.sha256(data).hexdigest()}
    text = json.dumps(config, default=_json_default, indent=1).encode("utf-8")
    _atomic_write(filepath, {_WEIGHTS_CONFIG: (text, True), _ARRAYS: (data, False)}, True)


def load_training_state(model, filepath):
    """Restore into ``model`` what :func:`save_training_state` wrote (weights,
    optimizer state, generator state) and return its metadata dict; the file is checked
    as every pynn file is."""
    path = os.fspath(filepath)
    config, arrays = _read_archive(path, _WEIGHTS_CONFIG, WEIGHTS_FORMAT_NAME)
    if not model.built:
        raise ValueError(f"load_training_state: model {model.name!r} is not built")
    model.set_weights(_ordered_weights(config, arrays, model, path))
    opt_specs = config.get("optimizer_state")
    if opt_specs and model.optimizer is not None:
        model._ensure_optimizer()
        model.optimizer.set_state({spec["path"]: arrays[spec["key"]] for spec in opt_specs})
    rng_state = config.get("rng_state")
    if rng_state is not None:
        try:
            model._rng.bit_generator.state = rng_state
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{path!r}: invalid generator state ({exc})") from None
    meta = config.get("training_metadata")
    return dict(meta) if isinstance(meta, dict) else {}


def save_weights(model, filepath, overwrite=True):
    """Save only the weights; ``filepath`` must end in ``.weights.npz`` (pynn's format) or
    ``.weights.h5`` (Keras 3's HDF5 layout, which Keras reads)."""
    filepath = _check_suffix(filepath, WEIGHTS_SUFFIXES, "saving weights")
    if filepath.endswith(".weights.h5"):
        from .interop.keras_archive import save_keras_weights
        return save_keras_weights(model, filepath, overwrite=overwrite)
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

    Bounded: only a regular file is opened (a FIFO, a device such as ``/dev/zero``
    or a directory is refused before anything is read), the config is read up to
    :data:`_MAX_JSON_BYTES`, and every array's declared shape and dtype is checked
    against the bytes the archive really stores before it is allocated, so what is
    allocated never exceeds the file's size (see :func:`_read_arrays`).

    Damaged input of any kind surfaces as ``ValueError`` naming the file (a missing
    file as ``FileNotFoundError``, a directory as ``IsADirectoryError``).
    """
    filepath = os.fspath(filepath)
    bad = f"{filepath!r} is not a valid pynn file"
    try:
        f = open_regular(filepath)
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {filepath!r}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{filepath!r} is a directory, not a pynn file") from None
    except NotRegularFileError as exc:
        raise ValueError(f"{bad}: {exc}; pynn reads models only from regular files") from None
    with f:
        try:
            return _read_archive_unchecked(f, config_name, format_name, bad)
        except ValueError:
            raise
        except PermissionError:
            raise
        except (OSError, *_DAMAGE) as exc:
            # e.g. a damaged central directory pointing outside the file (seek errors), an
            # unknown compression method, a flipped "encrypted" flag, a non-dict JSON value
            raise ValueError(f"{bad}: damaged archive ({type(exc).__name__}: {exc})") from None


def _read_archive_unchecked(f, config_name, format_name, bad):
    try:
        zf = zipfile.ZipFile(f)
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
        config = _read_config(zf, config_name, bad)
        if not isinstance(config, dict) or config.get("format") != format_name:
            got = config.get("format") if isinstance(config, dict) else None
            raise ValueError(f"{bad}: format {got!r}, expected {format_name!r}")
        version = config.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(f"{bad.split(' is not')[0]}: unsupported format_version "
                             f"{version!r} (this pynn reads versions 1 to {FORMAT_VERSION}); "
                             f"upgrade pynn")
        expected, total = _declared_arrays(config, config_name, bad)
        info = zf.getinfo(_ARRAYS)
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{bad}: {_ARRAYS} is compressed; pynn writes it uncompressed and "
                             f"reads only that")
        if total > info.file_size:
            raise ValueError(f"{bad}: the config declares {total:,} bytes of arrays, "
                             f"{_ARRAYS} stores only {info.file_size:,}")
        if info.file_size > total + 4096 + 512 * len(expected):
            raise ValueError(f"{bad}: {_ARRAYS} is larger than its arrays account for")
        npz = _stored_member(zf, f, info, bad)
    digest, crc = hashlib.sha256(), 0
    npz.seek(0)
    for chunk in iter(lambda: npz.read(_CHUNK), b""):
        digest.update(chunk)
        crc = zlib.crc32(chunk, crc)
    if crc != info.CRC:
        raise ValueError(f"{bad}: CRC mismatch for {_ARRAYS} (the file is corrupted)")
    if digest.hexdigest() != config.get("weights_sha256"):
        raise ValueError(f"{bad}: checksum mismatch for {_ARRAYS} (the file is corrupted)")
    return config, _read_arrays(npz, expected, bad)


#: Bytes read at a time from a weights file.
_CHUNK = 1 << 20


def _read_config(zf, config_name, bad):
    """The JSON config, reading at most :data:`_MAX_JSON_BYTES` however it is
    compressed (the entry's declared size is not trusted)."""
    try:
        info = zf.getinfo(config_name)
        if info.file_size > _MAX_JSON_BYTES:
            raise ValueError(f"{bad}: {config_name} is implausibly large")
        with zf.open(info) as member:
            text = member.read(_MAX_JSON_BYTES + 1)
            if len(text) > _MAX_JSON_BYTES:
                raise ValueError(f"{bad}: {config_name} is implausibly large")
            member.read(1)  # at the end: the CRC check of what was read
        return json.loads(text.decode("utf-8"))
    except (zipfile.BadZipFile, EOFError, zlib.error, UnicodeDecodeError,
            json.JSONDecodeError) as exc:
        raise ValueError(f"{bad}: {config_name} is corrupted ({exc})") from None


def _declared_arrays(config, config_name, bad):
    """``({key: (shape, dtype)}, total bytes)`` the config declares for its arrays."""
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
            total += math.prod(shape) * dtype.itemsize
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ValueError(f"{bad}: malformed array list in {config_name}") from None
    return expected, total


class _Span(io.RawIOBase):
    """A read-only, seekable window ``[start, start + size)`` of an open file."""

    def __init__(self, f, start, size):
        super().__init__()
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, pos, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, b):
        n = max(0, min(len(b), self._size - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(b)[:n])
        if not got:
            raise EOFError("the file ends inside an archive entry")
        self._pos += got
        return got


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader


def _stored_member(zf, f, info, bad):
    """A :class:`_Span` over an uncompressed zip member's bytes, checked to lie
    inside the file (its local header checked as ``zipfile`` checks it)."""
    zf.open(info).close()  # magic, name, flags of the local header; reads no data
    size = os.fstat(f.fileno()).st_size
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise ValueError(f"{bad}: {_ARRAYS}'s header is truncated")
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != b"PK\x03\x04" or info.flag_bits & 0x1:
        raise ValueError(f"{bad}: {_ARRAYS}'s header is damaged or encrypted")
    start = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
    if info.compress_size != info.file_size or start + info.file_size > size:
        raise ValueError(f"{bad}: {_ARRAYS} claims {info.file_size:,} bytes the file does "
                         f"not hold (the file is truncated)")
    return _Span(f, start, info.file_size)


def _read_arrays(npz, expected, bad):
    """``{key: array}`` from the stored ``.npz`` archive ``npz`` (a :class:`_Span`).

    Each member must be stored uncompressed, named ``<key>.npy``, lie inside the
    archive and hold a ``.npy`` header with exactly the declared dtype and shape
    followed by exactly its bytes; only then is the array allocated and read. Object
    arrays are never unpickled (their dtype is never a declared one)."""
    try:
        inner = zipfile.ZipFile(npz)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{bad}: {_ARRAYS} is corrupted ({exc})") from None
    with inner:
        members = {i.filename: i for i in inner.infolist()}
        files = sorted(n[:-4] if n.endswith(".npy") else n for n in members)
        if files != sorted(expected) or len(members) != len(expected):
            raise ValueError(f"{bad}: {_ARRAYS} holds {files}, the config lists "
                             f"{sorted(expected)}")
        stored = 0
        for info in members.values():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{bad}: {_ARRAYS} member {info.filename!r} is compressed; "
                                 f"pynn writes arrays uncompressed and reads only that")
            stored += info.file_size
            if info.header_offset + info.file_size > npz.seek(0, io.SEEK_END) \
                    or stored > npz.seek(0, io.SEEK_END):
                raise ValueError(f"{bad}: {_ARRAYS} member {info.filename!r} claims bytes "
                                 f"the archive does not hold")
        arrays = {}
        for key, (shape, dtype) in expected.items():
            arrays[key] = _read_npy(inner, members[key + ".npy"], key, shape, dtype, bad)
    return arrays


def _read_npy(inner, info, key, shape, dtype, bad):
    fmt = np.lib.format
    with inner.open(info) as member:
        try:
            version = fmt.read_magic(member)
            if version == (1, 0):
                got_shape, fortran, got_dtype = fmt.read_array_header_1_0(member)
            elif version == (2, 0):
                got_shape, fortran, got_dtype = fmt.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise ValueError(f"{bad}: {_ARRAYS} holds an unreadable array {key!r} "
                             f"({exc})") from None
        if got_shape != shape or got_dtype != dtype:
            raise ValueError(f"{bad}: array {key!r} has shape {got_shape} and dtype "
                             f"{got_dtype}, the config says {shape} and {dtype}")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size - member.tell() != nbytes:
            raise ValueError(f"{bad}: array {key!r} stores {info.file_size - member.tell():,} "
                             f"bytes, its shape {shape} and dtype {dtype} need {nbytes:,}")
        a = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        view = memoryview(a.reshape(-1, order="A")).cast("B")
        pos = 0
        while pos < nbytes:
            chunk = member.read(min(_CHUNK, nbytes - pos))
            if not chunk:
                raise ValueError(f"{bad}: array {key!r} is truncated")
            view[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        member.read(1)  # at the end: the CRC check of the member
    return a


def check_weight_shapes(filepath, config, declared):
    """Check, before any layer is built, that a file holds exactly the weights an
    architecture declares, so a small file cannot make the loader allocate a huge
    model it has no weights for.

    Parameters
    ----------
    filepath : str or os.PathLike
        The file, for messages.
    config : dict
        The file's config as :func:`_read_archive` returned it (its ``weights``
        list is checked there against the arrays the file stores).
    declared : iterable of (str, tuple of int)
        ``(path, shape)`` of every weight the architecture will create, in the
        order of ``model.weights``; computed from the layers' configs without
        allocating them.

    Raises
    ------
    ValueError
        Naming the file and the number of weights on each side when they differ,
        or the first weight (its path) whose shape differs, with both shapes.
    """
    filepath = os.fspath(filepath)
    stored = [tuple(spec["shape"]) for spec in config.get("weights") or []]
    declared = list(declared)
    if len(stored) != len(declared):
        raise ValueError(f"{filepath!r} holds {len(stored)} weights, its architecture "
                         f"declares {len(declared)}")
    for shape, (path, want) in zip(stored, declared):
        try:
            want = tuple(int(n) for n in want)
        except (TypeError, ValueError):
            raise ValueError(f"{filepath!r}: the architecture declares weight {path!r} with "
                             f"shape {want!r}, not a tuple of ints") from None
        if want != shape:
            raise ValueError(f"{filepath!r}: weight {path!r} has shape {want} in the "
                             f"architecture, the file holds {shape}")


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
    kind = _sniff(filepath)
    if kind == "keras":
        from .interop.keras_archive import load_keras_model
        return load_keras_model(filepath, custom_objects=custom_objects, compile=compile)
    if kind == "hdf5":
        from .interop.legacy_h5 import load_legacy_h5
        return load_legacy_h5(filepath, custom_objects=custom_objects, compile=compile)
    config, arrays = _read_archive(filepath, _CONFIG, FORMAT_NAME)
    try:
        return _model_from_archive(filepath, config, arrays, custom_objects, compile)
    except ValueError:
        raise
    except (*_DAMAGE, OSError) as exc:
        # a config that passed the format checks but does not describe a valid model
        raise ValueError(f"{os.fspath(filepath)!r}: invalid model config "
                         f"({type(exc).__name__}: {exc})") from None


def _sniff(filepath):
    """``"keras"`` (a Keras 3 archive), ``"hdf5"``, or ``"pynn"`` (anything else, checked
    by the pynn reader) for the regular file ``filepath``; reads only the zip directory
    or the first bytes."""
    try:
        f = open_regular(os.fspath(filepath))
    except (OSError, NotRegularFileError):
        return "pynn"  # the pynn reader gives the precise error
    with f:
        head = f.read(8)
        if head == b"\x89HDF\r\n\x1a\n":
            return "hdf5"
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, *_DAMAGE, OSError):
            return "pynn"
    from .interop.keras_archive import is_keras_archive
    return "keras" if is_keras_archive(names) and "weights.npz" not in names else "pynn"


def _model_class(filepath, mcfg, custom_objects):
    """The model class a file's config names, from the layer registry (the model
    classes register there), so this module never imports :mod:`pynn.models`."""
    from .layers import serialization
    name = mcfg.get("class_name") if isinstance(mcfg, dict) else None
    name = "Functional" if name == "Model" else name
    try:
        cls = serialization.get(name, custom_objects) if isinstance(name, str) else None
    except ValueError:
        cls = None
    if cls is None or not callable(getattr(cls, "compile", None)) \
            or not isinstance(mcfg.get("config"), dict):
        raise ValueError(f"{filepath!r}: unsupported model class {name!r}: not a pynn model "
                         f"class; for a custom one, {serialization.HOW_TO_NAME}")
    return cls


def _model_from_config(cls, mcfg, custom_objects):
    """``cls.from_config``, then built from the saved build config when the class does
    not build itself (a subclassed model, built by its first input shape)."""
    model = cls.from_config(mcfg["config"], custom_objects=custom_objects)
    build = mcfg.get("build_config")
    if not model.built and isinstance(build, dict):
        model.build_from_config(build)
    return model


def _model_from_archive(filepath, config, arrays, custom_objects, compile):
    from .layers.layer import shapes_only
    mcfg = config.get("model")
    cls = _model_class(filepath, mcfg, custom_objects)
    # the architecture's weights, listed without allocating any, against the file's
    with shapes_only():
        declared = _model_from_config(cls, mcfg, custom_objects)
    if declared.built:
        check_weight_shapes(filepath, config, [(w.path, w.shape) for w in declared.weights])
    model = _model_from_config(cls, mcfg, custom_objects)
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
    kind = _sniff(path)
    if kind in ("keras", "hdf5"):
        from .interop.keras_archive import load_keras_model, load_keras_weights
        from .interop.legacy_h5 import hdf5_kind, load_legacy_weights
        if kind == "hdf5":
            if hdf5_kind(path).startswith("legacy"):
                return load_legacy_weights(model, path)
            return load_keras_weights(model, path)
        model.set_weights(load_keras_model(path, compile=False).get_weights())
        return None
    if path.endswith(MODEL_SUFFIXES):
        config, arrays = _read_archive(path, _CONFIG, FORMAT_NAME)
    else:
        config, arrays = _read_archive(path, _WEIGHTS_CONFIG, WEIGHTS_FORMAT_NAME)
    if not model.built:
        raise ValueError(f"load_weights: model {model.name!r} is not built; build it (or give "
                         f"it an input shape) before loading weights")
    model.set_weights(_ordered_weights(config, arrays, model, path))
