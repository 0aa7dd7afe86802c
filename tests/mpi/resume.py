"""Run under mpiexec by tests/test_mpi.py: ``resume.py OUT first|second``.

``first``: train the MLP 2 epochs (no shuffling) and let rank 0 save ``OUT/ckpt.keras``.
``second`` (on another number of ranks): every rank loads it, trains 2 more epochs and
saves ``OUT/resumed_rank{r}.npz``."""
import os
import sys

import numpy as np

import pynn

pynn.distribution.initialize()
pynn.distribution.set_distribution(pynn.distribution.DataParallel())

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

out, stage = sys.argv[1], sys.argv[2]
path = os.path.join(out, "ckpt.keras")
if stage == "first":
    common.train("mlp", [pynn.callbacks.ModelCheckpoint(path)], epochs=2, shuffle=False)
else:
    model = pynn.models.load_model(path)
    model, _ = common.train("mlp", epochs=4, shuffle=False, model=model, initial_epoch=2)
    np.savez(os.path.join(out, f"resumed_rank{pynn.distribution.process_id()}.npz"),
             *model.get_weights())
