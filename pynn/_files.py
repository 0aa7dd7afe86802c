"""Files: replaced so that a reader never sees half of one, opened only when regular.

Two rules, each kept here and nowhere else:

* :func:`replace_atomically` writes a whole new file beside the old one and renames
  it over it, keeping the permission bits of the file it replaces;
* :func:`open_regular` opens a path for reading only when it is a regular file
  (never a FIFO, a device such as ``/dev/zero``, a socket or a directory), checked
  on the open descriptor, so what is read is what was checked. With
  ``follow_symlinks=False`` a symbolic link is refused as well.
"""
from __future__ import annotations

import os
import stat
import tempfile

__all__ = ["replace_atomically", "open_regular", "read_regular", "NotRegularFileError"]

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISLNK, "a symbolic link"))


class NotRegularFileError(ValueError):
    """A path names something other than a regular file (a FIFO, a device, a socket,
    or a symbolic link where links are refused)."""


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _kind(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def replace_atomically(path, write):
    """Create or replace ``path`` with what ``write(f)`` writes to a binary file.

    The data goes to a temporary file in the same directory, is flushed to disk
    and renamed over ``path``: readers see the old file or the new one, never a
    part; on any error the temporary file is removed and ``path`` is untouched.
    A file that replaces a regular file gets that file's permission bits (a
    ``0o600`` model stays private); a new file gets ``0o666 & ~umask``. The bits
    are set before anything is written, so the data is never more readable than
    the file it replaces.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(path)
        mode = stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else None
    except OSError:
        mode = None
    if mode is None:
        mode = 0o666 & ~_current_umask()
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:  # pragma: no cover  (Windows before Python 3.13)
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def open_regular(path, follow_symlinks=True):
    """``path`` opened for binary reading, checked to be a regular file.

    The check is made with ``fstat`` on the open descriptor. Opening never
    blocks (``O_NONBLOCK``: a FIFO without a writer is refused, not waited on).

    Raises
    ------
    FileNotFoundError
        Nothing is there.
    IsADirectoryError
        ``path`` is a directory.
    NotRegularFileError
        ``path`` is a FIFO, a device, a socket, or (``follow_symlinks=False``) a
        symbolic link.
    """
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
        if not hasattr(os, "O_NOFOLLOW") and os.path.islink(path):
            raise NotRegularFileError(f"{path!r} is a symbolic link, not a regular file")
    try:
        fd = os.open(path, flags)
    except OSError:
        if not follow_symlinks and os.path.islink(path):
            # O_NOFOLLOW on a link fails with ELOOP (or EMLINK on some BSDs)
            raise NotRegularFileError(f"{path!r} is a symbolic link, not a regular "
                                      f"file") from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{path!r} is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(f"{path!r} is {_kind(st.st_mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, limit, follow_symlinks=True):
    """The bytes of the regular file ``path`` (:func:`open_regular`), at most ``limit``.

    Raises ``ValueError`` when the file holds more than ``limit`` bytes (nothing
    beyond ``limit + 1`` bytes is read), besides :func:`open_regular`'s errors.
    """
    with open_regular(path, follow_symlinks=follow_symlinks) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{os.fspath(path)!r} holds more than {limit} bytes")
    return data
