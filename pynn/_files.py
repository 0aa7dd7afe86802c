"""Writing files so that a reader never sees half of one."""
from __future__ import annotations

import os
import tempfile

__all__ = ["replace_atomically"]


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_atomically(path, write):
    """Create or replace ``path`` with what ``write(f)`` writes to a binary file.

    The data goes to a temporary file in the same directory, is flushed to disk
    and renamed over ``path``: readers see the old file or the new one, never a
    part; on any error the temporary file is removed and ``path`` is untouched.
    The file gets the usual ``0o666 & ~umask`` permissions.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
