"""The on-disk cache of pynn's Numba kernels: one checked directory, files checked on read.

Numba unpickles its cache files, so whoever can write the cache directory can run
code in the process that loads it. pynn's kernels therefore never use Numba's
default locations (the package's ``__pycache__``, ``~/.cache/numba``, or
``$NUMBA_CACHE_DIR`` as it stands). :func:`cached` gives each kernel a cache in
pynn's own directory (:func:`cache_dir`):

* ``$NUMBA_CACHE_DIR/pynn`` when ``NUMBA_CACHE_DIR`` is set, else
  ``$XDG_CACHE_HOME/pynn/numba`` (``~/.cache/pynn/numba``). Missing directories
  are created with mode ``0o700``.
* It is used only when it is a directory owned by the current user and not
  writable by group or others, and when every directory above it is owned by the
  user or root and writable by nobody else (or sticky, like ``/tmp``, where others
  cannot rename what they do not own). Otherwise pynn warns once and uses a
  private temporary directory (``mkdtemp``, removed at exit), so kernels compile
  once per process; when not even that can be made, kernels compile in memory
  without a disk cache.
* The directory is fixed once per process (symbolic links resolved), so a link
  changed later cannot redirect it.
* Every cache file is opened without following symbolic links and read only when
  it is a regular file; it carries a SHA-256 of its contents and the Numba
  version, so a truncated or damaged entry is discarded (with one warning) and the
  kernel recompiled, never fatal.

:mod:`._numba_codegen` writes its generated kernel sources under
:func:`generated_dir`, a subdirectory checked the same way.
"""
from __future__ import annotations

import atexit
import hashlib
import inspect
import os
import pickle
import shutil
import stat
import sys
import tempfile
import threading
import warnings

from .._files import read_regular

__all__ = ["cache_dir", "generated_dir", "cached", "check_private_dir"]

#: The largest cache file read back (Numba's entries are a few MB at most).
_MAX_ENTRY = 256 * 2**20
_MAGIC = b"pynn-numba-cache 1\n"
_DIGEST = 32

_lock = threading.RLock()
_resolved = False
_dir = None
_warned = set()


def _warn_once(key, message):
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------------
# the directory
# --------------------------------------------------------------------------
def _configured():
    """The directory pynn asks for (not yet checked)."""
    from numba.core import config
    if config.CACHE_DIR:
        return os.path.join(os.path.abspath(os.path.expanduser(config.CACHE_DIR)), "pynn")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "pynn", "numba")


def _makedirs_private(path):
    """Create ``path`` and any missing parent with mode ``0o700``."""
    missing = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            pass


def _problem(path, st, leaf):
    """Why a directory (``leaf``) or a directory above it is unsafe, or ``None``."""
    if not hasattr(os, "getuid"):  # pragma: no cover  (Windows: ACLs, not mode bits)
        return None
    uid = os.getuid()
    if stat.S_ISLNK(st.st_mode):
        return f"{path} became a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if leaf:
        if st.st_uid != uid:
            return f"{path} is owned by uid {st.st_uid}, not by this user (uid {uid})"
        if st.st_mode & 0o022:
            return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
        return None
    if st.st_uid not in (uid, 0):
        return f"{path}, above it, is owned by uid {st.st_uid} (neither this user nor root)"
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return (f"{path}, above it, is writable by group or others without the sticky bit "
                f"(mode {stat.S_IMODE(st.st_mode):o})")
    return None


def check_private_dir(path, create=True):
    """``(real path, None)`` when ``path`` is a directory only this user can change,
    else ``(None, reason)``. With ``create``, missing directories are made ``0o700``.

    Safe means: owned by this user and not writable by group or others, and every
    directory above it owned by this user or root and not writable by others
    unless sticky. Symbolic links in ``path`` are resolved first and the resolved
    path is what is checked and returned.
    """
    try:
        if create:
            _makedirs_private(os.path.abspath(path))
        real = os.path.realpath(path)
        parts = []
        p = real
        while True:
            parts.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        for i, p in enumerate(parts):
            reason = _problem(p, os.lstat(p), leaf=(i == 0))
            if reason is not None:
                return None, reason
    except OSError as exc:
        return None, f"{path} cannot be used ({type(exc).__name__}: {exc})"
    return real, None


def _private_tempdir():
    try:
        d = tempfile.mkdtemp(prefix="pynn-numba-")
    except OSError:
        return None
    atexit.register(shutil.rmtree, d, True)
    real, _ = check_private_dir(d, create=False)
    return real


def cache_dir():
    """pynn's checked directory for Numba's cache (see the module docstring), or
    ``None`` when no usable directory exists; decided once per process."""
    global _resolved, _dir
    with _lock:
        if _resolved:
            return _dir
        wanted = _configured()
        d, reason = check_private_dir(wanted)
        if d is None:
            d = _private_tempdir()
            if d is not None:
                _warn_once("dir", f"pynn: Numba's cache is not kept in {wanted}: {reason}. "
                                  f"Compiled kernels go to the private temporary directory {d} "
                                  f"for this process only (point NUMBA_CACHE_DIR at a directory "
                                  f"only you can write to keep them across processes)")
            else:
                _warn_once("dir", f"pynn: Numba's cache is not kept in {wanted}: {reason}, and "
                                  f"no private temporary directory could be made; kernels "
                                  f"compile in each process, without a disk cache")
        _dir = d
        _resolved = True
        return d


def generated_dir():
    """The checked directory for :mod:`._numba_codegen`'s generated sources, or
    ``None`` (then they compile from memory, without a disk cache)."""
    root = cache_dir()
    if root is None:
        return None
    d, reason = check_private_dir(os.path.join(root, "generated"))
    if d is None:
        _warn_once("generated", f"pynn: generated Numba kernels compile without a disk "
                                f"cache: {reason}")
    return d


def _reset():
    """Forget the decided directory (tests)."""
    global _resolved, _dir
    with _lock:
        _resolved, _dir = False, None
        _warned.clear()


# --------------------------------------------------------------------------
# Numba's cache, pointed at the checked directory
# --------------------------------------------------------------------------
_stamps = {}


def _source_stamp(path):
    """SHA-256 of a kernel's source file, read only if it is a regular file."""
    st = os.stat(path)
    key = (path, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    stamp = _stamps.get(key)
    if stamp is None:
        stamp = _stamps[key] = hashlib.sha256(read_regular(path, _MAX_ENTRY)).digest()
    return stamp


def _frame(version, payload):
    body = version.encode() + b"\n" + payload
    return _MAGIC + hashlib.sha256(body).digest() + body


def _unframe(blob):
    """``(numba version, payload)`` of a framed cache file; ``ValueError`` if damaged."""
    head = len(_MAGIC)
    if blob[:head] != _MAGIC:
        raise ValueError("not a pynn cache file")
    digest, body = blob[head:head + _DIGEST], blob[head + _DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError("checksum mismatch (truncated or damaged)")
    version, sep, payload = body.partition(b"\n")
    if not sep:
        raise ValueError("no version line")
    return version.decode("ascii", "replace"), payload


def _make_classes(caching, cache_base):
    """Subclasses of Numba's cache machinery: ``caching`` is the module that holds
    it (``numba.core.caching``, or numba-cuda's copy ``numba.cuda.core.caching``),
    ``cache_base`` the cache class a dispatcher of that target uses (``FunctionCache``,
    ``CUDACache``). Imported only with a backend that compiles."""
    IndexDataCacheFile, _CacheLocator = caching.IndexDataCacheFile, caching._CacheLocator

    class Locator(_CacheLocator):
        """Numba's cache for functions of ``py_file``: a subdirectory of
        :func:`cache_dir` named after the file's directory, as Numba names it."""

        def __init__(self, py_func, py_file, root):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(root, self.get_suitable_cache_subpath(py_file))

        def ensure_cache_path(self):
            d, reason = check_private_dir(self._cache_path)
            if d is None:
                raise PermissionError(reason)

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            return _source_stamp(self._py_file)

        def get_disambiguator(self):
            return str(self._lineno)

    class Impl(cache_base._impl_class):
        def __init__(self, py_func):  # noqa: super() would consult Numba's locator list
            source = inspect.getfile(py_func)
            self._lineno = py_func.__code__.co_firstlineno
            self._locator = Locator(py_func, source, cache_dir())
            qualname = getattr(py_func, "__qualname__", py_func.__name__)
            modname = os.path.splitext(os.path.basename(source))[0]
            self._filename_base = self.get_filename_base(f"{modname}.{qualname}",
                                                         getattr(sys, "abiflags", ""))

    class Files(IndexDataCacheFile):
        """Index and data files framed with the Numba version and a checksum."""

        def _read(self, path):
            """The payload of ``path``, or ``None`` (missing, stale or damaged)."""
            try:
                blob = read_regular(path, _MAX_ENTRY, follow_symlinks=False)
                version, payload = _unframe(blob)
            except FileNotFoundError:
                return None
            except (OSError, ValueError) as exc:  # NotRegularFileError is a ValueError
                _discard(path, exc)
                return None
            if version != self._version:
                return None
            return payload

        def _load_index(self):
            payload = self._read(self._index_path)
            if payload is None:
                return {}
            try:
                stamp, overloads = pickle.loads(payload)
            except Exception as exc:  # any unpickling failure: a damaged entry
                _discard(self._index_path, exc)
                return {}
            if stamp != self._source_stamp:
                return {}
            return overloads

        def _save_index(self, overloads):
            blob = _frame(self._version, self._dump((self._source_stamp, overloads)))
            with self._open_for_write(self._index_path) as f:
                f.write(blob)

        def _load_data(self, name):
            path = self._data_path(name)
            payload = self._read(path)
            if payload is None:
                raise FileNotFoundError(path)  # IndexDataCacheFile.load: a miss
            try:
                return pickle.loads(payload)
            except Exception as exc:
                _discard(path, exc)
                raise OSError(f"damaged cache entry {path}") from None

        def _save_data(self, name, data):
            blob = _frame(self._version, self._dump(data))
            with self._open_for_write(self._data_path(name)) as f:
                f.write(blob)

    class Cache(cache_base):
        _impl_class = Impl

        def __init__(self, py_func, depends=()):
            super().__init__(py_func)
            stamp = self._cache_file._source_stamp
            if depends:  # the files whose code is compiled into this function's
                stamp = (stamp, *(_source_stamp(path) for path in depends))
            self._cache_file = Files(cache_path=self._cache_path,
                                     filename_base=self._impl.filename_base,
                                     source_stamp=stamp)

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception as exc:  # an entry that unpickled but does not rebuild
                _discard(self._cache_file._index_path, exc)
                return None

        def save_overload(self, sig, data):
            try:
                super().save_overload(sig, data)
            except OSError as exc:  # a full disk, a directory gone unsafe: not fatal
                _warn_once(("save", self._cache_path),
                           f"pynn: a compiled kernel could not be cached in "
                           f"{self._cache_path} ({type(exc).__name__}: {exc})")

    return Cache


def _discard(path, exc):
    """Remove a damaged or foreign cache file; Numba then recompiles and rewrites it."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
    except OSError:
        pass
    _warn_once(("discard", path), f"pynn: discarded the damaged Numba cache file {path} "
                                  f"({type(exc).__name__}: {exc}); the kernel is recompiled")


_cache_classes = {}


def _cache_class(dispatcher):
    """pynn's cache class for ``dispatcher``'s target (CPU or CUDA), made once."""
    cuda = type(dispatcher).__module__.startswith("numba.cuda")
    with _lock:
        if cuda not in _cache_classes:
            if cuda:
                from numba.cuda.core import caching
                from numba.cuda.dispatcher import CUDACache as base
            else:
                from numba.core import caching
                from numba.core.caching import FunctionCache as base
            _cache_classes[cuda] = _make_classes(caching, base)
        return _cache_classes[cuda]


def cached(dispatcher, depends=()):
    """Give a Numba dispatcher (``njit`` or ``cuda.jit``, compiled without
    ``cache=True``) pynn's checked on-disk cache, and return it.

    An entry is used only while the function's source file is unchanged (Numba
    compares that file alone), and while each file of ``depends`` is unchanged:
    list there the other modules whose jitted functions or intrinsics it calls,
    since their code is compiled into the cached machine code.

    Without a usable directory, for a function whose source is not a regular file,
    under ``NUMBA_DISABLE_JIT`` (``dispatcher`` is then a plain function) or under
    the CUDA simulator (whose kernels are Python) it is returned unchanged and
    compiles in each process.
    """
    if not hasattr(dispatcher, "enable_caching") or cache_dir() is None:
        return dispatcher
    cls = _cache_class(dispatcher)
    try:
        dispatcher._cache = cls(dispatcher.py_func, depends)
    except (OSError, ValueError, TypeError):  # no source file (e.g. exec'd text)
        pass
    return dispatcher
