"""ONNX interoperability: ``export`` a minidl model to an ONNX file, ``load`` one back as a
minidl static graph, and a ``Backend`` that runs onnx's own conformance suite.

The ``onnx`` package is needed only here (``pip install "minidl[onnx]"``); ``import minidl``
does not import it. Files: ``export.py`` (minidl graph IR -> ONNX), ``importer.py``
(ONNX -> minidl graph), ``backend.py`` (``onnx.backend.base.Backend``), ``errors.py``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export", "load", "OnnxError"]


def export(*args: Any, **kwargs: Any) -> Any:
    """Export a model or function to an ONNX file; see ``minidl/onnx/export.py``."""
    from .export import export as _export

    return _export(*args, **kwargs)


def load(*args: Any, **kwargs: Any) -> Any:
    """Load an ONNX file as a minidl graph and module; see ``minidl/onnx/importer.py``."""
    from .importer import load as _load

    return _load(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "OnnxError":
        from .errors import OnnxError

        return OnnxError
    raise AttributeError(f"module 'minidl.onnx' has no attribute {name!r}")
