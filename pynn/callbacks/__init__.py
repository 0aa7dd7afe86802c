"""Training callbacks with Keras 3 names, arguments and behaviour.

Callbacks touch the model only through ``model.stop_training``,
``model.optimizer.learning_rate`` (settable), ``model.get_weights()`` /
``model.set_weights()``, ``model.save(path)`` and ``model.save_weights(path)``.
One module per callback; :mod:`pynn.progress` draws the bar that
:class:`ProgbarLogger` drives (callbacks -> progress, never back).
"""
from .backup_and_restore import BackupAndRestore
from .callback import Callback
from .callback_list import CallbackList
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .history import History
from .lambda_callback import LambdaCallback
from .learning_rate_scheduler import LearningRateScheduler
from .model_checkpoint import ModelCheckpoint
from .progbar_logger import ProgbarLogger
from .reduce_lr_on_plateau import ReduceLROnPlateau
from .tensorboard import TensorBoard
from .terminate_on_nan import TerminateOnNaN

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ReduceLROnPlateau",
           "ModelCheckpoint", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN",
           "LambdaCallback", "ProgbarLogger", "BackupAndRestore", "TensorBoard"]
