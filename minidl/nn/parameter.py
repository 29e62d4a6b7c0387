"""``Parameter``: a tensor that a ``Module`` owns and an optimizer updates.

Assigning a ``Parameter`` to a module attribute (``self.weight = Parameter(...)``) registers
it, so that ``module.parameters()`` finds it and ``state_dict()`` saves it. A parameter is a
leaf that requires grad by default.

In minidl a ``Parameter`` is an ordinary ``Tensor`` carrying a mark, not an instance of a
subclass: the op layer's fast paths test ``type(x) is Tensor``, and a subclass would fall off
them (see the note in ``minidl/tensor.py``). ``Parameter(data)`` therefore returns a
``Tensor``, and ``isinstance(t, Parameter)`` asks whether ``t`` carries the mark. Results of
ops on parameters are plain tensors, as in torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import get_default_dtype
from ..tensor import Tensor, is_parameter, mark_parameter

__all__ = ["Parameter", "Buffer"]


class _ParameterMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return is_parameter(obj)


class Parameter(metaclass=_ParameterMeta):
    """``Parameter(data=None, requires_grad=True)``: a leaf tensor registered by modules.

    The parameter shares storage with ``data`` (as torch's does) but has no history: it is a
    fresh leaf of the graph. With no ``data``, an empty float tensor is created.
    """

    def __new__(cls, data: Tensor | np.ndarray | None = None, requires_grad: bool = True) -> Tensor:  # type: ignore[misc]
        if data is None:
            array = np.empty((0,), dtype=get_default_dtype().np)
        elif isinstance(data, Tensor):
            array = data._data
        elif isinstance(data, np.ndarray):
            array = data
        else:
            raise TypeError(
                f"Parameter: expected a Tensor (or a NumPy array) as data, got {type(data).__name__}; "
                "wrap numbers with minidl.tensor(...) first"
            )
        if requires_grad and array.dtype.kind != "f":
            raise RuntimeError(
                f"Parameter: only floating-point tensors can require gradients, got dtype {array.dtype}; "
                "pass requires_grad=False or convert with .float()"
            )
        t = Tensor(array)
        if isinstance(data, Tensor):
            t._vc = data._version_counter()  # shared storage, shared version counter
        t.requires_grad = requires_grad
        mark_parameter(t)
        return t


class Buffer:
    """``Buffer(data, persistent=True)``: declare a module buffer by assignment (torch 2.5+).

    ``self.running_mean = Buffer(minidl.zeros(3))`` is the same as
    ``self.register_buffer("running_mean", minidl.zeros(3))``.
    """

    __slots__ = ("data", "persistent")

    def __init__(self, data: Tensor, persistent: bool = True) -> None:
        if not isinstance(data, Tensor):
            raise TypeError(f"Buffer: expected a Tensor, got {type(data).__name__}")
        self.data = data
        self.persistent = persistent
