"""Numerical gradient checks: compare autograd with central differences, in float64.

For a function f and input x, the analytical Jacobian comes from autograd (one backward pass
per output element, with a one-hot ``grad_outputs``); the numerical Jacobian from

    d f / d x_j  ~  (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)

whose error is O(eps^2) -- about 1e-12 with eps = 1e-6 in float64, far below the tolerance,
which is why the check insists on float64 inputs. ``gradgradcheck`` applies the same test
to the function that computes the gradient, checking second derivatives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import DTypeError
from ..tensor import Tensor
from .functional import grad


class GradcheckError(RuntimeError):
    """Autograd and finite differences disagree."""


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(fn: Callable, inputs: tuple) -> tuple[Tensor, ...]:
    return tuple(o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor))


def _numerical_jacobian(fn: Callable, inputs: tuple, i: int, eps: float) -> list[np.ndarray]:
    """One (n_out_elements, n_in_elements) matrix per output, by central differences."""
    x = inputs[i]
    if not x._data.flags.c_contiguous:
        raise ValueError(f"gradcheck: input {i} must be contiguous (call .contiguous() on it first)")
    flat = x._data.reshape(-1)  # a view of the input's own storage, perturbed in place
    sizes = [o.numel() for o in _outputs(fn, inputs)]
    jacobians = [np.zeros((n, flat.size)) for n in sizes]
    for j in range(flat.size):
        orig = flat[j]
        flat[j] = orig + eps
        plus = [o._data.astype(np.float64).reshape(-1) for o in _outputs(fn, inputs)]
        flat[j] = orig - eps
        minus = [o._data.astype(np.float64).reshape(-1) for o in _outputs(fn, inputs)]
        flat[j] = orig
        for k, (p, m) in enumerate(zip(plus, minus)):
            jacobians[k][:, j] = (p - m) / (2 * eps)
    return jacobians


def _analytical_jacobian(fn: Callable, inputs: tuple, i: int) -> list[np.ndarray]:
    outs = _outputs(fn, inputs)
    x = inputs[i]
    jacobians = []
    for out in outs:
        rows = []
        if not out.requires_grad:
            jacobians.append(np.zeros((out.numel(), x.numel())))
            continue
        for k in range(out.numel()):
            onehot = np.zeros(out.numel(), dtype=out._data.dtype)
            onehot[k] = 1
            (g,) = grad(out, x, Tensor(onehot.reshape(out.shape)), retain_graph=True, allow_unused=True)
            rows.append(np.zeros(x.numel()) if g is None else g._data.astype(np.float64).reshape(-1))
        jacobians.append(np.stack(rows) if rows else np.zeros((0, x.numel())))
    return jacobians


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any] | Tensor,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Check ``fn``'s gradients with respect to every float64 input that requires grad.

    Returns True when ``|analytical - numerical| <= atol + rtol * |numerical|`` everywhere;
    otherwise raises a ``GradcheckError`` naming the input, output and worst element (or
    returns False with ``raise_exception=False``).
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    for i in checked:
        if inputs[i].dtype.name != "float64":
            raise DTypeError(
                f"gradcheck: input {i} is {inputs[i].dtype.name}; finite differences need float64 "
                "inputs to be meaningful (convert with .double())"
            )
    for i in checked:
        analytical = _analytical_jacobian(fn, inputs, i)
        numerical = _numerical_jacobian(fn, inputs, i, eps)
        for k, (a, n) in enumerate(zip(analytical, numerical)):
            if a.shape != n.shape:
                raise GradcheckError(
                    f"gradcheck: Jacobian shapes differ for input {i}, output {k}: {a.shape} vs {n.shape}"
                )
            bad = ~(np.abs(a - n) <= atol + rtol * np.abs(n))
            if bad.any():
                r, c = np.unravel_index(np.argmax(np.abs(a - n) * bad), a.shape)
                message = (
                    f"gradcheck: Jacobian mismatch for output {k} with respect to input {i}: at "
                    f"(output element {r}, input element {c}) autograd gives {a[r, c]:.10g} but finite "
                    f"differences give {n[r, c]:.10g} ({int(bad.sum())} of {bad.size} entries differ)"
                )
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any] | Tensor,
    grad_outputs: Sequence[Tensor] | Tensor | None = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """Check second derivatives: gradcheck of ``inputs, v -> grad(fn(inputs), inputs, v)``.

    ``v`` (the grad_outputs) defaults to random float64 tensors and is itself treated as an
    input that requires grad, so mixed second derivatives are checked too.
    """
    inputs = _as_tuple(inputs)
    outs = _outputs(fn, inputs)
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        grad_outputs = tuple(Tensor(rng.standard_normal(o.shape)).requires_grad_() for o in outs)
    else:
        grad_outputs = _as_tuple(grad_outputs)
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    n_in = len(inputs)

    def first_derivative(*args: Any) -> tuple:
        xs, vs = args[:n_in], args[n_in:]
        outs = _outputs(fn, xs)
        grads = grad(outs, [xs[i] for i in diff_idx], vs, create_graph=True, allow_unused=True, materialize_grads=True)
        return tuple(grads)

    return gradcheck(
        first_derivative, (*inputs, *grad_outputs), eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception
    )
