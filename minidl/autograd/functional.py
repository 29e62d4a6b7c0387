"""``minidl.autograd.grad``: gradients of outputs with respect to chosen inputs, returned
rather than accumulated into ``.grad`` (torch's ``torch.autograd.grad``).

Only the part of the graph that leads to ``inputs`` is walked. With ``create_graph=True`` the
returned gradients are themselves differentiable, which is how higher-order derivatives
(a Hessian-vector product, a gradient penalty) are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..tensor import Tensor
from .engine import _root_grads, run_backward


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Any] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """The sum over ``outputs`` of (grad_output . d output / d input), for each input."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if grad_outputs is not None and len(grad_outputs) != len(outs):
        raise ValueError(f"grad: got {len(grad_outputs)} grad_outputs for {len(outs)} outputs")
    for i, x in enumerate(ins):
        if not isinstance(x, Tensor):
            raise TypeError(f"grad: input {i} is a {type(x).__name__}, not a Tensor")
        if not x._rg:
            raise RuntimeError(f"grad: input {i} does not require grad; set requires_grad=True on it first")
    if retain_graph is None:
        retain_graph = create_graph
    roots = _root_grads(outs, grad_outputs)
    captured = run_backward(outs, roots, retain_graph, create_graph, ins)
    result: list[Tensor | None] = []
    for i, x in enumerate(ins):
        hit = captured.get(id(x))
        if hit is not None:
            result.append(hit[1])
        elif materialize_grads:
            from ..ops.creation import zeros_like

            result.append(zeros_like(x))
        elif allow_unused:
            result.append(None)
        else:
            raise RuntimeError(
                f"grad: input {i} appears not to have been used in computing the outputs; pass "
                "allow_unused=True to get None for it"
            )
    return tuple(result)
