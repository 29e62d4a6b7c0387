"""Eager overhead of minidl against torch, measured in one run.

    python benchmarks/overhead.py            # full run (about a minute)
    python benchmarks/overhead.py --quick    # a smoke run with few repeats

Cases: a 4-element add and a 64x64 matmul (no grad; recording for grad; forward+backward),
and forward+backward (cross-entropy loss) of an MLP 784-256-256-10 at batch 1 and 128.
Writes ``benchmarks/results/overhead.{json,md,png}`` and a profile of the minidl MLP steps,
``overhead_profile.txt``, that splits the time between array compute and framework code.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats

from common import RESULTS, bar_plot, environment, interleaved, isolated, markdown_table, pin_threads, write_results

pin_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

import minidl  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
from common import THREADS  # noqa: E402

torch.set_num_threads(THREADS)


def op_cases() -> list[tuple[str, dict]]:
    rng = np.random.default_rng(0)
    cases = []
    for label, shape, op in (("add, 4 elements", (4,), "add"), ("matmul, 64x64", (64, 64), "matmul")):
        a, b = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
        ma, mb, ta, tb = minidl.tensor(a), minidl.tensor(b), torch.tensor(a), torch.tensor(b)
        mag, mbg = minidl.tensor(a, requires_grad=True), minidl.tensor(b, requires_grad=True)
        tag, tbg = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        f = (lambda x, y: x + y) if op == "add" else (lambda x, y: x @ y)

        def fwd_bwd(x, y, f=f):
            f(x, y).sum().backward()

        cases.append(
            (f"{label}: forward", {"minidl": lambda f=f, x=ma, y=mb: f(x, y), "torch": lambda f=f, x=ta, y=tb: f(x, y)})
        )
        cases.append(
            (
                f"{label}: forward, requires_grad",
                {"minidl": lambda f=f, x=mag, y=mbg: f(x, y), "torch": lambda f=f, x=tag, y=tbg: f(x, y)},
            )
        )
        cases.append(
            (
                f"{label}: forward+backward",
                {"minidl": lambda x=mag, y=mbg, g=fwd_bwd: g(x, y), "torch": lambda x=tag, y=tbg, g=fwd_bwd: g(x, y)},
            )
        )
    return cases


def mlp_step_fns(batch: int, check: bool = True):
    """forward + cross-entropy + backward of 784-256-256-10 in both libraries, same weights.

    With ``check``, run each step once and assert that the gradients agree.
    """
    rng = np.random.default_rng(1)
    shapes = [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,)]
    weights = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in shapes]
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    mw = [minidl.tensor(w, requires_grad=True) for w in weights]
    tw = [torch.tensor(w, requires_grad=True) for w in weights]
    mx, my, tx, ty = minidl.tensor(x), minidl.tensor(y), torch.tensor(x), torch.tensor(y)

    def minidl_step():
        for p in mw:
            p.grad = None
        h = F.relu(F.linear(mx, mw[0], mw[1]))
        h = F.relu(F.linear(h, mw[2], mw[3]))
        F.cross_entropy(F.linear(h, mw[4], mw[5]), my).backward()

    def torch_step():
        for p in tw:
            p.grad = None
        h = TF.relu(TF.linear(tx, tw[0], tw[1]))
        h = TF.relu(TF.linear(h, tw[2], tw[3]))
        TF.cross_entropy(TF.linear(h, tw[4], tw[5]), ty).backward()

    if check:
        minidl_step()
        torch_step()
        for p, q in zip(mw, tw):  # same computation: the gradients agree
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-3, atol=1e-5)
    return minidl_step, torch_step


def numpy_floor_step(batch: int):
    """The same MLP step written directly on arrays with minidl's own kernels: what the
    array computation alone costs, with no tensors, tape or engine. minidl's time minus this
    is its framework overhead."""
    from minidl.backend.registry import kernels_for

    rng = np.random.default_rng(1)
    shapes = [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,)]
    w1, b1, w2, b2, w3, b3 = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in shapes]
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    k = kernels_for(x)
    rows = np.arange(batch)

    def step():
        h1 = k.relu_forward(k.matmul(x, w1.T) + b1)
        h2 = k.relu_forward(k.matmul(h1, w2.T) + b2)
        logp, losses, _ = k.log_softmax_nll(k.matmul(h2, w3.T) + b3, y)
        g = np.exp(logp)
        g[rows, y] -= 1
        g /= batch
        grads = [k.matmul(g.T, h2), g.sum(0)]
        g = k.relu_backward(k.matmul(g, w3), h2)
        grads += [k.matmul(g.T, h1), g.sum(0)]
        g = k.relu_backward(k.matmul(g, w2), h1)
        grads += [k.matmul(g.T, x), g.sum(0)]
        return losses.mean(), grads

    return step


def run_worker(lib: str, batch: int, quick: bool) -> None:
    """Time one library's MLP step alone in this process; print seconds per call. The other
    library's step is never run here, so its thread pools stay idle."""
    if lib == "numpy":
        step = numpy_floor_step(batch)
    else:
        m_step, t_step = mlp_step_fns(batch, check=False)
        step = m_step if lib == "minidl" else t_step
    inner = (20 if quick else 100) if batch == 1 else (4 if quick else 20)
    t = interleaved({lib: step}, 5 if quick else 15, inner, warmup=10)
    print(t[lib])


def profile(fn, calls: int) -> str:
    """The top functions of ``fn`` by own time, as cProfile reports them."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(20)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats, for a smoke test")
    parser.add_argument("--worker", choices=["minidl", "torch", "numpy"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds = 5 if args.quick else 21
    if args.worker:
        run_worker(args.worker, args.batch, args.quick)
        return

    rows, table = [], []
    for label, fns in op_cases():
        inner = 200 if args.quick else 2000
        if "matmul" in label:
            inner //= 4
        t = interleaved(fns, rounds, inner)
        rows.append({"case": label, "minidl_us": t["minidl"] * 1e6, "torch_us": t["torch"] * 1e6})
    for batch in (1, 128):
        mlp_step_fns(batch)  # checks that both compute the same gradients
        workers = {
            lib: ["--worker", lib, "--batch", str(batch)] + (["--quick"] if args.quick else [])
            for lib in ("minidl", "torch", "numpy")
        }
        t = isolated(__file__, workers, 2 if args.quick else 6)
        rows.append(
            {
                "case": f"MLP 784-256-256-10, batch {batch}: forward+backward",
                "minidl_us": t["minidl"] * 1e6,
                "torch_us": t["torch"] * 1e6,
                "numpy_floor_us": t["numpy"] * 1e6,
            }
        )
    for r in rows:
        r["ratio"] = r["minidl_us"] / r["torch_us"]
        table.append([r["case"], f"{r['minidl_us']:.1f}", f"{r['torch_us']:.1f}", f"{r['ratio']:.2f}"])
        print(
            f"{r['case']:<55} minidl {r['minidl_us']:9.1f} us   torch {r['torch_us']:9.1f} us   ratio {r['ratio']:.2f}"
        )

    meta = environment()
    profile_text = []
    split_rows = []
    for batch, calls in ((1, 300), (128, 60)):
        m_step, _ = mlp_step_fns(batch)
        text = profile(m_step, 30 if args.quick else calls)
        profile_text.append(f"== minidl MLP step, batch {batch} (cProfile; ufunc time counts in its caller) ==\n{text}")
        row = next(r for r in rows if r["case"].startswith(f"MLP 784-256-256-10, batch {batch}:"))
        total, floor = row["minidl_us"], row["numpy_floor_us"]
        split_rows.append(
            [
                f"batch {batch}",
                f"{total:.0f}",
                f"{floor:.0f} ({100 * floor / total:.0f}%)",
                f"{total - floor:.0f} ({100 * (total - floor) / total:.0f}%)",
            ]
        )
    (RESULTS / "overhead_profile.txt").write_text("\n".join(profile_text))

    md = "# Eager overhead: minidl vs torch\n\n"
    md += (
        f"{THREADS} threads, float32. Ratio = minidl / torch (below 1: minidl faster). Single ops: median of "
        f"{rounds} interleaved rounds in one process. MLP steps: each library in its own fresh process, the "
        "processes alternated, median of their medians (in one process each library's idle BLAS/OpenMP "
        "threads would slow the other).\n\n"
    )
    md += markdown_table(["case", "minidl (us)", "torch (us)", "ratio"], table)
    md += "\n## Where the minidl MLP step spends its time\n\n"
    md += (
        "The array floor is the same step written directly on NumPy arrays with minidl's own kernels "
        "(no tensors, tape or engine), timed the same way; the rest of minidl's time is framework overhead. "
        "The per-function profile is in overhead_profile.txt.\n\n"
    )
    md += markdown_table(["MLP step", "minidl (us)", "array compute floor (us)", "framework overhead (us)"], split_rows)
    md += "\nEnvironment: " + ", ".join(f"{k} {v}" for k, v in meta.items()) + "\n"
    write_results("overhead", rows, meta, md)
    bar_plot(
        RESULTS / "overhead.png",
        [r["case"] for r in rows],
        [r["ratio"] for r in rows],
        "Eager overhead: minidl / torch",
    )
    print(f"\nwrote {RESULTS / 'overhead.md'}, overhead.json, overhead.png and overhead_profile.txt")


if __name__ == "__main__":
    main()
