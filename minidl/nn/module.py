"""``Module``: the base class of every layer and model, with PyTorch's API.

A module is a tree. Each node holds

* **parameters** -- tensors an optimizer trains (``Parameter``), registered by assignment:
  ``self.weight = Parameter(...)``;
* **buffers** -- tensors that are part of the state but not trained (batch norm's running
  statistics), registered with ``register_buffer``;
* **submodules** -- registered by assigning a ``Module``: ``self.fc = Linear(4, 2)``.

From that tree come the recursive views a training loop needs: ``parameters()`` for the
optimizer, ``state_dict()`` for checkpoints (keys are dotted paths such as ``"fc.weight"``),
``train()``/``eval()`` for layers that behave differently (dropout, batch norm), and
``to(device, dtype)``.

Calling a module runs its ``forward`` between any forward hooks. Unlike torch, a registered
parameter, buffer or submodule is also stored as an ordinary instance attribute, so reading
``self.weight`` in ``forward`` is a plain attribute lookup rather than a ``__getattr__``
fallback: the registries (``_parameters``, ``_buffers``, ``_modules``) only remember names
and order. ``__setattr__`` and ``__delattr__`` keep the two in step.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import dtypes
from ..autograd.grad_mode import no_grad
from ..backend.device import Device
from ..graph.symbolic import SymbolicTensor
from ..graph.trace import module_call_in_graph, note_grad_reset
from ..ops.cast import to as tensor_to
from ..tape import RemovableHandle
from ..tensor import Tensor
from .parameter import Buffer, Parameter

__all__ = ["Module", "IncompatibleKeys"]


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` could not match, by name."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class for all layers and models: subclass it, assign layers and parameters in
    ``__init__``, and compute the output in ``forward``::

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(784, 256)
                self.fc2 = nn.Linear(256, 10)

            def forward(self, x):
                return self.fc2(F.relu(self.fc1(x)))
    """

    training: bool

    def __init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "training", True)
        setattr_(self, "_parameters", OrderedDict())
        setattr_(self, "_buffers", OrderedDict())
        setattr_(self, "_non_persistent_buffers", set())
        setattr_(self, "_modules", OrderedDict())
        setattr_(self, "_forward_pre_hooks", [])
        setattr_(self, "_forward_hooks", [])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and type(args[0]) is SymbolicTensor:  # building a graph (see minidl/graph/trace.py)
            return module_call_in_graph(self, args, kwargs)
        return self._call(*args, **kwargs)

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        if not (self._forward_pre_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ---- registration ------------------------------------------------------------------------

    def _check_ready(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call; call super().__init__() first")

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._check_ready("parameters")
            self._forget(name, "_parameters")
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._check_ready("a child module")
            self._forget(name, "_modules")
            self._modules[name] = value
        elif isinstance(value, Buffer):
            self._check_ready("buffers")
            self._forget(name, "_buffers")
            self._buffers[name] = value.data
            if not value.persistent:
                self._non_persistent_buffers.add(name)
            value = value.data
        elif "_parameters" in d and name in self._parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' (nn.Parameter or None expected); "
                    f"wrap it: self.{name} = nn.Parameter(value)"
                )
            self._parameters[name] = None
        elif "_buffers" in d and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            self._buffers[name] = value
        elif "_modules" in d and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' (nn.Module or None expected)"
                )
            self._modules[name] = None
        object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: str) -> None:
        """Remove ``name`` from every registry but ``keep``, the one it is about to be
        registered in again: re-registering there keeps its place in the order, as in torch
        (``fc.weight = other`` does not move ``weight`` after ``bias``)."""
        if keep != "_parameters":
            self._parameters.pop(name, None)
        if keep != "_buffers":
            self._buffers.pop(name, None)
        self._non_persistent_buffers.discard(name)
        if keep != "_modules":
            self._modules.pop(name, None)

    def __delattr__(self, name: str) -> None:
        if "_parameters" in self.__dict__:
            self._forget(name, "")
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        """Register ``param`` (a ``Parameter`` or ``None``) under ``name``."""
        self._check_ready("parameters")
        self._check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' (nn.Parameter or None required)"
            )
        self._forget(name, "_parameters")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a tensor that is state but not a parameter (saved in ``state_dict`` unless
        ``persistent=False``; moved by ``to()``; never returned by ``parameters()``)."""
        self._check_ready("buffers")
        self._check_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)"
            )
        self._forget(name, "_buffers")
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as a child under ``name``."""
        self._check_ready("a child module")
        self._check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._forget(name, "_modules")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    register_module = add_module

    def _check_name(self, kind: str, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(f'{kind} name can\'t be empty or contain ".", got: "{name}"')
        known = name in self._parameters or name in self._buffers or name in self._modules
        if hasattr(self, name) and not known:
            raise KeyError(f"attribute '{name}' already exists")

    # ---- traversal ---------------------------------------------------------------------------

    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and every descendant, depth first, with dotted names (``""`` for self)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, parameter)`` pairs; a parameter shared by two layers comes once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The descendant at the dotted path ``target`` (``""`` is this module)."""
        module = self
        if target == "":
            return module
        for part in target.split("."):
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(
                    f"{type(module).__name__} has no submodule named '{part}' (looking for '{target}')"
                )
            module = child
        return module

    def get_parameter(self, target: str) -> Tensor:
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name not in module._parameters:
            raise AttributeError(f"{type(module).__name__} has no parameter named '{name}' (looking for '{target}')")
        return module._parameters[name]

    # ---- modes and gradients -----------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout drops, batch norm uses batch statistics) recursively."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to ``None`` (the default, as torch), or to zeros."""
        if note_grad_reset(self.parameters()):
            return  # inside minidl.compile: the gradients start afresh
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad._data[...] = 0

    # ---- functions over the tree -------------------------------------------------------------

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _apply(self, convert: Callable[[Tensor], Tensor]) -> Module:
        """Replace the storage of every parameter, gradient and buffer with ``convert(t)``.

        Parameters keep their identity (``p.data = ...``), so an optimizer built before the
        move still holds the right tensors, as in torch.
        """
        for module in self.modules():
            for p in module._parameters.values():
                if p is None:
                    continue
                p.data = convert(p.detach())
                if p.grad is not None:
                    p._grad = convert(p.grad.detach())
            for name, b in list(module._buffers.items()):
                if b is not None:
                    new = convert(b)
                    module._buffers[name] = new
                    object.__setattr__(module, name, new)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``: move and/or cast in place.

        A dtype applies to floating-point parameters and buffers only (integer buffers such as
        counters keep theirs), as in torch.
        """
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"Module.to: unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, Device) or (isinstance(a, str) and not _is_dtype_name(a)):
                device = a
            else:
                dtype = a
        if dtype is not None:
            dtype = dtypes.to_dtype(dtype)
            if not dtype.is_floating_point:
                raise TypeError(f"Module.to only accepts floating point dtypes, but got desired dtype={dtype.name}")

        def convert(t: Tensor) -> Tensor:
            out = t
            if device is not None:
                out = tensor_to(out, device=device)
            if dtype is not None and t.is_floating_point():
                out = tensor_to(out, dtype=dtype)
            return out

        return self._apply(convert)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        return self.to("cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))

    def float(self) -> Module:
        return self.to(dtypes.float32)

    def double(self) -> Module:
        return self.to(dtypes.float64)

    # ---- state -------------------------------------------------------------------------------

    def state_dict(self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Every parameter and persistent buffer by dotted name, in registration order.

        The tensors share storage with the module (detached unless ``keep_vars``): save them
        with ``minidl.save`` or copy them with ``{k: v.clone() ...}``.
        """
        out = OrderedDict() if destination is None else destination
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            base = f"{module_prefix}." if module_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out[base + name] = p if keep_vars else p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers:
                    out[base + name] = b if keep_vars else b.detach()
        return out

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into this module's parameters and buffers.

        Values may be tensors or NumPy arrays; each is copied into the existing tensor (cast to
        its dtype), so parameters keep their identity. Every problem is collected first and
        reported together by name -- missing keys, unexpected keys, shape mismatches -- and
        nothing is copied when there is an error. With ``strict=False`` missing and unexpected
        keys are returned instead of raised (shape mismatches always raise). With
        ``assign=True`` the module takes the checkpoint's tensors themselves instead of copying
        into its own (their dtype and device then come from the checkpoint).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a dict-like state_dict, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        plan = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value._data if isinstance(value, Tensor) else value
            if not hasattr(array, "shape"):
                try:
                    array = np.asarray(array)
                except Exception:
                    problems.append(f"value for {key} is a {type(value).__name__}, not a tensor or array")
                    continue
            if tuple(array.shape) != tuple(target.shape):
                problems.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(array.shape)} from checkpoint, "
                    f"the shape in current model is {tuple(target.shape)}."
                )
                continue
            plan.append((key, target, array))
        if strict:
            if unexpected:
                problems.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                problems.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(problems))
        with no_grad():
            for key, target, array in plan:
                if assign:
                    self._assign(key, target, state_dict[key])
                else:
                    _copy_into(target, array)
        return IncompatibleKeys(missing, unexpected)

    def _assign(self, key: str, target: Tensor, value: Any) -> None:
        """``load_state_dict(assign=True)``: make the checkpoint's tensor the module's own
        (no copy; a parameter keeps its ``requires_grad``), as torch does."""
        path, _, name = key.rpartition(".")
        owner = self.get_submodule(path)
        tensor = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
        if name in owner._parameters:
            setattr(owner, name, Parameter(tensor.detach(), requires_grad=target.requires_grad))
        else:
            owner._buffers[name] = tensor
            object.__setattr__(owner, name, tensor)

    # ---- hooks -------------------------------------------------------------------------------

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; a non-None return value
        replaces the output."""
        self._forward_hooks.append(hook)
        return RemovableHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook: Callable[[Module, tuple], Any]) -> RemovableHandle:
        """Call ``hook(module, inputs)`` before every forward; a non-None return value
        replaces the inputs."""
        self._forward_pre_hooks.append(hook)
        return RemovableHandle(self._forward_pre_hooks, hook)

    # ---- printing ----------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (its configuration)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self) -> list[str]:
        return sorted(set(itertools.chain(super().__dir__(), self._parameters, self._buffers, self._modules)))

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _copy_into(target: Tensor, array: Any) -> None:
    """Copy ``array`` into ``target``'s storage (casting, across devices) and bump its version."""
    data = target._data
    if type(data) is np.ndarray:
        if type(array) is not np.ndarray and hasattr(array, "get"):
            array = array.get()
        np.copyto(data, np.asarray(array), casting="unsafe")
    else:  # a GPU tensor: let CuPy copy from host or device
        import cupy

        data[...] = cupy.asarray(array).astype(data.dtype, copy=False)
    target._version_counter()[0] += 1


def _is_dtype_name(s: str) -> bool:
    try:
        dtypes.to_dtype(s)
        return True
    except TypeError:
        return False
