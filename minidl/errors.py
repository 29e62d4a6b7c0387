"""minidl's exception types.

Each derives from ``RuntimeError``, which is what PyTorch raises for the same mistakes, and
also from the Python built-in that names the kind of mistake, so either ``except`` works:

* ``ShapeError``  -- shapes that cannot be combined (a ``ValueError`` too);
* ``DTypeError``  -- a tensor of the wrong dtype (a ``TypeError`` too);
* ``DomainError`` -- values outside an op's domain, such as probabilities above 1
  (a ``ValueError`` too).
"""

from __future__ import annotations


class ShapeError(RuntimeError, ValueError):
    """An op was given inputs whose shapes it cannot combine."""


class DTypeError(RuntimeError, TypeError):
    """An op was given a tensor of a dtype it does not accept."""


class DomainError(RuntimeError, ValueError):
    """An op was given values outside its domain."""
