"""Configs in Keras 3's form and back.

pynn's layer and model configs use Keras's class names and argument names; what
differs is the wrapping: Keras writes ``module: "keras.layers"``, ``registered_name``,
dtype policies (``{"class_name": "DTypePolicy", "config": {"name": "float32"}}``),
and inbound nodes as ``__keras_tensor__`` records. :func:`to_keras` and
:func:`from_keras` translate a whole serialized model.

Reading a Keras config, an argument pynn's class does not take is dropped when it
holds Keras's default (``None``, ``False``, or a known default below) and refused
otherwise, naming the layer, the argument and its value: a model pynn cannot
reproduce is never loaded as a different one.
"""
from __future__ import annotations

from ..layers.keras_config import dtype_name, layer_config
from ..layers.serialization import HOW_TO_NAME

__all__ = ["to_keras", "from_keras", "prune", "KerasConfigError"]

#: pynn module -> Keras module
_MODULES = {"pynn.layers": "keras.layers", "pynn.initializers": "keras.initializers",
            "pynn.regularizers": "keras.regularizers", "pynn.models": "keras",
            "pynn.optimizers": "keras.optimizers", "pynn.losses": "keras.losses",
            "pynn.metrics": "keras.metrics"}
_BACK = {v: k for k, v in _MODULES.items()}
_BACK.update({"keras.src.models.functional": "pynn.models", "keras.models": "pynn.models"})


class KerasConfigError(ValueError):
    """A Keras config pynn cannot reproduce."""


# ---------------------------------------------------------------------------------------
# pynn -> Keras
# ---------------------------------------------------------------------------------------
def _policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype},
            "registered_name": None}


def _keras_tensor(history, shapes):
    name, node, index = history
    shape, dtype = shapes.get((name, node, index), (None, "float32"))
    return {"class_name": "__keras_tensor__",
            "config": {"shape": None if shape is None else list(shape), "dtype": dtype,
                       "keras_history": [name, node, index]}}


#: layers whose list input is ``[sequence, *initial_states]`` (Keras: ``initial_state=``)
_STATEFUL_CALLS = ("SimpleRNN", "LSTM", "GRU", "Bidirectional")


def _inbound_to_keras(nodes, shapes, class_name):
    out = []
    for node in nodes:
        args = [_keras_tensor(h, shapes) for h in node["args"]]
        kwargs = {}
        if node.get("list") and class_name in _STATEFUL_CALLS:
            args, kwargs["initial_state"] = args[:1], args[1:]
        elif node.get("list"):
            args = [args]
        out.append({"args": args, "kwargs": kwargs})
    return out


def _obj_to_keras(obj, in_layer=False):
    if isinstance(obj, list):
        return [_obj_to_keras(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "class_name" in obj and "config" in obj and "module" in obj:
        cfg = dict(obj)
        cfg["module"] = _MODULES.get(obj["module"], obj["module"])
        cfg.setdefault("registered_name", None)
        if obj["class_name"] == "Functional":  # as Keras 3 writes it
            cfg["module"], cfg["registered_name"] = "keras.src.models.functional", "Functional"
        shape = (obj.get("build_config") or {}).get("input_shape")
        if obj["class_name"] in _STATEFUL_CALLS and shape and isinstance(shape[0], list):
            # called with initial states: Keras records the build by argument name
            cfg["build_config"] = {"shapes_dict": {"sequences_shape": shape[0],
                                                   "initial_state_shape": shape[1:]}}
        is_layer = obj["module"] in ("pynn.layers", "pynn.models")
        inner = {k: _obj_to_keras(v) for k, v in (obj["config"] or {}).items()}
        if is_layer and obj["class_name"] != "InputLayer" and "dtype" in inner:
            inner["dtype"] = _policy(inner["dtype"])
        cfg["config"] = inner
        return cfg
    return {k: _obj_to_keras(v) for k, v in obj.items()}


def to_keras(serialized, tensor_shapes=None):
    """A pynn model's serialized dict (``layers.serialize(model)``) in Keras 3's form.
    ``tensor_shapes`` maps ``(layer, node, index)`` to ``(shape, dtype)`` for the
    ``__keras_tensor__`` records of a functional model's inbound nodes."""
    out = _obj_to_keras(serialized)
    shapes = tensor_shapes or {}

    def fix(model_cfg):
        cfg = model_cfg["config"]
        cfg.setdefault("dtype", _policy("float32"))
        if not isinstance(cfg.get("dtype"), dict):
            cfg["dtype"] = _policy(cfg["dtype"])
        for layer in cfg.get("layers", []):
            if "inbound_nodes" in layer:
                layer["inbound_nodes"] = _inbound_to_keras(layer["inbound_nodes"], shapes,
                                                           layer.get("class_name"))
            if layer.get("class_name") in ("Functional", "Sequential"):
                fix(layer)
    if out.get("class_name") in ("Functional", "Sequential"):
        fix(out)
    return out


_COMPILE_MODULES = {"optimizer": "keras.optimizers", "loss": "keras.losses",
                    "metrics": "keras.metrics", "weighted_metrics": "keras.metrics"}


def compile_to_keras(cc):
    """pynn's compile config (JSON-ready) in Keras's form: objects get their module."""
    def tag(v, module):
        if isinstance(v, list):
            return [tag(e, module) for e in v]
        if isinstance(v, dict) and "class_name" in v and "config" in v:
            return {"module": module, "class_name": v["class_name"], "config": v["config"],
                    "registered_name": None}
        if isinstance(v, dict):
            return {k: tag(e, module) for k, e in v.items()}
        return v
    return {k: tag(v, _COMPILE_MODULES[k]) if k in _COMPILE_MODULES else v
            for k, v in cc.items()}


def compile_from_keras(cc):
    """A Keras compile config as ``model.compile`` keyword arguments for pynn."""
    from .. import optimizers

    def untag(v):
        if isinstance(v, list):
            return [untag(e) for e in v]
        if isinstance(v, dict) and "class_name" in v:
            return {"class_name": v["class_name"], "config": v.get("config") or {}}
        if isinstance(v, dict):
            return {k: untag(e) for k, e in v.items()}
        return v
    out = {k: untag(cc[k]) for k in ("loss", "metrics", "loss_weights", "weighted_metrics")
           if cc.get(k) is not None}
    opt = cc.get("optimizer")
    if isinstance(opt, dict):
        cls = getattr(optimizers, opt["class_name"], None)
        if not isinstance(cls, type):
            raise KerasConfigError(f"compile config: pynn has no optimizer "
                                   f"{opt['class_name']!r}")
        ocfg = {k: v for k, v in (opt.get("config") or {}).items()
                if not (k == "loss_scale_factor" and v is None)}
        opt = cls.from_config(prune(cls, ocfg, f"optimizer {opt['class_name']}"))
    out["optimizer"] = opt or "rmsprop"
    return out


# ---------------------------------------------------------------------------------------
# Keras -> pynn
# ---------------------------------------------------------------------------------------
def prune(cls, config, where):
    """``config`` as arguments of pynn's ``cls``: the one rule for Keras keys pynn lacks
    (:func:`pynn.layers.keras_config.layer_config`)."""
    return layer_config(cls, config, where)


def _tensor_history(arg, where):
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return list(arg["config"]["keras_history"])
    if isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str):
        return list(arg)  # Keras 2 style [name, node, index]
    raise KerasConfigError(f"{where}: unsupported inbound node argument {arg!r}")


def _inbound_from_keras(nodes, where):
    out = []
    for node in nodes:
        if isinstance(node, list):  # Keras 2: [[name, node, index, kwargs], ...]
            out.append({"args": [list(a[:3]) for a in node], "list": len(node) > 1})
            continue
        args, kwargs = node.get("args", []), dict(node.get("kwargs") or {})
        entry = {}
        if len(args) == 1 and isinstance(args[0], list) and args[0] and not (
                isinstance(args[0][0], str)):
            entry["args"] = [_tensor_history(a, where) for a in args[0]]
            entry["list"] = True
        else:
            entry["args"] = [_tensor_history(a, where) for a in args]
            entry["list"] = len(args) > 1
        states = kwargs.pop("initial_state", None)
        if states is not None:  # pynn: the states are inputs after the sequence
            entry["args"] += [_tensor_history(a, where) for a in states]
            entry["list"] = True
        kwargs.pop("training", None)
        kwargs.pop("mask", None)
        if kwargs:
            raise KerasConfigError(f"{where}: call arguments {sorted(kwargs)} are not "
                                   f"supported")
        out.append(entry)
    return out


def _object_from_keras(obj, registry_get, where):
    """A nested Keras object (layer, initializer, regularizer...) as pynn's dict. Keras 2
    files name objects without a module: the class name decides."""
    from .. import initializers, regularizers
    module = obj.get("module") or ""
    name = obj["class_name"]
    cfg = {k: v for k, v in (obj.get("config") or {}).items() if k != "shared_object_id"}
    kind = None
    if module.startswith("keras.initializers"):
        kind = initializers
    elif module.startswith("keras.regularizers"):
        kind = regularizers
    elif module.startswith("keras.layers") or module.startswith("keras.src.models") or \
            module in ("keras", "keras.models"):
        return layer_from_keras(obj, registry_get, where)
    elif not module:
        for table in (initializers, regularizers):
            if isinstance(getattr(table, name, None), type):
                kind = table
                break
        else:
            return layer_from_keras(obj, registry_get, where)
    if kind is None:  # e.g. a constraint: the argument holding it is judged by prune()
        return obj
    cls = getattr(kind, name, None)
    if not isinstance(cls, type):
        raise KerasConfigError(f"{where}: pynn has no {kind.__name__.split('.')[-1][:-1]} "
                               f"{name!r}")
    return {"module": f"pynn.{kind.__name__.split('.')[-1]}", "class_name": name,
            "config": prune(cls, cfg, f"{where}: {name}")}


def layer_from_keras(obj, registry_get, where="config"):
    """A Keras layer (or model) dict as pynn's serialized dict; ``registry_get(name)``
    gives pynn's class for a class name."""
    if not isinstance(obj, dict) or "class_name" not in obj:
        raise KerasConfigError(f"{where}: expected a layer config dict, got {obj!r}")
    name = obj["class_name"]
    name = "Functional" if name == "Model" else name
    try:
        cls = registry_get(name)
    except ValueError:
        raise KerasConfigError(f"{where}: pynn has no layer class {name!r}; for a custom "
                               f"one, {HOW_TO_NAME}") from None
    cfg = dict(obj.get("config") or {})
    label = f"{where}: layer {cfg.get('name', '?')!r} ({name})"
    out_cfg = {}
    for k, v in cfg.items():
        if k == "shared_object_id":
            continue
        if k == "dtype":
            try:
                v = dtype_name(v, label)
            except ValueError as exc:
                raise KerasConfigError(str(exc)) from None
        elif k == "layers" and isinstance(v, list):
            v = [_layer_entry(e, registry_get, label) for e in v]
        elif isinstance(v, dict) and "class_name" in v and "config" in v:
            v = _object_from_keras(v, registry_get, label)
        out_cfg[k] = v
    if name == "InputLayer" and "batch_input_shape" in out_cfg:  # Keras 2's name
        out_cfg["batch_shape"] = out_cfg.pop("batch_input_shape")
    if name not in ("Functional", "Sequential"):
        out_cfg = prune(cls, out_cfg, label)
    out = {"module": "pynn.models" if name in ("Functional", "Sequential") else "pynn.layers",
           "class_name": name, "config": out_cfg}
    bc = obj.get("build_config")
    if isinstance(bc, dict) and isinstance(bc.get("shapes_dict"), dict):
        sd = bc["shapes_dict"]
        if "sequences_shape" in sd:
            bc = {"input_shape": [sd["sequences_shape"]] + list(sd.get("initial_state_shape")
                                                                 or [])
                  if sd.get("initial_state_shape") else sd["sequences_shape"]}
        elif len(sd) == 1:
            bc = {"input_shape": next(iter(sd.values()))}
        else:
            raise KerasConfigError(f"{label}: unsupported build config {bc}")
    if bc is not None:
        out["build_config"] = bc
    return out


def _layer_entry(entry, registry_get, where):
    out = layer_from_keras(entry, registry_get, where)
    if "inbound_nodes" in entry:
        out["name"] = entry.get("name", out["config"].get("name"))
        out["inbound_nodes"] = _inbound_from_keras(entry["inbound_nodes"], where)
    return out


def from_keras(obj, registry_get):
    """A Keras 3 model config (``config.json``'s content) as pynn's serialized dict."""
    return layer_from_keras(obj, registry_get, "Keras config")
