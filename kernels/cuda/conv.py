"""2-D convolution (NCHW) on the GPU: im2col / col2im kernels (``conv.cu``) around the GEMM.

The same three products as the NumPy reference (``kernels/reference/conv.py``), with the data
laid out so that each is one batched launch of :func:`.matmul.gemm`:

* forward:          ``out[n, g] = W[g] @ cols[n, g]`` -- batch (image, group), the weights
                    broadcast over images (stride 0);
* backward-input:   ``dcols[n, g] = W[g]^T @ dout[n, g]``, then ``col2im`` (a gather, one
                    thread per input pixel, so overlapping windows need no atomics);
* backward-weight:  ``dW[g] = dout[:, g] @ colsT[g]`` with the images stacked along k, so the
                    sum over the batch happens inside the GEMM (with split-K when the result is
                    too small to fill the GPU).

``cols`` holds ``C*KH*KW x Ho*Wo`` values per image, KH*KW times the input; images are
processed in chunks so that it stays under :data:`COLS_BUDGET` bytes. A 1x1 convolution with
stride 1 and no padding needs no im2col at all: its ``cols`` is the input itself.
"""

from __future__ import annotations

from typing import Any

from ..reference.conv import conv2d_output_size
from .loader import float_suffix, i32, i64, import_cupy, launch_elementwise, pair
from .matmul import gemm

#: Bytes of im2col buffer per chunk of images (at least one image is processed at a time).
COLS_BUDGET = 256 * 2**20


class _Geometry:
    """The sizes of one convolution, checked, and the int arguments of the conv.cu kernels."""

    def __init__(self, op: str, x_shape, w_shape, stride, padding, dilation, groups) -> None:
        if len(x_shape) != 4 or len(w_shape) != 4:
            raise ValueError(
                f"{op} (cuda): expected 4-D input and weight, got shapes {tuple(x_shape)}, {tuple(w_shape)}"
            )
        self.n, self.c, self.h, self.w = (int(v) for v in x_shape)
        self.k, self.cg, self.kh, self.kw = (int(v) for v in w_shape)
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.dilation = pair(dilation, "dilation")
        self.groups = int(groups)
        if self.groups < 1 or self.c != self.cg * self.groups or self.k % self.groups:
            raise ValueError(
                f"{op} (cuda): input {tuple(x_shape)} and weight {tuple(w_shape)} do not match groups={groups}: "
                f"need in_channels == weight.shape[1] * groups and out_channels divisible by groups"
            )
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(f"{op} (cuda): stride and dilation must be >= 1 and padding >= 0")
        self.ho, self.wo = conv2d_output_size(
            self.h, self.w, self.kh, self.kw, self.stride, self.padding, self.dilation
        )
        if self.ho <= 0 or self.wo <= 0:
            raise ValueError(
                f"{op} (cuda): the (dilated) kernel {self.kh}x{self.kw} is larger than the padded input "
                f"{self.h + 2 * self.padding[0]}x{self.w + 2 * self.padding[1]}"
            )
        self.kg = self.k // self.groups  # output channels per group
        self.q = self.cg * self.kh * self.kw  # rows of cols per group
        self.p = self.ho * self.wo  # output positions per image
        # 1x1, stride 1, no padding: cols is x itself, dcols is dx itself.
        self.direct = self.kh == 1 and self.kw == 1 and self.stride == (1, 1) and self.padding == (0, 0)

    def ints(self) -> tuple:
        """C, H, W, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo as kernel arguments."""
        return tuple(
            i32(v)
            for v in (self.c, self.h, self.w, self.kh, self.kw, *self.stride, *self.padding, *self.dilation)
            + (self.ho, self.wo)
        )

    def chunk(self, itemsize: int) -> int:
        """Images per chunk, so that one chunk's columns fit in :data:`COLS_BUDGET` bytes."""
        per_image = self.c * self.kh * self.kw * self.p * itemsize
        return max(1, min(self.n, COLS_BUDGET // max(1, per_image)))


def _im2col(x: Any, geo: _Geometry, suffix: str) -> Any:
    """``cols`` of shape ``(images, C*KH*KW, Ho*Wo)`` for the contiguous images ``x``."""
    cp = import_cupy()
    cols = cp.empty((x.shape[0], geo.c * geo.kh * geo.kw, geo.p), dtype=x.dtype)
    launch_elementwise("conv.cu", f"im2col_{suffix}", cols.size, (x, cols, *geo.ints(), i64(cols.size)))
    return cols


def _im2col_t(x: Any, geo: _Geometry, suffix: str) -> Any:
    """``colsT`` of shape ``(groups, images * Ho*Wo, Cg*KH*KW)`` for the contiguous images ``x``."""
    cp = import_cupy()
    nb = x.shape[0]
    cols = cp.empty((geo.groups, nb * geo.p, geo.q), dtype=x.dtype)
    args = (x, cols, *geo.ints(), i32(nb), i32(geo.groups), i64(cols.size))
    launch_elementwise("conv.cu", f"im2col_t_{suffix}", cols.size, args)
    return cols


def _col2im(dcols: Any, dx: Any, geo: _Geometry, suffix: str) -> None:
    """Gather ``dcols`` ``(images, C*KH*KW, Ho*Wo)`` into the contiguous input gradient ``dx``."""
    launch_elementwise("conv.cu", f"col2im_{suffix}", dx.size, (dcols, dx, *geo.ints(), i64(dx.size)))


def conv2d_forward(x: Any, w: Any, stride, padding, dilation, groups: int, bias: Any = None) -> Any:
    """``out[n, k] = sum_c W[k, c] (*) x[n, c] (+ bias[k])`` (cross-correlation, as in torch):
    im2col + GEMM, then the bias added in place."""
    out = _conv2d_forward(x, w, stride, padding, dilation, groups)
    if bias is not None and out.size:
        out += bias.reshape(1, -1, 1, 1)
    return out


def _conv2d_forward(x: Any, w: Any, stride, padding, dilation, groups: int) -> Any:
    cp = import_cupy()
    suffix = float_suffix("conv2d_forward", x, w)
    geo = _Geometry("conv2d_forward", x.shape, w.shape, stride, padding, dilation, groups)
    with x.device:
        x, w = cp.ascontiguousarray(x), cp.ascontiguousarray(w)
        out = cp.empty((geo.n, geo.k, geo.ho, geo.wo), dtype=x.dtype)
        if out.size == 0:
            return out
        if geo.q == 0:
            out.fill(0)
            return out
        step = geo.n if geo.direct else geo.chunk(x.itemsize)
        for n0 in range(0, geo.n, step):
            nb = min(step, geo.n - n0)
            xs = x[n0 : n0 + nb]
            cols = xs if geo.direct else _im2col(xs, geo, suffix)
            gemm(
                w,
                cols,
                out[n0 : n0 + nb],
                m=geo.kg,
                n=geo.p,
                k=geo.q,
                lda=geo.q,
                ldb=geo.p,
                batch=(nb, geo.groups),
                a_batch=(0, geo.kg * geo.q),
                b_batch=(geo.groups * geo.q * geo.p, geo.q * geo.p),
            )
        return out


def conv2d_backward_input(
    grad_out: Any, w: Any, x_shape: tuple[int, ...], stride, padding, dilation, groups: int
) -> Any:
    """dx: columns ``W^T @ d out`` (GEMM), gathered back onto the input grid (col2im)."""
    cp = import_cupy()
    suffix = float_suffix("conv2d_backward_input", grad_out, w)
    geo = _Geometry("conv2d_backward_input", x_shape, w.shape, stride, padding, dilation, groups)
    if tuple(grad_out.shape) != (geo.n, geo.k, geo.ho, geo.wo):
        raise ValueError(
            f"conv2d_backward_input (cuda): grad_out has shape {tuple(grad_out.shape)}, "
            f"expected {(geo.n, geo.k, geo.ho, geo.wo)}"
        )
    with grad_out.device:
        g, w = cp.ascontiguousarray(grad_out), cp.ascontiguousarray(w)
        dx = cp.empty((geo.n, geo.c, geo.h, geo.w), dtype=g.dtype)
        if dx.size == 0:
            return dx
        if geo.k == 0:
            dx.fill(0)
            return dx
        # W[g]^T, (Q x Kg) per group: a small copy, so the GEMM reads plain row-major operands.
        wt = cp.ascontiguousarray(w.reshape(geo.groups, geo.kg, geo.q).transpose(0, 2, 1))
        step = geo.n if geo.direct else geo.chunk(g.itemsize)
        for n0 in range(0, geo.n, step):
            nb = min(step, geo.n - n0)
            dxs = dx[n0 : n0 + nb]
            dcols = dxs if geo.direct else cp.empty((nb, geo.c * geo.kh * geo.kw, geo.p), dtype=g.dtype)
            gemm(
                wt,
                g[n0 : n0 + nb],
                dcols,
                m=geo.q,
                n=geo.p,
                k=geo.kg,
                lda=geo.kg,
                ldb=geo.p,
                batch=(nb, geo.groups),
                a_batch=(0, geo.q * geo.kg),
                b_batch=(geo.k * geo.p, geo.kg * geo.p),
            )
            if not geo.direct:
                _col2im(dcols, dxs, geo, suffix)
        return dx


def conv2d_backward_weight(
    x: Any, grad_out: Any, w_shape: tuple[int, ...], stride, padding, dilation, groups: int
) -> Any:
    """dW: ``d out @ cols^T``, one GEMM per chunk of images, the sum over images inside the GEMM."""
    cp = import_cupy()
    suffix = float_suffix("conv2d_backward_weight", x, grad_out)
    geo = _Geometry("conv2d_backward_weight", x.shape, w_shape, stride, padding, dilation, groups)
    if tuple(grad_out.shape) != (geo.n, geo.k, geo.ho, geo.wo):
        raise ValueError(
            f"conv2d_backward_weight (cuda): grad_out has shape {tuple(grad_out.shape)}, "
            f"expected {(geo.n, geo.k, geo.ho, geo.wo)}"
        )
    with x.device:
        x, g = cp.ascontiguousarray(x), cp.ascontiguousarray(grad_out)
        dw = cp.zeros((geo.groups, geo.kg, geo.q), dtype=x.dtype)
        if dw.size == 0 or geo.n == 0:
            return dw.reshape(tuple(int(v) for v in w_shape))
        # dout as (groups, Kg, images * positions): the k axis of the GEMM runs over all images.
        gt = cp.ascontiguousarray(g.reshape(geo.n, geo.groups, geo.kg, geo.p).transpose(1, 2, 0, 3))
        step = geo.chunk(x.itemsize)
        for n0 in range(0, geo.n, step):
            nb = min(step, geo.n - n0)
            cols = _im2col_t(x[n0 : n0 + nb], geo, suffix)
            part = dw if n0 == 0 else cp.empty_like(dw)
            gemm(
                gt[:, :, n0:],  # only the data pointer is used: the chunk starts at image n0
                cols,
                part,
                m=geo.kg,
                n=geo.q,
                k=nb * geo.p,
                lda=geo.n * geo.p,
                ldb=geo.q,
                batch=(geo.groups, 1),
                a_batch=(geo.kg * geo.n * geo.p, 0),
                b_batch=(nb * geo.p * geo.q, 0),
            )
            if n0:
                dw += part
        return dw.reshape(tuple(int(v) for v in w_shape))
