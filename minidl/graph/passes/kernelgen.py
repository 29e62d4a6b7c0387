"""Generating, compiling and running the Numba kernels of fused elementwise ops (see ``fusion.py``).

A fused expression is a list of *steps* -- ``(op, operands, attrs)`` with each operand a
group input (``("leaf", k)``), an earlier step (``("step", j)``) or a number
(``("literal", v)``). ``FusedKernel`` is the callable that a fused node's op uses as its
``forward``. Given the input arrays, it works out how each input broadcasts against the
output, generates the source of a kernel for that pattern, compiles it (once per source,
process-wide, and cached on disk), and calls it.

**The loop.** The output, viewed as ``R x C`` (rows before a split point of its dimensions,
columns after), is cut into *tasks* of at most ``BLOCK`` consecutive elements of one row;
tasks run in parallel (``numba.prange``). For element ``i`` of a task an input is read as

``full``    ``a[row * C + col]``  -- it has the output's shape;
``scalar``  ``a[0]``              -- read once, before the loop;
``col``     ``a[col]``            -- it has exactly the column dimensions (a bias ``(C,)``);
``row``     ``a[row % m]``        -- it has the last ``m`` of the row dimensions (a ``(N, 1)``
                                    statistic; a ``(1, C, 1, 1)`` bias of ``NCHW``), read once
                                    per task.

When every input is full or a scalar there is one row (``R = 1``, ``C`` = the output size).

**Loop fission at library calls.** A loop that calls the C library's ``erf`` (or ``exp``,
``tanh``...) for each element and also does arithmetic around the call runs markedly slower
than the same calls in a loop of their own: measured on one core, GELU's ``erf`` of 2**20
elements took 4.2 ms inside the fused loop and 2.8 ms split out, against 2.6 ms for the bare
call. So each task runs *phases*: an arithmetic loop, then a loop of only library calls,
then the arithmetic that depends on them, and so on. Values crossing from one phase to the
next live in per-task scratch arrays of ``BLOCK`` elements (64 KiB at most, in cache), so
the inputs and the output still cross main memory once.

**The kernel cache.** The source names the expression, the dtype and each input's kind;
sizes are arguments. It is written to ``<cache_dir>/minidl_fused_<hash>.py`` and imported,
so Numba's on-disk cache (``cache=True``) applies: Numba keys its cache by the function's
source file, which code run with ``exec`` lacks. An unchanged file is never rewritten (its
timestamp is part of Numba's key). Each module holds a ``serial`` kernel, used below
``PARALLEL_MIN`` elements where starting threads costs more than the work, and a
``parallel`` one; each compiles on first use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...ops import activation, arith, unary
from ...ops.op import Op

__all__ = ["FusedKernel", "TEMPLATES", "POWERS", "kernel_source", "cache_dir", "kernel_cache_info"]

#: Outputs with fewer elements run the serial variant of a kernel.
PARALLEL_MIN = 1 << 16
#: Elements per task: the unit of parallel work, and the length of the scratch arrays.
BLOCK = 4096

# A step of a fused expression: (op, operands, attrs); an operand is ("leaf", k), ("step", j)
# or ("literal", value).
Step = tuple[type, tuple, dict]


# ---- the expression templates --------------------------------------------------------------------


class Emitter:
    """Collects the statements computing one element while the op templates run.

    ``const(v)`` hoists a literal out of the loop as a scalar of the kernel's dtype, rounded
    as NumPy rounds a Python number against an array of that dtype; ``tmp(expr)`` binds an
    expression to a new temporary (so a template may use a value twice without computing it
    twice); ``call(fn, arg)`` is a C-library call, which gets a loop of its own.
    """

    _NAME = re.compile(r"\b[tcx]\d+\b")

    def __init__(self, scalar: str) -> None:
        self.scalar = scalar  # "np.float32" or "np.float64"
        self._consts: dict[str, str] = {}
        self.hoisted: list[str] = []
        #: (name, expression, phase, names it reads); a call's phase is one past its argument's
        self.statements: list[tuple[str, str, int, list[str]]] = []
        self.phase: dict[str, int] = {}
        self._n = 0

    def const(self, v: float) -> str:
        v = float(v)
        text = "np.nan" if math.isnan(v) else "np.inf" if v == math.inf else "-np.inf" if v == -math.inf else repr(v)
        name = self._consts.get(text)
        if name is None:
            name = f"k{len(self._consts)}"
            self._consts[text] = name
            self.hoisted.append(f"{name} = {self.scalar}({text})")
        return name

    def _add(self, prefix: str, expr: str, phase_of_deps: int, deps: list[str]) -> str:
        name = f"{prefix}{self._n}"
        self._n += 1
        self.phase[name] = phase_of_deps
        self.statements.append((name, expr, phase_of_deps, deps))
        return name

    def _deps(self, expr: str) -> list[str]:
        return sorted(set(self._NAME.findall(expr)))

    def tmp(self, expr: str) -> str:
        deps = self._deps(expr)
        return self._add("t", expr, max((self.phase.get(d, 0) for d in deps), default=0), deps)

    def call(self, fn: str, arg: str) -> str:
        if not self._NAME.fullmatch(arg):
            arg = self.tmp(arg)
        return self._add("c", f"{fn}({arg})", self.phase.get(arg, 0) + 1, [arg])


Template = Callable[[Emitter, list, dict], str]


def _bin(symbol: str) -> Template:
    return lambda e, a, at: f"{a[0]} {symbol} {a[1]}"


def _inline(fn: str) -> Template:
    """A function Numba compiles to an instruction (``abs``, ``sqrt``, ``floor``): no call."""
    return lambda e, a, at: f"{fn}({a[0]})"


def _libm(fn: str) -> Template:
    return lambda e, a, at: e.call(fn, a[0])


#: ``x ** k`` for these literal exponents, written as the arithmetic NumPy's ``power`` uses.
POWERS = {
    1.0: "{x}",
    2.0: "{x} * {x}",
    3.0: "{x} * {x} * {x}",
    0.5: "math.sqrt({x})",
    -1.0: "{one} / {x}",
    -0.5: "{one} / math.sqrt({x})",
    -2.0: "{one} / ({x} * {x})",
}


def _pow(e: Emitter, a: list, at: dict) -> str:
    return POWERS[float(a[1])].format(x=a[0], one=e.const(1.0))


def _maximum(e: Emitter, a: list, at: dict) -> str:
    x, y = a
    return f"{x} if ({x} > {y} or {x} != {x}) else {y}"  # a NaN in either operand wins, as np.maximum


def _minimum(e: Emitter, a: list, at: dict) -> str:
    x, y = a
    return f"{x} if ({x} < {y} or {x} != {x}) else {y}"


def _sign(e: Emitter, a: list, at: dict) -> str:
    x, one, zero = a[0], e.const(1.0), e.const(0.0)
    return f"{one} if {x} > {zero} else (-{one} if {x} < {zero} else {x})"


def _rsqrt(e: Emitter, a: list, at: dict) -> str:
    return f"{e.const(1.0)} / math.sqrt({a[0]})"


def _sigmoid(e: Emitter, a: list, at: dict) -> str:
    one = e.const(1.0)
    return f"{one} / ({one} + {e.call('math.exp', f'-{a[0]}')})"


def _reciprocal(e: Emitter, a: list, at: dict) -> str:
    return f"{e.const(1.0)} / {a[0]}"


def _relu(e: Emitter, a: list, at: dict) -> str:
    x, zero = a[0], e.const(0.0)
    return f"{zero} if {x} <= {zero} else {x}"  # NaN fails x <= 0 and stays NaN


def _relu_backward(e: Emitter, a: list, at: dict) -> str:
    g, y, zero = a[0], a[1], e.const(0.0)
    return f"{zero} if {y} <= {zero} else {g}"


def _leaky_relu(e: Emitter, a: list, at: dict) -> str:
    x = a[0]
    return f"{x} if {x} > {e.const(0.0)} else {x} * {e.const(at.get('negative_slope', 0.01))}"


def _elu(e: Emitter, a: list, at: dict) -> str:
    x = a[0]
    return f"{x} if {x} > {e.const(0.0)} else {e.call('math.expm1', x)} * {e.const(at.get('alpha', 1.0))}"


def _gelu(e: Emitter, a: list, at: dict) -> str:
    # the association of Gelu.forward: 0.5 * x * (1 + erf(x / sqrt 2)), and for 'tanh'
    # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x * x * x)))
    x, half, one = a[0], e.const(0.5), e.const(1.0)
    if at.get("approximate", "none") == "tanh":
        inner = f"{e.const(math.sqrt(2.0 / math.pi))} * ({x} + {e.const(0.044715)} * {x} * {x} * {x})"
        return f"{half} * {x} * ({one} + {e.call('math.tanh', inner)})"
    return f"{half} * {x} * ({one} + {e.call('math.erf', f'{x} / {e.const(math.sqrt(2.0))}')})"


def _silu(e: Emitter, a: list, at: dict) -> str:
    one = e.const(1.0)
    return f"{a[0]} * ({one} / ({one} + {e.call('math.exp', f'-{a[0]}')}))"


def _softplus(e: Emitter, a: list, at: dict) -> str:
    x, beta, zero = a[0], e.const(at.get("beta", 1.0)), e.const(0.0)
    bx = e.tmp(f"{x} * {beta}")
    # np.logaddexp(0, t) = max(t, 0) + log1p(exp(-|t|))
    tail = e.call("math.log1p", e.call("math.exp", f"-abs({bx})"))
    soft = e.tmp(f"(max({bx}, {zero}) + {tail}) / {beta}")
    return f"{x} if {bx} > {e.const(at.get('threshold', 20.0))} else {soft}"


def _clamp(e: Emitter, a: list, at: dict) -> str:
    x = a[0]
    lo, hi = at.get("min"), at.get("max")
    if lo is not None:
        k = e.const(lo)
        x = e.tmp(f"{k} if {x} < {k} else {x}")  # NaN fails the test and stays NaN
    if hi is not None:
        k = e.const(hi)
        x = e.tmp(f"{k} if {x} > {k} else {x}")
    return x


def _where(e: Emitter, a: list, at: dict) -> str:
    return f"{a[1]} if {a[0]} else {a[2]}"


#: op class -> how one element of its output is computed from its operands (names in the kernel).
TEMPLATES: dict[type[Op], Template] = {
    arith.Add: _bin("+"),
    arith.Sub: _bin("-"),
    arith.Mul: _bin("*"),
    arith.Div: _bin("/"),
    arith.Pow: _pow,
    arith.Maximum: _maximum,
    arith.Minimum: _minimum,
    arith.Where: _where,
    arith.Clamp: _clamp,
    unary.Neg: lambda e, a, at: f"-{a[0]}",
    unary.Abs: _inline("abs"),
    unary.Sign: _sign,
    unary.Sqrt: _inline("math.sqrt"),
    unary.Rsqrt: _rsqrt,
    unary.Reciprocal: _reciprocal,
    unary.Floor: _inline("np.floor"),
    unary.Ceil: _inline("np.ceil"),
    unary.Trunc: _inline("np.trunc"),
    unary.Exp: _libm("math.exp"),
    unary.Log: _libm("math.log"),
    unary.Log1p: _libm("math.log1p"),
    unary.Expm1: _libm("math.expm1"),
    unary.Sin: _libm("math.sin"),
    unary.Cos: _libm("math.cos"),
    unary.Tanh: _libm("math.tanh"),
    unary.Erf: _libm("math.erf"),
    unary.Sigmoid: _sigmoid,
    activation.Relu: _relu,
    activation.ReluBackward: _relu_backward,
    activation.LeakyRelu: _leaky_relu,
    activation.Elu: _elu,
    activation.Gelu: _gelu,
    activation.Silu: _silu,
    activation.Softplus: _softplus,
}


# ---- code generation -----------------------------------------------------------------------------


def kernel_source(steps: list[Step], dtype: np.dtype, kinds: tuple) -> str:
    """The source of a module with a ``serial`` and a ``parallel`` kernel computing ``steps``
    in ``dtype``, input ``k`` read as ``kinds[k]`` (see the module docstring).

    Both have the signature ``(out, R, C, a0, a1, ..., m<k>...)``: the flat output, the row
    and column counts, the flat inputs, and the modulus of each ``row`` input.
    """
    e = Emitter(f"np.{dtype.name}")
    names: list[str] = []
    for op, operands, attrs in steps:
        args = []
        for kind, v in operands:
            if kind == "leaf":
                args.append(f"x{v}")
            elif kind == "step":
                args.append(names[v])
            elif op is arith.Pow:
                args.append(v)  # the exponent picks the arithmetic (see POWERS)
            else:
                args.append(e.const(v))
        names.append(e.tmp(TEMPLATES[op](e, args, attrs)))
    result = names[-1]
    labels = ",".join(op.label for op, _, _ in steps)
    params = ["out", "R", "C"] + [f"a{k}" for k in range(len(kinds))]
    params += [f"m{k}" for k, kind in enumerate(kinds) if kind == "row"]
    head = ", ".join(params)
    options = 'cache=True, error_model="numpy", nogil=True'
    text = [
        f'"""A fused elementwise kernel generated by minidl: {labels} ({dtype.name}; inputs {", ".join(kinds)})."""',
        "",
        "import math",
        "",
        "import numba",
        "import numpy as np",
        "",
        "",
        f"@numba.njit({options})",
        f"def serial({head}):",
        *_body(e, result, kinds, dtype, "range"),
        "",
        "",
        f"@numba.njit(parallel=True, {options})",
        f"def parallel({head}):",
        *_body(e, result, kinds, dtype, "numba.prange"),
        "",
    ]
    return "\n".join(text)


def _body(e: Emitter, result: str, kinds: tuple, dtype: np.dtype, loop: str) -> list[str]:
    """The kernel's body: hoisted constants, then the task loop with one inner loop per phase."""

    # Loops in execution order: arithmetic of phase 0, library calls of phase 1, arithmetic
    # of phase 1, calls of phase 2, ...; a statement's loop is ("calls" or "arith", phase).
    def loop_of(name: str, is_call: bool) -> tuple[int, int]:
        p = e.phase[name]
        return (p, 0) if is_call else (p, 1)

    where: dict[str, tuple[int, int]] = {}
    loops: dict[tuple[int, int], list[tuple[str, str, list[str]]]] = {}
    for name, expr, _, deps in e.statements:
        key = loop_of(name, name.startswith("c"))
        where[name] = key
        loops.setdefault(key, []).append((name, expr, deps))
    scratch: set[str] = set()
    for key, stmts in loops.items():
        for _, _, deps in stmts:
            scratch.update(d for d in deps if not d.startswith("x") and where[d] != key)
    if where[result] != max(loops):  # the result is stored from the last loop
        scratch.add(result)

    lines = [f"    {h}" for h in e.hoisted]
    lines += [f"    x{k} = a{k}[0]" for k, kind in enumerate(kinds) if kind == "scalar"]
    lines += [
        f"    tasks_per_row = (C + {BLOCK - 1}) // {BLOCK}",
        f"    for task in {loop}(R * tasks_per_row):",
        "        r = task // tasks_per_row",
        f"        c0 = (task - r * tasks_per_row) * {BLOCK}",
        f"        w = min({BLOCK}, C - c0)",
        "        base = r * C + c0",
        "        o = out[base:base + w]",
    ]
    for k, kind in enumerate(kinds):
        if kind == "full":
            lines.append(f"        f{k} = a{k}[base:base + w]")
        elif kind == "col":
            lines.append(f"        f{k} = a{k}[c0:c0 + w]")
        elif kind == "row":
            lines.append(f"        x{k} = a{k}[r % m{k}]")
    lines += [f"        s_{name} = np.empty(w, np.{dtype.name})" for name in sorted(scratch)]
    last = max(loops)
    for key in sorted(loops):
        stmts = loops[key]
        reads = sorted({d for _, _, deps in stmts for d in deps})
        lines.append("        for i in range(w):")
        for d in reads:
            if d.startswith("x"):
                if kinds[int(d[1:])] in ("full", "col"):
                    lines.append(f"            {d} = f{d[1:]}[i]")
            elif where[d] != key:
                lines.append(f"            {d} = s_{d}[i]")
        for name, expr, _ in stmts:
            lines.append(f"            {name} = {expr}")
            if name in scratch and name != result:
                lines.append(f"            s_{name}[i] = {name}")
        if key == last:
            lines.append(f"            o[i] = {result}")
        elif result in [n for n, _, _ in stmts]:
            lines.append(f"            s_{result}[i] = {result}")
    return lines


# ---- running a fused expression ----------------------------------------------------------------------


class FusedKernel:
    """The ``forward`` of a fused op: ``kernel(*input_arrays) -> array``.

    Holds the expression (``steps`` computing in ``dtype``) and, per combination of input
    shapes and strides seen, a *plan*: which compiled kernel to call with which arguments.
    Inputs it cannot handle (not NumPy arrays, an unexpected dtype, a broadcast pattern that
    is none of the four kinds) go through ``reference``: the ops one by one.
    """

    def __init__(self, steps: list[Step], leaf_dtypes: list[np.dtype], dtype: Any) -> None:
        self.steps = steps
        self.leaf_dtypes = leaf_dtypes
        self.dtype = dtype  # a minidl DType
        self._np_dtype = np.dtype(dtype.np)
        self._plans: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"<FusedKernel {','.join(op.label for op, _, _ in self.steps)} ({self.dtype.name})>"

    def __call__(self, *arrays: Any) -> Any:
        key = tuple((a.shape, a.strides, a.dtype) if type(a) is np.ndarray else None for a in arrays)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(arrays)
            if len(self._plans) < 64:
                self._plans[key] = plan
        if plan is False:
            return self.reference(*arrays)
        fn, out_shape, rows, cols, moduli, narrow = plan
        out = np.empty(out_shape, self._np_dtype)
        if rows and cols:
            args = [_as_flat(a if index is None else a[index]) for a, index in zip(arrays, narrow)]
            fn(out.reshape(-1), rows, cols, *args, *moduli)
        return out

    def reference(self, *arrays: Any) -> Any:
        """The expression evaluated op by op with each op's own ``forward`` (what the graph
        computed before fusion)."""
        values: list[Any] = []
        for op, operands, attrs in self.steps:
            args = [arrays[v] if kind == "leaf" else values[v] if kind == "step" else v for kind, v in operands]
            out = op.forward(*args, **attrs)
            if type(out) is not np.ndarray and isinstance(out, np.generic):
                out = np.asarray(out)
            values.append(out)
        return values[-1]

    def _plan(self, arrays: tuple) -> Any:
        """``(kernel, output shape, R, C, moduli, narrowing)`` for these inputs, or ``False``."""
        if any(type(a) is not np.ndarray for a in arrays):
            return False
        if any(a.dtype != d for a, d in zip(arrays, self.leaf_dtypes)):
            return False
        try:
            out_shape = np.broadcast_shapes(*(a.shape for a in arrays))
        except ValueError:
            return False  # the reference raises the op's own error
        if math.prod(out_shape) == 0:
            return None, out_shape, 0, 0, (), ()  # nothing to compute
        # A dimension with stride 0 is a broadcast (a ``broadcast_to`` view): read it as size 1
        # instead of copying the stretched array.
        narrow = [_narrowing(a) for a in arrays]
        shapes = [a.shape if index is None else a[index].shape for a, index in zip(arrays, narrow)]
        layout = grid_layout(out_shape, shapes)
        if layout is None:
            return False
        kinds, rows, cols, moduli = layout
        module = _load(kernel_source(self.steps, self._np_dtype, kinds))
        fn = module.parallel if rows * cols >= PARALLEL_MIN else module.serial
        return fn, out_shape, rows, cols, moduli, narrow


def _narrowing(a: np.ndarray) -> tuple | None:
    """An index that shrinks each broadcast (stride 0) dimension of ``a`` to size 1, or ``None``."""
    if 0 not in a.strides:
        return None
    return tuple(slice(0, 1) if st == 0 and n > 1 else slice(None) for st, n in zip(a.strides, a.shape))


def _as_flat(a: np.ndarray) -> np.ndarray:
    """The array as the 1-D, C-ordered run of its elements (a copy only if it is strided)."""
    return a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)


def grid_layout(out_shape: tuple, shapes: list[tuple]) -> tuple | None:
    """``(kinds, R, C, moduli)``: how the kernel reads each input, or ``None`` if one of them
    broadcasts in a way the four kinds cannot express.

    Output dimensions of size 1 are dropped; over the rest, an input either has a dimension
    in full or broadcasts along it. A split point cuts the dimensions into rows and columns;
    of the splits that express every input, the one with the longest rows (largest ``C``) is
    taken, as long as it leaves at least two rows to share among threads.
    """
    dims = [i for i, s in enumerate(out_shape) if s != 1]
    nd = len(out_shape)
    bits = []
    for shape in shapes:
        padded = (1,) * (nd - len(shape)) + tuple(shape)
        bits.append(tuple(padded[i] != 1 for i in dims))
    full = (True,) * len(dims)
    none = (False,) * len(dims)
    size = math.prod(out_shape)
    if all(b == full or b == none for b in bits):
        return tuple("full" if b == full and dims else "scalar" for b in bits), 1, size, ()
    best = None
    for p in range(1, len(dims)):
        kinds, moduli = [], []
        for b in bits:
            lead, trail = b[:p], b[p:]
            if b == full:
                kinds.append("full")
            elif b == none:
                kinds.append("scalar")
            elif not any(lead) and all(trail):
                kinds.append("col")
            elif not any(trail) and _ends_with_run(lead):
                kinds.append("row")
                moduli.append(math.prod(out_shape[dims[i]] for i in range(p) if lead[i]))
            else:
                break
        else:
            rows = math.prod(out_shape[d] for d in dims[:p])
            if best is None or (rows >= 2 and size // rows > best[2]):
                best = (tuple(kinds), rows, size // rows, tuple(moduli))
    return best


def _ends_with_run(lead: tuple) -> bool:
    """``F..F T..T`` with at least one ``T``: the input covers the last row dimensions."""
    seen = False
    for b in lead:
        if b:
            seen = True
        elif seen:
            return False
    return seen


# ---- the kernel cache ----------------------------------------------------------------------------------

_MODULES: dict[str, Any] = {}
_LOCK = threading.Lock()
_BUILT = [0]


def cache_dir() -> Path | None:
    """Where generated kernel sources live: ``$MINIDL_CACHE_DIR/fused``, by default
    ``~/.cache/minidl/fused``; ``None`` if it cannot be written (kernels are then compiled
    from memory, without Numba's disk cache)."""
    root = os.environ.get("MINIDL_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "minidl")
    path = Path(root) / "fused"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def _load(source: str) -> Any:
    """The module of kernels for ``source``, built at most once per process."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    module = _MODULES.get(digest)
    if module is None:
        with _LOCK:
            module = _MODULES.get(digest)
            if module is None:
                module = _import(digest, source)
                _MODULES[digest] = module
                _BUILT[0] += 1
    return module


def _import(digest: str, source: str) -> Any:
    name = f"minidl_fused_{digest}"
    folder = cache_dir()
    if folder is not None:
        path = folder / f"{name}.py"
        try:
            if not path.exists() or path.read_text() != source:
                # write, then rename: nobody sees half a file
                fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
                with os.fdopen(fd, "w") as f:
                    f.write(source)
                os.replace(tmp, path)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            # registered before it runs: Numba's cache finds a kernel's module by this name
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        except OSError:
            sys.modules.pop(name, None)
    module = type(sys)(name)
    exec(compile(source.replace("cache=True", "cache=False"), f"<fused kernel {digest}>", "exec"), module.__dict__)
    return module


def kernel_cache_info() -> dict[str, int]:
    """``kernels``: distinct fused kernels this process has built; ``compiled``: how many
    compilations Numba has made of them (one per variant and argument types)."""
    compiled = sum(len(m.serial.signatures) + len(m.parallel.signatures) for m in _MODULES.values())
    return {"kernels": _BUILT[0], "compiled": compiled}
