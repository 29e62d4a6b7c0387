"""2-D pooling kernels: minidl's Numba kernels against the NumPy reference kernels and torch.

    python benchmarks/pool.py            # full run (about half a minute)
    python benchmarks/pool.py --quick    # a smoke run with few repeats

Max and average pooling, float32 NCHW, on (N, C, H, W) = (64, 32, 28, 28) and (64, 64, 32, 32),
with a 2x2 window of stride 2 and a 3x3 window of stride 2 and padding 1; forward alone and
forward + backward. torch runs ``torch.nn.functional.max_pool2d(..., return_indices=True)`` /
``avg_pool2d`` with autograd (``out.backward(g)``); minidl calls its forward kernel, then its
backward kernel, with the same ``g``. Writes ``benchmarks/results/pool.{json,md,png}``.

minidl and torch are timed in alternating rounds in one process (median of the rounds); the
reference, tens of times slower, is timed on its own with fewer rounds. Before timing, each
case checks that the three compute the same numbers.
"""

from __future__ import annotations

import argparse

from common import RESULTS, THREADS, bar_plot, environment, interleaved, markdown_table, pin_threads, write_results

pin_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

from minidl.backend.kernel_loader import import_kernels  # noqa: E402

torch.set_num_threads(THREADS)
ref = import_kernels().reference
import minidl.kernels.cpu.pool as cpu  # noqa: E402

SHAPES = [(64, 32, 28, 28), (64, 64, 32, 32)]
WINDOWS = [("2x2 s2", 2, 2, 0), ("3x3 s2 p1", 3, 2, 1)]


def case_fns(kind: str, shape, k: int, s: int, p: int):
    """``{phase: {library: fn}}`` for one pooling case, after checking the libraries agree."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x)
    txg = tx.clone().requires_grad_(True)
    kk, ss, pp = (k, k), (s, s), (p, p)

    if kind == "max":

        def ours_fwd(mod=cpu):
            return mod.max_pool2d_forward(x, kk, ss, pp, (1, 1), False)

        def ours_fwd_bwd(mod=cpu):
            out, idx = mod.max_pool2d_forward(x, kk, ss, pp, (1, 1), False)
            return mod.max_pool2d_backward(g, idx, x.shape)

        def torch_fwd(t=tx):
            return TF.max_pool2d(t, k, s, p, return_indices=True)

        def torch_fwd_bwd():
            txg.grad = None
            TF.max_pool2d(txg, k, s, p, return_indices=True)[0].backward(tg)
            return txg.grad

        out, idx = ours_fwd()
        t_out, t_idx = torch_fwd()
        np.testing.assert_array_equal(out, t_out.numpy())
        np.testing.assert_array_equal(idx, t_idx.numpy())
    else:
        args = (kk, ss, pp, False, True, None)

        def ours_fwd(mod=cpu):
            return mod.avg_pool2d_forward(x, *args)

        def ours_fwd_bwd(mod=cpu):
            mod.avg_pool2d_forward(x, *args)
            return mod.avg_pool2d_backward(g, x.shape, *args)

        def torch_fwd(t=tx):
            return TF.avg_pool2d(t, k, s, p)

        def torch_fwd_bwd():
            txg.grad = None
            TF.avg_pool2d(txg, k, s, p).backward(tg)
            return txg.grad

        out = ours_fwd()
        np.testing.assert_allclose(out, torch_fwd().numpy(), rtol=1e-6, atol=1e-6)

    g = rng.standard_normal(out.shape).astype(np.float32)
    tg = torch.from_numpy(g)
    gx = ours_fwd_bwd()
    np.testing.assert_allclose(gx, torch_fwd_bwd().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gx, ours_fwd_bwd(ref), rtol=1e-6, atol=1e-6)
    return {
        "forward": {"minidl": ours_fwd, "torch": torch_fwd, "reference": lambda: ours_fwd(ref)},
        "forward+backward": {"minidl": ours_fwd_bwd, "torch": torch_fwd_bwd, "reference": lambda: ours_fwd_bwd(ref)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats, for a smoke test")
    args = parser.parse_args()
    rounds, inner = (5, 3) if args.quick else (21, 10)
    ref_rounds = 3 if args.quick else 7

    rows, table = [], []
    for kind in ("max", "avg"):
        for shape in SHAPES:
            for label, k, s, p in WINDOWS:
                for phase, fns in case_fns(kind, shape, k, s, p).items():
                    t = interleaved({"minidl": fns["minidl"], "torch": fns["torch"]}, rounds, inner)
                    t.update(interleaved({"reference": fns["reference"]}, ref_rounds, 1, warmup=1))
                    row = {
                        "op": f"{kind}_pool2d",
                        "shape": list(shape),
                        "window": label,
                        "phase": phase,
                        **{f"{lib}_ms": t[lib] * 1e3 for lib in ("minidl", "torch", "reference")},
                    }
                    row["vs_torch"] = row["minidl_ms"] / row["torch_ms"]
                    row["vs_reference"] = row["minidl_ms"] / row["reference_ms"]
                    rows.append(row)
                    name = f"{kind}_pool2d {label}, {'x'.join(map(str, shape))}: {phase}"
                    table.append(
                        [
                            name,
                            f"{row['minidl_ms']:.3f}",
                            f"{row['torch_ms']:.3f}",
                            f"{row['reference_ms']:.2f}",
                            f"{row['vs_torch']:.2f}",
                            f"{row['vs_reference']:.3f}",
                        ]
                    )
                    print(
                        f"{name:<58} minidl {row['minidl_ms']:7.3f} ms  torch {row['torch_ms']:7.3f} ms  "
                        f"reference {row['reference_ms']:8.2f} ms  vs torch {row['vs_torch']:.2f}  "
                        f"vs reference {row['vs_reference']:.3f}"
                    )

    meta = environment()
    headers = ["case", "minidl (ms)", "torch (ms)", "NumPy reference (ms)", "minidl / torch", "minidl / reference"]
    md = "# Pooling kernels: minidl (Numba) vs torch vs the NumPy reference\n\n"
    md += (
        f"{THREADS} threads, float32, NCHW. minidl: the Numba kernels of `kernels/cpu/pool.py` (forward, then "
        "backward kernel); torch: `torch.nn.functional.max_pool2d(return_indices=True)` / `avg_pool2d` with "
        f"autograd. minidl and torch: median of {rounds} interleaved rounds of {inner} calls in one process; "
        f"the NumPy reference: median of {ref_rounds} single calls. Ratios below 1: minidl faster.\n\n"
    )
    md += markdown_table(headers, table)
    md += "\nEnvironment: " + ", ".join(f"{k} {v}" for k, v in meta.items()) + "\n"
    write_results("pool", rows, meta, md)
    bar_plot(RESULTS / "pool.png", [r[0] for r in table], [r["vs_torch"] for r in rows], "Pooling: minidl / torch")
    print(f"\nwrote {RESULTS / 'pool.md'}, pool.json and pool.png")


if __name__ == "__main__":
    main()
