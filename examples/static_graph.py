"""Define, then run: a digit classifier trained in TensorFlow 1's static-graph style.

    python examples/static_graph.py            # the 8 x 8 digits, a few seconds
    python examples/static_graph.py --small    # fewer steps

Nothing is computed while the model is *defined*: ``placeholder``s stand for the data (with
``None`` for the batch size), the module's parameters become graph variables that share their
storage with the module, ``cross_entropy`` builds a node, ``optimizer.minimize`` builds the
symbolic gradients and a train op. Then a ``Session`` runs the train op batch after batch,
feeding NumPy arrays. Along the way the script prints what the graph looks like (the IR
listing), the program the Session generated for one training step, and the memory plan; it
writes the graph as Graphviz DOT to ``static_graph.dot``.

After training, the *same module* answers eagerly: the Session updated its parameters.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import minidl
import minidl.nn.functional as F
from minidl import graph as G
from minidl import nn, optim


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): flattened 8 x 8 images in [0, 1], labels 0..9."""
    try:
        from minidl.data.datasets import Digits

        x_train, y_train = Digits(train=True).as_tensors()
        x_test, y_test = Digits(train=False).as_tensors()
        return (x_train.numpy().reshape(-1, 64), y_train.numpy(), x_test.numpy().reshape(-1, 64), y_test.numpy())
    except (ImportError, OSError, RuntimeError):
        rng = np.random.default_rng(0)  # synthetic stand-in of the same shape: noisy prototypes
        prototypes = rng.random((10, 64))
        labels = rng.integers(0, 10, 1800)
        images = np.clip(prototypes[labels] + rng.normal(0, 0.25, (1800, 64)), 0, 1).astype(np.float32)
        return images[:1440], labels[:1440], images[1440:], labels[1440:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="fewer training steps")
    parser.add_argument("--out", default=tempfile.gettempdir(), help="where to write static_graph.dot")
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = load_digits()

    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    # ---- define ----------------------------------------------------------------------------
    graph = G.Graph()
    with graph.as_default():
        x = G.placeholder((None, 64), name="images")
        y = G.placeholder((None,), minidl.int64, name="labels")
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean()
        optimizer = optim.Adam(model.parameters(), lr=1e-2)
        train_op = optimizer.minimize(loss)
    graph.finalize()  # from here on, building a node by accident raises

    print(f"The graph has {len(graph)} nodes; the forward part reads:\n")
    print("\n".join(graph.listing().splitlines()[:12]))
    print("  ...\n")

    # ---- run -------------------------------------------------------------------------------
    steps = 60 if args.small else 300
    batch = 64
    rng = np.random.default_rng(0)
    with G.Session(graph) as session:
        for step in range(steps):
            idx = rng.integers(0, len(x_train), batch)
            value, _ = session.run([loss, train_op], feed_dict={x: x_train[idx], y: y_train[idx]})
            if step % (steps // 5) == 0:
                print(f"step {step:4d}  loss {float(value):.4f}")
        test_acc = session.run(accuracy, feed_dict={x: x_test, y: y_test})
        print(f"\ntest accuracy (Session): {float(test_acc):.4f}")

        program = session.program_for([loss, train_op], {x: x_train[:batch], y: y_train[:batch]})
        print("\nThe generated program of one training step begins:\n")
        print("\n".join(program.source.splitlines()[:14]))
        print("    ...\n")
        session.run(logits, feed_dict={x: x_test})  # inference on the test set...
        session.memory_report()  # ...and the memory plan of that program, with the sizes it saw

    # ---- the same module, eagerly -----------------------------------------------------------
    with minidl.no_grad():
        eager_acc = (model(minidl.tensor(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"test accuracy (eager, same module): {eager_acc:.4f}")

    dot_path = os.path.join(args.out, "static_graph.dot")
    with open(dot_path, "w") as f:
        f.write(graph.to_dot())
    print(f"graph written to {dot_path} (render it with: dot -Tsvg {dot_path} -o graph.svg)")


if __name__ == "__main__":
    main()
