"""Run under mpiexec by tests/test_mpi.py: ``own_data.py OUT``.

``DataParallel(auto_shard_dataset=False)``: each rank passes its own 90 rows, and
``batch_size`` is the batch of one rank (15; the global batch is 15 x ranks). Trains 2
epochs without shuffling and saves ``OUT/own_rank{r}.npz`` (weights, History)."""
import json
import os
import sys

import numpy as np

import pynn

pynn.distribution.initialize()
pynn.distribution.set_distribution(pynn.distribution.DataParallel(auto_shard_dataset=False))

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

rank = pynn.distribution.process_id()
x, y = common.data()
mine = slice(rank * 90, (rank + 1) * 90)
model = common.build("mlp")
hist = model.fit(x[mine], y[mine], batch_size=15, epochs=2, shuffle=False, verbose=0)
np.savez(os.path.join(sys.argv[1], f"own_rank{rank}.npz"), *model.get_weights(),
         history=json.dumps(hist.history))
