"""``TerminateOnNaN``."""
from __future__ import annotations

import math

from .callback import Callback, _print
from .monitoring import _scalar

__all__ = ["TerminateOnNaN"]


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch reports a NaN or infinite loss."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None:
            loss = _scalar(loss)
            if math.isnan(loss) or math.isinf(loss):
                _print(f"Batch {batch}: Invalid loss, terminating training")
                self.model.stop_training = True
