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


def test_overhead_benchmark_smoke(tmp_path):
    """The benchmark script runs end to end (few repeats); its results are not checked here."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIDL_BENCH_RESULTS": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "overhead.json").exists()


def test_training_benchmark_smoke(tmp_path):
    """benchmarks/training.py runs end to end on its smoke settings (results not checked)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIDL_BENCH_RESULTS": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "training.py"), "--quick", "--epochs", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "training.json").exists() and (tmp_path / "training.png").exists()
