"""Static graph vs eager: compiled training steps and planned memory, measured in one run.

    python benchmarks/graph_vs_eager.py            # full run (a few minutes)
    python benchmarks/graph_vs_eager.py --quick    # a smoke run with few repeats

Rows (eager and compiled start from the same weights; times are medians of interleaved
rounds, threads pinned):

1. the training step (forward, cross-entropy, backward, SGD+momentum) of the MLP
   784-256-256-10 at batch 1, 16 and 128: eager vs ``minidl.compile`` at the default level;
2. a GELU/LayerNorm-heavy MLP (256-256-256-10 with LayerNorm and GELU after each hidden
   layer), batch 1024, where elementwise work rivals the matmuls: eager vs compiled at level 1
   and at level 2 (elementwise fusion);
3. a CNN (conv 32, pool, conv 64, pool, linear: `common.small_cnn`), batch 64;
4. peak memory (``tracemalloc``, which sees NumPy's allocations) of eager vs the compiled,
   planned program: forward-only inference of the MLP at batch 512 and of the CNN at batch 64
   (eager as a user writes it, ``model(x)`` with parameters that require grad, so autograd
   keeps the activations; and eager under ``no_grad`` for reference), and one training step.

Writes ``benchmarks/results/graph_vs_eager.{json,md,png}`` and a profile of the compiled MLP
step (``graph_vs_eager_profile.txt``) that splits its time between kernels and the rest.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tracemalloc

from common import (
    RESULTS,
    bar_plot,
    environment,
    interleaved,
    markdown_table,
    pin_threads,
    small_cnn,
    write_results,
)

pin_threads()

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
from minidl import nn, optim  # noqa: E402


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def gelu_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(256, 256),
        nn.LayerNorm(256),
        nn.GELU(),
        nn.Linear(256, 256),
        nn.LayerNorm(256),
        nn.GELU(),
        nn.Linear(256, 10),
    )


def cnn() -> nn.Module:
    return small_cnn(minidl)


def make_step(make_model, optimize: int | None):
    """A training step closure over a fresh model (seeded: every variant gets the same weights)."""
    minidl.manual_seed(0)
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    if optimize is None:
        return step, model
    return minidl.compile(step, optimize=optimize), model


def data(make_model, batch: int):
    rng = np.random.default_rng(1)
    shape = {mlp: (batch, 784), gelu_mlp: (batch, 256), cnn: (batch, 1, 28, 28)}[make_model]
    x = minidl.tensor(rng.standard_normal(shape).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 10, batch))
    return x, y


def time_steps(make_model, batch: int, levels: list[int | None], quick: bool) -> dict:
    x, y = data(make_model, batch)
    cases = {}
    for level in levels:
        step, _ = make_step(make_model, level)
        cases["eager" if level is None else f"compiled (level {level})"] = lambda s=step: s(x, y)
    big = batch >= 64 or make_model is cnn
    inner = (2 if quick else 10) if big else (10 if quick else 100)
    return interleaved(cases, 3 if quick else 15, inner, warmup=5)


def check_equal(make_model, batch: int) -> bool:
    """The compiled step (level 1) gives bitwise the eager losses over three steps."""
    x, y = data(make_model, batch)
    eager, _ = make_step(make_model, None)
    compiled, _ = make_step(make_model, 1)
    a = [eager(x, y).item() for _ in range(3)]
    b = [compiled(x, y).item() for _ in range(3)]
    return a == b


def peak_bytes(fn) -> int:
    fn()  # warm: compile, first-call allocations
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def memory_rows(quick: bool) -> list[dict]:
    rows = []
    for make_model, batch, label in ((mlp, 512, "MLP, batch 512"), (cnn, 64, "CNN, batch 64")):
        x, y = data(make_model, batch)
        minidl.manual_seed(0)
        model = make_model()
        compiled = minidl.compile(model)

        def eager_forward(model=model, x=x):
            return model(x)

        def eager_no_grad(model=model, x=x):
            with minidl.no_grad():
                return model(x)

        def graph_forward(compiled=compiled, x=x):
            with minidl.no_grad():
                return compiled(x)

        e, n, g = peak_bytes(eager_forward), peak_bytes(eager_no_grad), peak_bytes(graph_forward)
        rows.append(
            {
                "case": f"{label}: forward only",
                "eager_bytes": e,
                "eager_no_grad_bytes": n,
                "graph_bytes": g,
                "ratio": g / e,
            }
        )
        step_e, _ = make_step(make_model, None)
        step_c, _ = make_step(make_model, 1)
        e = peak_bytes(lambda s=step_e, x=x, y=y: s(x, y))
        g = peak_bytes(lambda s=step_c, x=x, y=y: s(x, y))
        rows.append(
            {
                "case": f"{label}: training step",
                "eager_bytes": e,
                "eager_no_grad_bytes": None,
                "graph_bytes": g,
                "ratio": g / e,
            }
        )
    return rows


def profile_compiled(quick: bool) -> str:
    x, y = data(mlp, 128)
    step, _ = make_step(mlp, 1)
    for _ in range(3):
        step(x, y)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(10 if quick else 100):
        step(x, y)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats, for a smoke test")
    args = parser.parse_args()
    quick = args.quick

    rows = []
    plan = [(mlp, 1, "MLP step, batch 1", [None, 1]), (mlp, 16, "MLP step, batch 16", [None, 1])]
    plan += [(mlp, 128, "MLP step, batch 128", [None, 1])]
    plan += [(gelu_mlp, 1024, "GELU/LayerNorm MLP step, batch 1024", [None, 1, 2])]
    plan += [(cnn, 64, "CNN step, batch 64", [None, 1])]
    for make_model, batch, label, levels in plan:
        times = time_steps(make_model, batch, levels, quick)
        eager = times["eager"]
        for name, t in times.items():
            if name == "eager":
                continue
            level = int(name.split()[-1].rstrip(")"))
            goal = 1 / 1.5 if level == 2 else 1.0
            rows.append(
                {
                    "case": f"{label}, {name}",
                    "eager_ms": eager * 1e3,
                    "compiled_ms": t * 1e3,
                    "speedup": eager / t,
                    "ratio": t / eager,
                    "goal_ratio": goal,
                    "bitwise_equal": check_equal(make_model, batch) if level == 1 else None,
                }
            )
        print(f"{label}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in times.items()), flush=True)

    mem = memory_rows(quick)
    for r in mem:
        print(
            f"{r['case']}: eager {r['eager_bytes'] / 2**20:.1f} MiB, graph {r['graph_bytes'] / 2**20:.1f} MiB",
            flush=True,
        )

    profile = profile_compiled(quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "graph_vs_eager_profile.txt").write_text(profile)

    table = markdown_table(
        ["case", "eager ms", "compiled ms", "speedup", "goal", "met?", "bitwise equal"],
        [
            [
                r["case"],
                f"{r['eager_ms']:.3f}",
                f"{r['compiled_ms']:.3f}",
                f"{r['speedup']:.2f}x",
                f">= {1 / r['goal_ratio']:.1f}x",
                "yes" if r["ratio"] <= r["goal_ratio"] else "no",
                "" if r["bitwise_equal"] is None else ("yes" if r["bitwise_equal"] else "NO"),
            ]
            for r in rows
        ],
    )
    mib = 2**20
    mem_table = markdown_table(
        ["case", "eager peak", "eager no_grad peak", "planned graph peak", "graph / eager", "goal (forward)", "met?"],
        [
            [
                r["case"],
                f"{r['eager_bytes'] / mib:.2f} MiB",
                "" if r["eager_no_grad_bytes"] is None else f"{r['eager_no_grad_bytes'] / mib:.2f} MiB",
                f"{r['graph_bytes'] / mib:.2f} MiB",
                f"{r['ratio']:.2f}",
                "<= 0.60" if "forward" in r["case"] else "",
                ("yes" if r["ratio"] <= 0.6 else "no") if "forward" in r["case"] else "",
            ]
            for r in mem
        ],
    )
    markdown = (
        "# Static graph vs eager\n\n"
        "`python benchmarks/graph_vs_eager.py` (medians of interleaved rounds; same weights; "
        "`bitwise equal`: the compiled losses of three steps equal eager's exactly).\n\n"
        + table
        + "\n\n## Peak memory (tracemalloc)\n\n"
        + mem_table
        + "\n"
    )
    write_results("graph_vs_eager", rows + mem, environment() | {"quick": quick}, markdown)
    bar_plot(
        RESULTS / "graph_vs_eager.png",
        [r["case"] for r in rows] + [r["case"] + " (memory)" for r in mem],
        [r["ratio"] for r in rows] + [r["ratio"] for r in mem],
        "compiled / eager (time, memory); lower is better",
    )
    print(markdown)


if __name__ == "__main__":
    main()
