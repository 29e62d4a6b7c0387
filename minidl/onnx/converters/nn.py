"""Layers' primitives: matmul, linear, 2-D convolution and pooling.

    linear(x, w, b) = x w^T + b      2-D x: one Gemm (transB=1); otherwise MatMul(x, Transpose(w)) + b
    conv2d          Conv, padding (ph, pw) as ONNX's pads (ph, pw, ph, pw); Conv2dBias passes B
    max_pool2d      MaxPool (output 0; the argmax indices minidl keeps for backward are not exported)
    avg_pool2d      AveragePool; a ``divisor_override`` d rescales the window mean by (kh kw) / d

    cross_entropy   SoftmaxCrossEntropyLoss (class weights, ignore_index and the reduction mean
                    the same: 'mean' divides by the total weight of the counted targets)

Pooling's ``ceil_mode`` and ``count_include_pad`` mean the same in ONNX as in torch.
"""

from __future__ import annotations

from ...ops import conv, linalg, loss, pool
from . import converter
from .context import Context, Unsupported


@converter(linalg.Matmul)
def _matmul(ctx: Context, node) -> None:
    ctx.emit("MatMul", [ctx.value(v) for v in node.inputs], ctx.out(node))


@converter(linalg.Linear)
def _linear(ctx: Context, node) -> None:
    x_v, w_v = node.inputs[0], node.inputs[1]
    b_v = node.inputs[2] if len(node.inputs) > 2 else node.attrs.get("b")
    x, w = ctx.value(x_v), ctx.value(w_v)
    b = ctx.value(b_v) if b_v is not None else None
    if len(ctx.spec(x_v).shape) == 2 and len(ctx.spec(w_v).shape) == 2:
        ctx.emit("Gemm", [x, w] + ([b] if b is not None else []), ctx.out(node), transB=1)
        return
    wt = ctx.emit("Transpose", [w], perm=[1, 0]) if len(ctx.spec(w_v).shape) == 2 else w
    if b is None:
        ctx.emit("MatMul", [x, wt], ctx.out(node))
    else:
        ctx.emit("Add", [ctx.emit("MatMul", [x, wt]), b], ctx.out(node))


def _pads(padding: tuple) -> list[int]:
    return [int(p) for p in padding] * 2  # (top, left, bottom, right): torch pads both sides alike


@converter(conv.Conv2d, conv.Conv2dBias)
def _conv2d(ctx: Context, node) -> None:
    a = node.attrs
    inputs = [ctx.value(v) for v in node.inputs]
    kernel = list(ctx.spec(node.inputs[1]).shape[2:])
    if None in kernel:
        raise Unsupported("the kernel's size must be known")  # pragma: no cover - weights have fixed shapes
    ctx.emit(
        "Conv",
        inputs,
        ctx.out(node),
        kernel_shape=[int(k) for k in kernel],
        strides=[int(s) for s in a["stride"]],
        pads=_pads(a["padding"]),
        dilations=[int(d) for d in a["dilation"]],
        group=int(a["groups"]),
    )


@converter(pool.MaxPool2d)
def _max_pool2d(ctx: Context, node) -> None:
    a = node.attrs
    ctx.emit(
        "MaxPool",
        [ctx.value(node.inputs[0])],
        ctx.out(node),
        kernel_shape=[int(k) for k in a["kernel"]],
        strides=[int(s) for s in a["stride"]],
        pads=_pads(a["padding"]),
        dilations=[int(d) for d in a["dilation"]],
        ceil_mode=int(bool(a["ceil_mode"])),
    )


@converter(pool.AvgPool2d)
def _avg_pool2d(ctx: Context, node) -> None:
    a = node.attrs
    divisor = a.get("divisor_override")
    kernel = [int(k) for k in a["kernel"]]
    attrs = dict(
        kernel_shape=kernel,
        strides=[int(s) for s in a["stride"]],
        pads=_pads(a["padding"]),
        ceil_mode=int(bool(a["ceil_mode"])),
        count_include_pad=int(bool(a["count_include_pad"])) if divisor is None else 1,
    )
    x = ctx.value(node.inputs[0])
    if divisor is None:
        ctx.emit("AveragePool", [x], ctx.out(node), **attrs)
        return
    mean = ctx.emit("AveragePool", [x], **attrs)
    scale = ctx.scalar(kernel[0] * kernel[1] / divisor, node.specs[0].dtype)
    ctx.emit("Mul", [mean, scale], ctx.out(node))


@converter(loss.CrossEntropy)
def _cross_entropy(ctx: Context, node) -> None:
    x_v, target_v, weight_v = node.inputs[0], node.inputs[1], node.inputs[2]
    inputs = [ctx.value(x_v), ctx.value(target_v)]
    if weight_v is not None:
        inputs.append(ctx.value(weight_v))
    ctx.emit(
        "SoftmaxCrossEntropyLoss",
        inputs,
        ctx.out(node),
        ignore_index=int(node.attrs["ignore_index"]),
        reduction=str(node.attrs["reduction"]),
    )
