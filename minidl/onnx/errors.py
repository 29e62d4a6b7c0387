"""The error raised for ONNX files minidl cannot read or models it cannot express."""

from __future__ import annotations


class OnnxError(ValueError):
    """An ONNX model minidl cannot load (malformed, truncated, unsupported operator), or a
    minidl op that ONNX cannot express on export. The message names the node and the op."""
