"""The examples run, on small settings, as a newcomer would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = {
    "quickstart.py": ["--steps", "30"],
    "custom_op.py": [],
    "higher_order.py": [],
    "choose_kernels.py": ["--small"],
    "mnist_cnn.py": ["--small"],
    "mnist_cnn.py on the digits": ["--small", "--data", "/nonexistent-mnist-folder"],
    "keras_style.py": ["--small"],
    "text_classification.py": ["--small"],
    "text_classification.py --model transformer": ["--small", "--model", "transformer"],
    "interop.py": [],
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name.split()[0]), *EXAMPLES[name]],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def _run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_quickstart_learns_the_spirals():
    """The demo's classifier separates the two spirals (well above chance)."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import quickstart
    finally:
        sys.path.remove(str(ROOT / "examples"))
    assert quickstart.train(steps=300) > 0.9


def test_mnist_cnn_example_learns_the_digits():
    """Offline (no MNIST folder), the CNN example trains on the bundled 8x8 digits to well
    above 90% test accuracy in its full setting (a few seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mnist_cnn.py"), "--data", "/nonexistent-mnist-folder"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    last = [line for line in result.stdout.splitlines() if line.startswith("epoch ")][-1]
    accuracy = float(last.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 93.0, last


def test_static_graph_example(tmp_path):
    """The TensorFlow-1-style example trains through a Session and the module agrees eagerly."""
    result = _run_example("static_graph.py", "--small", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    session_acc = float(result.stdout.split("test accuracy (Session): ")[1].split()[0])
    eager_acc = float(result.stdout.split("test accuracy (eager, same module): ")[1].split()[0])
    assert session_acc == eager_acc and session_acc > 0.8, result.stdout
    assert (tmp_path / "static_graph.dot").read_text().startswith("digraph")


def test_compile_training_example():
    """The compiled and eager training runs of the example agree bitwise, and a retrace is explained."""
    result = _run_example("compile_training.py", "--small")
    assert result.returncode == 0, result.stderr
    assert "bitwise identical: True" in result.stdout
    assert "retracing" in result.stdout and "(16, 1, 28, 28)" in result.stdout and "(8, 1, 28, 28)" in result.stdout


BENCHMARKS = {
    "overhead.py": ["--quick"],
    "training.py": ["--quick", "--epochs", "1"],
    "graph_vs_eager.py": ["--quick"],
    "onnx_inference.py": ["--quick"],
}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_smoke(name, tmp_path):
    """Each benchmark script runs end to end on its smoke settings and writes its results file
    and plot (the figures themselves are not checked here)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIDL_BENCH_RESULTS": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *BENCHMARKS[name]],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    stem = name.removesuffix(".py")
    assert (tmp_path / f"{stem}.json").exists() and (tmp_path / f"{stem}.png").exists()
