"""The table ONNX ``op_type`` -> converter that the importer consults, one function per operator.

A converter takes a ``NodeContext`` (inputs as minidl tensors, attributes, opset) and returns
the node's output tensor, or a tuple of them for nodes with several outputs (``None`` for an
output it cannot produce). It is written with minidl's public ops only, so it runs on eager
tensors and on symbolic ones alike. Families: ``elementwise.py`` (arithmetic, comparisons,
activations, casts), ``shape.py`` (reshaping, indexing, constants), ``reduce.py``
(reductions and arg-reductions), ``nn.py`` (matmul, convolution, pooling, normalization,
softmax, dropout, losses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CONVERTERS: dict[str, Callable[[Any], Any]] = {}


def converter(*op_types: str) -> Callable:
    """Register the decorated function as the converter of each ONNX ``op_type``."""

    def register(fn: Callable) -> Callable:
        for op_type in op_types:
            CONVERTERS[op_type] = fn
        return fn

    return register


from . import elementwise, nn, reduce, shape  # noqa: E402,F401  (registers the converters)
