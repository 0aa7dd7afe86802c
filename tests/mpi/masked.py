"""Run under mpiexec by tests/test_mpi.py: a model whose output carries a mask (its loss
averages over unmasked steps, a count that differs between ranks) is refused by name on
every rank, and the job ends instead of hanging."""
import numpy as np

import pynn

pynn.distribution.initialize()
pynn.distribution.set_distribution(pynn.distribution.DataParallel())

rng = np.random.default_rng(0)
x = rng.integers(1, 10, size=(16, 6))
x[:, 4:] = 0                      # padding: the outputs' mask
y = rng.normal(size=(16, 6, 1)).astype("float32")
model = pynn.Sequential([pynn.Input((6,), dtype="int64"),
                         pynn.layers.Embedding(10, 4, mask_zero=True),
                         pynn.layers.SimpleRNN(3, return_sequences=True),
                         pynn.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
print("trained a masked output", flush=True)
