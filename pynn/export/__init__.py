"""Exporting trained models to other runtimes (Keras 3's ``model.export``).

``format="onnx"`` writes an ONNX model (:mod:`pynn.export.onnx`), checked by
``onnx.checker``; it needs the ``onnx`` package (``pip install 'pynn[onnx]'``).
"""
from __future__ import annotations

__all__ = ["export_model", "FORMATS"]

FORMATS = ("onnx",)


def export_model(model, filepath, format="onnx", verbose=True, **kwargs):
    """Write ``model`` for inference to ``filepath`` in ``format`` (``"onnx"``).

    Keras 3 also offers ``"tf_saved_model"`` and ``"openvino"``; pynn exports ONNX, which
    ONNX Runtime, OpenVINO and TensorRT all read."""
    if format != "onnx":
        raise ValueError(f"export: unsupported format {format!r}; pynn exports "
                         f"{list(FORMATS)} (ONNX is read by ONNX Runtime, OpenVINO and "
                         f"TensorRT)")
    from .onnx import export_onnx
    return export_onnx(model, filepath, verbose=verbose, **kwargs)
