"""``LambdaCallback``."""
from __future__ import annotations

from .callback import Callback

__all__ = ["LambdaCallback"]


class LambdaCallback(Callback):
    """A callback built from plain functions (Keras's ``LambdaCallback``).

    Each argument is a function taking the same arguments as the hook of that
    name, e.g. ``on_epoch_end=lambda epoch, logs: print(epoch, logs['loss'])``.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}")
            if fn is not None:
                setattr(self, name, fn)
