"""Data-parallel training over MPI (Keras 3's ``keras.distribution`` surface).

A script written for one process runs unchanged under ``mpiexec -n N python train.py``
once it calls, before building the model::

    pynn.distribution.initialize()
    pynn.distribution.set_distribution(pynn.distribution.DataParallel())

Every rank holds the whole model. ``batch_size`` is the global batch; each rank takes
its rows of it, the gradients are averaged with one ``Allreduce`` of the flat gradient
buffer per step, and every rank applies the same update, so the weights stay identical
bit for bit. Losses and metrics are reduced as sums and counts, so every rank sees the
same logs; files and the progress bar are written by rank 0 only.

``mpi4py`` (the ``pynn[mpi]`` extra) is imported by :func:`initialize` under an MPI
launcher only; ``import pynn`` never imports it.
"""
from __future__ import annotations

from .data_parallel import DataParallel
from .device_mesh import DeviceMesh, list_devices
from .distribution_lib import (distribution, initialize, is_writer, num_processes,
                               process_id, set_distribution)

__all__ = ["DataParallel", "DeviceMesh", "list_devices", "initialize", "set_distribution", "distribution",
           "num_processes", "process_id", "is_writer"]
