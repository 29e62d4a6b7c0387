"""A first tour of minidl: tensors, autograd, and a small classifier trained by hand.

    python examples/quickstart.py            # about five seconds
    python examples/quickstart.py --steps 50 # shorter

1. Tensors behave like PyTorch's: dtypes, broadcasting, indexing, torch's type promotion.
2. ``backward()`` fills ``.grad``; ``autograd.grad`` returns gradients, of any order.
3. A two-layer network learns a two-spirals dataset, written with nothing but tensors,
   ``nn.functional`` and a hand-written SGD step -- every line of it is the same in torch.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

import minidl
import minidl.nn.functional as F


def spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane: a dataset no straight line separates."""
    t = rng.uniform(0.25, 1.0, n) * 3 * math.pi
    label = rng.integers(0, 2, n)
    sign = np.where(label == 0, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (3 * math.pi)
    return (x + rng.normal(0, 0.02, x.shape)).astype(np.float32), label


def tour() -> None:
    print("== tensors")
    x = minidl.tensor([[1.0, 2.0], [3.0, 4.0]])
    print(x * 10 + minidl.arange(2))  # broadcasting; int64 arange promotes to float32
    print(minidl.tensor([1, 2, 3]) / 2)  # integer division gives float32, as in torch

    print("\n== autograd")
    w = minidl.tensor([0.5, -1.0], requires_grad=True)
    y = (x @ w).tanh().sum()
    y.backward()
    print("y =", y.item(), " dy/dw =", w.grad)

    print("\n== higher order: d/dx, d2/dx2, d3/dx3 of x^3 at x = 2 (12, 12, 6)")
    a = minidl.tensor(2.0, requires_grad=True)
    (d1,) = minidl.autograd.grad(a**3, a, create_graph=True)
    (d2,) = minidl.autograd.grad(d1, a, create_graph=True)
    (d3,) = minidl.autograd.grad(d2, a)
    print(d1.item(), d2.item(), d3.item())

    print("\n== gradients checked against finite differences (float64)")
    p = minidl.randn(3, 4, dtype=minidl.float64, requires_grad=True)
    print("gradcheck:", minidl.autograd.gradcheck(lambda t: F.softmax(t, 1).log().sum(), p))


def train(steps: int, seed: int = 0) -> float:
    """Train a 2-64-64-2 MLP with SGD and momentum; return the final accuracy."""
    rng = np.random.default_rng(seed)
    minidl.manual_seed(seed)
    x_np, y_np = spirals(1024, rng)
    x, y = minidl.tensor(x_np), minidl.tensor(y_np)

    def init(fan_in: int, fan_out: int) -> list[minidl.Tensor]:
        bound = 1 / math.sqrt(fan_in)  # torch's default for nn.Linear
        w = (minidl.rand(fan_out, fan_in) * 2 - 1) * bound
        b = (minidl.rand(fan_out) * 2 - 1) * bound
        return [w.requires_grad_(), b.requires_grad_()]

    params = init(2, 64) + init(64, 64) + init(64, 2)
    velocity = [minidl.zeros_like(p) for p in params]
    lr, momentum = 0.1, 0.9
    print(f"\n== training a 2-64-64-2 MLP on {len(x_np)} points of two spirals")
    for step in range(1, steps + 1):
        h = F.relu(F.linear(x, params[0], params[1]))
        h = F.relu(F.linear(h, params[2], params[3]))
        logits = F.linear(h, params[4], params[5])
        loss = F.cross_entropy(logits, y)
        for p in params:
            p.grad = None
        loss.backward()
        with minidl.no_grad():  # the update is not part of the model: do not record it
            for p, v in zip(params, velocity):
                v.mul_(momentum).add_(p.grad)
                p.sub_(v * lr)
        if step % max(1, steps // 5) == 0 or step == steps:
            accuracy = (logits.argmax(1) == y).float().mean().item()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    tour()
    train(args.steps)


if __name__ == "__main__":
    main()
