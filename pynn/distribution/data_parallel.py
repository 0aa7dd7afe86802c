"""``DataParallel``: synchronous data parallelism, one full model copy per MPI rank.

What the trainer asks of it (:mod:`pynn.trainers.data_parallel_step` holds the step):

* :meth:`local_rows`: this rank's part of a global batch. ``batch_size`` is the global
  batch; its rows are split into ``num_processes`` contiguous parts, the first
  ``rows % num_processes`` parts one row longer (``numpy.array_split``);
* :meth:`shared_order`: rank 0's shuffled order on every rank (so a model whose dropout
  draws a different amount per rank still walks one permutation);
* :meth:`broadcast_model`: rank 0's weights, optimizer state and step count everywhere;
* :meth:`reduce_`: an in-place sum over ranks (the flat gradient buffer, the statistics);
* :meth:`gather_rows`: the rows every rank computed, concatenated in rank order.
"""
from __future__ import annotations

import numpy as np

from . import distribution_lib
from .device_mesh import check_devices

__all__ = ["DataParallel"]


class DataParallel:
    """Data parallelism over the ranks of the MPI job (Keras's ``DataParallel``).

    Parameters
    ----------
    device_mesh, devices : optional
        Keras's: a 1-D :class:`~.device_mesh.DeviceMesh` or a device list, which must
        name every process of the job in rank order (:func:`~.device_mesh.list_devices`);
        None (default) is the same.
    auto_shard_dataset : bool
        True (default): array data given to ``fit``/``evaluate``/``predict`` is the
        whole data set on every rank, and each rank takes its rows of every global batch.
        False: each rank passes its own data, and ``batch_size`` is the batch of one rank
        (the global batch is their sum). Batch sources (generators, PyDatasets) are
        never sharded: each rank's source yields that rank's batches, and every rank
        must yield the same number of batches per epoch.
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        check_devices(device_mesh, devices)
        if not isinstance(auto_shard_dataset, bool):
            raise ValueError(f"DataParallel: auto_shard_dataset must be a bool, got "
                             f"{auto_shard_dataset!r}")
        self.auto_shard_dataset = auto_shard_dataset

    @property
    def comm(self):
        return distribution_lib.communicator()

    @property
    def num_processes(self):
        return distribution_lib.num_processes()

    @property
    def process_id(self):
        return distribution_lib.process_id()

    def __repr__(self):
        return (f"DataParallel(auto_shard_dataset={self.auto_shard_dataset}) over "
                f"{self.num_processes} process(es)")

    # ------------------------------------------------------------------------------
    # data
    # ------------------------------------------------------------------------------
    def bounds(self, rows):
        """``(start, stop)`` of this rank's part of ``rows`` rows."""
        n, r = self.num_processes, self.process_id
        base, extra = divmod(rows, n)
        start = r * base + min(r, extra)
        return start, start + base + (r < extra)

    def local_rows(self, idx):
        """This rank's part of the global batch ``idx`` (a slice or an index array)."""
        if not self.auto_shard_dataset:
            return idx
        if isinstance(idx, slice):
            start, stop = self.bounds(idx.stop - idx.start)
            return slice(idx.start + start, idx.start + stop)
        start, stop = self.bounds(len(idx))
        return idx[start:stop]

    def shared_order(self, order):
        """Rank 0's ``order`` (an integer array of the same length everywhere)."""
        if order is None or not self.auto_shard_dataset:
            return order
        order = np.ascontiguousarray(order, dtype=np.int64)
        return self.comm.bcast_array(order)

    def gather_rows(self, arrays):
        """Each of ``arrays`` (this rank's rows) concatenated over ranks in rank order."""
        parts = self.comm.allgather(arrays)
        return [np.concatenate([p[i] for p in parts]) for i in range(len(arrays))]

    # ------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------
    def broadcast_model(self, model, with_optimizer=True):
        """Rank 0's weights (trainable and not), and its optimizer state once built, on
        every rank. Raises on every rank when the models differ in structure."""
        comm = self.comm
        weights = model.get_weights()
        shapes = [(w.shape, w.dtype.str) for w in weights]
        root_shapes = comm.bcast(shapes)
        if root_shapes != shapes:
            raise ValueError(f"DataParallel: rank {self.process_id}'s model has weights "
                             f"{shapes}, rank 0's {root_shapes}; every rank must build the "
                             f"same model")
        for w in weights:
            comm.bcast_array(w)
        model.set_weights(weights)
        if with_optimizer and model.optimizer is not None:
            model._ensure_optimizer()
            state = comm.bcast(model.optimizer.get_state() if self.process_id == 0 else None)
            model.optimizer.set_state(state)

    def reduce_(self, buf, what="allreduce"):
        """``buf`` summed over all ranks, in place (one collective)."""
        return self.comm.allreduce_(buf, what)
