"""Higher-order gradients: a Hessian-vector product and a gradient penalty.

    python examples/higher_order.py

Because every backward rule in minidl is written with minidl's own differentiable ops,
``create_graph=True`` records the backward pass itself, and its result can be differentiated
again. This script computes

* a Hessian-vector product ``H v`` of a small network's loss, without forming ``H``, checked
  against central differences of the gradient;
* a WGAN-GP style gradient penalty, ``(||d f / d x|| - 1)^2``, and its gradient with respect
  to the weights, which needs the derivative of a derivative.
"""

from __future__ import annotations

import numpy as np

import minidl
import minidl.nn.functional as F


def loss_fn(w: minidl.Tensor, x: minidl.Tensor, y: minidl.Tensor) -> minidl.Tensor:
    return F.cross_entropy(F.gelu(x @ w), y)


def main() -> None:
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((8, 5)))
    y = minidl.tensor(rng.integers(0, 3, 8))
    w = minidl.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    v = minidl.tensor(rng.standard_normal((5, 3)))

    (g,) = minidl.autograd.grad(loss_fn(w, x, y), w, create_graph=True)
    (hv,) = minidl.autograd.grad((g * v).sum(), w)

    eps = 1e-6
    with minidl.no_grad():
        plus, minus = (w + eps * v).requires_grad_(), (w - eps * v).requires_grad_()
    (gp,) = minidl.autograd.grad(loss_fn(plus, x, y), plus)
    (gm,) = minidl.autograd.grad(loss_fn(minus, x, y), minus)
    numerical = (gp - gm) / (2 * eps)
    print("Hessian-vector product, max |Hv - finite differences| =", float((hv - numerical).abs().max()))

    # Gradient penalty: the critic's input gradient should have norm 1.
    critic_w = minidl.tensor(rng.standard_normal((5, 1)), requires_grad=True)
    points = minidl.tensor(rng.standard_normal((16, 5)), requires_grad=True)
    scores = F.softplus(points @ critic_w).sum()
    (input_grad,) = minidl.autograd.grad(scores, points, create_graph=True)
    penalty = ((input_grad.norm(dim=1) - 1) ** 2).mean()
    penalty.backward()
    print("gradient penalty:", penalty.item(), " d penalty / d critic weights:", critic_w.grad.reshape(-1))


if __name__ == "__main__":
    main()
