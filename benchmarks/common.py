"""Shared benchmark machinery: pinned threads, interleaved timing, results files and plots.

Every benchmark measures minidl and its reference (torch or NumPy) *in the same run*, in
alternating rounds (so that a noisy neighbour slows both alike), and reports the median of
the rounds and the ratio ``minidl / reference`` (below 1 means minidl is faster).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

THREADS = int(os.environ.get("MINIDL_BENCH_THREADS", "2"))
RESULTS = Path(os.environ.get("MINIDL_BENCH_RESULTS", Path(__file__).resolve().parent / "results"))


def pin_threads() -> None:
    """Use the same number of threads everywhere; must run before NumPy is imported.

    If ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` force an older OpenBLAS kernel (some
    machines set them for old OpenBLAS builds), re-run without them, so that NumPy uses the
    kernel OpenBLAS picks for this CPU, as torch's MKL does.
    """
    if os.environ.get("OPENBLAS_CORETYPE") and not os.environ.get("MINIDL_BENCH_KEEP_ENV"):
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env["MINIDL_BENCH_KEEP_ENV"] = "1"
        print("(re-running without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, so NumPy uses its native BLAS kernel)")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(THREADS)
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, inner: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each case, timed in alternating rounds of ``inner`` calls."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = cases[name]
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: sorted(v)[len(v) // 2] for name, v in samples.items()}


def isolated(
    script: str, workers: dict[str, list[str]], alternations: int, env: dict | None = None
) -> dict[str, float]:
    """Median seconds per call of each worker, each run in a fresh process, alternately.

    Two frameworks in one process share the CPU with each other's idle thread pools (an
    OpenBLAS or OpenMP thread spins for a while after each parallel call), which slows
    whichever runs next. Each worker here runs alone; alternating the processes still
    spreads the machine's noise over both. A worker prints one line: seconds per call.
    ``env`` maps a worker's name to extra environment variables for its process.
    """
    import subprocess

    samples: dict[str, list[float]] = {name: [] for name in workers}
    names = list(workers)
    for r in range(alternations):
        for name in names if r % 2 == 0 else names[::-1]:
            extra = (env or {}).get(name)
            out = subprocess.run(
                [sys.executable, script, *workers[name]],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **extra} if extra else None,
            ).stdout
            samples[name].append(float(out.strip().splitlines()[-1]))
    return {name: sorted(v)[len(v) // 2] for name, v in samples.items()}


def environment() -> dict[str, object]:
    import numba
    import numpy as np
    import torch

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": THREADS,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(native)"),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def write_results(name: str, rows: list[dict], meta: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "environment": meta, "rows": rows}
    _atomic_write(RESULTS / f"{name}.json", json.dumps(payload, indent=2))
    _atomic_write(RESULTS / f"{name}.md", markdown)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def bar_plot(path: Path, labels: list[str], ratios: list[float], title: str, goal: float = 1.0) -> None:
    """A horizontal bar chart of minidl / reference time ratios, with the goal marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.5))
    colors = ["#3b7dd8" if r <= goal else "#d8623b" for r in ratios]
    ax.barh(labels[::-1], ratios[::-1], color=colors[::-1])
    ax.axvline(goal, color="black", linestyle="--", linewidth=1, label=f"goal: {goal:g}x")
    for y, r in enumerate(ratios[::-1]):
        ax.text(r, y, f" {r:.2f}x", va="center", fontsize=9)
    ax.set_xlabel("minidl time / reference time (lower is better)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)


def small_cnn(lib: object) -> object:
    """The CNN of the graph and ONNX benchmarks (conv 32, pool, conv 64, pool, linear to 10),
    built from ``lib``: ``minidl`` or ``torch``, whose ``nn`` APIs are the same."""
    n = lib.nn  # type: ignore[attr-defined]
    return n.Sequential(
        n.Conv2d(1, 32, 3, padding=1),
        n.ReLU(),
        n.MaxPool2d(2),
        n.Conv2d(32, 64, 3, padding=1),
        n.ReLU(),
        n.MaxPool2d(2),
        n.Flatten(),
        n.Linear(64 * 7 * 7, 10),
    )
