"""minidl's exception types.

Each derives from ``RuntimeError``, which is what PyTorch raises for the same mistakes, and
also from the Python built-in that names the kind of mistake, so either ``except`` works:

* ``ShapeError``  -- shapes that cannot be combined (a ``ValueError`` too);
* ``DTypeError``  -- a tensor of the wrong dtype (a ``TypeError`` too);
* ``DomainError`` -- values outside an op's domain, such as probabilities above 1
  (a ``ValueError`` too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Installed by ``minidl.graph``: given a message raised while a static graph is being built,
#: returns it with the user's source line appended (see ``graph/symbolic.py``). Consulted only
#: when one of these errors is constructed, so it costs nothing on the normal path.
locate: Callable[[str], str] | None = None


def _located(args: tuple) -> tuple:
    if locate is not None and args and isinstance(args[0], str):
        return (locate(args[0]), *args[1:])
    return args


class ShapeError(RuntimeError, ValueError):
    """An op was given inputs whose shapes it cannot combine."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*_located(args))


class DTypeError(RuntimeError, TypeError):
    """An op was given a tensor of a dtype it does not accept."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*_located(args))


class DomainError(RuntimeError, ValueError):
    """An op was given values outside its domain."""
