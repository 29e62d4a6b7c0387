"""Anomaly detection: find the op whose backward produced a NaN.

Inside ``with minidl.autograd.detect_anomaly():`` every node records the stack of the line that
created it, and the engine checks each backward rule's results. The first rule that returns
a NaN raises an error naming its op and showing where that op was called in the forward
pass -- the place to look for a ``log(0)`` or a ``0 / 0``. It is slow; use it to debug.
"""

from __future__ import annotations

from typing import Any

from ..tape import grad_state


class detect_anomaly:
    """Context manager (and decorator) that turns anomaly detection on."""

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan

    def __enter__(self) -> None:
        self._previous = grad_state.anomaly
        grad_state.anomaly = self.check_nan

    def __exit__(self, *exc: Any) -> None:
        grad_state.anomaly = self._previous

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)

        return wrapper


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly detection on or off for the rest of the program (this thread)."""
    grad_state.anomaly = bool(mode)


def is_anomaly_enabled() -> bool:
    return grad_state.anomaly
