"""Walk a model's graph and assemble the ONNX model."""
from __future__ import annotations

import os

import numpy as np

from ..._files import replace_atomically
from . import convert_conv, convert_core, convert_merging, convert_rnn
from .graph import ExportError, OnnxGraph, converter_for

#: the modules whose converters register themselves on import
CONVERTER_MODULES = (convert_core, convert_merging, convert_conv, convert_rnn)

__all__ = ["export_onnx", "to_onnx"]

#: the opset the converters are written for (ONNX Runtime 1.16+ runs it)
OPSET = 18


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install onnx (or pip "
                          "install 'pynn[onnx]')") from None
    return onnx


def _emit(g, model, in_names):
    """Emit ``model``'s nodes (nested models inline); returns its output names."""
    from ...layers.input_layer import InputLayer
    from ...models import Model
    names = {id(t): n for t, n in zip(model._inputs, in_names)}
    for node in model._nodes:
        layer = node.layer
        ins = [names[id(t)] for t in node.inputs]
        if isinstance(layer, InputLayer):
            outs = ins
        elif isinstance(layer, Model):
            outs = _emit(g, layer, ins)
        else:
            outs = converter_for(layer)(g, layer, ins, [tuple(t.shape) for t in node.inputs])
        if len(outs) != len(node.outputs):
            raise ExportError(f"ONNX export: the converter of layer {layer.name!r} gave "
                              f"{len(outs)} outputs, the layer has {len(node.outputs)}")
        for t, o in zip(node.outputs, outs):
            names[id(t)] = o
    return [names[id(t)] for t in model._outputs]


def _elem_type(onnx, dtype):
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _dims(shape, name):
    return ["batch" if i == 0 else (f"{name}_dim{i}" if d is None else int(d))
            for i, d in enumerate(shape)]


def to_onnx(model, dtype="float32", opset=OPSET):
    """``model``'s inference graph as an ``onnx.ModelProto`` (checked by
    ``onnx.checker``). Float inputs, weights and outputs are ``dtype``; integer inputs
    (token ids) keep their integer type."""
    onnx = _import_onnx()
    if not getattr(model, "built", False) or not hasattr(model, "_inputs"):
        raise ValueError(f"ONNX export: model {getattr(model, 'name', model)!r} is not built; "
                         f"build it (call it on data, or give an Input) first")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"ONNX export: dtype must be float32 or float64, got {dtype}")
    model._sync()
    g = OnnxGraph(onnx, dtype)
    inputs, in_names = [], []
    for t in model._inputs:
        layer = t.node.layer
        name = g.fresh(layer.name)
        tdt = getattr(layer, "tensor_dtype", None) or model.dtype
        tdt = np.dtype(tdt) if np.dtype(tdt).kind in "iu" else dtype
        inputs.append(onnx.helper.make_tensor_value_info(
            name, _elem_type(onnx, tdt), _dims(t.shape, name)))
        in_names.append(name)
    outs = _emit(g, model, in_names)
    outputs = []
    for k, (t, o) in enumerate(zip(model._outputs, outs)):
        name = g.fresh(model.output_names[k] if hasattr(model, "output_names") else f"out{k}")
        g.nodes.append(onnx.helper.make_node("Identity", [o], [name]))
        outputs.append(onnx.helper.make_tensor_value_info(
            name, _elem_type(onnx, dtype), _dims(t.shape, name)))
    graph = onnx.helper.make_graph(g.nodes, model.name, inputs, outputs, g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="pynn")
    proto.ir_version = min(proto.ir_version, 9)  # what current ONNX Runtime releases read
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, filepath, verbose=True, dtype="float32", opset=OPSET):
    """Write ``model`` as ONNX to ``filepath`` (atomically); returns the path."""
    proto = to_onnx(model, dtype=dtype, opset=opset)
    data = proto.SerializeToString()
    replace_atomically(filepath, lambda f: f.write(data))
    if verbose:
        print(f"Saved the ONNX model of {model.name!r} to {os.fspath(filepath)} "
              f"({len(data):,} bytes; inputs {[i.name for i in proto.graph.input]}, "
              f"outputs {[o.name for o in proto.graph.output]})")
    return filepath
