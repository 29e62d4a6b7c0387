"""2-D max and average pooling (NCHW) on the GPU, forward and backward (kernels in ``pool.cu``).

Same signatures, output sizes and divisor rules as ``kernels/reference/pool.py``: max pooling
returns the flat ``row * W + col`` index of each maximum (int64, as torch's
``return_indices=True``), NaN wins; average pooling honours ``ceil_mode``,
``count_include_pad`` and ``divisor_override``. One thread per element written; only the
max-pooling backward, a scatter, needs atomics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..reference.pool import pool_output_size
from .loader import float_suffix, i32, i64, import_cupy, launch_elementwise, pair


def _sizes(op: str, shape, kernel, stride, padding, dilation, ceil_mode) -> tuple:
    """Checked window parameters and the output plane ``(ho, wo)``."""
    if len(shape) != 4:
        raise ValueError(f"{op} (cuda): expected a 4-D (N, C, H, W) input, got shape {tuple(shape)}")
    kernel, stride = pair(kernel, "kernel"), pair(stride, "stride")
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"{op} (cuda): kernel, stride and dilation must be >= 1 and padding >= 0")
    h, w = int(shape[2]), int(shape[3])
    ho = pool_output_size(h, kernel[0], stride[0], padding[0], dilation[0], bool(ceil_mode))
    wo = pool_output_size(w, kernel[1], stride[1], padding[1], dilation[1], bool(ceil_mode))
    if ho <= 0 or wo <= 0:
        raise ValueError(f"{op} (cuda): the window {kernel} does not fit the padded input {h}x{w}")
    return kernel, stride, padding, dilation, ho, wo


def _geom(h, w, ho, wo, kernel, stride, padding, dilation) -> tuple:
    """H, W, Ho, Wo, KH, KW, sh, sw, ph, pw, dh, dw as kernel arguments."""
    return tuple(i32(v) for v in (h, w, ho, wo, *kernel, *stride, *padding, *dilation))


def max_pool2d_forward(x: Any, kernel, stride, padding, dilation, ceil_mode: bool) -> tuple[Any, Any]:
    """Window maxima and the flat (row * W + col) input index of each; NaN wins, as in torch."""
    cp = import_cupy()
    suffix = float_suffix("max_pool2d_forward", x)
    kernel, stride, padding, dilation, ho, wo = _sizes(
        "max_pool2d_forward", x.shape, kernel, stride, padding, dilation, ceil_mode
    )
    n, c, h, w = x.shape
    with x.device:
        x = cp.ascontiguousarray(x)
        out = cp.empty((n, c, ho, wo), dtype=x.dtype)
        indices = cp.empty((n, c, ho, wo), dtype=np.int64)
        args = (x, out, indices, *_geom(h, w, ho, wo, kernel, stride, padding, dilation), i64(out.size))
        launch_elementwise("pool.cu", f"max_pool2d_forward_{suffix}", out.size, args)
        return out, indices


def max_pool2d_backward(grad_out: Any, indices: Any, x_shape: tuple[int, ...]) -> Any:
    """Scatter-add each output gradient to the input position its maximum came from."""
    cp = import_cupy()
    suffix = float_suffix("max_pool2d_backward", grad_out)
    if tuple(indices.shape) != tuple(grad_out.shape) or grad_out.ndim != 4:
        raise ValueError(
            f"max_pool2d_backward (cuda): grad_out {tuple(grad_out.shape)} and indices {tuple(indices.shape)} "
            "must be 4-D arrays of one shape"
        )
    n, c, h, w = (int(v) for v in x_shape)
    with grad_out.device:
        g = cp.ascontiguousarray(grad_out)
        idx = cp.ascontiguousarray(indices, dtype=np.int64)
        gx = cp.zeros((n, c, h, w), dtype=g.dtype)  # the atomics add into it
        plane_out = int(g.shape[2]) * int(g.shape[3])
        args = (g, idx, gx, i64(plane_out), i64(h * w), i64(g.size))
        launch_elementwise("pool.cu", f"max_pool2d_backward_{suffix}", g.size, args)
        return gx


def avg_pool2d_forward(
    x: Any, kernel, stride, padding, ceil_mode: bool, count_include_pad: bool, divisor_override: int | None
) -> Any:
    """Window sums of the zero-padded input, divided by torch's divisor."""
    cp = import_cupy()
    suffix = float_suffix("avg_pool2d_forward", x)
    kernel, stride, padding, dilation, ho, wo = _sizes(
        "avg_pool2d_forward", x.shape, kernel, stride, padding, (1, 1), ceil_mode
    )
    n, c, h, w = x.shape
    with x.device:
        x = cp.ascontiguousarray(x)
        out = cp.empty((n, c, ho, wo), dtype=x.dtype)
        args = (
            x,
            out,
            *_geom(h, w, ho, wo, kernel, stride, padding, dilation),
            i32(bool(count_include_pad)),
            i32(divisor_override or 0),
            i64(out.size),
        )
        launch_elementwise("pool.cu", f"avg_pool2d_forward_{suffix}", out.size, args)
        return out


def avg_pool2d_backward(
    grad_out: Any,
    x_shape: tuple[int, ...],
    kernel,
    stride,
    padding,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Any:
    """Spread each output gradient, divided by its divisor, evenly over its window (as a gather)."""
    cp = import_cupy()
    suffix = float_suffix("avg_pool2d_backward", grad_out)
    kernel, stride, padding, dilation, ho, wo = _sizes(
        "avg_pool2d_backward", x_shape, kernel, stride, padding, (1, 1), ceil_mode
    )
    n, c, h, w = (int(v) for v in x_shape)
    if tuple(grad_out.shape) != (n, c, ho, wo):
        raise ValueError(
            f"avg_pool2d_backward (cuda): grad_out has shape {tuple(grad_out.shape)}, expected {(n, c, ho, wo)}"
        )
    with grad_out.device:
        g = cp.ascontiguousarray(grad_out)
        gx = cp.empty((n, c, h, w), dtype=g.dtype)
        args = (
            g,
            gx,
            *_geom(h, w, ho, wo, kernel, stride, padding, dilation),
            i32(bool(count_include_pad)),
            i32(divisor_override or 0),
            i64(gx.size),
        )
        launch_elementwise("pool.cu", f"avg_pool2d_backward_{suffix}", gx.size, args)
        return gx
