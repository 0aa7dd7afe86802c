"""Weight regularisers with Keras 3's names and defaults.

A regulariser adds ``l1 * sum(|w|) + l2 * sum(w**2)`` to the reported loss and its
gradient ``l1 * sign(w) + 2 * l2 * w`` to the weight's gradient before the
optimizer step; both run as backend ops (``regularizer_loss`` /
``regularizer_grad_``).
"""
from __future__ import annotations

import math

import numpy as np

from ._identifiers import resolve
from .backends import get_backend

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get", "serialize", "deserialize"]


def _check(value, what):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{what}: expected a finite value >= 0, got {value!r}")
    return v


class Regularizer:
    """Base: ``l1`` and ``l2`` coefficients (both 0 here)."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, x):
        """The penalty for weight ``x`` as a Python float (Keras's standalone call)."""
        return get_backend().regularizer_loss(np.asarray(x), l1=self.l1, l2=self.l2)

    def loss(self, backend, w):
        """The penalty for backend array ``w``."""
        return backend.regularizer_loss(w, l1=self.l1, l2=self.l2)

    def add_grad_(self, backend, w, grad):
        """``grad += d(penalty)/dw`` in place."""
        return backend.regularizer_grad_(w, grad, l1=self.l1, l2=self.l2)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum|w| + l2 * sum w^2`` (Keras defaults ``l1=0.0, l2=0.0``)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check(l1, "L1L2: l1")
        self.l2 = _check(l2, "L1L2: l2")

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """``l1 * sum|w|`` (Keras default ``l1=0.01``)."""

    def __init__(self, l1=0.01):
        self.l1 = _check(l1, "L1: l1")

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum w^2`` (Keras default ``l2=0.01``)."""

    def __init__(self, l2=0.01):
        self.l2 = _check(l2, "L2: l2")

    def get_config(self):
        return {"l2": self.l2}


_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def serialize(regularizer):
    regularizer = get(regularizer)
    if regularizer is None:
        return None
    return {"module": "pynn.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config()}


def deserialize(config, custom_objects=None):
    if config is None:
        return None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"regularizers.deserialize: expected a dict with 'class_name', "
                         f"got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name) or _NAMES.get(name)
    if cls is None:
        raise ValueError(f"Unknown regularizer {name!r}; expected one of {sorted(_CLASSES)}")
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """A :class:`Regularizer` (or ``None``) from a name, instance, class or config dict."""
    return resolve(identifier, Regularizer, _NAMES, _CLASSES, deserialize, "regularizer",
                   allow_none=True,
                   hint=" (pynn regularizers are L1, L2 and L1L2 instances or their names)")
