"""Strict reader for IDX files (the MNIST format), plain or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then exactly ``prod(dims)`` big-endian items.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

__all__ = ["IDXFormatError", "read_idx", "parse_idx"]

#: IDX type byte -> big-endian NumPy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXFormatError(ValueError):
    """A file that is not a valid IDX file (bad magic, wrong size, corrupt gzip data)."""


def parse_idx(data, source="<bytes>"):
    """Parse the bytes of an (uncompressed) IDX file into a native-endian NumPy array.

    Raises :class:`IDXFormatError` naming ``source`` when the header is malformed or the
    payload is shorter or longer than the header says.
    """
    data = memoryview(data)
    if len(data) < 4:
        raise IDXFormatError(f"{source}: too short for an IDX header ({len(data)} bytes)")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    magic = int.from_bytes(bytes(data[:4]), "big")
    if zero0 != 0 or zero1 != 0 or type_code not in IDX_TYPES:
        raise IDXFormatError(f"{source}: bad IDX magic number 0x{magic:08x} ({magic}); expected "
                             "0x000008NN for unsigned bytes (2049 labels, 2051 images)")
    if ndim == 0:
        raise IDXFormatError(f"{source}: IDX magic {magic} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{source}: truncated IDX header: {ndim} dimensions need {header} "
                             f"bytes, file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_TYPES[type_code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise IDXFormatError(f"{source}: IDX file {what}: header (magic {magic}, dims {dims}) "
                             f"promises {expected} data bytes, found {got}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def read_idx(path):
    """Read an IDX file (gzip-compressed when it starts with the gzip magic bytes)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXFormatError(f"{path}: corrupt or truncated gzip data ({exc}); delete the "
                                 "file and fetch it again") from exc
    return parse_idx(raw, source=path)
