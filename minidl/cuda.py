"""``minidl.cuda``: is a GPU usable? Asking never fails, and imports CuPy only when asked."""

from __future__ import annotations


def is_available() -> bool:
    """True when CuPy is installed and a CUDA device is visible."""
    from .backend.cuda import is_available as available

    return available()


def device_count() -> int:
    if not is_available():
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())
