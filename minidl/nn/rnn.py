"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their single-step cells, with torch's API.

A recurrent layer reads a sequence ``x_1 .. x_L`` one step at a time, carrying a hidden state
``h`` (and, for the LSTM, a cell state ``c``) from each step to the next. With ``W_i*`` acting on
the input and ``W_h*`` on the previous hidden state (``sigma`` the logistic sigmoid, ``*`` the
elementwise product):

* **RNN**:  ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or ``relu``);
* **LSTM**: gates ``i, f, g, o`` in that order::

      i = sigma(W_ii x + b_ii + W_hi h + b_hi)      f = sigma(W_if x + b_if + W_hf h + b_hf)
      g = tanh (W_ig x + b_ig + W_hg h + b_hg)      o = sigma(W_io x + b_io + W_ho h + b_ho)
      c_t = f * c_{t-1} + i * g                     h_t = o * tanh(c_t)

  (with ``proj_size > 0``, ``h_t`` is further projected: ``h_t = W_hr h_t``);
* **GRU**: gates ``r, z, n`` in that order::

      r = sigma(W_ir x + b_ir + W_hr h + b_hr)      z = sigma(W_iz x + b_iz + W_hz h + b_hz)
      n = tanh (W_in x + b_in + r * (W_hn h + b_hn))
      h_t = (1 - z) * n + z * h_{t-1}

The weights of all gates are stacked in one matrix per side -- ``weight_ih_l{k}`` is
``(gates * hidden_size, input_size)`` -- with torch's names, shapes, gate order and
initialization ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``, so a torch state dict loads
as it is.

How the layers compute, and why:

* **The input projection is hoisted out of the time loop.** ``W_ih x_t + b`` does not depend
  on the recurrence, so it is computed for every step at once, ``x @ W_ih^T + b`` -- one large
  matrix product per layer instead of ``L`` small ones. Only ``h @ W_hh^T`` must wait for the
  previous step. For the RNN and LSTM both biases are folded into that one product.
* **Gates are sliced from one tensor.** One ``(N, H) @ (H, 4H)`` product per step gives all
  four LSTM gates; one sigmoid over the whole row covers ``i``, ``f`` and ``o`` (the ``g``
  columns it also squashes are simply not used), which costs fewer recorded ops than three
  separate sigmoids. An LSTM step records fifteen ops.
* **Backward is backpropagation through time, for free.** Every step is ordinary minidl ops,
  so the tape holds the unrolled computation and ``backward()`` walks it from the last step to
  the first; there is no hand-written gradient here.
* **Time steps are sliced in blocks** (``_time_steps``): see that function for why taking the
  ``L`` slices of a tensor one by one would make backward quadratic in ``L``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ..ops.activation import relu
from ..ops.creation import empty, zeros_with_sizes_of
from ..ops.shape import cat, stack
from ..ops.unary import sigmoid, tanh
from ..tensor import Tensor
from . import init
from .functional.basic import dropout as dropout_fn
from .functional.basic import linear
from .module import Module
from .parameter import Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}

#: A block of at most this many steps is sliced step by step; a longer one is first cut into
#: ``_FANOUT`` sub-blocks (see ``_time_steps``).
_LEAF_STEPS = 8
_FANOUT = 4


# ---- one time step ---------------------------------------------------------------------------
#
# Each step function takes ``xw``, the input's share of the pre-activations (``W_ih x_t + b``,
# already computed), and the previous state, and returns the new state. The layers and the cells
# share them, so the recurrences are written exactly once.


def _rnn_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, use_relu: bool) -> Tensor:
    pre = xw + linear(h, w_hh, b_hh)
    return relu(pre) if use_relu else tanh(pre)


def _lstm_step(
    xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None, w_hr: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    gates = xw + linear(h, w_hh, b_hh)
    n = c.shape[-1]
    s = sigmoid(gates)  # i, f and o come from here; the g columns are computed but unused
    i = s[:, :n]
    f = s[:, n : 2 * n]
    o = s[:, 3 * n :]
    g = tanh(gates[:, 2 * n : 3 * n])
    c = f * c + i * g
    h = o * tanh(c)
    if w_hr is not None:
        h = linear(h, w_hr)
    return h, c


def _gru_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    hw = linear(h, w_hh, b_hh)  # b_hh stays here: b_hn must sit inside r * (...)
    n = h.shape[-1]
    rz = sigmoid(xw + hw)  # r and z; the n columns are computed but unused
    r = rz[:, :n]
    z = rz[:, n : 2 * n]
    new = tanh(xw[:, 2 * n :] + r * hw[:, 2 * n :])
    return new + z * (h - new)  # = (1 - z) * new + z * h, one op fewer


def _time_steps(x: Tensor, dim: int) -> list[Tensor]:
    """The slices of ``x`` along its time dimension ``dim``, in order.

    Slicing is free forward (a view), but the gradient of a slice ``x[t]`` is a tensor of
    ``x``'s full shape -- zeros except at ``t`` -- and the engine adds those up. Taking the
    ``L`` steps of a sequence one by one would therefore cost ``L`` full-size additions in
    backward: quadratic in ``L`` (at ``L = 100`` that was a third of an LSTM's training step).

    Cutting first into ``_FANOUT`` blocks, then each block into sub-blocks, and so on, makes
    each slice's gradient only the size of its parent block, so the total is
    ``O(L log L)``; it takes about a third more slicing ops, which is why short sequences
    are sliced directly.
    """
    n = x.shape[dim]
    lead = (slice(None),) * dim
    if n <= _LEAF_STEPS:
        return [x[lead + (t,)] for t in range(n)]
    size = -(-n // _FANOUT)
    steps: list[Tensor] = []
    for start in range(0, n, size):
        steps.extend(_time_steps(x[lead + (slice(start, start + size),)], dim))
    return steps


def _check_dtype(name: str, input: Tensor, weight: Tensor) -> None:
    if input._data.dtype != weight._data.dtype:
        raise ValueError(
            f"{name}: input dtype ({input.dtype.name}) does not match weight dtype ({weight.dtype.name}); "
            f"convert the input with .to({weight.dtype.name}) or the module with .to({input.dtype.name})"
        )


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


# ---- multi-layer recurrent layers ------------------------------------------------------------


class RNNBase(Module):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: the parameters, the checks, and the loop over
    layers and directions. Each subclass supplies ``_direction``, one layer in one direction.

    Parameters are registered per layer ``k`` and direction (suffix ``_reverse`` for the
    backward direction of a bidirectional layer) as ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (and ``weight_hr_l{k}`` for a projected LSTM), in
    torch's order.
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode!r} (expected one of {sorted(_GATES)})")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(
                f"{name}: dropout should be a number in range [0, 1] representing the probability of an "
                f"element being zeroed, got {dropout!r}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                stacklevel=3,
            )
        for arg, value in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(value, bool):
                raise TypeError(f"{name}: {arg} should be of type bool, got: {type(value).__name__}")
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: {arg} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name}: {arg} must be greater than zero, got {value}")
        if proj_size < 0:
            raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size has to be smaller than hidden_size, got {proj_size} >= {hidden_size}")

        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size

        gate_size = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                suffix = "_reverse" if direction == 1 else ""
                shapes = {
                    f"weight_ih_l{layer}{suffix}": (gate_size, layer_input),
                    f"weight_hh_l{layer}{suffix}": (gate_size, real_hidden),
                }
                if bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (gate_size,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (gate_size,)
                if proj_size > 0:
                    shapes[f"weight_hr_l{layer}{suffix}"] = (proj_size, hidden_size)
                for pname, shape in shapes.items():
                    setattr(self, pname, Parameter(empty(shape, dtype=dtype, device=device)))
                self._flat_weights_names.extend(shapes)
                self._all_weights.append(list(shapes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight and bias from ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def flatten_parameters(self) -> None:
        """Kept for compatibility with torch code (it packs weights for cuDNN there); here the
        weights are always used as they are, so there is nothing to do."""

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """The parameters of each layer and direction, as lists in registration order."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def _params(self, k: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """``(w_ih, w_hh, b_ih, b_hh, w_hr)`` of layer-direction ``k`` (absent ones are None)."""
        names = self._all_weights[k]
        w_ih, w_hh = getattr(self, names[0]), getattr(self, names[1])
        b_ih = getattr(self, names[2]) if self.bias else None
        b_hh = getattr(self, names[3]) if self.bias else None
        w_hr = getattr(self, names[-1]) if self.proj_size > 0 else None
        return w_ih, w_hh, b_ih, b_hh, w_hr

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ---- the forward pass ----------------------------------------------------------------

    def _check_input(self, input: Tensor) -> bool:
        """Check the input's rank, feature size and dtype; return whether it is batched."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor as input, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(
                f"{name}: Expected input to be 2D or 3D, got {input.ndim}D input of shape {_shape(input)}; "
                f"pass (L, N, {self.input_size}), (N, L, {self.input_size}) with batch_first=True, "
                f"or (L, {self.input_size}) unbatched"
            )
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                f"{input.shape[-1]} (input of shape {_shape(input)})"
            )
        if input.shape[1 if (self.batch_first and input.ndim == 3) else 0] == 0:
            raise RuntimeError(
                f"{name}: Expected sequence length to be larger than 0, got input of shape {_shape(input)}"
            )
        if not input.is_floating_point():
            raise TypeError(
                f"{name}: expected a floating-point input, got {input.dtype.name}; convert it with .float()"
            )
        _check_dtype(name, input, getattr(self, self._flat_weights_names[0]))
        return input.ndim == 3

    def _check_state(self, what: str, state: Tensor, expected: tuple[int, ...], batched: bool, input: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(state, Tensor):
            raise TypeError(f"{name}: expected {what} to be a Tensor, got {type(state).__name__}")
        if batched and state.ndim != 3:
            raise RuntimeError(
                f"{name}: For batched 3-D input, hx should also be 3-D but got {state.ndim}-D tensor "
                f"({what} of shape {_shape(state)}; expected {expected})"
            )
        if not batched and state.ndim != 2:
            raise RuntimeError(
                f"{name}: For unbatched 2-D input, hx should also be 2-D but got {state.ndim}-D tensor "
                f"({what} of shape {_shape(state)}; expected {expected})"
            )
        if _shape(state) != expected:
            raise RuntimeError(
                f"{name}: Expected {what} of shape {expected} (num_layers * num_directions, batch, size), got "
                f"{_shape(state)} for input of shape {_shape(input)}"
            )
        if state._data.dtype != input._data.dtype:
            raise ValueError(
                f"{name}: {what} dtype ({state.dtype.name}) does not match the input dtype ({input.dtype.name})"
            )

    def _run(
        self, input: Tensor, h0: Tensor | None, c0: Tensor | None, batched: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run all layers and directions; return ``(output, h_n, c_n)`` (``c_n`` for the LSTM).

        ``h0``/``c0`` arrive already checked, in the batched layout, or ``None`` for zeros.
        """
        if batched:
            x, tdim = input, (1 if self.batch_first else 0)
        else:
            x, tdim = input.unsqueeze(1), 0
        batch = x.shape[1 - tdim]
        directions = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        default_h = default_c = None
        batch = ("dim", 1 - tdim) if batch is None else batch  # unknown until a static graph runs
        if h0 is None:
            default_h = zeros_with_sizes_of(x, batch, real_hidden)
        if c0 is None and self.mode == "LSTM":
            default_c = zeros_with_sizes_of(x, batch, self.hidden_size)
        h_n: list[Tensor] = []
        c_n: list[Tensor] = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                x = dropout_fn(x, self.dropout, True)
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                h = default_h if h0 is None else h0[k]
                c = None
                if self.mode == "LSTM":
                    c = default_c if c0 is None else c0[k]
                hs, h, c = self._direction(x, tdim, direction == 1, h, c, self._params(k))
                if direction == 1:
                    hs.reverse()
                outputs.append(stack(hs, tdim))
                h_n.append(h)
                if c is not None:
                    c_n.append(c)
            x = outputs[0] if directions == 1 else cat(outputs, -1)
        h_out = stack(h_n, 0)
        c_out = stack(c_n, 0) if c_n else None
        if not batched:
            x = x.squeeze(1)
            h_out = h_out.squeeze(1)
            c_out = None if c_out is None else c_out.squeeze(1)
        return x, h_out, c_out

    def _direction(
        self, x: Tensor, tdim: int, reverse: bool, h: Tensor, c: Tensor | None, params: tuple
    ) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """One layer in one direction: the hidden state of every step, in the order processed,
        and the final ``h`` and ``c``."""
        raise NotImplementedError

    def _state_shape(self, batch: int, batched: bool, cell: bool = False) -> tuple[int, ...]:
        directions = 2 if self.bidirectional else 1
        size = self.hidden_size if cell or self.proj_size == 0 else self.proj_size
        return (self.num_layers * directions, batch, size) if batched else (self.num_layers * directions, size)

    def _batch(self, input: Tensor, batched: bool) -> int:
        if not batched:
            return 1
        return input.shape[0] if self.batch_first else input.shape[1]

    def _prepare_h(self, input: Tensor, hx: Tensor | None, batched: bool) -> Tensor | None:
        if hx is None:
            return None
        self._check_state("hx", hx, self._state_shape(self._batch(input, batched), batched), batched, input)
        return hx if batched else hx.unsqueeze(1)


class RNN(RNNBase):
    """``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)``: the Elman network
    ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or ``relu``).

    ``forward(input, hx=None)`` takes ``input`` of shape ``(L, N, input_size)`` (``(N, L, ...)``
    with ``batch_first``, or ``(L, input_size)`` unbatched) and ``hx`` of shape
    ``(num_layers * num_directions, N, hidden_size)`` (zeros if omitted), and returns
    ``(output, h_n)``: the last layer's hidden state at every step, ``(L, N, D * hidden_size)``,
    and every layer's final hidden state.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype
        )

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        batched = self._check_input(input)
        output, h_n, _ = self._run(input, self._prepare_h(input, hx, batched), None, batched)
        return output, h_n

    def _direction(self, x, tdim, reverse, h, c, params):
        w_ih, w_hh, b_ih, b_hh, _ = params
        xw = linear(x, w_ih, None if b_ih is None else b_ih + b_hh)
        steps = _time_steps(xw, tdim)
        if reverse:
            steps.reverse()
        use_relu = self.mode == "RNN_RELU"
        hs = []
        for xw_t in steps:
            h = _rnn_step(xw_t, h, w_hh, None, use_relu)
            hs.append(h)
        return hs, h, None


class LSTM(RNNBase):
    """``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0)``: long short-term memory (gates ``i, f, g, o``).

    ``forward(input, hx=None)`` takes ``hx = (h_0, c_0)`` (zeros if omitted) and returns
    ``(output, (h_n, c_n))`` with torch's shapes; with ``proj_size > 0`` the hidden state (and
    so ``output`` and ``h_n``) has ``proj_size`` features, the cell state ``hidden_size``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batched = self._check_input(input)
        h0 = c0 = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM: expected hx to be a tuple (h_0, c_0) of two tensors, got {type(hx).__name__}")
            h0 = self._prepare_h(input, hx[0], batched)
            expected = self._state_shape(self._batch(input, batched), batched, cell=True)
            self._check_state("c_0", hx[1], expected, batched, input)
            c0 = hx[1] if batched else hx[1].unsqueeze(1)
        output, h_n, c_n = self._run(input, h0, c0, batched)
        return output, (h_n, c_n)

    def _direction(self, x, tdim, reverse, h, c, params):
        w_ih, w_hh, b_ih, b_hh, w_hr = params
        xw = linear(x, w_ih, None if b_ih is None else b_ih + b_hh)
        steps = _time_steps(xw, tdim)
        if reverse:
            steps.reverse()
        hs = []
        for xw_t in steps:
            h, c = _lstm_step(xw_t, h, c, w_hh, None, w_hr)
            hs.append(h)
        return hs, h, c


class GRU(RNNBase):
    """``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False)``: the gated recurrent unit (gates ``r, z, n``).

    ``forward(input, hx=None)`` returns ``(output, h_n)`` with the shapes of ``RNN``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype
        )

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        batched = self._check_input(input)
        output, h_n, _ = self._run(input, self._prepare_h(input, hx, batched), None, batched)
        return output, h_n

    def _direction(self, x, tdim, reverse, h, c, params):
        w_ih, w_hh, b_ih, b_hh, _ = params
        xw = linear(x, w_ih, b_ih)
        steps = _time_steps(xw, tdim)
        if reverse:
            steps.reverse()
        hs = []
        for xw_t in steps:
            h = _gru_step(xw_t, h, w_hh, b_hh)
            hs.append(h)
        return hs, h, None


# ---- single-step cells -----------------------------------------------------------------------


class RNNCellBase(Module):
    """What the cells share: ``weight_ih`` ``(gates * hidden, input)``, ``weight_hh``
    ``(gates * hidden, hidden)``, ``bias_ih`` and ``bias_hh``, initialized as the layers are, and
    the checks of ``input`` ``(N, input_size)`` or ``(input_size,)`` and of the state."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight and bias from ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nonlinearity = self.__dict__.get("nonlinearity", "tanh")
        if nonlinearity != "tanh":
            s += f", nonlinearity={nonlinearity}"
        return s

    def _prepare(self, input: Tensor, states: tuple) -> tuple[Tensor, bool]:
        """Check ``input`` and the given states; return the input as ``(N, input_size)`` and
        whether it was batched."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor as input, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(
                f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead (shape {_shape(input)})"
            )
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"{name}: input has inconsistent input_size: got {input.shape[-1]}, expected {self.input_size} "
                f"(input of shape {_shape(input)})"
            )
        if not input.is_floating_point():
            raise TypeError(
                f"{name}: expected a floating-point input, got {input.dtype.name}; convert it with .float()"
            )
        _check_dtype(name, input, self.weight_ih)
        batched = input.ndim == 2
        expected = (input.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        for what, state in states:
            if state is None:
                continue
            if not isinstance(state, Tensor):
                raise TypeError(f"{name}: expected {what} to be a Tensor, got {type(state).__name__}")
            if _shape(state) != expected:
                raise RuntimeError(
                    f"{name}: {what} has shape {_shape(state)}, expected {expected} for input of shape "
                    f"{_shape(input)} ({'batch, ' if batched else ''}hidden_size={self.hidden_size})"
                )
            if state._data.dtype != input._data.dtype:
                raise ValueError(
                    f"{name}: {what} dtype ({state.dtype.name}) does not match the input dtype ({input.dtype.name})"
                )
        return (input if batched else input.unsqueeze(0)), batched

    def _zeros(self, x: Tensor) -> Tensor:
        return zeros_with_sizes_of(x, ("dim", 0), self.hidden_size)


def _as_batched(state: Tensor | None, batched: bool) -> Tensor | None:
    return state if state is None or batched else state.unsqueeze(0)


class RNNCell(RNNCellBase):
    """``RNNCell(input_size, hidden_size, bias=True, nonlinearity='tanh')``: one step of
    ``RNN``; ``forward(input, hx=None)`` returns ``h'``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: Unknown nonlinearity: {nonlinearity}. Select from 'tanh' or 'relu'.")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._prepare(input, (("hx", hx),))
        h = self._zeros(x) if hx is None else _as_batched(hx, batched)
        h = _rnn_step(
            linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh, self.nonlinearity == "relu"
        )
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """``LSTMCell(input_size, hidden_size, bias=True)``: one step of ``LSTM``;
    ``forward(input, hx=None)`` takes ``hx = (h, c)`` and returns ``(h', c')``."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: expected hx to be a tuple (h, c) of two tensors, got {type(hx).__name__}")
        h, c = (None, None) if hx is None else hx
        x, batched = self._prepare(input, (("hx[0]", h), ("hx[1]", c)))
        h = self._zeros(x) if h is None else _as_batched(h, batched)
        c = self._zeros(x) if c is None else _as_batched(c, batched)
        h, c = _lstm_step(linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """``GRUCell(input_size, hidden_size, bias=True)``: one step of ``GRU``;
    ``forward(input, hx=None)`` returns ``h'``."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._prepare(input, (("hx", hx),))
        h = self._zeros(x) if hx is None else _as_batched(hx, batched)
        h = _gru_step(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)
