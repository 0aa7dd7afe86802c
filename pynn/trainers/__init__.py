"""Training: the trainer mixin of every model, data handling, per-output losses and
metrics, and the planner of the fused fast path."""
from .planner import FUSABLE_LOSSES, explain
from .trainer import Trainer

__all__ = ["Trainer", "FUSABLE_LOSSES", "explain"]
