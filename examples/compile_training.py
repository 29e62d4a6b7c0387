"""``minidl.compile``: the same eager training step, traced once and run as a static graph.

    python examples/compile_training.py            # MNIST-shaped CNN on synthetic data, ~20 s
    python examples/compile_training.py --small    # a few seconds

The training step is ordinary eager code: zero the gradients, run the model, compute the
loss, ``backward()``, ``optimizer.step()``. ``minidl.compile`` traces it on the first call
into the graph IR -- forward, the generated backward and the optimizer's update, one
program -- and later calls run that program. The script trains two copies of the model from
the same weights, one eagerly and one compiled, checks that every loss and every final weight
is *bitwise* identical, and times both. A batch of a new size triggers a retrace, and minidl
says why.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import minidl
import minidl.nn.functional as F
from minidl import nn, optim


class CNN(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(2 * channels * 7 * 7, 10)

    def forward(self, x: minidl.Tensor) -> minidl.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(self.drop(x.flatten(1)))


def train(compiled: bool, batches: list, channels: int) -> tuple[list[float], list[np.ndarray], float, object]:
    minidl.manual_seed(0)
    model = CNN(channels)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def step(x: minidl.Tensor, y: minidl.Tensor) -> minidl.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    run = minidl.compile(step) if compiled else step
    minidl.manual_seed(1)  # the same dropout masks in both runs
    run(*batches[0])  # the compiled version traces here
    start = time.perf_counter()
    losses = [run(x, y).item() for x, y in batches[1:]]
    seconds = time.perf_counter() - start
    return losses, [p.detach().numpy().copy() for p in model.parameters()], seconds, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a few small steps")
    args = parser.parse_args()
    steps, batch, channels = (6, 16, 8) if args.small else (40, 64, 32)
    rng = np.random.default_rng(0)
    batches = [
        (
            minidl.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)),
            minidl.tensor(rng.integers(0, 10, batch)),
        )
        for _ in range(steps)
    ]

    eager_losses, eager_weights, eager_s, _ = train(False, batches, channels)
    graph_losses, graph_weights, graph_s, step = train(True, batches, channels)
    same = eager_losses == graph_losses and all(np.array_equal(a, b) for a, b in zip(eager_weights, graph_weights))
    print(
        f"{len(batches) - 1} steps: eager {eager_s * 1e3 / (steps - 1):.2f} ms/step, "
        f"compiled {graph_s * 1e3 / (steps - 1):.2f} ms/step"
    )
    print(f"losses and weights bitwise identical: {same}")
    print(
        f"the compiled step's graph has {len(step.graph)} nodes; its program {len(step.program.source.splitlines())} lines"
    )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step(batches[0][0][:8], batches[0][1][:8])  # a new batch size: traced again
    for w in caught:
        print(f"warning: {w.message}")
    if not same:
        raise SystemExit("compiled and eager training differ")


if __name__ == "__main__":
    main()
