"""Where minidl stands against a production runtime: CNN inference, four ways, one run.

    python benchmarks/onnx_inference.py            # full run (about a minute)
    python benchmarks/onnx_inference.py --quick    # a smoke run with few repeats

A CNN (conv 32, pool, conv 64, pool, linear: `common.small_cnn`; eval mode) at batch
1 and 64, from the same weights:

* minidl eager (``model(x)`` under ``no_grad``);
* minidl compiled (``minidl.compile(model)``, level 1, under ``no_grad``);
* the model exported with ``minidl.onnx.export`` and run by onnxruntime (CPU, threads pinned);
* torch (eager, ``inference_mode``), with the same weights.

Outputs are checked to agree before timing. Ratios are each runtime's time over
onnxruntime's (lower is better). Writes ``benchmarks/results/onnx_inference.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from common import (
    RESULTS,
    THREADS,
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
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import minidl  # noqa: E402
import minidl.onnx  # noqa: E402

torch.set_num_threads(THREADS)


def build(tmp: str) -> tuple:
    minidl.manual_seed(0)
    model = small_cnn(minidl).eval()
    tmodel = small_cnn(torch).eval()
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    path = os.path.join(tmp, "cnn.onnx")
    minidl.onnx.export(
        model,
        (minidl.zeros(1, 1, 28, 28),),
        path,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    # onnxruntime's threads spin-wait after each run by default, taking a core from whatever
    # is timed next; the other runtimes' threads sleep, so onnxruntime's must too.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return model, minidl.compile(model), tmodel, session


def cases(model, compiled, tmodel, session, batch: int) -> dict:
    x = np.random.default_rng(batch).standard_normal((batch, 1, 28, 28)).astype(np.float32)
    mx, tx = minidl.tensor(x), torch.from_numpy(x)

    def eager():
        with minidl.no_grad():
            return model(mx)

    def graph():
        with minidl.no_grad():
            return compiled(mx)

    def onnxruntime():
        return session.run(None, {"x": x})[0]

    def torch_eager():
        with torch.inference_mode():
            return tmodel(tx)

    reference = onnxruntime()
    for name, fn in (("eager", eager), ("compiled", graph), ("torch", torch_eager)):
        out = fn()
        out = out.numpy() if hasattr(out, "numpy") else out
        np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-4, err_msg=name)
    return {"minidl eager": eager, "minidl compiled": graph, "onnxruntime": onnxruntime, "torch": torch_eager}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats, for a smoke test")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model, compiled, tmodel, session = build(tmp)
        for batch in (1, 64):
            fns = cases(model, compiled, tmodel, session, batch)
            inner = (5 if args.quick else 50) if batch == 1 else (1 if args.quick else 5)
            times = interleaved(fns, 3 if args.quick else 15, inner, warmup=3)
            base = times["onnxruntime"]
            for name, t in times.items():
                rows.append({"batch": batch, "runtime": name, "ms": t * 1e3, "ratio_to_onnxruntime": t / base})
            print(f"batch {batch}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in times.items()), flush=True)
    table = markdown_table(
        ["batch", "runtime", "ms", "time / onnxruntime"],
        [[r["batch"], r["runtime"], f"{r['ms']:.3f}", f"{r['ratio_to_onnxruntime']:.2f}"] for r in rows],
    )
    markdown = (
        "# CNN inference: minidl vs onnxruntime vs torch\n\n"
        "`python benchmarks/onnx_inference.py` (the CNN exported by `minidl.onnx.export`; medians of "
        "interleaved rounds; outputs checked to agree first; lower is better).\n\n" + table + "\n"
    )
    write_results("onnx_inference", rows, environment() | {"quick": args.quick}, markdown)
    labels = [f"{r['runtime']}, batch {r['batch']}" for r in rows if r["runtime"] != "onnxruntime"]
    ratios = [r["ratio_to_onnxruntime"] for r in rows if r["runtime"] != "onnxruntime"]
    bar_plot(RESULTS / "onnx_inference.png", labels, ratios, "time / onnxruntime time (lower is better)")
    print(markdown)


if __name__ == "__main__":
    main()
