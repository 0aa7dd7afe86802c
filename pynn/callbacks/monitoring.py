"""What the monitoring callbacks share: which way a monitored quantity improves."""
from __future__ import annotations

import warnings


_MAX_HINTS = ("acc", "auc", "precision", "recall", "f1", "fmeasure", "iou")
_MIN_HINTS = ("loss", "error", "crossentropy", "mse", "mae", "hinge", "divergence")


def _direction(model, monitor):
    """'max' or 'min' for ``monitor`` in auto mode, or None if unknown.

    A metric object of the model with a ``_direction`` attribute ('up'/'down')
    decides first; otherwise the name: loss-like names are minimised,
    accuracy/AUC/precision/recall/F1-like names maximised.
    """
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "min"
    for m in getattr(model, "metrics", None) or []:
        if getattr(m, "name", None) == name and hasattr(m, "_direction"):
            return "max" if m._direction == "up" else "min"
    lname = name.lower()
    if any(h in lname for h in _MIN_HINTS):
        return "min"
    if any(h in lname for h in _MAX_HINTS):
        return "max"
    return None


def _check_mode(mode, cls):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{cls} mode {mode} is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


def _scalar(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
