"""Matrix multiplication, ``a @ b``, for 1-D, 2-D and batched (broadcast) operands.

The semantics are NumPy's (and torch's): a 1-D left operand is a row vector and a 1-D right
operand a column vector, with that dimension removed from the result; leading dimensions
broadcast as batch dimensions.

For ``C = A B`` the gradients are ``dA = dC B^T`` and ``dB = A^T dC`` -- each a matrix product
again, which is why one fast kernel serves the forward and both backward passes. The rule
below first restores the dimensions a 1-D operand lost, multiplies, and then sums over batch
dimensions that broadcasting created (``sum_to``).

The product itself comes from the kernel registry (``kernels_for(a).matmul``), so the
implementation (NumPy/BLAS, Numba, CUDA) can change without touching this rule.
"""

from __future__ import annotations

from ..backend.registry import kernels_for
from ..tensor import Tensor
from . import infer, reduce
from .op import Op, ShapeError, Spec, apply, promote, spec_of
from .shape import Permute, Reshape


class Matmul(Op):
    name = "Matmul"

    @staticmethod
    def forward(a, b):
        return kernels_for(a).matmul(a, b)

    @staticmethod
    def vjp(ctx, g):
        a, b = ctx.input(0), ctx.input(1)
        if a.ndim == 2 and b.ndim == 2:  # the common case, with no dimensions to restore
            ga = apply(Matmul, g, apply(Permute, b, dims=(1, 0))) if ctx.needs_grad(0) else None
            gb = apply(Matmul, apply(Permute, a, dims=(1, 0)), g) if ctx.needs_grad(1) else None
            return ga, gb
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        if a.ndim == 1 and b.ndim == 1:
            g = g.reshape(1, 1)
        elif a.ndim == 1:
            g = g.unsqueeze(-2)
        elif b.ndim == 1:
            g = g.unsqueeze(-1)
        ga = gb = None
        if ctx.needs_grad(0):
            ga = reduce.sum_to(matmul(g, b2.mT), a2.shape)
            ga = ga if ga.shape == a.shape else ga.reshape(a.shape)
        if ctx.needs_grad(1):
            gb = reduce.sum_to(matmul(a2.mT, g), b2.shape)
            gb = gb if gb.shape == b.shape else gb.reshape(b.shape)
        return ga, gb

    @classmethod
    def infer(cls, a: Spec, b: Spec) -> Spec:
        return Spec(matmul_shape(a.shape, b.shape), infer.promoted_dtype(a, b))


def matmul_shape(a: tuple, b: tuple) -> tuple:
    """The result shape of ``a @ b``, or an error naming both shapes and the mismatch."""
    if len(a) == 0 or len(b) == 0:
        raise ShapeError(
            f"matmul: both arguments need at least 1 dimension, got shapes {tuple(a)} and {tuple(b)}; "
            "use * to multiply by a scalar"
        )
    k1 = a[-1]
    k2 = b[0] if len(b) == 1 else b[-2]
    if k1 is not None and k2 is not None and k1 != k2:
        raise ShapeError(f"matmul: shapes {tuple(a)} and {tuple(b)} cannot be multiplied: {k1} != {k2}")
    batch = infer.broadcast_shapes("matmul (batch dimensions)", tuple(a[:-2]), tuple(b[:-2]))
    rows = (a[-2],) if len(a) >= 2 else ()
    cols = (b[-1],) if len(b) >= 2 else ()
    return batch + rows + cols


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with broadcasting batch dimensions (see the module docstring)."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"matmul: expected two tensors, got {type(a).__name__} and {type(b).__name__}")
    matmul_shape(a.shape, b.shape)
    if a._data.dtype is not b._data.dtype:
        if a.dtype.category == 2 and b.dtype.category == 2:
            dtype = infer.promoted_dtype(Spec(a.shape, a.dtype), Spec(b.shape, b.dtype))
            a, b = a.to(dtype), b.to(dtype)
        else:
            x, y = promote(Matmul, a, b)
            a, b = Tensor._wrap(x), Tensor._wrap(y)
    return apply(Matmul, a, b)


def mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for two matrices exactly."""
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"mm: expected two 2-D tensors, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return matmul(a, b)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched ``a @ b`` for two 3-D tensors with equal batch size."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ShapeError(
            f"bmm: expected 3-D tensors with the same batch size, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return matmul(a, b)


def dot(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"dot: expected two 1-D tensors, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return matmul(a, b)


class Linear(Op):
    """``y = x W^T + b``: the fused affine map of a linear layer, one node instead of three.

    With ``x`` of shape (..., in), ``W`` (out, in) and ``b`` (out,), and ``g`` = dL/dy:

        dx = g W           dW = g^T x  (summed over the leading dimensions)     db = sum g

    The composition ``x @ W.T + b`` computes the same numbers and remains the reference in
    the tests; the fused form saves the transpose, the broadcast add and their nodes, which
    is most of the cost of a small layer.
    """

    name = "Linear"

    @staticmethod
    def forward(x, w, b=None):
        out = kernels_for(x).matmul(x, w.T)
        if b is not None:
            out += b
        return out

    @staticmethod
    def vjp(ctx, g):
        # Shapes are consistent by construction here, so the rule applies the primitives
        # directly, skipping the user-facing functions' argument checks.
        x, w = ctx.input(0), ctx.input(1)
        gx = apply(Matmul, g, w) if ctx.needs_grad(0) else None
        gw = gb = None
        if ctx.needs_grad(1) or ctx.needs_grad(2):
            g2 = g if g.ndim == 2 else g.reshape(-1, w.shape[0])
            if ctx.needs_grad(1):
                x2 = x if x.ndim == 2 else x.reshape(-1, w.shape[1])
                gw = apply(Matmul, apply(Permute, g2, dims=(1, 0)), x2)
            if ctx.needs_grad(2):
                # For a batch of one, the sum over the batch is just the row: a free view.
                gb = (
                    apply(Reshape, g2, shape=(w.shape[0],))
                    if g2.shape[0] == 1
                    else apply(reduce.Sum, g2, dim=(0,), keepdim=False)
                )
        return gx, gw, gb

    @classmethod
    def infer(cls, x: Spec, w: Spec, b: Spec | None = None) -> Spec:
        if (
            len(w.shape) != 2
            or len(x.shape) == 0
            or (x.shape[-1] is not None and w.shape[1] is not None and x.shape[-1] != w.shape[1])
        ):
            raise ShapeError(
                f"linear: input of shape {tuple(x.shape)} has {x.shape[-1] if x.shape else 0} features, but "
                f"the weight of shape {tuple(w.shape)} expects {w.shape[-1] if w.shape else 0} (weight is (out, in))"
            )
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ShapeError(f"linear: bias must have shape ({w.shape[0]},), got {tuple(b.shape)}")
        return Spec(tuple(x.shape[:-1]) + (w.shape[0],), infer.promoted_dtype(x, w))


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` with ``weight`` of shape (out_features, in_features).

    One fused primitive (``Linear``); the tests check it against the composition of
    ``matmul``, ``T`` and ``+``. This is ``minidl.nn.functional.linear``.
    """
    x, w, b = input, weight, bias
    xd, wd = x._data, w._data
    if (
        xd.dtype is wd.dtype
        and wd.ndim == 2
        and xd.ndim >= 1
        and xd.shape[-1] == wd.shape[1]
        and (b is None or (b._data.dtype is xd.dtype and b._data.shape == wd.shape[:1]))
    ):
        return apply(Linear, x, w, b)
    Linear.infer(spec_of(x), spec_of(w), None if b is None else spec_of(b))
    dtype = x.dtype
    if w.dtype is not dtype or (b is not None and b.dtype is not dtype):
        dtype = infer.promoted_dtype(spec_of(x), spec_of(w), *(() if b is None else (spec_of(b),)))
        x, w = x.to(dtype), w.to(dtype)
        b = None if b is None else b.to(dtype)
    return apply(Linear, x, w, b)
