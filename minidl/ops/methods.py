"""Attach the ops to ``Tensor`` as methods and operators (``x + y``, ``x.sum()``, ``x[i] = v``).

``tensor.py`` sits below the ops and cannot import them; this module, run once when
``minidl.ops`` is imported, binds each function defined in ``minidl/ops`` to its torch name on
the class. The methods *are* the functions: ``Tensor.exp is minidl.exp``, so a method call
costs nothing beyond the op itself.
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from . import activation, arith, cast, creation, index, inplace, linalg, reduce, shape, softmax, unary
from .op import binary


def _reflected(op_cls):
    """``other <op> self`` for the reflected dunders (``2 - x`` calls ``x.__rsub__(2)``)."""

    def method(self: Tensor, other: Any) -> Tensor:
        return binary(op_cls, other, self)

    return method


def _where_method(self: Tensor, condition: Tensor, other: Any) -> Tensor:
    """``x.where(condition, y)`` is ``where(condition, x, y)``, as in torch."""
    return arith.where(condition, self, other)


def _unbind(self: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, each without that dimension."""
    d = dim % max(self.ndim, 1)
    return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))


METHODS: dict[str, Any] = {
    # arithmetic operators
    "__add__": arith.add,
    "__radd__": _reflected(arith.Add),
    "__sub__": arith.sub,
    "__rsub__": _reflected(arith.Sub),
    "__mul__": arith.mul,
    "__rmul__": _reflected(arith.Mul),
    "__truediv__": arith.div,
    "__rtruediv__": _reflected(arith.Div),
    "__floordiv__": arith.floor_divide,
    "__rfloordiv__": _reflected(arith.FloorDivide),
    "__mod__": arith.remainder,
    "__rmod__": _reflected(arith.Remainder),
    "__pow__": arith.pow,
    "__rpow__": _reflected(arith.Pow),
    "__matmul__": linalg.matmul,
    "__rmatmul__": lambda self, other: linalg.matmul(other, self),
    "__neg__": unary.neg,
    "__pos__": lambda self: self,
    "__abs__": unary.abs,
    "__invert__": unary.bitwise_not,
    "__and__": arith.bitwise_and,
    "__rand__": _reflected(arith.BitwiseAnd),
    "__or__": arith.bitwise_or,
    "__ror__": _reflected(arith.BitwiseOr),
    "__xor__": arith.bitwise_xor,
    "__rxor__": _reflected(arith.BitwiseXor),
    "__eq__": arith.eq,
    "__ne__": arith.ne,
    "__lt__": arith.lt,
    "__le__": arith.le,
    "__gt__": arith.gt,
    "__ge__": arith.ge,
    "__getitem__": index.getitem,
    "__setitem__": index.setitem,
    # in-place operators: ``x += y`` modifies x, as in torch
    "__iadd__": inplace.add_,
    "__isub__": inplace.sub_,
    "__imul__": inplace.mul_,
    "__itruediv__": inplace.div_,
    # named arithmetic
    "add": arith.add,
    "sub": arith.sub,
    "mul": arith.mul,
    "div": arith.div,
    "true_divide": arith.div,
    "floor_divide": arith.floor_divide,
    "remainder": arith.remainder,
    "pow": arith.pow,
    "maximum": arith.maximum,
    "minimum": arith.minimum,
    "eq": arith.eq,
    "ne": arith.ne,
    "lt": arith.lt,
    "le": arith.le,
    "gt": arith.gt,
    "ge": arith.ge,
    "logical_and": arith.logical_and,
    "logical_or": arith.logical_or,
    "logical_xor": arith.logical_xor,
    "logical_not": unary.logical_not,
    "bitwise_not": unary.bitwise_not,
    "where": _where_method,
    "clamp": arith.clamp,
    "clip": arith.clamp,
    "clamp_": arith.clamp_,
    # unary math
    "neg": unary.neg,
    "abs": unary.abs,
    "sign": unary.sign,
    "exp": unary.exp,
    "log": unary.log,
    "log1p": unary.log1p,
    "expm1": unary.expm1,
    "sqrt": unary.sqrt,
    "rsqrt": unary.rsqrt,
    "sin": unary.sin,
    "cos": unary.cos,
    "tanh": unary.tanh,
    "sigmoid": unary.sigmoid,
    "reciprocal": unary.reciprocal,
    "erf": unary.erf,
    "floor": unary.floor,
    "ceil": unary.ceil,
    "round": unary.round,
    "trunc": unary.trunc,
    "square": unary.square,
    "relu": activation.relu,
    "softmax": softmax.softmax,
    "log_softmax": softmax.log_softmax,
    # reductions
    "sum": reduce.sum,
    "mean": reduce.mean,
    "prod": reduce.prod,
    "var": reduce.var,
    "std": reduce.std,
    "amax": reduce.amax,
    "amin": reduce.amin,
    "max": reduce.max,
    "min": reduce.min,
    "argmax": reduce.argmax,
    "argmin": reduce.argmin,
    "logsumexp": reduce.logsumexp,
    "norm": reduce.norm,
    "all": reduce.all,
    "any": reduce.any,
    "cumsum": reduce.cumsum,
    # shape
    "reshape": shape.reshape,
    "view": shape.view,
    "flatten": shape.flatten,
    "squeeze": shape.squeeze,
    "unsqueeze": shape.unsqueeze,
    "permute": shape.permute,
    "transpose": shape.transpose,
    "t": shape.t,
    "expand": shape.expand,
    "expand_as": shape.expand_as,
    "broadcast_to": reduce.broadcast_to,
    "contiguous": shape.contiguous,
    "clone": shape.clone,
    "flip": shape.flip,
    "repeat": shape.repeat,
    "tril": shape.tril,
    "triu": shape.triu,
    "narrow": shape.narrow,
    "split": shape.split,
    "chunk": shape.chunk,
    "unbind": _unbind,
    # indexing
    "gather": index.gather,
    "scatter_add": index.scatter_add,
    "index_select": index.index_select,
    "masked_fill": index.masked_fill,
    # linear algebra
    "matmul": linalg.matmul,
    "mm": linalg.mm,
    "bmm": linalg.bmm,
    "dot": linalg.dot,
    # dtype and device
    "to": cast.to,
    "cpu": cast.cpu_,
    "cuda": cast.cuda,
    "type_as": cast.type_as,
    "float": lambda self: cast.to_dtype(self, "float32"),
    "double": lambda self: cast.to_dtype(self, "float64"),
    "long": lambda self: cast.to_dtype(self, "int64"),
    "int": lambda self: cast.to_dtype(self, "int32"),
    "bool": lambda self: cast.to_dtype(self, "bool"),
    # factories relative to a tensor
    "new_zeros": creation.new_zeros,
    "new_ones": creation.new_ones,
    "new_full": creation.new_full,
    "new_tensor": creation.new_tensor,
    # in place
    "add_": inplace.add_,
    "sub_": inplace.sub_,
    "mul_": inplace.mul_,
    "div_": inplace.div_,
    "fill_": inplace.fill_,
    "zero_": inplace.zero_,
    "copy_": inplace.copy_,
    "neg_": unary.neg_,
    "abs_": unary.abs_,
    "exp_": unary.exp_,
    "log_": unary.log_,
    "sqrt_": unary.sqrt_,
    "tanh_": unary.tanh_,
    "sigmoid_": unary.sigmoid_,
    "floor_": unary.floor_,
    "relu_": activation.relu_,
}

PROPERTIES: dict[str, Any] = {
    "T": shape.T,
    "mT": shape.mT,
}


def attach() -> None:
    for name, fn in METHODS.items():
        setattr(Tensor, name, fn)
    for name, fn in PROPERTIES.items():
        setattr(Tensor, name, property(fn))
