"""Training against torch: step times, and accuracy reached on MNIST with the same schedule.

    python benchmarks/training.py            # about five minutes
    python benchmarks/training.py --quick    # a smoke run (a few seconds of each)

1. **Step time**: one full training step (zero_grad, forward, loss, backward, SGD with
   momentum) of the MLP 784-256-256-10 at batch 128 and batch 1, and of the CNN
   (conv 1->32, pool, conv 32->64, pool, linear 3136->128->10; 28x28 inputs) at batch 64.
   Each framework runs in its own fresh process, the processes alternated; the figure is the
   median of their medians. Ratio = minidl time / torch time (below 1: minidl is faster).
   torch is also run with minidl's allocator settings ("torch tuned"; see
   ``minidl/backend/memory.py``), so both comparisons are reported.
2. **Accuracy on MNIST**: the CNN trained on 8,000 images of the MNIST test set in
   ``../shared/data/mnist`` (the only MNIST file shipped to this machine) and tested on the
   other 2,000, by both frameworks from the same initial weights, in the same batch order,
   with the same optimizer and schedule. Records the loss at every step, test accuracy
   after each epoch, and seconds per epoch. Skipped when the data folder is absent.

Writes ``results/training.{md,json}``, ``training.png`` (step-time ratios and both loss
curves).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS,
    environment,
    isolated,
    markdown_table,
    pin_threads,
    write_results,
)

pin_threads()

import numpy as np  # noqa: E402

MNIST = Path(os.environ.get("MINIDL_MNIST", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
CASES = {
    "MLP 784-256-256-10, batch 128": ("mlp", 128),
    "MLP 784-256-256-10, batch 1": ("mlp", 1),
    "CNN 28x28, batch 64": ("cnn", 64),
}
GOALS = {"mlp": 1.0, "cnn": 1.25}
# minidl asks glibc's malloc to keep freed memory for reuse (minidl/backend/memory.py); torch
# leaves the allocator alone. "torch tuned" runs torch with the same settings, through
# glibc's environment tunables, so that the ratio against it shows minidl's own speed.
GLIBC_KEEP_FREED = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024)}


# ---- the models, defined once for both frameworks ----------------------------------------


def build(lib, arch: str):
    """The same architecture from ``torch`` or ``minidl`` (their nn APIs are the same)."""
    n = lib.nn
    if arch == "mlp":
        return n.Sequential(n.Linear(784, 256), n.ReLU(), n.Linear(256, 256), n.ReLU(), n.Linear(256, 10))
    return n.Sequential(
        n.Conv2d(1, 32, 3, padding=1),
        n.ReLU(),
        n.MaxPool2d(2),
        n.Conv2d(32, 64, 3, padding=1),
        n.ReLU(),
        n.MaxPool2d(2),
        n.Flatten(),
        n.Linear(64 * 7 * 7, 128),
        n.ReLU(),
        n.Linear(128, 10),
    )


def step_fn(lib_name: str, arch: str, batch: int):
    """A closure running one training step of ``arch`` in ``lib_name``."""
    rng = np.random.default_rng(0)
    shape = (batch, 784) if arch == "mlp" else (batch, 1, 28, 28)
    x_np = rng.standard_normal(shape).astype(np.float32)
    y_np = rng.integers(0, 10, batch)
    if lib_name == "torch":
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        model = build(torch, arch)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
        loss_fn = torch.nn.functional.cross_entropy
    else:
        import minidl

        minidl.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        model = build(minidl, arch)
        opt = minidl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = minidl.tensor(x_np), minidl.tensor(y_np)
        loss_fn = minidl.nn.functional.cross_entropy

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return step


def run_worker(lib_name: str, arch: str, batch: int, quick: bool) -> None:
    step = step_fn(lib_name, arch, batch)
    inner = {"mlp": 200 if batch == 1 else 20, "cnn": 10}[arch]
    rounds = 3 if quick else 9
    for _ in range(3 if quick else 10):
        step()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(inner):
            step()
        samples.append((time.perf_counter() - start) / inner)
    print(sorted(samples)[len(samples) // 2])


# ---- MNIST: the same training in both frameworks -----------------------------------------


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist_split():
    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    images = ((images - 0.1307) / 0.3081)[:, None]  # the usual MNIST normalization
    return (images[:8000], labels[:8000]), (images[8000:], labels[8000:])


def train_mnist(lib_name: str, epochs: int, batch: int, init: dict, quick: bool) -> dict:
    """Adam (lr 1e-3, halved each epoch by StepLR) on the CNN; return the curves."""
    (x_train, y_train), (x_test, y_test) = mnist_split()
    if quick:
        x_train, y_train, x_test, y_test = x_train[:512], y_train[:512], x_test[:256], y_test[:256]
    order_rng = np.random.default_rng(0)
    orders = [order_rng.permutation(len(x_train)) for _ in range(epochs)]
    if lib_name == "torch":
        import torch as lib

        lib.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        model = build(lib, "cnn")
        model.load_state_dict({k: lib.from_numpy(v) for k, v in init.items()})
        as_tensor = lib.from_numpy
        cross_entropy = lib.nn.functional.cross_entropy
        no_grad = lib.no_grad
    else:
        import minidl as lib

        lib.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        model = build(lib, "cnn")
        model.load_state_dict(init)
        as_tensor = lib.tensor
        cross_entropy = lib.nn.functional.cross_entropy
        no_grad = lib.no_grad
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    sched = lib.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    losses, accuracies, epoch_seconds, step_seconds = [], [], [], []
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = orders[epoch]
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            step_start = time.perf_counter()
            opt.zero_grad()
            loss = cross_entropy(model(as_tensor(x_train[idx])), as_tensor(y_train[idx]))
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
            step_seconds.append(time.perf_counter() - step_start)
        sched.step()
        epoch_seconds.append(time.perf_counter() - start)
        model.eval()
        correct = 0
        with no_grad():
            for i in range(0, len(x_test), 500):
                logits = model(as_tensor(x_test[i : i + 500]))
                correct += int((logits.argmax(1).numpy() == y_test[i : i + 500]).sum())
        accuracies.append(correct / len(x_test))
    return {"losses": losses, "accuracy": accuracies, "epoch_seconds": epoch_seconds, "step_seconds": step_seconds}


def run_mnist_worker(lib_name: str, epochs: int, init_path: str, out_path: str, quick: bool) -> None:
    init = dict(np.load(init_path, allow_pickle=False))
    result = train_mnist(lib_name, epochs, 64, init, quick)
    Path(out_path).write_text(json.dumps(result))
    print(0.0)


# ---- the report --------------------------------------------------------------------------


def plot(path: Path, step_rows: list[dict], curves: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if curves else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4))
    axes = np.atleast_1d(axes)
    labels = [r["case"] for r in step_rows][::-1]
    ax = axes[0]
    y = np.arange(len(labels))
    for offset, key, name, color in (
        (0.2, "ratio", "vs torch", "#3b7dd8"),
        (-0.2, "ratio_vs_tuned", "vs torch with minidl's malloc settings", "#8fb4e8"),
    ):
        values = [r[key] for r in step_rows][::-1]
        ax.barh(y + offset, values, height=0.38, color=color, label=name)
        for yi, v in zip(y + offset, values):
            ax.text(v, yi, f" {v:.2f}x", va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.legend(loc="lower right", fontsize=8)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("minidl step time / torch step time (lower is better)")
    ax.set_title("Training step, 2 threads")
    if curves:
        ax = axes[1]
        for name, color in (("torch", "#d8623b"), ("minidl", "#3b7dd8")):
            losses = np.array(curves[name]["losses"])
            smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
            ax.plot(smooth, label=name, color=color, linewidth=1.2, alpha=0.9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (moving average of 10)")
        ax.set_yscale("log")
        ax.set_title("CNN on MNIST, same weights and batches")
        ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--epochs", type=int, default=3, help="MNIST epochs (default 3)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mnist", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker and args.mnist:
        run_mnist_worker(args.worker, args.epochs, *args.mnist, args.quick)
        return
    if args.worker:
        run_worker(args.worker, args.arch, args.batch, args.quick)
        return

    quick = ["--quick"] if args.quick else []
    step_rows = []
    for case, (arch, batch) in CASES.items():
        workers = {
            name: ["--worker", name.split()[0], "--arch", arch, "--batch", str(batch), *quick]
            for name in ("minidl", "torch", "torch tuned")
        }
        t = isolated(__file__, workers, 2 if args.quick else 6, env={"torch tuned": GLIBC_KEEP_FREED})
        ratio = t["minidl"] / t["torch"]
        ratio_tuned = t["minidl"] / t["torch tuned"]
        step_rows.append(
            {
                "case": case,
                "minidl_ms": t["minidl"] * 1e3,
                "torch_ms": t["torch"] * 1e3,
                "torch_tuned_ms": t["torch tuned"] * 1e3,
                "ratio": ratio,
                "ratio_vs_tuned": ratio_tuned,
                "goal": GOALS[arch],
            }
        )
        print(
            f"{case:34s} minidl {t['minidl'] * 1e3:7.2f} ms   torch {t['torch'] * 1e3:7.2f} ms (tuned malloc "
            f"{t['torch tuned'] * 1e3:7.2f})   ratio {ratio:.2f} ({ratio_tuned:.2f})",
            flush=True,
        )

    curves = None
    if (MNIST / "t10k-images-idx3-ubyte.gz").exists():
        import tempfile

        import torch

        torch.manual_seed(0)
        init = {k: v.numpy() for k, v in build(torch, "cnn").state_dict().items()}
        curves = {}
        with tempfile.TemporaryDirectory() as tmp:
            init_path = os.path.join(tmp, "init.npz")
            np.savez(init_path, **init)
            for lib in ("torch", "minidl"):
                out_path = os.path.join(tmp, f"{lib}.json")
                isolated(
                    __file__,
                    {lib: ["--worker", lib, "--epochs", str(args.epochs), "--mnist", init_path, out_path, *quick]},
                    1,
                )
                curves[lib] = json.loads(Path(out_path).read_text())
                print(
                    f"MNIST {lib}: test accuracy per epoch {curves[lib]['accuracy']}, seconds per epoch "
                    f"{[round(s, 1) for s in curves[lib]['epoch_seconds']]}",
                    flush=True,
                )
    else:
        print(f"(MNIST not found in {MNIST}: skipping the accuracy comparison)")

    meta = environment()
    md = ["# Training: minidl vs torch", ""]
    md.append(
        "2 threads, float32, SGD with momentum 0.9. One training step = zero_grad, forward, "
        "cross-entropy, backward, optimizer step. Each framework in its own fresh process, the "
        "processes alternated, median of their medians. Ratio = minidl / torch (below 1: minidl faster).\n"
    )
    md.append(
        "minidl asks glibc's malloc to keep freed memory for reuse (see minidl/backend/memory.py); "
        "'torch, tuned malloc' runs torch with the same allocator settings (glibc environment tunables), "
        "so the last ratio compares the frameworks on equal allocators.\n"
    )
    md.append(
        markdown_table(
            ["case", "minidl (ms)", "torch (ms)", "torch, tuned malloc (ms)", "ratio", "ratio vs tuned torch", "goal"],
            [
                [
                    r["case"],
                    f"{r['minidl_ms']:.2f}",
                    f"{r['torch_ms']:.2f}",
                    f"{r['torch_tuned_ms']:.2f}",
                    f"{r['ratio']:.2f}",
                    f"{r['ratio_vs_tuned']:.2f}",
                    f"<= {r['goal']:g}",
                ]
                for r in step_rows
            ],
        )
    )
    if curves:
        md.append(
            f"\n## CNN on MNIST: 8,000 training and 2,000 test images, {args.epochs} epochs\n\n"
            "Same initial weights, same batch order (batch 64), Adam lr 1e-3 halved every epoch (StepLR).\n"
        )
        rows = []
        for e in range(args.epochs):
            rows.append(
                [e + 1]
                + [f"{100 * curves[lib]['accuracy'][e]:.2f}%" for lib in ("minidl", "torch")]
                + [f"{curves[lib]['epoch_seconds'][e]:.1f}" for lib in ("minidl", "torch")]
            )
        md.append(
            markdown_table(
                ["epoch", "minidl test accuracy", "torch test accuracy", "minidl s/epoch", "torch s/epoch"], rows
            )
        )
        diff = np.abs(np.array(curves["minidl"]["losses"]) - np.array(curves["torch"]["losses"]))
        md.append(
            f"\nLargest difference between the two loss curves over {len(diff)} steps: {diff.max():.2e} "
            f"(first 10 steps: {diff[:10].max():.2e}).\n"
        )
        steps = len(curves["minidl"]["losses"]) // args.epochs
        lines = []
        for lib in ("minidl", "torch"):
            reached = [e + 1 for e, a in enumerate(curves[lib]["accuracy"]) if a >= 0.97]
            later = curves[lib]["step_seconds"][steps:] or curves[lib]["step_seconds"]
            lines.append(
                f"{lib}: 97% test accuracy first reached after epoch {reached[0] if reached else 'never'}; "
                f"median training step {1e3 * float(np.median(later)):.1f} ms after the first epoch ({steps} steps per epoch)"
            )
        md.append("\n" + "\n\n".join(lines) + "\n")
    md.append("\nEnvironment: " + ", ".join(f"{k} {v}" for k, v in meta.items()) + "\n")
    write_results("training", [*step_rows, {"mnist": curves}], meta, "\n".join(md))
    plot(RESULTS / "training.png", step_rows, curves)
    print(f"\nwrote {RESULTS}/training.md, training.json and training.png")


if __name__ == "__main__":
    main()
