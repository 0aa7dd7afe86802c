"""Models: ``Model`` (functional API), ``Sequential``, and loading.

Layout (Keras 3's): :mod:`.model` (what every model shares: weights, flat buffers,
saving), :mod:`.functional` (the graph engine), :mod:`.sequential` (a list that
builds a graph), :mod:`.summary`; training is :mod:`pynn.trainers`.
"""
from ..layers.layer import clear_session
from ..layers.serialization import register
from .functional import Functional
from .model import Model
from .sequential import Sequential
from .subclassed import SubclassedModel

register(Functional, Sequential)

__all__ = ["Model", "Functional", "Sequential", "SubclassedModel", "load_model",
           "clear_session"]


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model written by :meth:`Model.save` (see :mod:`pynn.saving`)."""
    from ..saving import load_model as _load
    return _load(filepath, custom_objects=custom_objects, compile=compile)
