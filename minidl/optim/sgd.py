r"""``SGD``: stochastic gradient descent, with optional momentum, Nesterov and weight decay.

The rule (torch's, with :math:`\gamma` the learning rate, :math:`\lambda` the weight decay,
:math:`\mu` the momentum and :math:`\tau` the dampening)::

    g_t = -grad if maximize else grad
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}            (L2 penalty, through the gradient)
    if mu != 0:
        b_t = g_t                               on the first step
        b_t = mu * b_{t-1} + (1 - tau) * g_t    afterwards
        g_t = g_t + mu * b_t   if nesterov   else   b_t
    theta_t = theta_{t-1} - gamma * g_t

Note torch's form of momentum: the learning rate multiplies the buffer when it is applied,
not when it is accumulated (Sutskever et al. write ``b = mu b + lr g``; the two agree while
the learning rate is constant). The buffer starts as the first gradient itself, so dampening
only applies from the second step on.

``sgd_update`` is the rule on raw arrays; ``SGD`` keeps the groups and the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..backend.device import array_module
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_number

__all__ = ["SGD", "sgd_update"]


def sgd_update(
    param: Any,
    grad: Any,
    momentum_buffer: Any | None,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> Any | None:
    """One SGD step for one parameter, on raw arrays, in place (torch's single-tensor ``sgd``).

    ``param`` is updated in place; ``grad`` is only read. ``momentum_buffer`` is ``None``
    before the first step; the buffer to keep (new on the first step) is returned, or ``None``
    without momentum. The operations follow torch's order, so the results agree with torch's
    to rounding (torch fuses each multiply-add into one FMA; NumPy rounds twice).
    """
    xp = array_module(param)
    owned = False  # may `grad` be overwritten? (only once it is a temporary of our own)
    if maximize:
        grad = xp.negative(grad)
        owned = True
    if weight_decay != 0:
        # torch: grad.add(param, alpha=weight_decay)
        decayed = xp.multiply(param, weight_decay)
        grad = xp.add(grad, decayed, out=decayed)
        owned = True
    if momentum != 0:
        if momentum_buffer is None:
            momentum_buffer = grad.copy()
        else:
            # torch: buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            momentum_buffer *= momentum
            if dampening == 0:
                momentum_buffer += grad
            else:
                momentum_buffer += xp.multiply(grad, 1 - dampening)
        if nesterov:
            # torch: grad.add(buf, alpha=momentum)
            lookahead = xp.multiply(momentum_buffer, momentum)
            grad = xp.add(grad, lookahead, out=lookahead)
            owned = True
        else:
            grad = momentum_buffer
            owned = False
    # torch: param.add_(grad, alpha=-lr)
    step = xp.multiply(grad, -lr, out=grad if owned else None)
    param += step
    return momentum_buffer


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), torch's ``torch.optim.SGD``.

    Args:
        params: tensors, ``(name, tensor)`` pairs, or dicts defining parameter groups.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: ascend the objective instead of descending it.

    State per parameter (with momentum): ``momentum_buffer``.
    """

    _param_shaped_state = ("momentum_buffer",)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        name = type(self).__name__
        check_number(name, "learning rate", group["lr"], lambda v: v >= 0, "lr must be >= 0")
        check_number(name, "momentum value", group["momentum"], lambda v: v >= 0, "momentum must be >= 0")
        check_number(name, "dampening value", group["dampening"], lambda v: True, "")
        check_number(name, "weight_decay value", group["weight_decay"], lambda v: v >= 0, "weight_decay must be >= 0")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{name}: Nesterov momentum requires a momentum and zero dampening (got momentum="
                f"{group['momentum']}, dampening={group['dampening']}); set momentum > 0 and dampening=0"
            )

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` (optional) re-evaluates the model and
        returns the loss, which is returned."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                # without momentum there is no state at all (torch does not even create an entry)
                state = self.state[p] if momentum != 0 else None
                buf = state.get("momentum_buffer") if state is not None else None
                new_buf = sgd_update(
                    p._data,
                    g._data,
                    None if buf is None else buf._data,
                    lr=lr,
                    momentum=momentum,
                    dampening=dampening,
                    weight_decay=weight_decay,
                    nesterov=nesterov,
                    maximize=maximize,
                )
                if state is not None and buf is None:
                    state["momentum_buffer"] = Tensor._wrap(new_buf)
                p._version_counter()[0] += 1
        return loss
