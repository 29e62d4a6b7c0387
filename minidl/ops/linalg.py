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
from .op import Op, ShapeError, Spec, apply, promote


class Matmul(Op):
    name = "Matmul"

    @staticmethod
    def forward(a, b):
        return kernels_for(a).matmul(a, b)

    @staticmethod
    def vjp(ctx, g):
        a, b = ctx.input(0), ctx.input(1)
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
            ga = reduce.sum_to(matmul(g, b2.mT), a2.shape).reshape(a.shape)
        if ctx.needs_grad(1):
            gb = reduce.sum_to(matmul(a2.mT, g), b2.shape).reshape(b.shape)
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
        raise TypeError(
            f"matmul: expected two tensors, got {type(a).__name__} and {type(b).__name__}"
        )
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
        raise ShapeError(f"bmm: expected 3-D tensors with the same batch size, got {tuple(a.shape)} and {tuple(b.shape)}")
    return matmul(a, b)


def dot(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"dot: expected two 1-D tensors, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return matmul(a, b)
