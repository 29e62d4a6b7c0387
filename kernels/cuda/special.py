"""Special functions on the GPU: ``erf`` by CuPy's ``cupyx.scipy.special.erf`` (CUDA's erff / erf)."""

from __future__ import annotations

from typing import Any

from .loader import float_suffix, import_cupy


def erf(x: Any) -> Any:
    """Elementwise error function of a float32 or float64 array (same dtype out)."""
    import_cupy()
    float_suffix("erf", x)
    import cupyx.scipy.special

    return cupyx.scipy.special.erf(x)
