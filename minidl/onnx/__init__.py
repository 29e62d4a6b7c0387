"""ONNX interoperability: ``export`` a minidl model to an ONNX file, ``load`` one back as a
minidl static graph, and a ``Backend`` that runs onnx's own conformance suite.

The ``onnx`` package is needed only here (``pip install "minidl[onnx]"``); ``import minidl``
does not import it. Files: ``export.py`` (minidl graph IR -> ONNX), ``importer.py``
(ONNX -> minidl graph), ``backend.py`` (``onnx.backend.base.Backend``), ``errors.py``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export", "load", "OnnxError"]


# Imported now, not on first call: importing the submodule ``export`` rebinds this package's
# attribute ``export`` to that module, so a lazy wrapper would be replaced by a module object.
from .export import export  # noqa: E402


def load(*args: Any, **kwargs: Any) -> Any:
    """Load an ONNX file as a minidl graph and module; see ``minidl/onnx/importer.py``."""
    from .importer import load as _load

    return _load(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "OnnxError":
        from .errors import OnnxError

        return OnnxError
    raise AttributeError(f"module 'minidl.onnx' has no attribute {name!r}")
