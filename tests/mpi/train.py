"""Run under mpiexec by tests/test_mpi.py: ``train.py OUT KIND...``.

Each rank trains every KIND (tests/mpi/common.py) data-parallel, with a CSVLogger and a
ModelCheckpoint whose file names carry the rank (so a file from rank > 0 would show),
evaluates, predicts, and saves ``OUT/KIND_rank{r}.npz``: its weights, its History, the
evaluation and the prediction."""
import json
import os
import sys

import numpy as np

import pynn

pynn.distribution.initialize()
pynn.distribution.set_distribution(pynn.distribution.DataParallel())

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

out = sys.argv[1]
rank = pynn.distribution.process_id()
for kind in sys.argv[2:]:
    cbs = [pynn.callbacks.CSVLogger(os.path.join(out, f"{kind}_log_rank{rank}.csv")),
           pynn.callbacks.ModelCheckpoint(os.path.join(out, f"{kind}_rank{rank}.keras"))]
    model, hist = common.train(kind, cbs)
    x, y = common.data()
    ev = model.evaluate(x, y, batch_size=common.BATCH, verbose=0)
    pred = model.predict(x, batch_size=common.BATCH, verbose=0)
    np.savez(os.path.join(out, f"{kind}_rank{rank}.npz"), *model.get_weights(),
             history=json.dumps(hist), evaluate=np.array(ev), predict=pred,
             size=pynn.distribution.num_processes())
