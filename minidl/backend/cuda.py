"""The CUDA side of the backend, imported only when a tensor is sent to a GPU.

``import minidl`` never imports CuPy; this module does, on first use, and reports clearly
when CuPy or a GPU is missing.
"""

from __future__ import annotations

from typing import Any

from .device import Device


def is_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    try:
        import cupy
    except Exception:
        return False
    try:
        return bool(cupy.cuda.is_available())
    except Exception:
        return False


def to_gpu(array: Any, device: Device) -> Any:
    """Copy a host array to GPU ``device`` (a CuPy array), or explain why that is impossible."""
    if not is_available():
        raise RuntimeError(
            "CUDA is not available: moving a tensor to 'cuda' needs an NVIDIA GPU and CuPy "
            "(pip install 'minidl[gpu]'). Check with minidl.cuda.is_available()."
        )
    import cupy

    with cupy.cuda.Device(device.index or 0):
        return cupy.asarray(array)
