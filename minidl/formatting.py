"""``repr`` of a tensor, in PyTorch's style.

    tensor([1.0000, 2.5000], requires_grad=True)
    tensor([[1, 2],
            [3, 4]], dtype=minidl.int32)
    tensor(3.7183, grad_fn=<ExpBackward>)

All elements share one format and one column width. Floats print as ``1.`` when every finite
nonzero value is a whole number, with four decimals otherwise, and in scientific notation
when the magnitudes span more than a factor of 1000 (or exceed 1e8, or go below 1e-4). The
width comes from the finite nonzero values, so ``nan``, ``inf`` and ``-0.`` never widen a
column. Tensors of more than 1000 elements show three items at each edge of every dimension,
with ``...`` between. float32, int64 and bool are the defaults and are not named (an empty
tensor names every dtype but the default float, since ``[]`` alone would read as float).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .tensor import Tensor

EDGE_ITEMS = 3
SUMMARIZE_ABOVE = 1000
LINE_WIDTH = 80


class ElementFormat:
    """How to print one element of a given array, and the column width they all share."""

    def __init__(self, values: np.ndarray) -> None:
        self.kind = values.dtype.kind
        self.template = "{}"
        if self.kind == "f":
            finite = values[np.isfinite(values) & (values != 0)]
            if finite.size == 0:
                self.template = "{:.0f}."
            else:
                magnitudes = np.abs(finite)
                hi, lo = float(magnitudes.max()), float(magnitudes.min())
                whole = bool(np.all(finite == np.ceil(finite)))
                wide = hi / lo > 1000.0 or hi > 1e8
                if whole:
                    self.template = "{:.4e}" if wide else "{:.0f}."
                else:
                    self.template = "{:.4e}" if wide or lo < 1e-4 else "{:.4f}"
            sized = finite
        else:
            sized = values.reshape(-1)
        self.width = max((len(self._plain(v)) for v in sized.tolist()), default=1)

    def _plain(self, v: Any) -> str:
        if self.kind == "f":
            if v != v or v in (float("inf"), float("-inf")):
                return str(v)
            return self.template.format(v)
        return str(v)

    def __call__(self, v: Any) -> str:
        return self._plain(v).rjust(self.width)


def _edges(values: np.ndarray) -> np.ndarray:
    """Only the elements a summarized print shows: EDGE_ITEMS at each end of each dimension."""
    picks = []
    for n in values.shape:
        if n > 2 * EDGE_ITEMS:
            picks.append(np.r_[0:EDGE_ITEMS, n - EDGE_ITEMS : n])
        else:
            picks.append(np.arange(n))
    return values[np.ix_(*picks)] if values.ndim else values


def _render(values: np.ndarray, fmt: ElementFormat, indent: int, summarize: bool) -> str:
    if values.ndim == 0:
        return fmt(values.item())
    n = values.shape[0]
    cut = summarize and n > 2 * EDGE_ITEMS
    head = range(EDGE_ITEMS) if cut else range(n)
    tail = range(n - EDGE_ITEMS, n) if cut else range(0)
    if values.ndim == 1:
        items = (
            [fmt(values[i].item()) for i in head] + ([" ..."] if cut else []) + [fmt(values[i].item()) for i in tail]
        )
        per_line = max(1, (LINE_WIDTH - indent) // (fmt.width + 2))
        lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = [_render(values[i], fmt, indent + 1, summarize) for i in head]
    if cut:
        rows.append("...")
    rows += [_render(values[i], fmt, indent + 1, summarize) for i in tail]
    separator = "," + "\n" * (values.ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(rows) + "]"


def format_values(values: np.ndarray, indent: int = len("tensor(")) -> str:
    """The bracketed values of a tensor, as ``repr`` prints them."""
    if values.size == 0:
        return "[]"
    summarize = values.size > SUMMARIZE_ABOVE
    fmt = ElementFormat(_edges(values) if summarize else values)
    return _render(values, fmt, indent, summarize)


def format_tensor(t: Tensor) -> str:
    from . import dtypes

    data = t._data if type(t._data) is np.ndarray else t._data.get()
    parts = [format_values(data)]
    if data.size == 0 and data.shape != (0,):
        parts.append(f"size={tuple(data.shape)}")
    if t.device.type != "cpu":
        parts.append(f"device='{t.device}'")
    default = dtypes.get_default_dtype()
    quiet = (default,) if data.size == 0 else (default, dtypes.int64, dtypes.bool_)
    if t.dtype not in quiet:
        parts.append(f"dtype={t.dtype!r}")
    if t._node is not None:
        parts.append(f"grad_fn=<{t._node.name()}>")
    elif t._rg:
        parts.append("requires_grad=True")
    return "tensor(" + ", ".join(parts) + ")"
