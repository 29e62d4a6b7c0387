r"""``Adagrad``: per-coordinate learning rates from the sum of all past squared gradients.

Duchi, Hazan & Singer's rule, as torch implements it (``eta`` the learning-rate decay,
``tau`` the initial accumulator value)::

    g_t = -grad if maximize else grad
    gamma~ = gamma / (1 + (t - 1) * eta)
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}
    s_t = s_{t-1} + g_t^2                        (s_0 = tau)
    theta_t = theta_{t-1} - gamma~ * g_t / (sqrt(s_t) + eps)

Coordinates that have seen large gradients take small steps, rarely-updated ones large steps.
Because ``s`` only grows, the effective learning rate only falls (RMSprop and Adam replace the
sum by a decaying average to avoid that).

``adagrad_update`` is the rule on raw arrays, in torch's order of operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..backend.device import array_module
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_number

__all__ = ["Adagrad", "adagrad_update"]


def adagrad_update(
    param: Any,
    grad: Any,
    state_sum: Any,
    step: float,
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """One Adagrad step for one parameter, on raw arrays, in place (``step`` is 1 on the
    first step). ``grad`` is only read. The arithmetic follows torch's single-tensor ``adagrad``."""
    xp = array_module(param)
    if maximize:
        grad = xp.negative(grad)
    if weight_decay != 0:
        decayed = xp.multiply(param, weight_decay)
        grad = xp.add(grad, decayed, out=decayed)
    clr = lr / (1 + (step - 1) * lr_decay)
    # torch: state_sum.addcmul_(grad, grad, value=1); std = state_sum.sqrt().add_(eps)
    scratch = xp.multiply(grad, grad)
    state_sum += scratch
    std = xp.sqrt(state_sum, out=scratch)
    std += eps
    # torch: param.addcdiv_(grad, std, value=-clr), i.e. param + (-clr * grad) / std
    update = xp.multiply(grad, -clr)
    update /= std
    param += update


class Adagrad(Optimizer):
    """Adagrad, torch's ``torch.optim.Adagrad``.

    Args:
        params: tensors, ``(name, tensor)`` pairs, or dicts defining parameter groups.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay per step (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: starting value of the sum of squared gradients (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        maximize: ascend the objective instead of descending it.

    State per parameter: ``step`` and ``sum``, created for every parameter at construction
    (as torch does, so a state dict lists all of them from the start).
    """

    _param_shaped_state = ("sum",)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p: Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        state = self.state[p]
        state["step"] = 0.0
        state["sum"] = Tensor._wrap(array_module(p._data).full_like(p._data, group["initial_accumulator_value"]))
        return state

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        name = type(self).__name__
        check_number(name, "learning rate", group["lr"], lambda v: v >= 0, "lr must be >= 0")
        check_number(name, "lr_decay value", group["lr_decay"], lambda v: v >= 0, "lr_decay must be >= 0")
        check_number(name, "weight_decay value", group["weight_decay"], lambda v: v >= 0, "weight_decay must be >= 0")
        check_number(
            name,
            "initial_accumulator_value value",
            group["initial_accumulator_value"],
            lambda v: v >= 0,
            "initial_accumulator_value must be >= 0",
        )
        check_number(name, "epsilon value", group["eps"], lambda v: v >= 0, "eps must be >= 0")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` (optional) re-evaluates the model and
        returns the loss, which is returned."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                state = self.state[p]
                if not state:  # a parameter added with add_param_group after construction
                    state = self._init_state(p, group)
                state["step"] = step = state["step"] + 1
                adagrad_update(
                    p._data,
                    g._data,
                    state["sum"]._data,
                    step,
                    lr=group["lr"],
                    lr_decay=group["lr_decay"],
                    weight_decay=group["weight_decay"],
                    eps=group["eps"],
                    maximize=group["maximize"],
                )
                p._version_counter()[0] += 1
        return loss
