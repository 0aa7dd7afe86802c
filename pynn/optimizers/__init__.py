"""Optimizers with Keras 3 names, arguments, defaults and update rules.

One module per update rule (``sgd.py``, ``adam.py``, ...), as Keras 3's
``keras/src/optimizers/`` lays them out; the shared base class (state, clipping,
weight decay, EMA, config, the step semantics) is :mod:`.base_optimizer`'s
:class:`Optimizer`. This module re-exports them and resolves identifiers
(:func:`get`, :func:`serialize`, :func:`deserialize`).

Usage by a model::

    opt = pynn.optimizers.get("adam")
    opt.build(params, backend, flat_param=flat)   # params: views into ``flat``
    ...
    opt.apply(grads, params, flat_grad=flat_g)    # one step, in place
"""
from __future__ import annotations

from . import schedules
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .base_optimizer import Optimizer
from .lion import Lion
from .nadam import Nadam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Nadam", "Adamax",
           "Adadelta", "Lion", "get", "serialize", "deserialize", "schedules"]


# --------------------------------------------------------------------------
# lookup
# --------------------------------------------------------------------------
_CLASSES = {c.__name__.lower(): c for c in (SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax,
                                             Adadelta, Lion)}


def serialize(optimizer):
    """``{'class_name': ..., 'config': ...}`` for an optimizer."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`."""
    name = str(config.get("class_name", "")).lower()
    if name not in _CLASSES:
        raise ValueError(f"Unknown optimizer {config.get('class_name')!r}; expected one of "
                         f"{sorted(_CLASSES)}")
    return _CLASSES[name].from_config(dict(config.get("config") or {}))


def get(identifier):
    """Resolve ``identifier`` (instance, class, case-insensitive name like ``'adam'``, or a
    ``{'class_name', 'config'}`` dict) to an :class:`Optimizer`."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of "
                             f"{sorted(_CLASSES)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier {identifier!r}; expected one "
                     f"of {sorted(_CLASSES)}, an Optimizer instance or a config dict")
