"""Finding dataset files on disk and downloading them (checksummed, atomically).

Search order for a dataset called ``name`` (``'mnist'``, ``'fashion-mnist'``):

1. the ``path`` argument: a directory holding the files (or holding ``<name>/``);
2. ``$PYNN_DATA_DIR/<name>/``;
3. ``~/.cache/pynn/<name>/``.

A directory counts when it holds every file, each either as ``<file>.gz`` or uncompressed
(``<file>``). When none does, the missing files are downloaded into ``path`` (when given) or
the cache directory, trying each mirror in turn; every download is checked against its
SHA-256 and written to a temporary file that is renamed into place only when it matches.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass, field

__all__ = ["DatasetError", "DatasetNotFoundError", "ChecksumError", "DatasetSpec",
           "cache_dir", "search_dirs", "locate", "fetch"]


class DatasetError(OSError):
    """Base class for dataset file errors."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The files are not on disk and could not be downloaded."""


class ChecksumError(DatasetError):
    """A downloaded file does not match its expected SHA-256."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's files live and what they must hash to."""

    name: str                      # directory name, e.g. 'mnist'
    title: str                     # human name, e.g. 'MNIST'
    files: dict                    # file name (.gz) -> SHA-256 hex digest
    mirrors: list = field(default_factory=list)  # base URLs ending in '/'


def cache_dir(name):
    """``~/.cache/pynn/<name>``."""
    return os.path.join(os.path.expanduser("~"), ".cache", "pynn", name)


def search_dirs(spec, path=None):
    """The directories searched, in order."""
    if path is not None:
        path = os.fspath(path)
        return [path, os.path.join(path, spec.name)]
    dirs = []
    env = os.environ.get("PYNN_DATA_DIR")
    if env:
        dirs.append(os.path.join(env, spec.name))
    dirs.append(cache_dir(spec.name))
    return dirs


def _file_in(directory, filename):
    for candidate in (filename, filename[:-3] if filename.endswith(".gz") else None):
        if candidate and os.path.isfile(os.path.join(directory, candidate)):
            return os.path.join(directory, candidate)
    return None


def locate(spec, path=None):
    """``{file name: path on disk}`` from the first directory holding every file, or None."""
    for directory in search_dirs(spec, path):
        found = {f: _file_in(directory, f) for f in spec.files}
        if all(found.values()):
            return found
    return None


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url, dest, sha256, timeout=60):
    """Stream ``url`` into ``dest`` through a temp file; raise ChecksumError on mismatch."""
    import urllib.request

    directory = os.path.dirname(dest) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(dest) + ".",
                               suffix=".part")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
        digest = h.hexdigest()
        if digest != sha256:
            raise ChecksumError(f"{url}: SHA-256 {digest} does not match the expected {sha256}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fetch(spec, path=None, download=True, quiet=False):
    """Paths of all of ``spec``'s files, downloading the missing ones when allowed.

    Raises :class:`DatasetNotFoundError` (files absent, download off or every mirror
    unreachable) or :class:`ChecksumError` (a mirror served different bytes), each naming
    the directory to put the files in.
    """
    found = locate(spec, path)
    if found is not None:
        return found
    dest = os.fspath(path) if path is not None else cache_dir(spec.name)
    searched = ", ".join(search_dirs(spec, path))
    names = ", ".join(spec.files)
    if not download:
        raise DatasetNotFoundError(
            f"{spec.title} files not found (searched {searched}). Put {names} in {dest} "
            "or set PYNN_DATA_DIR to a directory holding "
            f"{spec.name}/.")
    os.makedirs(dest, exist_ok=True)
    paths = {}
    for filename, sha256 in spec.files.items():
        existing = _file_in(dest, filename)
        if existing:
            paths[filename] = existing
            continue
        target = os.path.join(dest, filename)
        errors, mismatch = [], False
        for base in spec.mirrors:
            url = base + filename
            if not quiet:
                print(f"Downloading {url} -> {target}", file=sys.stderr)
            try:
                _download(url, target, sha256)
            except ChecksumError as exc:
                mismatch = True
                errors.append(str(exc))
                continue
            except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, bad URL
                errors.append(f"{url}: {exc}")
                continue
            paths[filename] = target
            break
        else:
            detail = "; ".join(errors) or "no mirrors configured"
            cls = ChecksumError if mismatch else DatasetNotFoundError
            raise cls(f"Could not download {spec.title} file {filename} ({detail}). "
                      f"Searched {searched}. To work offline, put {names} in {dest} "
                      "(or set PYNN_DATA_DIR to a directory holding "
                      f"{spec.name}/).")
    return paths
