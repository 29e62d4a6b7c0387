"""minidl's CPU kernels against OpenBLAS (NumPy) and PyTorch (MKL, oneDNN), in one run.

    python benchmarks/kernels.py            # about ten minutes
    python benchmarks/kernels.py --quick    # a smoke run

* matmul GFLOP/s for square 64..2048 and the three products of an MLP layer (784 -> 256 at
  batch 64: forward x W^T, input gradient g W, weight gradient g^T x), float32 and float64:
  the Numba GEMM vs NumPy/OpenBLAS vs torch;
* conv2d 3x3 (padding 1) forward and forward+backward for (N, C, H, W, K) = (64,1,28,28,32),
  (64,32,14,14,64), (64,64,32,32,64), (32,128,28,28,128): minidl's default ('auto': Winograd
  F(2x2, 3x3) where it pays, else the implicit GEMM or the direct sum) and its implicit GEMM
  alone vs the NumPy im2col+BLAS reference vs torch (oneDNN);
* mixed: a Numba convolution and a 64x3136 @ 3136x128 product back to back, with the matmul
  on BLAS ('blas') and on minidl's default ('auto', one thread pool), against each alone;
* compile cost: each kernel's first call with an empty Numba cache, and in a warm process.

Each library runs in its own fresh process (an idle thread pool of one slows the other),
the processes alternate, and the median of their medians is reported. Writes
``benchmarks/results/kernels.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import RESULTS, THREADS, environment, markdown_table, pin_threads, write_results

pin_threads()

import numpy as np  # noqa: E402

SQUARE = (64, 128, 256, 512, 1024, 2048)
# (label, M, K, N, layout of A, layout of B): the products of a 784 -> 256 linear layer at batch 64
MLP = (
    ("MLP fwd: x W^T (64x784 @ 784x256)", 64, 784, 256, "C", "T"),
    ("MLP dX: g W (64x256 @ 256x784)", 64, 256, 784, "C", "C"),
    ("MLP dW: g^T x (256x64 @ 64x784)", 256, 64, 784, "T", "C"),
)
ROUNDS = 5  # fresh processes per library, alternated; the median is reported
FLUSH_BYTES = 64 * 1024 * 1024  # more than the L2 and L3 caches together
CONVS = ((64, 1, 28, 28, 32), (64, 32, 14, 14, 64), (64, 64, 32, 32, 64), (32, 128, 28, 28, 128))


def _timeit(fn, min_time: float, reps: int, before=None) -> float:
    """Median seconds of ``fn()`` (after one warm-up call); ``before()``, if given, runs
    untimed before each call."""
    fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < reps or time.perf_counter() - start < min_time:
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if len(samples) >= 4 * reps:
            break
    return sorted(samples)[len(samples) // 2]


def _operand(rng, rows, cols, layout, dtype):
    if layout == "T":
        return rng.standard_normal((cols, rows)).astype(dtype).T
    return rng.standard_normal((rows, cols)).astype(dtype)


def matmul_cases():
    for dtype in ("float32", "float64"):
        for n in SQUARE:
            yield f"matmul {n} {dtype}", n, n, n, "C", "C", dtype
        for label, m, k, n, la, lb in MLP:
            yield f"{label} {dtype}", m, k, n, la, lb, dtype


def run_worker(lib: str, quick: bool) -> dict:
    """Time every case with one library; return {case: seconds}."""
    rng = np.random.default_rng(0)
    reps, min_time = (2, 0.02) if quick else (7, 0.3)
    times: dict[str, float] = {}
    if lib == "torch":
        import torch

        torch.set_num_threads(THREADS)
    else:
        from minidl.backend.kernel_loader import import_kernels

        kernels = import_kernels()
        import minidl.kernels.cpu.conv as numba_conv
        import minidl.kernels.cpu.gemm as gemm

        reference = kernels.reference
    for case, m, k, n, la, lb, dtype in matmul_cases():
        if quick and max(m, k, n) > 512:
            continue
        a, b = _operand(rng, m, k, la, dtype), _operand(rng, k, n, lb, dtype)
        if lib == "torch":
            ta, tb = (
                torch.from_numpy(np.ascontiguousarray(a.T)).T if la == "T" else torch.from_numpy(a),
                (torch.from_numpy(np.ascontiguousarray(b.T)).T if lb == "T" else torch.from_numpy(b)),
            )
            fn = lambda ta=ta, tb=tb: ta @ tb  # noqa: E731
        elif lib == "numba":
            fn = lambda a=a, b=b: gemm.matmul(a, b)  # noqa: E731
        else:
            fn = lambda a=a, b=b: np.matmul(a, b)  # noqa: E731
        times[case] = _timeit(fn, min_time, reps)
    sweep = np.ones(FLUSH_BYTES // 8)

    def flush():
        """Write a buffer larger than the caches, as the other layers of a network would."""
        sweep[::8] += 1.0

    for shape in CONVS:
        nb, c, h, w, kk = shape
        if quick and nb * c * h * w > 64 * 32 * 14 * 14:
            continue
        x = rng.standard_normal((nb, c, h, w)).astype(np.float32)
        wt = (rng.standard_normal((kk, c, 3, 3)) * 0.1).astype(np.float32)
        g = rng.standard_normal((nb, kk, h, w)).astype(np.float32)
        label = "conv {}x{}x{}x{} -> {}".format(*shape)
        fwd, both = _conv_steps(
            lib, x, wt, g, numba_conv if lib == "numba" else (None if lib == "torch" else reference)
        )
        times[f"{label} forward"] = _timeit(fwd, min_time, reps)
        times[f"{label} forward+backward"] = _timeit(both, min_time, reps)
        times[f"{label} forward, cold caches"] = _timeit(fwd, min_time, reps, before=flush)
        if lib == "numba":  # the implicit GEMM alone, where 'auto' chose Winograd
            fwd, both = _conv_steps(lib, x, wt, g, numba_conv, algorithm="implicit")
            times[f"{label} forward, implicit GEMM"] = _timeit(fwd, min_time, reps)
            times[f"{label} forward+backward, implicit GEMM"] = _timeit(both, min_time, reps)
            times[f"{label} forward, cold caches, implicit GEMM"] = _timeit(fwd, min_time, reps, before=flush)
    return times


def _conv_steps(lib: str, x, wt, g, impl, algorithm: str | None = None):
    """(forward, forward+backward) of a 3x3, padding-1 convolution with one library
    (for minidl's kernels, ``algorithm`` picks the forward method and the input gradient's)."""
    args = ((1, 1), (1, 1), (1, 1), 1)
    choice = {} if algorithm is None else {"algorithm": algorithm}
    if lib == "torch":
        import torch

        tx, tw, tg = torch.from_numpy(x).requires_grad_(), torch.from_numpy(wt).requires_grad_(), torch.from_numpy(g)

        def fwd():
            return torch.nn.functional.conv2d(tx.detach(), tw.detach(), padding=1)

        def both():
            tx.grad = tw.grad = None
            torch.nn.functional.conv2d(tx, tw, padding=1).backward(tg)

        return fwd, both

    def fwd():
        return impl.conv2d_forward(x, wt, *args, **choice)

    def both():
        impl.conv2d_forward(x, wt, *args, **choice)
        impl.conv2d_backward_input(g, wt, x.shape, *args, **choice)
        impl.conv2d_backward_weight(x, g, wt.shape, *args)

    return fwd, both


def run_mixed_worker(impl: str, quick: bool) -> dict:
    """A convolution then a matmul, as in a CNN's step, with matmul kernel ``impl``: each alone
    and the two back to back (seconds)."""
    from minidl.backend.kernel_loader import import_kernels

    import_kernels()
    import minidl.kernels.cpu.conv as numba_conv
    import minidl.kernels.cpu.matmul as cpu_matmul

    rng = np.random.default_rng(0)
    reps, min_time = (2, 0.02) if quick else (7, 0.3)
    x = rng.standard_normal((64, 32, 14, 14)).astype(np.float32)
    w = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
    a = rng.standard_normal((64, 3136)).astype(np.float32)
    b = rng.standard_normal((3136, 128)).astype(np.float32)
    matmul = cpu_matmul.matmul_auto if impl == "auto" else cpu_matmul.matmul

    def conv():
        numba_conv.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)

    def both():
        conv()
        matmul(a, b)

    # each alone first, with a pause for idle threads to go to sleep in between
    t_conv = _timeit(conv, min_time, reps)
    time.sleep(0.5)
    t_matmul = _timeit(lambda: matmul(a, b), min_time, reps)
    time.sleep(0.5)
    return {"conv alone": t_conv, "matmul alone": t_matmul, "conv then matmul": _timeit(both, min_time, reps)}


def compile_costs() -> dict[str, float]:
    """First-call time of each kernel with an empty Numba cache, then in a warm process."""
    script = r"""
import json, sys, time
import numpy as np
from minidl.backend.kernel_loader import import_kernels
import_kernels()
out = {}
t = time.perf_counter(); import minidl.kernels.cpu.gemm as gemm, minidl.kernels.cpu.conv as conv; out["import"] = time.perf_counter() - t
for dtype in ("float32", "float64"):
    a = np.ones((40, 40), dtype)
    t = time.perf_counter(); gemm.matmul(a, a); out[f"matmul {dtype}"] = time.perf_counter() - t
    x, w, g = np.ones((2, 8, 8, 8), dtype), np.ones((16, 8, 3, 3), dtype), np.ones((2, 16, 8, 8), dtype)
    args = ((1, 1), (1, 1), (1, 1), 1)
    t = time.perf_counter(); conv.conv2d_forward(x, w, *args); out[f"conv2d forward {dtype}"] = time.perf_counter() - t
    t = time.perf_counter(); conv.conv2d_forward(x, w, *args, algorithm="winograd"); out[f"conv2d forward Winograd {dtype}"] = time.perf_counter() - t
    t = time.perf_counter(); conv.conv2d_backward_input(g, w, x.shape, *args); out[f"conv2d backward input {dtype}"] = time.perf_counter() - t
    t = time.perf_counter(); conv.conv2d_backward_weight(x, g, w.shape, *args); out[f"conv2d backward weight {dtype}"] = time.perf_counter() - t
print(json.dumps(out))
"""
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for phase in ("first call, empty cache", "warm process, cached"):
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            for key, value in json.loads(out.stdout.strip().splitlines()[-1]).items():
                results[f"{key}: {phase}"] = value
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--worker", choices=["numba", "blas", "torch", "mixed-blas", "mixed-auto"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        if args.worker.startswith("mixed-"):
            print(json.dumps(run_mixed_worker(args.worker.split("-")[1], args.quick)))
        else:
            print(json.dumps(run_worker(args.worker, args.quick)))
        return

    libs = ("numba", "blas", "torch")
    per_lib: dict[str, list[dict]] = {lib: [] for lib in libs}
    for r in range(1 if args.quick else ROUNDS):
        for lib in libs if r % 2 == 0 else libs[::-1]:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", lib] + (["--quick"] if args.quick else []),
                capture_output=True,
                text=True,
                check=True,
            )
            per_lib[lib].append(json.loads(out.stdout.strip().splitlines()[-1]))
    median = {
        lib: {case: sorted(run[case] for run in runs)[len(runs) // 2] for case in runs[0]}
        for lib, runs in per_lib.items()
    }

    rows, mm_table, conv_table = [], [], []
    for case, m, k, n, _, _, _ in matmul_cases():
        if case not in median["numba"]:
            continue
        flops = 2 * m * k * n
        g = {lib: flops / median[lib][case] / 1e9 for lib in libs}
        rows.append(
            {"case": case, **{f"{lib}_gflops": g[lib] for lib in libs}, "numba_vs_openblas": g["numba"] / g["blas"]}
        )
        mm_table.append(
            [
                case,
                f"{g['numba']:.0f}",
                f"{g['blas']:.0f}",
                f"{g['torch']:.0f}",
                f"{g['numba'] / g['blas']:.2f}",
                f"{g['numba'] / g['torch']:.2f}",
            ]
        )
    from minidl.backend.kernel_loader import import_kernels

    import_kernels()
    import minidl.kernels.cpu.conv as numba_conv

    for shape in CONVS:
        label = "conv {}x{}x{}x{} -> {}".format(*shape)
        nb, c, h, w, kk = shape
        method = numba_conv.choose_algorithm((nb, c, h, w), (kk, c, 3, 3), (1, 1), (1, 1), (1, 1), 1)
        for part in ("forward", "forward+backward", "forward, cold caches"):
            case = f"{label} {part}"
            if case not in median["numba"]:
                continue
            flops = 2 * nb * kk * h * w * c * 9 * (3 if part == "forward+backward" else 1)
            t = {lib: median[lib][case] for lib in libs}
            t_implicit = median["numba"][f"{case}, implicit GEMM"]
            rows.append(
                {
                    "case": case,
                    "numba_method": method,
                    **{f"{lib}_ms": t[lib] * 1e3 for lib in libs},
                    "numba_implicit_ms": t_implicit * 1e3,
                    "numba_vs_torch": t["torch"] / t["numba"],
                    "numba_implicit_vs_torch": t["torch"] / t_implicit,
                    "numba_vs_im2col": t["blas"] / t["numba"],
                }
            )
            conv_table.append(
                [
                    case,
                    method,
                    f"{t['numba'] * 1e3:.2f}",
                    f"{t_implicit * 1e3:.2f}",
                    f"{t['blas'] * 1e3:.2f}",
                    f"{t['torch'] * 1e3:.2f}",
                    f"{flops / t['numba'] / 1e9:.0f}",
                    f"{t['torch'] / t['numba']:.2f}",
                    f"{t['torch'] / t_implicit:.2f}",
                    f"{t['blas'] / t['numba']:.2f}",
                ]
            )
    mixed_table = []
    for impl in ("blas", "auto"):
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--worker", f"mixed-{impl}"] + (["--quick"] if args.quick else []),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            for _ in range(1 if args.quick else ROUNDS)
        ]
        t = {key: sorted(run[key] for run in runs)[len(runs) // 2] for key in runs[0]}
        slowdown = t["conv then matmul"] / (t["conv alone"] + t["matmul alone"])
        rows.append(
            {"case": f"mixed, matmul {impl}", **{f"{k} ms": v * 1e3 for k, v in t.items()}, "slowdown": slowdown}
        )
        mixed_table.append(
            [
                f"matmul '{impl}'",
                f"{t['conv alone'] * 1e3:.2f}",
                f"{t['matmul alone'] * 1e3:.3f}",
                f"{t['conv then matmul'] * 1e3:.2f}",
                f"{slowdown:.2f}",
            ]
        )
    costs = compile_costs()
    for key, value in costs.items():
        rows.append({"case": f"compile: {key}", "seconds": value})

    meta = environment()
    md = "# Kernels: minidl (Numba) vs OpenBLAS vs torch\n\n"
    md += f"{THREADS} threads. Each library in its own process, processes alternated, median of medians.\n\n"
    md += "## matmul (GFLOP/s; ratios are speed ratios, above 1 = Numba faster)\n\n"
    md += markdown_table(["case", "Numba", "OpenBLAS", "torch", "Numba / OpenBLAS", "Numba / torch"], mm_table)
    md += "\n## conv2d 3x3, padding 1, float32 (ms; speed ratios, above 1 = Numba faster)\n\n"
    md += (
        "'Numba' is minidl's default ('auto'), by the forward method named (the input gradient is a\n"
        "forward convolution too, chosen the same way); 'implicit' is the implicit GEMM alone.\n"
        "GFLOP/s counts the direct convolution's 2 N K C 9 Ho Wo per pass, whatever the method.\n"
        "'cold caches': a 64 MB buffer is written before each call, as a network's other layers\n"
        "would evict the layer's data; the other rows call the layer over and over, warm.\n\n"
    )
    md += markdown_table(
        [
            "case", "method", "Numba", "Numba implicit", "im2col+BLAS", "torch", "Numba GFLOP/s",
            "Numba vs torch", "implicit vs torch", "Numba vs im2col",
        ],
        conv_table,
    )  # fmt: skip
    md += "\n## Mixed: conv 64x32x14x14 -> 64 forward (Numba), then 64x3136 @ 3136x128 (ms)\n\n"
    md += (
        "OpenBLAS's idle threads spin after a call; a Numba kernel that runs next shares its cores with\n"
        "them. 'auto' (the default) runs that product on the Numba GEMM instead: one thread pool.\n\n"
    )
    md += markdown_table(["matmul kernel", "conv alone", "matmul alone", "conv then matmul", "slowdown"], mixed_table)
    md += "\n## Compile cost (seconds)\n\n"
    md += markdown_table(["kernel", "seconds"], [[k, f"{v:.2f}"] for k, v in costs.items()])
    md += "\nEnvironment: " + ", ".join(f"{k} {v}" for k, v in meta.items()) + "\n"
    write_results("kernels", rows, meta, md)
    _plot(mm_table, conv_table)
    print(md)


def _plot(mm_table, conv_table) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for dtype, style in (("float32", "-"), ("float64", "--")):
        sq = [r for r in mm_table if r[0].startswith("matmul") and r[0].endswith(dtype)]
        sizes = [int(r[0].split()[1]) for r in sq]
        for col, lib in ((1, "Numba"), (2, "OpenBLAS"), (3, "torch")):
            axes[0].plot(sizes, [float(r[col]) for r in sq], style, marker="o", label=f"{lib} {dtype}")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("n (square n x n @ n x n)")
    axes[0].set_ylabel("GFLOP/s")
    axes[0].set_title("matmul")
    axes[0].legend(fontsize=8)
    labels = [r[0].replace("conv ", "") for r in conv_table]
    y = np.arange(len(labels))
    torch_ms = np.array([float(r[5]) for r in conv_table])
    for offset, col, lib in ((-0.27, 2, "Numba (auto)"), (0.0, 3, "Numba implicit GEMM"), (0.27, 4, "im2col+BLAS")):
        axes[1].barh(y + offset, torch_ms / np.array([float(r[col]) for r in conv_table]), height=0.27, label=lib)
    axes[1].axvline(1.0, color="black", linestyle="--", linewidth=1, label="torch (oneDNN)")
    axes[1].set_yticks(y, labels, fontsize=7)
    axes[1].set_xlabel("speed relative to torch (higher is better)")
    axes[1].set_title("conv2d 3x3, padding 1, float32")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    tmp = RESULTS / "kernels.tmp.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, RESULTS / "kernels.png")
    plt.close(fig)


if __name__ == "__main__":
    main()
