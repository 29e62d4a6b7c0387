"""Choose the kernel behind an op, check that every choice computes the same thing, and time them.

    python examples/choose_kernels.py            # a 1024-cubed product and a 64x64x32x32 convolution
    python examples/choose_kernels.py --small    # smaller shapes, seconds

Every op that needs heavy compute (matmul, convolution, pooling) asks the kernel registry of
its tensor's device for an implementation. On the CPU there are several: NumPy reference
kernels, written for clarity; minidl's Numba kernels (a packed, register-tiled GEMM, and a
convolution that takes Winograd's F(2x2, 3x3) where it pays and an implicit GEMM elsewhere --
``'implicit'`` forces the latter); and BLAS through NumPy. ``kernel_choice`` switches one for a
block of code, ``use_kernel`` for good. The first call of a Numba kernel compiles it (tens of
seconds with an empty cache); later calls, and later processes, load it from the disk cache.
On a machine with a CUDA GPU and CuPy, the same code runs there after ``.to("cuda")``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import minidl
import minidl.nn.functional as F
from minidl.backend import kernel_choice, tables


def best_of(fn, repeats: int = 5) -> float:
    """The fastest of a few runs, in milliseconds (the first run compiles or warms caches)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def compare(title: str, kernel_names: tuple[str, ...], choices: list[str], fn, flops: float) -> None:
    """Run ``fn`` under each implementation, check the results agree, print the timings."""
    print(f"\n{title}")
    results = {}
    for impl in choices:
        with kernel_choice_all(kernel_names, impl):
            results[impl] = fn().numpy()
            ms = best_of(fn, repeats=2 if impl == "reference" else 5)
        print(f"  {impl:10s} {ms:9.2f} ms   {flops / ms / 1e6:7.1f} GFLOP/s")
    first = results[choices[0]]
    for impl, value in results.items():
        error = np.abs(value - first).max() / np.abs(first).max()
        assert error < 1e-4, f"{impl} disagrees with {choices[0]}: relative error {error:.1e}"
    print(f"  all {len(choices)} implementations agree (largest relative difference below 1e-4)")


class kernel_choice_all:
    """``kernel_choice`` for several kernels at once (a convolution has three)."""

    def __init__(self, names: tuple[str, ...], impl: str):
        self.contexts = [kernel_choice(name, impl) for name in names if impl in tables["cpu"].impls[name]]

    def __enter__(self):
        for context in self.contexts:
            context.__enter__()

    def __exit__(self, *exc):
        for context in reversed(self.contexts):
            context.__exit__(*exc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="small shapes: a quick run")
    args = parser.parse_args()
    minidl.manual_seed(0)
    print("matmul implementations on the CPU:", sorted(tables["cpu"].impls["matmul"]))
    print("selected by default:", tables["cpu"].selected["matmul"])

    n = 256 if args.small else 1024
    a, b = minidl.randn(n, n), minidl.randn(n, n)
    compare(f"matmul {n} x {n} @ {n} x {n}, float32", ("matmul",), ["auto", "numba", "blas"], lambda: a @ b, 2 * n**3)

    batch, channels, size = (8, 32, 16) if args.small else (64, 64, 32)
    x = minidl.randn(batch, channels, size, size, requires_grad=True)
    w = minidl.randn(channels, channels, 3, 3, requires_grad=True)

    def conv_step():
        x.grad = w.grad = None
        y = F.conv2d(x, w, padding=1)
        y.sum().backward()
        return w.grad

    conv_names = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")
    flops = 3 * 2 * batch * channels * channels * 9 * size * size
    choices = ["numba", "implicit", "reference"]
    compare(
        f"conv2d 3x3 forward+backward, {batch}x{channels}x{size}x{size}, weight gradient",
        conv_names,
        choices,
        conv_step,
        flops,
    )

    if minidl.cuda.is_available():
        xg, wg = x.detach().to("cuda"), w.detach().to("cuda")
        yg = F.conv2d(xg, wg, padding=1)
        difference = np.abs(yg.cpu().numpy() - F.conv2d(x.detach(), w.detach(), padding=1).numpy()).max()
        print(f"\nthe same convolution on {yg.device}: largest difference from the CPU {difference:.1e}")
    else:
        print("\nno CUDA GPU here: the same code would run there after x.to('cuda')")


if __name__ == "__main__":
    main()
