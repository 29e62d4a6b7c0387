"""The op-testing harness: every op, checked against PyTorch the same way.

In the spirit of PyTorch's OpInfo and Chainer's FunctionTestCase, each op is one ``OpInfo``
entry in ``op_db.py``: a function written once against a *library* object (``lib`` is either
minidl or torch, with ``lib.F`` its ``nn.functional``), and a generator of sample inputs. For
every sample and dtype the harness checks:

1. **forward**: minidl's outputs equal torch's (values and dtype);
2. **inference**: each recorded node's ``infer`` rule predicts its output shape and dtype;
3. **backward**: ``minidl.autograd.grad`` equals ``torch.autograd.grad`` for a random
   output gradient;
4. **second order** (smooth ops): the gradient of ``<first gradients, v>`` with respect to the
   inputs *and* the output gradient equals torch's -- so even linear ops have their double
   backward checked, through the output-gradient input;
5. **gradcheck** and **gradgradcheck** against central differences in float64 (small samples).

Tolerances, documented and applied uniformly (``rtol``, ``atol``):

==========  ===================  ===================  ===================
dtype       forward              first derivative     second derivative
==========  ===================  ===================  ===================
float32     2e-5, 1e-6           1e-4, 1e-5           1e-3, 1e-4
float64     1e-9, 1e-11          1e-8, 1e-10          1e-7, 1e-9
==========  ===================  ===================  ===================

An entry may loosen them (``tol_scale``) where float32 summation order legitimately differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import minidl
from minidl.ops.op import spec_of
from minidl.tape import Node

TOLERANCES = {
    "float32": {"forward": (2e-5, 1e-6), "grad": (1e-4, 1e-5), "grad2": (1e-3, 1e-4)},
    "float64": {"forward": (1e-9, 1e-11), "grad": (1e-8, 1e-10), "grad2": (1e-7, 1e-9)},
}


class Lib:
    """minidl or torch, with ``.F`` for its ``nn.functional``, so one lambda serves both."""

    def __init__(self, module: Any, functional: Any, name: str) -> None:
        self._module = module
        self.F = functional
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._module, attr)


MINIDL = Lib(minidl, minidl.nn.functional, "minidl")
TORCH = Lib(torch, torch.nn.functional, "torch")


@dataclass
class Sample:
    """Arguments for one call. NumPy float arrays become tensors of the dtype under test (and
    require grad unless listed in ``no_grad``); integer and bool arrays become tensors as they
    are; anything else is passed through unchanged."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    no_grad: tuple[int, ...] = ()
    name: str = ""
    #: False where finite differences do not measure the defined gradient: at ties (max),
    #: or where the gradient is masked on purpose (embedding's padding_idx).
    finite_differences: bool = True

    def __repr__(self) -> str:
        shapes = [a.shape if isinstance(a, np.ndarray) else a for a in self.args]
        return f"Sample({self.name or shapes}, {self.kwargs})"


@dataclass
class OpInfo:
    name: str
    fn: Callable[..., Any]
    samples: Callable[[np.random.Generator], list[Sample]]
    dtypes: tuple[str, ...] = ("float32", "float64")
    differentiable: bool = True
    second_order: bool = True
    gradcheck: bool = True
    noncontiguous: bool = True
    tol_scale: float = 1.0

    def __repr__(self) -> str:
        return self.name


# ---- converting samples ----------------------------------------------------------------------


def _noncontiguous(a: np.ndarray) -> np.ndarray:
    """The same values in a strided (non-contiguous) view."""
    if a.ndim == 0 or a.size == 0:
        return a
    wide = np.repeat(a, 2, axis=-1)
    return wide[..., ::2]


def make_args(sample: Sample, lib: Lib, dtype: str, noncontiguous: bool = False) -> tuple[list, list]:
    """Convert a sample's arguments for ``lib``; return (args, the tensors that require grad)."""
    args, diff = [], []
    for i, a in enumerate(sample.args):
        if isinstance(a, np.ndarray):
            arr = a.astype(dtype) if a.dtype.kind == "f" else a
            arr = _noncontiguous(arr) if noncontiguous else arr.copy()
            if lib is TORCH:
                t = torch.from_numpy(arr)
            else:
                t = minidl.Tensor(arr)
            if arr.dtype.kind == "f" and i not in sample.no_grad:
                t.requires_grad_(True)
                diff.append(t)
            args.append(t)
        else:
            args.append(a)
    return args, diff


def make_kwargs(sample: Sample, lib: Lib, dtype: str) -> dict:
    out = {}
    for k, v in sample.kwargs.items():
        if isinstance(v, np.ndarray):
            arr = v.astype(dtype) if v.dtype.kind == "f" else v.copy()
            out[k] = torch.from_numpy(arr) if lib is TORCH else minidl.Tensor(arr)
        else:
            out[k] = v
    return out


def flat_outputs(out: Any) -> list:
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in flat_outputs(item)]
    return [out]


def to_numpy(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        if t._is_zerotensor():
            return np.zeros(tuple(t.shape))
        return t.detach().numpy()
    if isinstance(t, minidl.Tensor):
        return t.detach().numpy()
    return np.asarray(t)


def assert_close(actual: Any, expected: Any, rtol: float, atol: float, what: str) -> None:
    a, e = to_numpy(actual), to_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != torch's {e.shape}"
    if a.dtype.kind == "b" or e.dtype.kind == "b" or a.dtype.kind in "iu":
        np.testing.assert_array_equal(a, e, err_msg=what)
    else:
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what, equal_nan=True)


def dtype_name(t: Any) -> str:
    if isinstance(t, torch.Tensor):
        return str(t.dtype).replace("torch.", "")
    return t.dtype.name


# ---- the checks -----------------------------------------------------------------------------


def _grad_outputs(outs: list, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.standard_normal(to_numpy(o).shape) for o in outs]


def _diff_outputs(outs: list) -> list[int]:
    return [i for i, o in enumerate(outs) if o.dtype.is_floating_point and o.requires_grad]


def check_forward(info: OpInfo, sample: Sample, dtype: str, noncontiguous: bool = False) -> None:
    rtol, atol = (x * info.tol_scale for x in TOLERANCES[dtype]["forward"])
    m_args, _ = make_args(sample, MINIDL, dtype, noncontiguous)
    t_args, _ = make_args(sample, TORCH, dtype, noncontiguous)
    m_out = flat_outputs(info.fn(MINIDL, *m_args, **make_kwargs(sample, MINIDL, dtype)))
    t_out = flat_outputs(info.fn(TORCH, *t_args, **make_kwargs(sample, TORCH, dtype)))
    assert len(m_out) == len(t_out), f"{info.name}: {len(m_out)} outputs, torch has {len(t_out)}"
    for k, (m, t) in enumerate(zip(m_out, t_out)):
        assert dtype_name(m) == dtype_name(t), (
            f"{info.name} output {k}: dtype {dtype_name(m)} != torch's {dtype_name(t)}"
        )
        assert_close(m, t, rtol, atol, f"{info.name} forward output {k} {sample}")
    check_inference(info, m_out)


def check_inference(info: OpInfo, outputs: list) -> None:
    """Every node in the recorded graph: ``infer`` on its inputs' specs gives its output's."""
    seen: set[int] = set()
    stack = [o.grad_fn for o in outputs if isinstance(o, minidl.Tensor) and o.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen or node._inputs is None:
            continue
        seen.add(id(node))
        specs = [spec_of(x) for x in node._inputs]
        predicted = node.op.infer(*specs, **(node.attrs or {}))
        actual = node._out_data
        assert tuple(predicted.shape) == tuple(actual.shape), (
            f"{info.name}: {node.op.name}.infer predicted shape {predicted.shape}, forward gave {actual.shape}"
        )
        assert predicted.dtype.np == actual.dtype, (
            f"{info.name}: {node.op.name}.infer predicted {predicted.dtype}, forward gave {actual.dtype}"
        )
        stack.extend(e for e in node.edges if type(e) is Node)


def check_backward(
    info: OpInfo, sample: Sample, dtype: str, rng: np.random.Generator, noncontiguous: bool = False
) -> None:
    rtol, atol = (x * info.tol_scale for x in TOLERANCES[dtype]["grad"])
    m_args, m_diff = make_args(sample, MINIDL, dtype, noncontiguous)
    t_args, t_diff = make_args(sample, TORCH, dtype, noncontiguous)
    if not m_diff:
        return
    m_out = flat_outputs(info.fn(MINIDL, *m_args, **make_kwargs(sample, MINIDL, dtype)))
    t_out = flat_outputs(info.fn(TORCH, *t_args, **make_kwargs(sample, TORCH, dtype)))
    idx = _diff_outputs(t_out)
    if not idx:
        return
    gouts = _grad_outputs([t_out[i] for i in idx], rng)
    m_grads = minidl.autograd.grad(
        [m_out[i] for i in idx], m_diff, [minidl.Tensor(g.astype(dtype)) for g in gouts], allow_unused=True
    )
    t_grads = torch.autograd.grad(
        [t_out[i] for i in idx], t_diff, [torch.from_numpy(g.astype(dtype)) for g in gouts], allow_unused=True
    )
    for k, (mg, tg) in enumerate(zip(m_grads, t_grads)):
        if tg is None:
            tg = torch.zeros_like(t_diff[k])
        if mg is None:
            mg = np.zeros(tuple(t_diff[k].shape))
        else:
            assert dtype_name(mg) == dtype, f"{info.name}: gradient {k} has dtype {dtype_name(mg)}, expected {dtype}"
        assert_close(mg, tg, rtol, atol, f"{info.name} gradient of input {k} {sample}")


def check_second_order(info: OpInfo, sample: Sample, dtype: str, rng: np.random.Generator) -> None:
    rtol, atol = (x * info.tol_scale for x in TOLERANCES[dtype]["grad2"])
    results = []
    gouts = vs = None
    for lib in (MINIDL, TORCH):
        args, diff = make_args(sample, lib, dtype)
        if not diff:
            return
        outs = flat_outputs(info.fn(lib, *args, **make_kwargs(sample, lib, dtype)))
        idx = [i for i, o in enumerate(outs) if o.dtype.is_floating_point and o.requires_grad]
        if not idx:
            return
        outs = [outs[i] for i in idx]
        if gouts is None:
            gouts = _grad_outputs(outs, rng)
            vs = [rng.standard_normal(tuple(d.shape)) for d in diff]
        wrap = torch.from_numpy if lib is TORCH else minidl.Tensor
        g_tensors = [wrap(g.astype(dtype)).requires_grad_(True) for g in gouts]
        grad_fn = torch.autograd.grad if lib is TORCH else minidl.autograd.grad
        firsts = grad_fn(outs, diff, g_tensors, create_graph=True, allow_unused=True)
        total = None
        for f, v in zip(firsts, vs):
            if f is None or not f.requires_grad:
                continue
            term = (f * wrap(v.astype(dtype))).sum()
            total = term if total is None else total + term
        if total is None:
            results.append(None)
            continue
        seconds = grad_fn(total, diff + g_tensors, allow_unused=True)
        results.append(
            [to_numpy(s) if s is not None else np.zeros(tuple(x.shape)) for s, x in zip(seconds, diff + g_tensors)]
        )
    m_res, t_res = results
    if t_res is None:
        assert m_res is None or all(np.all(r == 0) for r in m_res), f"{info.name}: torch's second derivative is empty"
        return
    assert m_res is not None, f"{info.name}: minidl's first derivatives are not differentiable but torch's are"
    for k, (m, t) in enumerate(zip(m_res, t_res)):
        assert_close(m, t, rtol, atol, f"{info.name} second derivative {k} {sample}")


def small(sample: Sample, limit: int) -> bool:
    """Whether a sample is cheap enough (and smooth enough) for the numerical checks."""
    if not sample.finite_differences:
        return False
    return sum(a.size for a in sample.args if isinstance(a, np.ndarray) and a.dtype.kind == "f") <= limit


def run_gradcheck(info: OpInfo, sample: Sample, second: bool) -> None:
    args, diff = make_args(sample, MINIDL, "float64")
    if not diff:
        return
    kwargs = make_kwargs(sample, MINIDL, "float64")

    def fn(*xs: Any) -> Any:
        outs = flat_outputs(info.fn(MINIDL, *xs, **kwargs))
        return tuple(o for o in outs if o.dtype.is_floating_point)

    check = minidl.autograd.gradgradcheck if second else minidl.autograd.gradcheck
    assert check(fn, tuple(args), atol=1e-5, rtol=1e-4)
