"""The convolution's micro-kernels, chosen by dtype when their caller is compiled.

``conv_micro`` (implicit GEMM: B read from a padded input at tap offsets) and ``dw_micro``
(the weight gradient: A read that way) are generated into ``gemm_micro.py`` per dtype; the
overloads below pick the float32 or float64 one during type inference, so each driver that
calls them is written once for both dtypes (see ``gemm.micro`` for why an overload rather than
a jitted function passed as an argument). ``conv.py`` and ``winograd.py`` both use them.
"""

from __future__ import annotations

import numba
import numba.extending

from . import gemm_micro
from .gemm import FASTMATH, _jit

conv_micro_f32 = _jit(gemm_micro.conv_micro_f32)
conv_micro_f64 = _jit(gemm_micro.conv_micro_f64)
dw_micro_f32 = _jit(gemm_micro.dw_micro_f32)
dw_micro_f64 = _jit(gemm_micro.dw_micro_f64)


def conv_micro(kc, ap, xf, koff, q0, qc, c, c_off0, ldc, mr, tile, add):
    """The implicit-GEMM micro-kernel, over a row of tiles, for the arrays' dtype (chosen at compile time)."""
    raise NotImplementedError("conv_micro is only callable from compiled code")


@numba.extending.overload(conv_micro, jit_options={"cache": True, "fastmath": set(FASTMATH)})
def _conv_micro_for_dtype(kc, ap, xf, koff, q0, qc, c, c_off0, ldc, mr, tile, add):
    if ap.dtype == numba.types.float32:
        return lambda kc, ap, xf, koff, q0, qc, c, c_off0, ldc, mr, tile, add: conv_micro_f32(
            kc, ap, xf, koff, q0, qc, c, c_off0, ldc, mr, tile, add
        )
    if ap.dtype == numba.types.float64:
        return lambda kc, ap, xf, koff, q0, qc, c, c_off0, ldc, mr, tile, add: conv_micro_f64(
            kc, ap, xf, koff, q0, qc, c, c_off0, ldc, mr, tile, add
        )
    return None


def dw_micro(kc, xf, koff, crs, q, bp, c, c_off0, ldc, nr, tile, add):
    """The weight-gradient micro-kernel, over a column of tiles, for the arrays' dtype (chosen at compile time)."""
    raise NotImplementedError("dw_micro is only callable from compiled code")


@numba.extending.overload(dw_micro, jit_options={"cache": True, "fastmath": set(FASTMATH)})
def _dw_micro_for_dtype(kc, xf, koff, crs, q, bp, c, c_off0, ldc, nr, tile, add):
    if bp.dtype == numba.types.float32:
        return lambda kc, xf, koff, crs, q, bp, c, c_off0, ldc, nr, tile, add: dw_micro_f32(
            kc, xf, koff, crs, q, bp, c, c_off0, ldc, nr, tile, add
        )
    if bp.dtype == numba.types.float64:
        return lambda kc, xf, koff, crs, q, bp, c, c_off0, ldc, nr, tile, add: dw_micro_f64(
            kc, xf, koff, crs, q, bp, c, c_off0, ldc, nr, tile, add
        )
    return None
