"""Every callback takes ``logs=None`` in every hook, as Keras's do (issue 18: tutorials
call hooks by hand without logs)."""
import numpy as np
import pytest

import pynn
from pynn import callbacks as C
from pynn.layers import Dense
from pynn.models import Sequential

HOOKS = ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
         "on_batch_begin", "on_batch_end", "on_test_begin", "on_test_batch_begin",
         "on_test_batch_end", "on_test_end", "on_epoch_end", "on_predict_begin",
         "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end", "on_train_end"]


def _callbacks(tmp_path):
    return [C.History(), C.EarlyStopping(monitor="loss"), C.ReduceLROnPlateau(monitor="loss"),
            C.ModelCheckpoint(str(tmp_path / "m.keras"), monitor="loss"),
            C.LearningRateScheduler(lambda e, lr: lr), C.CSVLogger(str(tmp_path / "l.csv")),
            C.TerminateOnNaN(), C.LambdaCallback(), C.ProgbarLogger(),
            C.BackupAndRestore(str(tmp_path / "backup"))]


@pytest.mark.filterwarnings("ignore:.*not available")
@pytest.mark.filterwarnings("ignore:Can save best model only")
def test_every_hook_takes_logs_none(tmp_path):
    pynn.set_seed(0)
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse")
    model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)
    for cb in _callbacks(tmp_path):
        cb.set_model(model)
        cb.set_params({"verbose": 0, "epochs": 1, "steps": 1})
        for hook in HOOKS:
            args = () if hook.endswith(("_begin", "_end")) and "batch" not in hook \
                and "epoch" not in hook else (0,)
            getattr(cb, hook)(*args, logs=None)
            getattr(cb, hook)(*args)
