"""Switching gradient recording off and on: ``no_grad``, ``enable_grad``, ``set_grad_enabled``.

Each works as a context manager and as a function decorator, as in torch. The switch is per
thread and lives in ``minidl/tape.py``, where the ops read it before recording a node.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ..tape import grad_state

F = TypeVar("F", bound=Callable[..., Any])


def is_grad_enabled() -> bool:
    """Whether ops record nodes for backward right now."""
    return grad_state.enabled


class _GradModeContext:
    """Base of the three switches: set a mode on entry, restore the previous one on exit."""

    mode: bool = True

    def __enter__(self) -> None:
        self._previous = grad_state.enabled
        grad_state.enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        grad_state.enabled = self._previous

    def __call__(self, fn: F) -> F:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            previous = grad_state.enabled
            grad_state.enabled = mode
            try:
                return fn(*args, **kwargs)
            finally:
                grad_state.enabled = previous

        return wrapper  # type: ignore[return-value]


class no_grad(_GradModeContext):
    """Compute without recording anything for backward (inference, optimizer updates)."""

    mode = False


class enable_grad(_GradModeContext):
    """Record again inside a ``no_grad`` region."""

    mode = True


class inference_mode(no_grad):
    """An alias of ``no_grad`` (minidl has no separate inference tensors)."""

    def __init__(self, mode: bool = True) -> None:
        self.mode = not mode


class set_grad_enabled(_GradModeContext):
    """``set_grad_enabled(False)`` switches recording off *now*; as a context manager it
    restores the previous mode on exit, as in torch."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._previous = grad_state.enabled
        grad_state.enabled = self.mode

    def __enter__(self) -> None:
        pass

    def __call__(self, fn: F) -> F:
        # Used as a decorator, the mode applies inside the function only: undo the switch
        # that __init__ made at decoration time.
        grad_state.enabled = self._previous
        return super().__call__(fn)
