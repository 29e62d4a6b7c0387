"""Loading PyTorch weights: a torch ``state_dict`` turned into a minidl one.

minidl's layers use torch's parameter and buffer names and shapes (``fc.weight`` is
``(out_features, in_features)``, an LSTM's ``weight_ih_l0`` stacks the gates in torch's order
i, f, g, o, batch norm keeps ``running_mean``, ``running_var`` and an int64 0-d
``num_batches_tracked``, ``MultiheadAttention`` has ``in_proj_weight`` and ``out_proj``), so
a torch state dict needs no renaming, only its values converted::

    model.load_state_dict(minidl.from_torch_state_dict(torch_model.state_dict()))

``load_state_dict`` then reports missing keys, unexpected keys and shape mismatches by name,
as torch's does.

torch is never imported here: a torch tensor is recognized by what it can do (``detach``,
``cpu`` and ``__dlpack__``), detached, brought to the host, and read through DLPack (see
``from_dlpack``). Every value is *copied*, so training either model afterwards does not
change the other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import dtypes
from ..tensor import Tensor

__all__ = ["from_torch_state_dict"]


def from_torch_state_dict(state_dict: Mapping[str, Any]) -> OrderedDict[str, Tensor]:
    """Convert a PyTorch ``state_dict`` (name -> tensor or array) to a minidl one (name -> Tensor).

    Values may be torch tensors (any device; parameters are detached), NumPy arrays, minidl
    tensors or numbers; each becomes a new minidl tensor holding a copy, in the same order.
    Dtypes map to minidl's: float32, float64, int32, int64 and bool are kept; float16 and
    bfloat16 widen to float32 and the small integer types (int8, int16, uint8, ...) to
    int64, both exactly; anything else (complex, uint64, quantized, sparse) is an error
    naming the key.
    """
    if not isinstance(state_dict, Mapping):
        hint = " (a module: pass module.state_dict())" if hasattr(state_dict, "state_dict") else ""
        raise TypeError(
            f"from_torch_state_dict: expected a mapping of names to tensors, got {type(state_dict).__name__}{hint}"
        )
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"from_torch_state_dict: keys must be strings, got {key!r}")
        out[key] = Tensor(_to_array(key, value))
    return out


def _to_array(key: str, value: Any) -> Any:
    """A fresh, writeable array of a minidl dtype holding ``value``'s numbers."""
    if isinstance(value, Tensor):
        return _convert_dtype(key, value._data).copy()  # a NumPy or CuPy array, device kept
    if _is_torch_tensor(value):
        array = _torch_to_numpy(key, value)
    elif isinstance(value, (np.ndarray, np.generic, int, float, bool)):
        array = np.asarray(value)
    else:
        raise TypeError(
            f"from_torch_state_dict: the value for {key!r} is a {type(value).__name__}, not a tensor or array; "
            "leave it out of the state dict"
        )
    # np.array(..., copy=True) owns its memory: later changes to the torch tensor stay there.
    return np.array(_convert_dtype(key, array), copy=True)


def _is_torch_tensor(value: Any) -> bool:
    return all(hasattr(value, name) for name in ("detach", "cpu", "__dlpack__", "dtype", "shape"))


def _torch_to_numpy(key: str, value: Any) -> np.ndarray:
    """A NumPy view of a torch tensor's values, through DLPack (host copy for GPU tensors)."""
    host = value.detach().cpu()
    if str(host.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: widen on torch's side
        host = host.float()
    try:
        return np.from_dlpack(host)
    except (BufferError, RuntimeError, TypeError, ValueError) as err:
        raise TypeError(
            f"from_torch_state_dict: the tensor for {key!r} ({host.dtype}, layout {getattr(host, 'layout', '?')}) "
            f"cannot be read: {err}; convert it to a dense float or integer tensor first"
        ) from None


def _convert_dtype(key: str, array: Any) -> Any:
    """``array`` in a dtype minidl has, converting only where no value can change."""
    dt = array.dtype
    if dt in dtypes._FROM_NUMPY:
        return array
    if dt == np.float16:
        return array.astype(np.float32)
    if dt.kind in "iu" and dt.itemsize < 8:
        return array.astype(np.int64)
    raise TypeError(
        f"from_torch_state_dict: the value for {key!r} has dtype {dt}, which minidl cannot hold exactly "
        "(it has float32, float64, int32, int64 and bool); convert it in torch first, e.g. with .float()"
    )
