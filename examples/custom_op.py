"""Add a primitive to minidl: forward, backward rule, shape inference -- and prove it right.

    python examples/custom_op.py

The op is ``softsign(x) = x / (1 + |x|)``. Its derivative is ``1 / (1 + |x|)^2``. The rule is
written with minidl ops, so it works for second derivatives too, with no extra code; both
orders are checked against finite differences with ``gradcheck`` / ``gradgradcheck``.
(minidl could compose softsign from ``abs``, ``+`` and ``/``; a primitive is one node and
one pass over memory instead of three.)
"""

from __future__ import annotations

import numpy as np

import minidl
from minidl.ops import Op, Spec, apply


class Softsign(Op):
    name = "Softsign"  # its grad_fn is called SoftsignBackward

    @staticmethod
    def forward(x):
        # Raw arrays in, raw array out: NumPy here (CuPy on a GPU, through the same calls).
        return x / (1 + np.abs(x))

    @staticmethod
    def vjp(ctx, g):
        # minidl ops only: g * 1 / (1 + |x|)^2. One gradient per input.
        x = ctx.input(0)
        d = 1 + x.abs()
        return (g / (d * d),)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        # The output has the input's shape and dtype; the static graph relies on this.
        return x


def softsign(x: minidl.Tensor) -> minidl.Tensor:
    return apply(Softsign, x)


def main() -> None:
    x = minidl.tensor([-2.0, -0.5, 0.0, 1.5], requires_grad=True)
    y = softsign(x)
    print("softsign:", y)
    y.sum().backward()
    print("gradient:", x.grad, " expected:", 1 / (1 + x.detach().abs()) ** 2)

    x64 = minidl.randn(5, dtype=minidl.float64, requires_grad=True)
    print("gradcheck:", minidl.autograd.gradcheck(softsign, x64))
    print("gradgradcheck:", minidl.autograd.gradgradcheck(softsign, x64))


if __name__ == "__main__":
    main()
