"""minidl's allocator settings (minidl/backend/memory.py): applied at import on glibc, and
the environment variable that turns them off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None


def _applied_in_fresh_process(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MINIDL_KEEP_FREED_MEMORY"}
    env["PYTHONPATH"] = str(ROOT)
    if env_value is not None:
        env["MINIDL_KEEP_FREED_MEMORY"] = env_value
    code = "import minidl.backend.memory as m, minidl; print(m.is_keeping_freed_memory())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="the settings exist only for glibc's malloc")
def test_import_applies_the_settings_and_the_variable_turns_them_off():
    assert _applied_in_fresh_process(None) == "True"
    assert _applied_in_fresh_process("0") == "False"
    assert _applied_in_fresh_process("off") == "False"


REUSE = """
import numpy as np, minidl
a = np.ones(3 << 20, dtype=np.float32)  # 12 MiB: above glibc's initial mmap threshold
address = a.__array_interface__["data"][0]
del a
b = np.empty(3 << 20, dtype=np.float32)
print(b.__array_interface__["data"][0] == address)
"""


@pytest.mark.skipif(not GLIBC, reason="the settings exist only for glibc's malloc")
@pytest.mark.parametrize("setting, reused", [("1", "True"), ("0", "False")])
def test_freed_blocks_are_reused(setting, reused):
    """With the settings on, a freed 12 MiB block is handed out again for the next request of
    the same size; with glibc's defaults the first such block goes back to the kernel and the
    next one is a fresh mapping (whose pages fault in again)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIDL_KEEP_FREED_MEMORY": setting}
    out = subprocess.run([sys.executable, "-c", REUSE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == reused
