"""Neural-network ONNX operators: ``MatMul``, ``Gemm``, ``Conv``, pooling, normalization,
``Softmax``/``LogSoftmax``, ``Dropout`` and the two classification losses.

Convolution and pooling: minidl's kernels are 2-D. A 1-D node runs as 2-D with a height of
one. ONNX allows asymmetric padding (``pads = [top, left, bottom, right]``) and ``auto_pad``;
minidl's kernels pad symmetrically, so asymmetric padding is applied first as an explicit
pad (zeros for convolution, ``-inf`` for max pooling), and average pooling divides the window
sum of the padded input by the window sum of a padded mask of ones when padding must not count.

``auto_pad = SAME_UPPER / SAME_LOWER`` chooses pads so that ``out = ceil(in / stride)``: the
total is ``(out - 1) * stride + (k - 1) * dilation + 1 - in``, with the odd one at the end
(UPPER) or the beginning (LOWER).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import dtypes, ops
from ...nn import functional as F
from ...tensor import Tensor
from ..importer import NodeContext
from . import converter


@converter("MatMul")
def matmul(ctx: NodeContext) -> Any:
    return ops.matmul(ctx.input(0), ctx.input(1))


@converter("Gemm")
def gemm(ctx: NodeContext) -> Any:
    """``alpha * A' @ B' + beta * C`` with ``A' = A.T`` if ``transA`` (likewise ``B``)."""
    a, b, c = ctx.input(0), ctx.input(1), ctx.input(2)
    if ctx.attr("transA", 0):
        a = a.t()
    if ctx.attr("transB", 0):
        b = b.t()
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    y = ops.matmul(a, b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c if beta == 1.0 else c * beta)
    return y


# ---- convolution and pooling --------------------------------------------------------------------


def _spatial(ctx: NodeContext, x: Any, kernel: list[int]) -> tuple[list, list, list[int], list[int]]:
    """Strides, dilations and (begin, end) pads per spatial dimension, ``auto_pad`` resolved."""
    n = len(kernel)
    strides = ctx.attr("strides") or [1] * n
    dilations = ctx.attr("dilations") or [1] * n
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            size = x.shape[2 + i]
            if size is None:
                raise ctx.fail("auto_pad SAME on a spatial dimension of unknown size")
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
            small = total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
    elif auto_pad == "VALID":
        begin, end = [0] * n, [0] * n
    else:
        pads = ctx.attr("pads") or [0] * (2 * n)
        begin, end = list(pads[:n]), list(pads[n:])
    return strides, dilations, begin, end


def _as_2d(ctx: NodeContext, x: Any, n: int) -> Any:
    if n == 2:
        return x
    if n == 1:
        return x.unsqueeze(2)
    raise ctx.fail(f"{n}-D {ctx.op_type} is not supported: minidl's convolution and pooling kernels are 2-D")


def _pair(values: list, n: int, fill: int) -> tuple:
    return tuple(values) if n == 2 else (fill, values[0])


def _explicit_pad(x: Any, begin: list, end: list, value: float) -> Any:
    """Pad the spatial dims (after conversion to 2-D) by (begin, end), last dimension first."""
    flat: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        flat += [b, e]
    return ops.shape.pad(x, flat, value=value)


@converter("Conv")
def conv(ctx: NodeContext) -> Any:
    x, w, b = ctx.input(0), ctx.input(1), ctx.input(2)
    kernel = ctx.attr("kernel_shape") or list(w.shape[2:])
    n = len(kernel)
    strides, dilations, begin, end = _spatial(ctx, x, kernel)
    x2, w2 = _as_2d(ctx, x, n), _as_2d(ctx, w, n)
    if n == 1:
        begin, end = [0, *begin], [0, *end]
    if begin == end:
        padding = tuple(begin)
    else:
        x2, padding = _explicit_pad(x2, begin, end, 0.0), (0, 0)
    y = F.conv2d(
        x2, w2, b, stride=_pair(strides, n, 1), padding=padding, dilation=_pair(dilations, n, 1),
        groups=ctx.attr("group", 1),
    )  # fmt: skip
    return y.squeeze(2) if n == 1 else y


def _pool_setup(ctx: NodeContext) -> tuple:
    x = ctx.input(0)
    kernel = list(ctx.attr("kernel_shape"))
    n = len(kernel)
    strides, dilations, begin, end = _spatial(ctx, x, kernel)
    x2 = _as_2d(ctx, x, n)
    if n == 1:
        kernel, strides, dilations, begin, end = [1, *kernel], [1, *strides], [1, *dilations], [0, *begin], [0, *end]
    return x2, n, kernel, strides, dilations, begin, end


@converter("MaxPool")
def max_pool(ctx: NodeContext) -> Any:
    x, n, kernel, strides, dilations, begin, end = _pool_setup(ctx)
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    symmetric = begin == end and all(p <= k // 2 for p, k in zip(begin, kernel))
    want_indices = ctx.n_outputs > 1 and ctx.wanted[1]
    if not symmetric:
        if want_indices:
            raise ctx.fail("the Indices output with asymmetric padding is not supported")
        x, begin = _explicit_pad(x, begin, end, -math.inf), [0, 0]
    args = dict(stride=tuple(strides), padding=tuple(begin), dilation=tuple(dilations), ceil_mode=ceil_mode)
    if not want_indices:
        y = F.max_pool2d(x, tuple(kernel), **args)
        return y.squeeze(2) if n == 1 else y
    y, idx = F.max_pool2d(x, tuple(kernel), return_indices=True, **args)
    # minidl's indices count within each (H, W) plane, row-major; ONNX's count over the whole
    # tensor, and column-major within the plane when storage_order=1.
    nb, c, h, w = x.shape
    if ctx.attr("storage_order", 0):
        idx = (idx % w) * h + ops.div(idx, w, rounding_mode="floor")
    offsets = Tensor((np.arange(nb * c, dtype=np.int64) * (h * w)).reshape(nb, c, 1, 1))
    idx = idx + offsets
    return (y.squeeze(2), idx.squeeze(2)) if n == 1 else (y, idx)


@converter("AveragePool")
def average_pool(ctx: NodeContext) -> Any:
    x, n, kernel, strides, dilations, begin, end = _pool_setup(ctx)
    if any(d != 1 for d in dilations):
        raise ctx.fail("dilated average pooling is not supported (minidl's avg_pool2d has no dilation)")
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    include_pad = bool(ctx.attr("count_include_pad", 0))
    kernel, strides = tuple(kernel), tuple(strides)
    if begin == end and all(p <= k // 2 for p, k in zip(begin, kernel)):
        y = F.avg_pool2d(x, kernel, strides, tuple(begin), ceil_mode=ceil_mode, count_include_pad=include_pad)
    elif include_pad and not ceil_mode:
        y = F.avg_pool2d(_explicit_pad(x, begin, end, 0.0), kernel, strides, 0)
    else:
        # mean over the real elements of each window = sum(x) / count, both pooled over padding
        ones = ops.ones_like(x)
        total = F.avg_pool2d(_explicit_pad(x, begin, end, 0.0), kernel, strides, 0, ceil_mode=ceil_mode)
        count = F.avg_pool2d(_explicit_pad(ones, begin, end, 0.0), kernel, strides, 0, ceil_mode=ceil_mode)
        y = total / count
    return y.squeeze(2) if n == 1 else y


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    dims = tuple(range(2, x.ndim))
    if ctx.op_type == "GlobalAveragePool":
        return x.mean(dims, keepdim=True)
    return ops.amax(x, dims, keepdim=True)


# ---- normalization -------------------------------------------------------------------------------


@converter("BatchNormalization")
def batch_norm(ctx: NodeContext) -> Any:
    x, scale, bias, mean, var = (ctx.input(i) for i in range(5))
    eps = ctx.attr("epsilon", 1e-5)
    training = bool(ctx.attr("training_mode", 0)) if ctx.opset >= 14 else ctx.n_outputs > 1
    if not training:
        return F.batch_norm(x, mean, var, scale, bias, training=False, eps=eps)
    # Training: normalize with the batch's statistics (biased variance) and return the running
    # statistics blended as running * momentum + batch * (1 - momentum) -- ONNX's convention,
    # where momentum weights the *old* value (torch's momentum is 1 minus it).
    momentum = ctx.attr("momentum", 0.9)
    dims = (0,) + tuple(range(2, x.ndim))
    channel = (1, -1) + (1,) * (x.ndim - 2)
    batch_mean = x.mean(dims, keepdim=True)
    centered = x - batch_mean
    batch_var = (centered * centered).mean(dims, keepdim=True)
    y = centered * ops.rsqrt(batch_var + eps) * scale.reshape(channel) + bias.reshape(channel)
    running_mean = mean * momentum + batch_mean.reshape(-1) * (1 - momentum)
    running_var = var * momentum + batch_var.reshape(-1) * (1 - momentum)
    return y, running_mean, running_var


@converter("InstanceNormalization")
def instance_norm(ctx: NodeContext) -> Any:
    """Each (sample, channel) plane normalized over its spatial dims, then ``scale * y + B``."""
    x, scale, bias = ctx.input(0), ctx.input(1), ctx.input(2)
    dims = tuple(range(2, x.ndim))
    channel = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    y = centered * ops.rsqrt((centered * centered).mean(dims, keepdim=True) + ctx.attr("epsilon", 1e-5))
    return y * scale.reshape(channel) + bias.reshape(channel)


@converter("LayerNormalization")
def layer_norm(ctx: NodeContext) -> Any:
    """``(x - mean) / sqrt(var + eps) * scale + bias`` over the dims from ``axis`` on; the optional
    outputs are the mean and ``1 / sqrt(var + eps)`` with the reduced dims kept as size 1."""
    x, scale, bias = ctx.input(0), ctx.input(1), ctx.input(2)
    axis = ctx.attr("axis", -1) % x.ndim
    eps = ctx.attr("epsilon", 1e-5)
    dims = tuple(range(axis, x.ndim))
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    inv_std = ops.rsqrt((centered * centered).mean(dims, keepdim=True) + eps)
    y = centered * inv_std * scale
    if bias is not None:
        y = y + bias
    return y, mean, inv_std


@converter("Softmax", "LogSoftmax")
def softmax(ctx: NodeContext) -> Any:
    x = ctx.input(0)
    fn = F.softmax if ctx.op_type == "Softmax" else F.log_softmax
    if ctx.opset >= 13:
        return fn(x, dim=ctx.attr("axis", -1))
    # Before opset 13 the input was coerced to 2-D at ``axis`` and normalized over the second part.
    axis = ctx.attr("axis", 1) % max(x.ndim, 1)
    front, back = x.shape[:axis], x.shape[axis:]
    if None in back:
        raise ctx.fail("softmax (opset < 13) over dimensions of unknown size")
    flat = x.reshape(-1 if None in front else math.prod(front), math.prod(back))
    return fn(flat, dim=1).reshape(tuple(x.shape))


@converter("Dropout")
def dropout(ctx: NodeContext) -> Any:
    """Identity at inference (the mask all true); in training mode zero each element with
    probability ``ratio`` and scale the rest by ``1 / (1 - ratio)``."""
    x = ctx.input(0)
    if ctx.opset < 12:
        ratio, training = ctx.attr("ratio", 0.5), False
    else:
        r, t = ctx.const(1), ctx.const(2)
        ratio = 0.5 if r is None else float(np.asarray(r))
        training = False if t is None else bool(np.asarray(t))
    if not training or ratio == 0.0:
        return x, ops.ones_like(x, dtype=dtypes.bool_)
    keep = ops.rand_like(x) >= ratio
    return x * keep / (1.0 - ratio), keep


# ---- losses ------------------------------------------------------------------------------------------


def _nll(ctx: NodeContext, logp: Any, target: Any, weight: Any) -> Any:
    """``-weight[t] * logp[n, t, d...]`` per element, reduced as ``reduction`` says; elements
    whose target is ``ignore_index`` weigh 0 (and are left out of the mean's denominator)."""
    reduction = ctx.attr("reduction", "mean")
    ignore = ctx.attr("ignore_index")
    target = target.long()
    if ignore is not None:
        keep = target != ignore
        safe = ops.where(keep, target, 0)
    else:
        keep, safe = None, target
    picked = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    w = None
    if weight is not None:
        w = weight.index_select(0, safe.reshape(-1)).reshape(tuple(safe.shape))
    if keep is not None:
        mask = keep.to(logp.dtype)
        w = mask if w is None else w * mask
    loss = -picked if w is None else -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise ctx.fail(f"unknown reduction {reduction!r}")
    return loss.mean() if w is None else loss.sum() / w.sum()


@converter("NegativeLogLikelihoodLoss")
def nll_loss(ctx: NodeContext) -> Any:
    return _nll(ctx, ctx.input(0), ctx.input(1), ctx.input(2))


@converter("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy(ctx: NodeContext) -> Any:
    logp = F.log_softmax(ctx.input(0), dim=1)
    return _nll(ctx, logp, ctx.input(1), ctx.input(2)), logp
