"""Converters from minidl primitives to ONNX nodes: one function per op, in a table.

``CONVERTERS`` maps an ``Op`` subclass to ``fn(ctx, node)``, which appends the ONNX nodes
computing that IR node and names the result ``ctx.out(node)``. The ``converter`` decorator
fills the table; each family lives in its own file:

``elementwise.py``  arithmetic, comparisons, logic, unary math, activations, casts, where, clamp
``reduce.py``       reductions, softmax, cumsum, broadcast_to / sum_to
``shape.py``        reshape, permute, cat, pad, flip, repeat, tril/triu, full_like, numel
``index.py``        ``x[index]`` (Slice / Squeeze / Unsqueeze / Gather) and ``gather``
``nn.py``           matmul, linear, conv2d, max/avg pooling

An op with no entry (a backward-only op, a random draw) cannot be exported; ``export``
says so, naming the op, the node and the line that built it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .context import Context, Unsupported

__all__ = ["CONVERTERS", "converter", "Context", "Unsupported"]

CONVERTERS: dict[type, Callable[[Context, Any], None]] = {}


def converter(*ops: type) -> Callable:
    """Register the decorated function as the converter of each op class in ``ops``."""

    def register(fn: Callable) -> Callable:
        for op in ops:
            CONVERTERS[op] = fn
        return fn

    return register


from . import elementwise, index, nn, reduce, shape  # noqa: E402,F401 - fill the table
