r"""``Adam`` and ``AdamW``: adaptive moment estimation, with coupled or decoupled weight decay.

Adam keeps two running averages per parameter, of the gradient (the first moment ``m``) and
of its square (the second moment ``v``), and divides one by the square root of the other, so
every coordinate moves by about ``lr`` whatever the scale of its gradient::

    g_t = -grad if maximize else grad
    Adam,  lambda != 0:  g_t = g_t + lambda * theta_{t-1}          (L2 penalty in the gradient)
    AdamW, lambda != 0:  theta_{t-1} = theta_{t-1} * (1 - gamma * lambda)   (decoupled decay)
    m_t = beta1 * m_{t-1} + (1 - beta1) * g_t
    v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2
    m^_t = m_t / (1 - beta1^t)                          (bias corrections)
    v^_t = v_t / (1 - beta2^t),   or  max(v^max_{t-1}, v_t) / (1 - beta2^t)  with amsgrad
    theta_t = theta_{t-1} - gamma * m^_t / (sqrt(v^_t) + eps)

*Why the bias correction.* Both averages start at zero, so early on they are too small: after
one step ``m_1 = (1 - beta1) g_1``, a tenth of the gradient for ``beta1 = 0.9``. Since
``E[m_t] = (1 - beta1^t) E[g]`` for a steady gradient, dividing by ``1 - beta1^t`` removes the
bias exactly; the correction fades to 1 as ``t`` grows.

*Why AdamW.* With Adam, an L2 penalty is added to the gradient and then divided by
``sqrt(v)``: parameters with large gradients are barely decayed. AdamW (Loshchilov & Hutter)
shrinks the weights directly, by ``lr * weight_decay`` per step, outside the adaptive
scaling -- every weight decays at the same rate, as with plain SGD.

``adam_update`` computes this on raw arrays in torch's order (``exp_avg.lerp_``,
``exp_avg_sq.mul_().addcmul_()``, ``denom = sqrt(v) / sqrt(bc2) + eps``,
``param.addcdiv_(exp_avg, denom, value=-step_size)``), with a scratch array or two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..backend.device import array_module
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_number, lerp_

__all__ = ["Adam", "AdamW", "adam_update"]


def adam_update(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    max_exp_avg_sq: Any | None,
    step: float,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool = False,
) -> None:
    """One Adam (or AdamW) step for one parameter, on raw arrays, in place.

    ``step`` is the number of this step (1 on the first). ``param``, ``exp_avg``,
    ``exp_avg_sq`` and ``max_exp_avg_sq`` (with ``amsgrad``) are updated in place; ``grad`` is
    only read. The arithmetic follows torch's single-tensor ``adam`` operation by operation.
    """
    xp = array_module(param)
    if maximize:
        grad = xp.negative(grad)
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            # torch: grad.add(param, alpha=weight_decay)
            decayed = xp.multiply(param, weight_decay)
            grad = xp.add(grad, decayed, out=decayed)

    # m <- m + (1 - beta1) (g - m);  v <- beta2 v + ((1 - beta2) g) g
    scratch = lerp_(xp, exp_avg, grad, 1 - beta1)
    exp_avg_sq *= beta2
    xp.multiply(grad, 1 - beta2, out=scratch)
    scratch *= grad
    exp_avg_sq += scratch

    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5

    if amsgrad:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second_moment = max_exp_avg_sq
    else:
        second_moment = exp_avg_sq
    # denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    denom = xp.sqrt(second_moment, out=scratch)
    denom /= bias_correction2_sqrt
    denom += eps
    # torch: param.addcdiv_(exp_avg, denom, value=-step_size), i.e. param + (-step_size * m) / denom
    update = xp.multiply(exp_avg, -step_size)
    update /= denom
    param += update


class Adam(Optimizer):
    """Adam, torch's ``torch.optim.Adam`` (``decoupled_weight_decay=True`` makes it AdamW).

    Args:
        params: tensors, ``(name, tensor)`` pairs, or dicts defining parameter groups.
        lr: learning rate (default 1e-3).
        betas: decay rates of the first and second moment averages (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty (default 0), or decoupled decay with ``decoupled_weight_decay``.
        amsgrad: use the maximum of all second moments so far (Reddi et al.).
        maximize: ascend the objective instead of descending it.
        decoupled_weight_decay: decay the weights directly, as AdamW.

    State per parameter: ``step`` (a float), ``exp_avg``, ``exp_avg_sq`` and, with amsgrad,
    ``max_exp_avg_sq``.
    """

    _param_shaped_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        name = type(self).__name__
        check_number(name, "learning rate", group["lr"], lambda v: v >= 0, "lr must be >= 0")
        check_number(name, "epsilon value", group["eps"], lambda v: v >= 0, "eps must be >= 0")
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2) of numbers in [0, 1), got {betas!r}")
        for i, beta in enumerate(betas):
            check_number(name, f"beta parameter at index {i}", beta, lambda v: 0 <= v < 1, "betas must be in [0, 1)")
        check_number(name, "weight_decay value", group["weight_decay"], lambda v: v >= 0, "weight_decay must be >= 0")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` (optional) re-evaluates the model and
        returns the loss, which is returned."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            amsgrad = group["amsgrad"]
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                state = self.state[p]
                if not state:
                    xp = array_module(p._data)
                    state["step"] = 0.0
                    state["exp_avg"] = Tensor._wrap(xp.zeros_like(p._data))
                    state["exp_avg_sq"] = Tensor._wrap(xp.zeros_like(p._data))
                    if amsgrad:
                        state["max_exp_avg_sq"] = Tensor._wrap(xp.zeros_like(p._data))
                elif amsgrad and "max_exp_avg_sq" not in state:  # amsgrad switched on mid-run
                    state["max_exp_avg_sq"] = Tensor._wrap(array_module(p._data).zeros_like(p._data))
                state["step"] = step = state["step"] + 1
                adam_update(
                    p._data,
                    g._data,
                    state["exp_avg"]._data,
                    state["exp_avg_sq"]._data,
                    state["max_exp_avg_sq"]._data if amsgrad else None,
                    step,
                    lr=group["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    amsgrad=amsgrad,
                    maximize=group["maximize"],
                    decoupled_weight_decay=group["decoupled_weight_decay"],
                )
                p._version_counter()[0] += 1
        return loss


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (default 1e-2), torch's ``torch.optim.AdamW``.

    Each step first shrinks the weights by ``lr * weight_decay``, then applies the Adam update
    computed from the plain gradient (see the module docstring for why).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)
