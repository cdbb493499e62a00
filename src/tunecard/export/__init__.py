"""Export a trained folder to other runtimes (ONNX, optionally int8), checked against torch before it is kept."""

from tunecard.export.onnx import export_onnx

__all__ = ["export_onnx"]
