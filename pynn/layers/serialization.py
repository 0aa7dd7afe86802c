"""Layer (de)serialisation: Keras's ``{'module', 'class_name', 'config', 'build_config'}``.

Built-in layer classes and the model classes (which are layers too) register here by
name; :func:`get` also looks in ``custom_objects`` and among the user's classes
registered with :func:`pynn.saving.register_keras_serializable`. Entries Keras wrote
are read through :mod:`pynn.layers.keras_config`. Nothing is imported or evaluated
from a config: only registered classes can be named.
"""
from __future__ import annotations

from .keras_config import dtype_name, is_keras_entry, layer_config

__all__ = ["register", "register_custom", "serialize", "deserialize", "get", "HOW_TO_NAME"]

_CLASSES = {}
#: the user's classes (registration decorator), by name
_CUSTOM = {}

#: how to make a custom class nameable, for error messages
HOW_TO_NAME = ("pass it in custom_objects={name: cls}, or register the class with "
               "@pynn.saving.register_keras_serializable(); loading imports nothing a file "
               "names")


def register(*classes):
    """Make ``classes`` nameable in configs (by their ``__name__``)."""
    for cls in classes:
        _CLASSES[cls.__name__] = cls


def register_custom(cls, name):
    """Make the user's class ``cls`` nameable as ``name`` (the registration decorator)."""
    other = _CUSTOM.get(name)
    if other is not None and other is not cls:
        raise ValueError(f"register_keras_serializable: the name {name!r} is already "
                         f"registered for {other.__module__}.{other.__qualname__}")
    _CUSTOM[name] = cls


def serialize(layer):
    """Keras's layer dict: ``{'module', 'class_name', 'config', 'build_config'}``."""
    return {"module": getattr(type(layer), "_serial_module", "pynn.layers"),
            "class_name": type(layer).__name__,
            "config": layer.get_config(), "build_config": layer.get_build_config()}


def get(class_name, custom_objects=None):
    """The layer class called ``class_name`` (built-ins or ``custom_objects``)."""
    cls = ((custom_objects or {}).get(class_name) or _CLASSES.get(class_name)
           or _CUSTOM.get(class_name))
    if cls is None:
        raise ValueError(f"Unknown layer class {class_name!r}; expected one of "
                         f"{sorted(_CLASSES)}, or for a custom class: {HOW_TO_NAME}")
    return cls


def deserialize(config, custom_objects=None):
    """Inverse of :func:`serialize` (the layer is not built; models are rebuilt)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"layers.deserialize: expected a dict with 'class_name', got "
                         f"{type(config).__name__}")
    cls = get(config["class_name"], custom_objects)
    cfg = dict(config.get("config") or {})
    nests = getattr(cls, "_from_config_takes_custom_objects", False)
    if is_keras_entry(config):  # written by Keras: its policies and extra keys mapped
        if not nests:
            cfg = layer_config(cls, cfg)
        elif "dtype" in cfg:  # a wrapper: its inner layers' entries map themselves
            cfg["dtype"] = dtype_name(cfg["dtype"], f"{cls.__name__} {cfg.get('name')!r}")
    if nests:
        return cls.from_config(cfg, custom_objects=custom_objects)
    return cls.from_config(cfg)
