"""Run under mpiexec by tests/test_mpi.py: ``on_batch.py OUT``.

Every rank builds the MLP with a DIFFERENT seed (its rank) and calls train_on_batch
three times with its own 8 rows of each batch; rank 0's weights must be broadcast at
the first step, so every rank ends with what one process gets from seed 0 on the
concatenated batches. Saves ``OUT/on_batch_rank{r}.npz`` (weights, the three losses)."""
import os
import sys

import numpy as np

import pynn

pynn.distribution.initialize()
devices = pynn.distribution.list_devices()          # Keras's spelling: every rank
pynn.distribution.set_distribution(pynn.distribution.DataParallel(devices=devices))

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

rank = pynn.distribution.process_id()
model = common.build("mlp", seed=rank)
x, y = common.data()
n = pynn.distribution.num_processes()
losses = []
for step in range(3):
    rows = slice(step * 8 * n + rank * 8, step * 8 * n + (rank + 1) * 8)
    losses.append(model.train_on_batch(x[rows], y[rows]))
np.savez(os.path.join(sys.argv[1], f"on_batch_rank{rank}.npz"), *model.get_weights(),
         losses=np.array(losses, dtype=object))
