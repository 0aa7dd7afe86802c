"""ONNX export: a built model's inference graph as an ONNX ``ModelProto``.

Every layer type has a converter (``convert_*`` modules) that emits ONNX nodes for one
call of the layer; :mod:`.exporter` walks the model's graph and writes the file.
BatchNormalization is folded into a scale and shift (inference statistics), Dropout
and the noise layers are identities, channels-last convolutions and poolings run as
ONNX's channels-first operators between two transposes, and the recurrent layers map
to ONNX's ``RNN``/``LSTM``/``GRU`` with their gate orders and bias layouts. The batch
axis (and any axis the model leaves unknown) is dynamic.

Not exported (a clear ``ValueError`` names the layer): masks (``mask_zero``,
``Masking``), custom layers without a converter, activations ONNX Runtime lacks.
"""
from .exporter import export_onnx, to_onnx
from .graph import OnnxGraph, converts

__all__ = ["export_onnx", "to_onnx", "OnnxGraph", "converts"]
