"""GPU check and benchmarks, for a machine with an NVIDIA GPU: minidl's CUDA kernels against
cuBLAS and cuDNN.

    PYTHONPATH=. python benchmarks/gpu.py            # tests + full benchmarks (a few minutes)
    PYTHONPATH=. python benchmarks/gpu.py --quick    # tests + a smoke run with few repeats
    PYTHONPATH=. python benchmarks/gpu.py --no-tests # benchmarks only

1. Runs ``python -m pytest tests/test_kernels_cuda.py -q`` and prints the result.
2. Times minidl's GEMM (``kernels/cuda/matmul.cu``) against cuBLAS (``cupy.matmul``) on square
   products of 1024, 2048 and 4096 in float32 and float64 (GFLOP/s and the ratio; the goal is
   at least 0.6x cuBLAS at 4096 in float32), and, at 2048 and 4096, every tile shape of the
   GEMM, so that the default can be chosen from measurements.
3. Times minidl's conv2d forward, and forward + both backward passes, against torch's cuDNN
   (``torch.nn.functional.conv2d`` on CUDA, if torch with CUDA is importable) for 3x3 kernels
   with padding 1 in float32. TF32 is disabled in torch (and CuPy's ``CUPY_TF32`` is reported)
   so that both sides compute in true float32; cuDNN picks its fastest algorithm
   (``cudnn.benchmark``).

Times come from CUDA events around ``inner`` back-to-back calls, alternating minidl and the
reference round by round; each figure is the median over rounds. Writes
``benchmarks/results/gpu.json`` and ``gpu.md`` (atomically). Without a usable GPU it says so and
exits with status 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("MINIDL_BENCH_RESULTS", ROOT / "benchmarks" / "results"))
MATMUL_SIZES = (1024, 2048, 4096)
CONFIG_SIZES = (2048, 4096)
# (N, C, H, W, K): 3x3 kernels, padding 1, stride 1
CONV_CASES = ((64, 1, 28, 28, 32), (64, 32, 14, 14, 64), (64, 64, 32, 32, 64), (32, 128, 28, 28, 128))
GOAL = 0.6  # minidl / cuBLAS throughput at 4096 float32


def gpu_or_none():
    """CuPy, if it is installed and sees a CUDA device; else None (and say why)."""
    try:
        import cupy
    except Exception as err:  # ImportError, or a broken CUDA install
        print(f"benchmarks/gpu.py: CuPy is not importable ({err.__class__.__name__}: {err}).")
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
        cupy.cuda.Device(0).synchronize()
    except Exception as err:
        print(f"benchmarks/gpu.py: no usable CUDA GPU ({err.__class__.__name__}: {err}).")
        return None
    return cupy


def torch_cuda_or_none():
    """torch, if it is importable and built with CUDA that sees the GPU; else None."""
    try:
        import torch
    except Exception as err:
        print(f"(torch is not importable: {err}; conv2d runs without the cuDNN reference)")
        return None
    if not torch.cuda.is_available():
        print(f"(torch {torch.__version__} has no CUDA; conv2d runs without the cuDNN reference)")
        return None
    return torch


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


class Timer:
    """Median milliseconds per call of several callables, measured with CUDA events.

    Each callable is timed over ``inner`` back-to-back calls (enough to cover ``target_ms``), in
    rounds that alternate the callables' order, so that clock and thermal drift hit all alike.
    """

    def __init__(self, cp, torch=None, rounds: int = 15, target_ms: float = 20.0, warmup: int = 3) -> None:
        self.cp, self.torch = cp, torch
        self.rounds, self.target_ms, self.warmup = rounds, target_ms, warmup

    def _sync(self) -> None:
        self.cp.cuda.Device().synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()

    def _elapsed_ms(self, fn: Callable[[], object], inner: int) -> float:
        # Both libraries run on the device's legacy default stream here, so one pair of
        # CuPy events brackets the work of either.
        start, end = self.cp.cuda.Event(), self.cp.cuda.Event()
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        self._sync()
        return self.cp.cuda.get_elapsed_time(start, end) / inner

    def median_ms(self, cases: dict[str, Callable[[], object]]) -> dict[str, float]:
        """Median ms per call of each case."""
        inner: dict[str, int] = {}
        for name, fn in cases.items():
            for _ in range(self.warmup):
                fn()
            self._sync()
            once = self._elapsed_ms(fn, 1)
            inner[name] = max(1, min(200, math.ceil(self.target_ms / max(once, 1e-3))))
        samples: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for r in range(self.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                samples[name].append(self._elapsed_ms(cases[name], inner[name]))
        return {name: sorted(v)[len(v) // 2] for name, v in samples.items()}


# ---------------------------------------------------------------------------------------------
# the three parts
# ---------------------------------------------------------------------------------------------


def run_tests() -> dict:
    """Run the CUDA kernel tests in a subprocess and return their summary."""
    cmd = [sys.executable, "-m", "pytest", "tests/test_kernels_cuda.py", "-q", "-p", "no:cacheprovider"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    print("$ " + " ".join(cmd[1:]), flush=True)
    began = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        output, code = f"{err.stdout or ''}{err.stderr or ''}\n(timed out after 1800 s)", -1
    seconds = time.perf_counter() - began
    lines = [line for line in output.strip().splitlines() if line.strip()]
    print("\n".join(lines[-40:]), flush=True)
    summary = lines[-1] if lines else "(no output)"
    return {"returncode": code, "summary": summary, "seconds": round(seconds, 1), "tail": "\n".join(lines[-60:])}


def bench_matmul(cp, kc, gemm_module, timer: Timer, sizes=MATMUL_SIZES, config_sizes=CONFIG_SIZES) -> list[dict]:
    """minidl's GEMM vs cuBLAS on square products; every tile shape at ``config_sizes``."""
    rows = []
    for dtype in ("float32", "float64"):
        for n in sizes:
            a = cp.random.standard_normal((n, n), dtype=dtype)
            b = cp.random.standard_normal((n, n), dtype=dtype)
            want = cp.matmul(a, b)
            cases = {"minidl": lambda a=a, b=b: kc.matmul(a, b), "cublas": lambda a=a, b=b: cp.matmul(a, b)}
            configs = [c for c, spec in sorted(gemm_module.CONFIGS.items()) if spec[4] == dtype]
            if n in config_sizes:
                for config in configs:
                    cases[f"minidl[{config}]"] = lambda a=a, b=b, c=config: gemm_module.matmul_with(a, b, c)
            errors = {}
            for name, fn in cases.items():
                if name != "cublas":
                    errors[name] = float(cp.abs(fn() - want).max() / cp.abs(want).max())
            ms = timer.median_ms(cases)
            flops = 2.0 * n**3
            cublas_gflops = flops / (ms["cublas"] * 1e6)
            for name in cases:
                if name == "cublas":
                    continue
                gflops = flops / (ms[name] * 1e6)
                rows.append(
                    {
                        "dtype": dtype,
                        "n": n,
                        "kernel": name,
                        "minidl_ms": round(ms[name], 4),
                        "cublas_ms": round(ms["cublas"], 4),
                        "minidl_gflops": round(gflops, 1),
                        "cublas_gflops": round(cublas_gflops, 1),
                        "ratio": round(gflops / cublas_gflops, 3),
                        "max_rel_error": errors[name],
                    }
                )
                print(
                    f"matmul {dtype} {n:5d} {name:24s} {gflops:9.1f} GFLOP/s   cuBLAS {cublas_gflops:9.1f}"
                    f"   ratio {gflops / cublas_gflops:5.2f}   rel.err {errors[name]:.1e}",
                    flush=True,
                )
            del a, b, want
            cp.get_default_memory_pool().free_all_blocks()
    return rows


def bench_conv(cp, kc, torch, timer: Timer, cases=CONV_CASES) -> list[dict]:
    """minidl's conv2d (forward; forward + both backward passes) vs cuDNN, 3x3, padding 1, float32."""
    rows = []
    stride, padding, dilation, groups = (1, 1), (1, 1), (1, 1), 1
    if torch is not None:
        import torch.nn.functional as TF

        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    for n, c, h, w, k in cases:
        x = cp.random.standard_normal((n, c, h, w), dtype="float32")
        wt = cp.random.standard_normal((k, c, 3, 3), dtype="float32") * (1.0 / math.sqrt(9 * c))
        g = cp.random.standard_normal((n, k, h, w), dtype="float32")

        def ours_fwd(x=x, wt=wt):
            return kc.conv2d_forward(x, wt, stride, padding, dilation, groups)

        def ours_fwd_bwd(x=x, wt=wt, g=g):
            kc.conv2d_forward(x, wt, stride, padding, dilation, groups)
            kc.conv2d_backward_input(g, wt, x.shape, stride, padding, dilation, groups)
            kc.conv2d_backward_weight(x, g, wt.shape, stride, padding, dilation, groups)

        cases_fwd = {"minidl": ours_fwd}
        cases_bwd = {"minidl": ours_fwd_bwd}
        err = None
        if torch is not None:
            xt, wtt, gt = (torch.from_dlpack(v) for v in (x, wt, g))
            xg, wg = xt.clone().requires_grad_(), wtt.clone().requires_grad_()

            def ref_fwd(xt=xt, wtt=wtt):
                return TF.conv2d(xt, wtt, padding=1)

            def ref_fwd_bwd(xg=xg, wg=wg, gt=gt):
                y = TF.conv2d(xg, wg, padding=1)
                return torch.autograd.grad(y, (xg, wg), gt)

            cases_fwd["cudnn"] = ref_fwd
            cases_bwd["cudnn"] = ref_fwd_bwd
            want = cp.from_dlpack(ref_fwd().detach())
            err = float(cp.abs(ours_fwd() - want).max() / cp.abs(want).max())
        for label, cases_ in (("forward", cases_fwd), ("forward+backward", cases_bwd)):
            ms = timer.median_ms(cases_)
            row = {
                "case": f"({n},{c},{h},{w}) k={k}",
                "pass": label,
                "minidl_ms": round(ms["minidl"], 4),
                "cudnn_ms": round(ms["cudnn"], 4) if "cudnn" in ms else None,
                "ratio": round(ms["minidl"] / ms["cudnn"], 3) if "cudnn" in ms else None,
                "forward_max_rel_error": err,
            }
            rows.append(row)
            ref_txt = f"cuDNN {row['cudnn_ms']:8.3f} ms   time ratio {row['ratio']:5.2f}" if row["cudnn_ms"] else ""
            print(f"conv2d {row['case']:26s} {label:17s} minidl {row['minidl_ms']:8.3f} ms   {ref_txt}", flush=True)
        del x, wt, g
        cp.get_default_memory_pool().free_all_blocks()
    return rows


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


def environment(cp, torch) -> dict:
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props.get("name", b"?")
    env = {
        "gpu": name.decode() if isinstance(name, bytes) else str(name),
        "compute_capability": cp.cuda.Device(0).compute_capability,
        "sm_count": int(cp.cuda.Device(0).attributes["MultiProcessorCount"]),
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "cupy": cp.__version__,
        "CUPY_TF32": os.environ.get("CUPY_TF32", "(unset: cuBLAS float32 without TF32)"),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if torch is not None:
        env["torch"] = torch.__version__
        env["cudnn"] = torch.backends.cudnn.version()
        env["torch_tf32"] = "disabled (cudnn.allow_tf32 = matmul.allow_tf32 = False)"
    return env


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(env: dict, tests: dict | None, mm: list[dict], conv: list[dict]) -> str:
    out = ["# minidl CUDA kernels on the GPU\n", "Written by `benchmarks/gpu.py`.\n"]
    out.append("\n## Environment\n\n" + _table(["key", "value"], [[k, v] for k, v in env.items()]))
    if tests is not None:
        status = "passed" if tests["returncode"] == 0 else f"FAILED (exit status {tests['returncode']})"
        out.append(f"\n## Tests\n\n`pytest tests/test_kernels_cuda.py`: {status} -- `{tests['summary']}`\n")
    if mm:
        out.append(
            "\n## Matmul: minidl GEMM vs cuBLAS (`cupy.matmul`), square n x n\n\n"
            "`minidl` is the default tile choice; `minidl[config]` forces one tile shape. "
            f"ratio = minidl GFLOP/s / cuBLAS GFLOP/s (higher is better; goal >= {GOAL} at 4096 float32).\n\n"
        )
        out.append(
            _table(
                ["dtype", "n", "kernel", "minidl GFLOP/s", "cuBLAS GFLOP/s", "ratio", "max rel. error"],
                [
                    [
                        r["dtype"],
                        r["n"],
                        r["kernel"],
                        r["minidl_gflops"],
                        r["cublas_gflops"],
                        r["ratio"],
                        f"{r['max_rel_error']:.1e}",
                    ]
                    for r in mm
                ],
            )
        )
        goal = [r for r in mm if r["dtype"] == "float32" and r["n"] == 4096 and r["kernel"] == "minidl"]
        if goal:
            verdict = "met" if goal[0]["ratio"] >= GOAL else "NOT met"
            out.append(f"\nGoal (>= {GOAL}x cuBLAS at 4096 float32): {verdict} ({goal[0]['ratio']}x).\n")
    if conv:
        out.append(
            "\n## conv2d: minidl (im2col + GEMM) vs cuDNN, 3x3, padding 1, float32\n\n"
            "ratio = minidl time / cuDNN time (lower is better). forward+backward computes the output, "
            "the input gradient and the weight gradient on both sides.\n\n"
        )
        out.append(
            _table(
                ["(N,C,H,W) K", "pass", "minidl ms", "cuDNN ms", "ratio"],
                [[r["case"], r["pass"], r["minidl_ms"], r["cudnn_ms"], r["ratio"]] for r in conv],
            )
        )
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats, smaller sizes (a smoke run)")
    parser.add_argument("--no-tests", action="store_true", help="skip the pytest run")
    args = parser.parse_args(argv)

    cp = gpu_or_none()
    if cp is None:
        print("benchmarks/gpu.py needs an NVIDIA GPU with CuPy (pip install 'minidl[gpu]'); nothing was run.")
        return 0
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import importlib

    from minidl.backend.kernel_loader import import_kernels

    import_kernels()
    kc = importlib.import_module("minidl.kernels.cuda")
    gemm_module = importlib.import_module("minidl.kernels.cuda.matmul")

    tests = None if args.no_tests else run_tests()
    torch = torch_cuda_or_none()
    timer = Timer(cp, torch, rounds=3 if args.quick else 15, target_ms=5.0 if args.quick else 20.0)
    sizes = (1024, 2048) if args.quick else MATMUL_SIZES
    config_sizes = (2048,) if args.quick else CONFIG_SIZES
    conv_cases = CONV_CASES[:2] if args.quick else CONV_CASES

    errors: list[str] = []
    mm: list[dict] = []
    conv: list[dict] = []
    try:
        mm = bench_matmul(cp, kc, gemm_module, timer, sizes, config_sizes)
    except Exception as err:  # report and go on: the other half may still work
        errors.append(f"matmul benchmark failed: {err.__class__.__name__}: {err}")
        print(errors[-1], flush=True)
    try:
        conv = bench_conv(cp, kc, torch, timer, conv_cases)
    except Exception as err:
        errors.append(f"conv2d benchmark failed: {err.__class__.__name__}: {err}")
        print(errors[-1], flush=True)

    env = environment(cp, torch)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "gpu", "environment": env, "tests": tests, "matmul": mm, "conv2d": conv, "errors": errors}
    _atomic_write(RESULTS / "gpu.json", json.dumps(payload, indent=2))
    text = markdown(env, tests, mm, conv)
    if errors:
        text += "\n## Errors\n\n" + "".join(f"- {e}\n" for e in errors)
    _atomic_write(RESULTS / "gpu.md", text)
    print(f"\nwrote {RESULTS / 'gpu.json'} and {RESULTS / 'gpu.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
