"""Keeping freed memory for reuse: why minidl tunes the C allocator when it is imported.

A training step allocates the same large arrays every time -- each activation, each
gradient, each temporary of the backward pass -- and frees them a moment later. glibc's
``malloc`` serves a block above its *mmap threshold* (128 KiB at start, raised dynamically
up to 32 MiB) with a fresh ``mmap`` and gives it back to the kernel on ``free``; and it
returns the free top of its heap to the kernel whenever that exceeds the *trim threshold*.
Either way the next step's array of the same size lands on pages the kernel must map and
zero again: one page fault per 4 KiB, about 0.25 us each. For the MNIST CNN at batch 64 that
is a third of the step (measured: 21-24 ms per step with glibc's defaults, 13.5-14 ms with
the settings below; ``benchmarks/training.py``).

GPU frameworks solve this with a caching allocator that keeps freed blocks for the next
request. NumPy allocates through ``malloc``, so minidl asks ``malloc`` to behave like one:
blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap, and up to 256 MiB
of freed heap is kept rather than trimmed. The cost is that the process keeps its peak heap
(up to that bound) after a large computation instead of returning it to the system.

This is done once, on Linux with glibc, when minidl is imported (``mallopt`` through
ctypes); set ``MINIDL_KEEP_FREED_MEMORY=0`` in the environment to leave the allocator alone.
Elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024

_applied = False


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Ask glibc's malloc to serve blocks up to ``mmap_threshold`` bytes from its heap and to
    keep up to ``trim_threshold`` bytes of freed heap. Returns whether the settings took."""
    global _applied
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    _applied = ok
    return ok


def is_keeping_freed_memory() -> bool:
    """Whether minidl's allocator settings are in effect in this process."""
    return _applied


def apply_default() -> None:
    """What ``import minidl`` runs: the settings above unless ``MINIDL_KEEP_FREED_MEMORY=0``."""
    if os.environ.get("MINIDL_KEEP_FREED_MEMORY", "1").strip().lower() not in ("0", "false", "no", "off"):
        keep_freed_memory()
