"""What the MPI test scripts and tests/test_mpi.py share: the models, the data and the
fit call, so that one process and N ranks run the very same code."""
from __future__ import annotations

import numpy as np

import pynn
from pynn.layers import Concatenate, Dense, Input
from pynn.models import Model, Sequential

#: 150 training rows at global batch 32: four full batches and one of 22 rows per epoch
#: (3 ranks: 11/11/10 and 8/7/7 rows), 4 epochs = 20 steps; 30 validation rows
N_ROWS, BATCH, EPOCHS, FEATURES = 180, 32, 4, 784


def data(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_ROWS, FEATURES)).astype(np.float32)
    y = (x[:, :10].argmax(axis=1) + (x[:, 10] > 1)) % 10
    return x, y.astype(np.int64)


def build(kind, seed=0):
    """``mlp``: the tutorial network 784-256-128-10 (L2 on its first kernel, so the
    regularization is counted once); ``functional``: two branches joined; ``bn``: a
    BatchNormalization with synchronized statistics."""
    if kind == "mlp":
        model = Sequential([Input((FEATURES,)),
                            Dense(256, activation="relu", kernel_regularizer="l2"),
                            Dense(128, activation="relu"),
                            Dense(10, activation="softmax")], seed=seed)
    elif kind == "functional":
        pynn.set_seed(seed)
        inp = Input((FEATURES,))
        h = Dense(32, activation="relu")(inp)
        a = Dense(16, activation="tanh")(h)
        b = Dense(16, activation="relu")(h)
        out = Dense(10, activation="softmax")(Concatenate()([a, b]))
        model = Model(inp, out)
    elif kind == "bn":
        from pynn.layers import BatchNormalization
        model = Sequential([Input((FEATURES,)), Dense(64, use_bias=False),
                            BatchNormalization(synchronized=True),
                            Dense(10, activation="softmax")], seed=seed)
    else:
        raise ValueError(kind)
    model.compile(optimizer=pynn.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(kind, callbacks=(), epochs=EPOCHS, shuffle=True, model=None, initial_epoch=0):
    """``(model, history dict)`` after ``epochs`` epochs of 5 steps. A ReduceLROnPlateau
    that acts after every epoch without progress is always there: every rank must take
    its decisions alike (they see the same logs)."""
    x, y = data()
    model = build(kind) if model is None else model
    plateau = pynn.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=0, factor=0.5,
                                               min_delta=0.1)
    hist = model.fit(x, y, batch_size=BATCH, epochs=epochs, validation_split=1 / 6,
                     shuffle=shuffle, verbose=0, callbacks=[plateau, *callbacks],
                     initial_epoch=initial_epoch)
    return model, hist.history
