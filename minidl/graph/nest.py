"""Nested structures of values: fetches, a traced function's results.

``Session.run`` accepts fetches nested in lists, tuples (namedtuples too) and dicts, and
answers in the same structure; ``minidl.compile`` returns a traced function's results in the
structure the function returned them. Both take the structure apart into a flat list of
leaves plus a template, and put it back together from new leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .ir import Output

__all__ = ["flatten", "unflatten"]


def flatten(value: Any, leaves: list) -> Any:
    """Append ``value``'s leaves to ``leaves``; return the template ``unflatten`` needs.

    Lists, tuples and dicts are containers (their own types are kept); anything else,
    including ``None`` and an IR ``Output`` (a namedtuple), is a leaf."""
    if isinstance(value, (list, tuple)) and not isinstance(value, Output):
        return (type(value), [flatten(v, leaves) for v in value])
    if isinstance(value, dict):
        return (type(value), {k: flatten(v, leaves) for k, v in value.items()})
    leaves.append(value)
    return None


def unflatten(template: Any, leaves: Iterator) -> Any:
    """The structure ``template`` describes, filled with the next values of ``leaves``."""
    if template is None:
        return next(leaves)
    kind, items = template
    if isinstance(items, dict):
        return kind((k, unflatten(t, leaves)) for k, t in items.items())
    values = [unflatten(t, leaves) for t in items]
    if hasattr(kind, "_fields"):  # a namedtuple takes its fields as arguments
        return kind(*values)
    return kind(values)
