"""``Progbar``: the text progress bar that ``fit`` and ``evaluate`` print, in Keras's format.

One epoch of ``fit(verbose=1)`` in a terminal is one line, rewritten in place (``\\r``)::

    Epoch 1/5
     12/100 [==>...........................] - ETA: 3s - loss: 0.2345 - accuracy: 0.9123

and, when the epoch ends, replaced by the final line with the total time and the time per step::

    100/100 [==============================] - 2s 20ms/step - loss: 0.2101 - val_loss: 0.2204

When standard output is not a terminal (a log file, a pipe, a test capturing output) nothing is
rewritten: only the final line is printed, so a log gets exactly one line per epoch (after the
``Epoch i/N`` header). ``verbose=2`` prints one compact line per epoch whatever the output is::

    100/100 - 2s - 20ms/step - loss: 0.2101 - val_loss: 0.2204

The values shown are the ones the caller passes (``fit`` passes running means over the epoch);
the bar does no averaging of its own. Updates are throttled to one every ``interval`` seconds,
and the time check comes first, so a call that draws nothing costs about a microsecond.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["Progbar"]


def _is_terminal(stream: Any) -> bool:
    """Can ``stream`` rewrite a line in place? A TTY, or a Jupyter kernel's output."""
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except ValueError:  # a closed stream
        return False
    return "ipykernel" in sys.modules


def format_value(value: Any) -> str:
    """A metric value as Keras prints it: 4 decimals, or scientific notation when tiny."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return f" {value}"
    return f" {v:.4f}" if abs(v) > 1e-3 else f" {v:.4e}"


def format_duration(seconds: float) -> str:
    """An ETA: ``'7s'``, ``'1:05'`` or ``'1:01:05'``."""
    if seconds > 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds > 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def format_time_per_unit(seconds: float, unit: str) -> str:
    """``'2s/step'``, ``'20ms/step'`` or ``'350us/step'``."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


class Progbar:
    """A progress bar over ``target`` steps (``None`` if the number is unknown).

    ``update(current, values)`` reports that ``current`` steps are done, with ``values`` a
    list of ``(name, value)`` pairs (or a dict) to show; ``update(..., finalize=True)`` draws
    the final line. ``verbose`` is 0 (silent), 1 (a bar) or 2 (one line at the end).
    ``stream`` is where to write (standard output, looked up when the bar is created).
    """

    def __init__(
        self,
        target: int | None,
        width: int = 30,
        verbose: int = 1,
        interval: float = 0.05,
        unit_name: str = "step",
        stream: TextIO | None = None,
    ) -> None:
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stream = sys.stdout if stream is None else stream
        self.dynamic = _is_terminal(self.stream)
        self._start = time.monotonic()
        self._last_update = -math.inf
        self._prev_width = 0
        self._current = 0

    # ---- drawing -----------------------------------------------------------------------------

    def update(self, current: int, values: Iterable | dict | None = None, finalize: bool | None = None) -> None:
        """Record progress; redraw if the output allows it and ``interval`` has passed."""
        self._current = current
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if self.verbose != 1 or not self.dynamic:
            # Nothing is drawn until the end: one line per bar, for logs and verbose=2.
            if finalize and self.verbose:
                self._write(self._final_line(current, values) + "\n")
            return
        now = time.monotonic()
        if not finalize and now - self._last_update < self.interval:
            return
        self._last_update = now
        line = self._bar(current) + (self._timing(current, now) if finalize else self._eta(current, now))
        line += self._values(values)
        pad = " " * max(0, self._prev_width - len(line))
        self._prev_width = len(line)
        self._write("\r" + line + pad + ("\n" if finalize else ""))

    def add(self, n: int, values: Iterable | dict | None = None) -> None:
        """Advance by ``n`` steps."""
        self.update(self._current + n, values)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    # ---- pieces of a line --------------------------------------------------------------------

    def _count(self, current: int) -> str:
        if self.target is None or self.target <= 0:
            return f"{current:7d}/Unknown"
        digits = int(math.log10(self.target)) + 1
        return f"{current:{digits}d}/{self.target}"

    def _bar(self, current: int) -> str:
        text = self._count(current)
        if self.target is None or self.target <= 0:
            return text
        filled = int(self.width * min(current, self.target) / self.target)
        arrow = ""
        if filled > 0:
            arrow = "=" * (filled - 1) + (">" if current < self.target else "=")
        return f"{text} [{arrow}{'.' * (self.width - filled)}]"

    def _per_step(self, current: int, now: float) -> float:
        return (now - self._start) / current if current else 0.0

    def _eta(self, current: int, now: float) -> str:
        if self.target is None or self.target <= 0:
            return f" - {now - self._start:.0f}s"
        return f" - ETA: {format_duration(self._per_step(current, now) * (self.target - current))}"

    def _timing(self, current: int, now: float) -> str:
        return f" - {now - self._start:.0f}s {format_time_per_unit(self._per_step(current, now), self.unit_name)}"

    @staticmethod
    def _values(values: Iterable | dict | None) -> str:
        if not values:
            return ""
        items = values.items() if isinstance(values, dict) else values
        return "".join(f" - {k}:{format_value(v)}" for k, v in items)

    def _final_line(self, current: int, values: Iterable | dict | None) -> str:
        now = time.monotonic()
        if self.verbose == 2:
            per_step = format_time_per_unit(self._per_step(current, now), self.unit_name)
            return f"{self._count(current)} - {now - self._start:.0f}s - {per_step}" + self._values(values)
        return self._bar(current) + self._timing(current, now) + self._values(values)
