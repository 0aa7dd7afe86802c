"""Device-array helpers shared by the ``cuda`` backend's op files."""
from __future__ import annotations

import numpy as np

__all__ = ["DeviceMemory", "flat", "is_simulator"]


class DeviceMemory:
    """How :func:`check_aliasing` tells device arrays apart (host arrays never
    overlap them): by the byte range each spans, as ``np.may_share_memory`` judges
    host arrays."""

    @staticmethod
    def holds(a):
        return bool(getattr(a, "__cuda_ndarray__", False)) and a.size > 0

    @staticmethod
    def _span(a):
        iface = getattr(a, "__cuda_array_interface__", None)
        if iface is None:  # the simulator's device arrays wrap host arrays
            iface = a.__array_interface__
        start = end = iface["data"][0]
        for size, step in zip(a.shape, a.strides):
            if step < 0:
                start += (size - 1) * step
            else:
                end += (size - 1) * step
        return start, end + np.dtype(a.dtype).itemsize, iface["data"][0]

    @classmethod
    def overlap(cls, a, b):
        a0, a1, _ = cls._span(a)
        b0, b1, _ = cls._span(b)
        return a0 < b1 and b0 < a1

    @classmethod
    def same(cls, a, b):
        return (tuple(a.shape) == tuple(b.shape) and tuple(a.strides) == tuple(b.strides)
                and np.dtype(a.dtype) == np.dtype(b.dtype)
                and cls._span(a)[2] == cls._span(b)[2])


def flat(x):
    """1-D view of a C-contiguous device array."""
    return x if len(x.shape) == 1 else x.reshape(x.size)


def is_simulator():
    from numba.cuda.core import config
    return bool(config.ENABLE_CUDASIM)
