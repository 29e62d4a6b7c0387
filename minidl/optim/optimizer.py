"""``Optimizer``: the base class every optimizer derives from (torch's ``torch.optim.Optimizer``).

An optimizer owns three things:

* ``param_groups`` -- a list of dicts. Each holds ``'params'`` (a list of tensors) and that
  group's options (``lr``, ``weight_decay``, ...): options missing from a group are taken from
  ``defaults``. Groups let one model train its layers with different settings.
* ``defaults`` -- the options given to the constructor.
* ``state`` -- per-parameter memory (momentum buffers, running averages, step counts), a dict
  keyed by the parameter tensor itself, created lazily on a parameter's first step.

``step()`` walks the groups and, for every parameter that has a ``.grad``, calls the
optimizer's *update function*: one plain function over raw arrays (the parameter's
``_data``, the gradient's ``_data`` and the state arrays), written with in-place NumPy
ufuncs (``out=``), so that an update allocates at most a scratch array or two and records no
autograd history. The same function works on CuPy arrays (the array module is read off the
parameter), and a static graph can call it to build a training op. Each update bumps the
parameter's version counter, so a backward pass that saved the old value notices.

``state_dict()`` / ``load_state_dict()`` use torch's layout, so checkpoints carry over::

    {'state': {0: {'step': 3.0, 'exp_avg': Tensor, ...}, 1: {...}},
     'param_groups': [{'lr': 0.001, ..., 'params': [0, 1]}]}

Parameters are replaced by their position (counting across groups); state values are minidl
tensors or Python numbers, which a checkpoint writer can store without pickle. Unlike torch,
``step`` is kept as a Python float, not a one-element tensor (torch reads it back as a float
before every use, so the arithmetic is the same).

This file also holds ``lerp_``, the one array helper two update rules share.
"""

from __future__ import annotations

import copy
import functools
import numbers
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

import numpy as np

from ..autograd import enable_grad
from ..backend.device import array_module
from ..graph.optimize_step import graph_step, tracing_with_symbolic_grads
from ..graph.optimize_step import minimize as graph_minimize
from ..graph.symbolic import SymbolicTensor
from ..graph.trace import note_grad_reset
from ..tensor import Tensor

__all__ = ["Optimizer", "ParamsT", "lerp_", "check_number"]

#: What an optimizer accepts as ``params``: tensors, ``(name, tensor)`` pairs (from
#: ``module.named_parameters()``), or dicts that each describe a parameter group.
ParamsT = Iterable[Tensor] | Iterable[tuple[str, Tensor]] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class of the optimizers: parameter groups, per-parameter state, ``zero_grad``,
    ``state_dict`` / ``load_state_dict``.

    Subclasses define ``step`` and, to check hyperparameters (in ``defaults`` and in every
    group added later), ``_validate_group``. ``_param_shaped_state`` names the state entries
    that have the parameter's shape, which ``load_state_dict`` checks.
    """

    _param_shaped_state: tuple[str, ...] = ()

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        self._validate_group(defaults)
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got a single Tensor of shape {tuple(params.shape)}; wrap it in a list: {name}([param], ...)"
            )
        if isinstance(params, dict):
            raise TypeError(
                f"{name}: params should be an iterable of Tensors or of dicts (parameter groups), but got a "
                "dict; wrap a single group in a list: [{'params': ...}]"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{name}: optimizer parameters need to be organized in ordered collections, but the ordering of "
                "tensors in sets will change between runs (and with it the state dict). Please use a list instead."
            )
        self.state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every subclass's ``step`` learns one more thing: inside ``minidl.compile``, called on
        # symbolic gradients, it adds a step node to the graph instead of updating now.
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is None or hasattr(step, "__wrapped__"):
            return

        @functools.wraps(step)
        def graph_aware_step(self: Optimizer, closure: Callable[[], Any] | None = None) -> Any:
            if closure is None and tracing_with_symbolic_grads(self):
                return graph_step(self, step)
            return step(self, closure)

        cls.step = graph_aware_step

    def minimize(self, loss: Tensor, var_list: Any = None) -> Any:
        """A static-graph train op (TensorFlow 1's ``minimize``): the gradients of ``loss``
        (symbolic) for the parameters, followed by this optimizer's step. Run it with
        ``session.run(train_op, feed_dict)``."""
        return graph_minimize(self, loss, var_list)

    # ---- what subclasses provide ------------------------------------------------------------

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()``'s loss, if given."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` for an invalid hyperparameter (subclasses check theirs)."""

    # ---- parameter groups -------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, with options that override ``defaults`` (for example to
        start training a layer that was frozen)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry (a list of tensors)")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                f"{name}: optimizer parameters need to be organized in ordered collections, but the ordering of "
                "tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)

        tensors, names = [], []
        for param in params:
            if isinstance(param, tuple) and len(param) == 2 and isinstance(param[0], str):
                names.append(param[0])
                param = param[1]
            if type(param) is SymbolicTensor:  # a graph Variable: optimize the tensor that holds it
                from ..graph.variables import variable_state

                param = variable_state(param).storage
            tensors.append(param)
        if names and len(names) != len(tensors):
            raise ValueError(f"{name}: all optimizer params should be with/without names. Some param names are missing")
        for i, param in enumerate(tensors):
            if not isinstance(param, Tensor):
                raise TypeError(
                    f"{name}: optimizer can only optimize Tensors, but one of the params (index {i}) is "
                    f"{type(param).__name__}"
                )
            if not (param.is_leaf or param.retains_grad):
                raise ValueError(
                    f"{name}: can't optimize a non-leaf Tensor (parameter {i}, shape {tuple(param.shape)}, "
                    "was computed by an op); optimize the leaf it came from, or use .detach().requires_grad_()"
                )

        group = dict(param_group)
        group["params"] = tensors
        if names:
            group["param_names"] = names
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._validate_group(group)

        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                f"{name}: optimizer contains a parameter group with duplicate parameters; each is updated once "
                "per occurrence. Remove the duplicates.",
                stacklevel=2,
            )
        if self.param_groups and ("param_names" in group) != ("param_names" in self.param_groups[0]):
            kind = "with names" if "param_names" in group else "without names"
            raise ValueError(
                f"{name}: all optimizer param groups should be with/without names. cannot add param group "
                f"{kind} to the optimizer"
            )
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        shared = [i for i, p in enumerate(tensors) if id(p) in existing]
        if shared:
            raise ValueError(
                f"{name}: some parameters appear in more than one parameter group (parameters {shared} of the "
                "new group are already in an earlier one); each parameter may belong to one group only"
            )
        self.param_groups.append(group)

    # ---- gradients --------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors: to ``None`` (the default), or, with
        ``set_to_none=False``, to zeros in place (the gradient tensors are kept)."""
        if note_grad_reset(p for group in self.param_groups for p in group["params"]):
            return  # inside minidl.compile: the gradients start afresh
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                    continue
                if g._node is not None:
                    g.detach_()
                else:
                    g._rg = False
                if getattr(g._data.flags, "writeable", True):
                    g._data.fill(0)
                    g._version_counter()[0] += 1
                else:  # a read-only gradient (assigned by hand): replace it by zeros
                    p._grad = Tensor(np.zeros_like(g._data) if type(g._data) is np.ndarray else g._data * 0)

    def _closure_loss(self, closure: Callable[[], Any] | None) -> Any:
        """Run ``closure`` (which re-evaluates the model and calls ``backward``) with gradient
        recording on, as torch does, and return its loss."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ---- state_dict -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in torch's layout (see the module docstring).

        Parameters are replaced by their position, counted across groups in order. The state
        tensors are the live buffers (not copies, as in torch): save them before stepping on.
        """
        mapping: dict[int, int] = {}
        packed_groups = []
        start = 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            packed_groups.append(packed)
        packed_state = {(mapping[id(k)] if isinstance(k, Tensor) else k): dict(v) for k, v in self.state.items() if v}
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a state produced by ``state_dict()`` (minidl's, or torch's with its tensors
        converted to minidl tensors).

        The saved groups must match this optimizer's groups in number and sizes. Each state
        tensor is copied, cast to its parameter's dtype (for floating-point parameters) and
        moved to its device; ``step`` becomes a Python float. Everything is checked before
        anything is changed.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(
                f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups' entries (from "
                f"optimizer.state_dict()), got {got}"
            )
        groups = self.param_groups
        saved_groups = copy.deepcopy(list(state_dict["param_groups"]))
        if len(groups) != len(saved_groups):
            raise ValueError(
                f"{name}.load_state_dict: loaded state dict has a different number of parameter groups "
                f"({len(saved_groups)}) than the optimizer ({len(groups)})"
            )
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: loaded state dict contains a parameter group that doesn't match the "
                    f"size of optimizer's group: group {i} has {len(s['params'])} parameters in the state dict "
                    f"but {len(g['params'])} in the optimizer"
                )
        id_map = dict(
            zip(
                chain.from_iterable(s["params"] for s in saved_groups), chain.from_iterable(g["params"] for g in groups)
            )
        )

        new_state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for key, values in state_dict["state"].items():
            if key in id_map:
                param = id_map[key]
                new_state[param] = {k: self._cast_state(param, key, k, v) for k, v in values.items()}
            else:  # state not tied to a parameter is kept as it is (as torch)
                new_state[key] = values

        new_groups = []
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
            for k, default in self.defaults.items():  # options saved by an older version
                s.setdefault(k, default)
            new_groups.append(s)
        self.state = new_state
        self.param_groups = new_groups

    def _cast_state(self, param: Tensor, index: Any, key: str, value: Any) -> Any:
        """One saved state value, made ready for ``param``: a copy on its device, in its dtype."""
        if isinstance(value, np.ndarray):
            value = Tensor(value)
        if key == "step":  # torch keeps a one-element float tensor; minidl a Python float
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: 'step' of parameter {index} should be one number, "
                        f"got a tensor of shape {tuple(value.shape)}"
                    )
                return float(value.item())
            return float(value) if isinstance(value, numbers.Real) else value
        if not isinstance(value, Tensor):
            return value
        if key in self._param_shaped_state and tuple(value.shape) != tuple(param.shape):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state {key!r} of parameter {index} has shape "
                f"{tuple(value.shape)}, but the parameter has shape {tuple(param.shape)}; the state dict belongs "
                "to a different model (or a different parameter order)"
            )
        target = param._data
        array = value._data
        xp = array_module(target)
        if xp is np and type(array) is not np.ndarray:
            array = array.get()  # a GPU array loaded for a CPU parameter
        dtype = target.dtype if target.dtype.kind == "f" else array.dtype
        return Tensor(xp.array(array, dtype=dtype, copy=True))

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines) + "\n)"


def lerp_(xp: Any, start: Any, end: Any, weight: float, out: Any = None) -> Any:
    """``start += weight * (end - start)`` in place, exactly as torch's ``start.lerp_(end, weight)``.

    torch switches formula at ``|weight| = 0.5`` so that the result is exact at both ends
    (``weight = 1`` gives exactly ``end``)::

        |w| <  0.5:   start + w * (end - start)
        |w| >= 0.5:   end - (end - start) * (1 - w)

    The weight is first rounded to the arrays' dtype, as torch does. ``out`` is an optional
    scratch array for ``end - start``; the scratch array is returned so the caller can reuse it.
    """
    w = start.dtype.type(weight)
    diff = xp.subtract(end, start, out=out)
    if abs(w) < 0.5:
        diff *= w
        start += diff
    else:
        diff *= start.dtype.type(1) - w
        xp.subtract(end, diff, out=start)
    return diff


def check_number(optimizer: str, label: str, value: Any, ok: Callable[[float], bool], requirement: str) -> None:
    """Raise the error torch raises for a bad hyperparameter (``ok(value)`` false), naming the
    optimizer and what the value must be."""
    if isinstance(value, Tensor):
        raise TypeError(
            f"{optimizer}: {label} must be a Python number, got a Tensor; pass float(tensor) instead "
            "(minidl keeps hyperparameters as plain numbers)"
        )
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{optimizer}: {label} must be a number, got {type(value).__name__} {value!r}")
    if not ok(value):
        raise ValueError(f"{optimizer}: Invalid {label}: {value} ({requirement})")
