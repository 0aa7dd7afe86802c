"""Reading layer configs that Keras 3 wrote (``model.get_config()``, ``config.json`` of a
``.keras`` file): its entries are mapped onto pynn's before a layer is built from them.

A Keras entry is ``{"module": "keras.layers", "class_name", "config",
"registered_name", "build_config"}``; inside its config

* ``dtype`` is a dtype-policy entry (``{"class_name": "DTypePolicy", "config": {"name":
  "float32"}}``): pynn takes its name, float32 or float64 (mixed precision is refused);
* initializer and regularizer entries name Keras's classes, which pynn has under the
  same names; their keys set to ``None`` (``seed``, ``input_axes``...) are Keras's
  defaults and are dropped;
* keys pynn's class does not take are dropped when they hold Keras's inert default
  (``None`` or ``False``: no constraint, no activity regularizer, not sparse...), and
  are a ``ValueError`` naming the layer, the key and the value otherwise, so a model
  is never built silently different from the one Keras described.
"""
from __future__ import annotations

import inspect

__all__ = ["is_keras_entry", "dtype_name", "layer_config", "accepted_arguments"]

#: dtype policies pynn computes in
_DTYPES = ("float32", "float64")

#: Keras-only keys that are inert whatever their value while another key is off
_INERT_UNLESS = {"renorm_clipping": "renorm", "renorm_momentum": "renorm"}
#: Keras-only keys that are inert at these values (Keras's defaults)
_INERT_VALUES = {"use_cudnn": "auto", "implementation": 2, "sparse": False, "ragged": False,
                 "optional": False, "synchronized": False}


def is_keras_entry(entry):
    """Whether ``entry`` (a serialised object) was written by Keras (``module`` keras.*)."""
    return isinstance(entry, dict) and str(entry.get("module") or "").split(".")[0] == "keras"


def dtype_name(value, what):
    """A layer or model ``dtype`` as pynn takes it: a name, or ``None``. Keras's
    dtype-policy entries give their ``name``; a policy pynn cannot compute in is a
    ``ValueError`` naming ``what``."""
    if isinstance(value, dict):
        cfg = value.get("config") or {}
        name = cfg.get("name") if isinstance(cfg, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"{what}: cannot read the dtype policy {value!r} (expected "
                             f"{{'class_name': 'DTypePolicy', 'config': {{'name': ...}}}})")
        if name not in _DTYPES:
            raise ValueError(f"{what}: dtype policy {name!r} is not supported; pynn computes "
                             f"in {' or '.join(_DTYPES)}")
        return name
    return value


def accepted_arguments(cls):
    """The keyword arguments ``cls`` takes: its ``__init__`` parameters and those of
    the classes it inherits from (layers pass ``**kwargs`` up to :class:`Layer`)."""
    names = {"name", "trainable", "dtype", "input_shape", "input_dim", "batch_input_shape"}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self":
                names.add(p.name)
    return names


def _nested(value):
    """An initializer/regularizer entry Keras wrote, with its ``None`` keys dropped."""
    if is_keras_entry(value) and isinstance(value.get("config"), dict):
        cfg = {k: v for k, v in value["config"].items() if v is not None}
        return {"class_name": value["class_name"], "config": cfg}
    return value


def layer_config(cls, config, what=None):
    """``config`` (a Keras layer config) as the keyword arguments of pynn's ``cls``
    (``what`` names it in errors)."""
    what = what or f"{cls.__name__} {config.get('name', '')!r} (a Keras config)"
    accepted = accepted_arguments(cls)
    out = {}
    for key, value in config.items():
        if key == "dtype":
            value = dtype_name(value, what)
        if key in accepted:
            out[key] = _nested(value)
        elif value is None or value is False or (
                key in _INERT_UNLESS and not config.get(_INERT_UNLESS[key])) or (
                key in _INERT_VALUES and _INERT_VALUES[key] == value):
            continue
        else:
            raise ValueError(f"{what}: {key}={value!r} is not supported by pynn's "
                             f"{cls.__name__} (it takes {sorted(accepted)})")
    return out
