r"""``RMSprop``: divide the gradient by a running root-mean-square of its recent values.

Hinton's rule, as torch implements it (``alpha`` the smoothing constant)::

    g_t = -grad if maximize else grad
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}
    v_t = alpha * v_{t-1} + (1 - alpha) * g_t^2
    centered:  gbar_t = alpha * gbar_{t-1} + (1 - alpha) * g_t;   v~_t = v_t - gbar_t^2
    otherwise: v~_t = v_t
    with momentum mu > 0:  b_t = mu * b_{t-1} + g_t / (sqrt(v~_t) + eps);   theta_t = theta_{t-1} - gamma * b_t
    otherwise:             theta_t = theta_{t-1} - gamma * g_t / (sqrt(v~_t) + eps)

The centered variant divides by an estimate of the gradient's standard deviation instead of
its root mean square. Note ``eps`` is added *after* the square root (TensorFlow adds it
inside). There is no bias correction: ``v`` starts at zero, so the first steps are large.

``rmsprop_update`` is the rule on raw arrays, in torch's order of operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..backend.device import array_module
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_number, lerp_

__all__ = ["RMSprop", "rmsprop_update"]


def rmsprop_update(
    param: Any,
    grad: Any,
    square_avg: Any,
    grad_avg: Any | None,
    momentum_buffer: Any | None,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSprop step for one parameter, on raw arrays, in place.

    ``grad_avg`` is needed when ``centered``, ``momentum_buffer`` when ``momentum > 0``;
    ``grad`` is only read. The arithmetic follows torch's single-tensor ``rmsprop``.
    """
    xp = array_module(param)
    if maximize:
        grad = xp.negative(grad)
    if weight_decay != 0:
        decayed = xp.multiply(param, weight_decay)
        grad = xp.add(grad, decayed, out=decayed)

    # torch: square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    square_avg *= alpha
    scratch = xp.multiply(grad, 1 - alpha)
    scratch *= grad
    square_avg += scratch

    if centered:
        lerp_(xp, grad_avg, grad, 1 - alpha, out=scratch)
        # torch: square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        avg = xp.negative(grad_avg, out=scratch)
        avg *= grad_avg
        xp.add(square_avg, avg, out=avg)
        xp.sqrt(avg, out=avg)
    else:
        avg = xp.sqrt(square_avg, out=scratch)
    avg += eps

    if momentum > 0:
        # torch: buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
        momentum_buffer *= momentum
        ratio = xp.divide(grad, avg, out=avg)
        momentum_buffer += ratio
        update = xp.multiply(momentum_buffer, -lr, out=ratio)
    else:
        # torch: param.addcdiv_(grad, avg, value=-lr), i.e. param + (-lr * grad) / avg
        update = xp.multiply(grad, -lr)
        update /= avg
    param += update


class RMSprop(Optimizer):
    """RMSprop, torch's ``torch.optim.RMSprop``.

    Args:
        params: tensors, ``(name, tensor)`` pairs, or dicts defining parameter groups.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by the estimated variance of the gradient (default False).
        maximize: ascend the objective instead of descending it.

    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (with momentum),
    ``grad_avg`` (centered).
    """

    _param_shaped_state = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        name = type(self).__name__
        check_number(name, "learning rate", group["lr"], lambda v: v >= 0, "lr must be >= 0")
        check_number(name, "epsilon value", group["eps"], lambda v: v >= 0, "eps must be >= 0")
        check_number(name, "momentum value", group["momentum"], lambda v: v >= 0, "momentum must be >= 0")
        check_number(name, "weight_decay value", group["weight_decay"], lambda v: v >= 0, "weight_decay must be >= 0")
        check_number(name, "alpha value", group["alpha"], lambda v: v >= 0, "alpha must be >= 0")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` (optional) re-evaluates the model and
        returns the loss, which is returned."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            momentum, centered = group["momentum"], group["centered"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0.0
                    state["square_avg"] = Tensor._wrap(array_module(p._data).zeros_like(p._data))
                # created on first need, also when a group turns momentum or centering on mid-run
                if momentum > 0 and "momentum_buffer" not in state:
                    state["momentum_buffer"] = Tensor._wrap(array_module(p._data).zeros_like(p._data))
                if centered and "grad_avg" not in state:
                    state["grad_avg"] = Tensor._wrap(array_module(p._data).zeros_like(p._data))
                state["step"] += 1
                rmsprop_update(
                    p._data,
                    g._data,
                    state["square_avg"]._data,
                    state["grad_avg"]._data if centered else None,
                    state["momentum_buffer"]._data if momentum > 0 else None,
                    lr=group["lr"],
                    alpha=group["alpha"],
                    eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    momentum=momentum,
                    centered=centered,
                    maximize=group["maximize"],
                )
                p._version_counter()[0] += 1
        return loss
