"""Symbolic gradients (``minidl.graph.gradients``) against torch autograd.

The same op table as the eager tests (``op_db.OPS``), run in static-graph mode: every array
argument becomes a ``placeholder``, the op is applied to the placeholders (which only builds
nodes), ``G.gradients(outputs, inputs, grad_ys)`` builds the backward pass as more nodes, and
a ``Session`` runs it on the sample's values. The result must equal ``torch.autograd.grad``
on the same values with the same output gradients, within the harness's tolerances.

Each op runs with two kinds of placeholders:

``static``  every size known when the graph is built;
``batch``   the leading (batch) size left unknown (``None``) on the batched arguments: the first
            array argument, and every other argument with the same leading size and at least
            one dimension. The backward rules then meet unknown sizes at build time (a
            broadcast whose reduction axes are only known when the graph runs, a mean whose
            count is unknown), and must still give torch's numbers.

Integer arrays (class targets, indices) are fed through integer placeholders too, so an
embedding lookup, a gather or ``x[i]`` runs on indices the graph only has when it runs.

Second order (gradients of gradients) is checked as in ``harness.check_second_order``: the
symbolic gradient of ``<first gradients, v>`` with respect to the inputs *and* the output
gradients (a Hessian-vector product plus the derivative through ``grad_ys``), against torch's
double backward, in float64 and float32.

``EXTRA`` adds graphs beyond single ops: values with several consumers (their gradients
accumulate), an MLP and a small conv net with their loss, attention, dropout with ``p = 0``,
and two batches of unknown size concatenated. First derivatives are also checked in the
rules' eager form (``create_graph=False``, what ``minimize`` builds) and at the other
optimization levels of the Session (0: as built; 2: with elementwise fusion).
``UNSUPPORTED`` lists what a static graph cannot do, with the error it must raise instead.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch

import minidl
from harness import MINIDL, TOLERANCES, TORCH, OpInfo, Sample, assert_close, flat_outputs, make_args, make_kwargs
from minidl import graph as G
from minidl.errors import ShapeError
from op_db import OPS, U, unary_samples

DTYPES = ("float64", "float32")
SHAPES = ("static", "batch")


# ---- building an op's graph from a sample ----------------------------------------------------------


def _batched(sample: Sample) -> set[int]:
    """The argument positions that get an unknown leading size in ``batch`` mode."""
    arrays = [(i, a) for i, a in enumerate(sample.args) if isinstance(a, np.ndarray)]
    if not arrays or arrays[0][1].ndim == 0:
        return set()
    lead = arrays[0][1].shape[0]
    return {i for i, a in arrays if a.ndim >= 1 and a.shape[0] == lead}


def _placeholder(arr: np.ndarray, unknown_batch: bool) -> G.SymbolicTensor:
    shape = tuple(arr.shape)
    if unknown_batch:
        shape = (None, *shape[1:])
    return G.placeholder(shape, dtype=minidl.dtypes.from_numpy_dtype(arr.dtype))


class Built:
    """An op's graph: the placeholders, their feeds, and the differentiable inputs and outputs."""

    def __init__(self, info: OpInfo, sample: Sample, dtype: str, shapes: str) -> None:
        self.graph = G.Graph()
        self.feeds: dict = {}
        self.diff: list = []
        batched = _batched(sample) if shapes == "batch" else set()
        with self.graph.as_default():
            args = []
            for i, a in enumerate(sample.args):
                if not isinstance(a, np.ndarray):
                    args.append(a)
                    continue
                arr = a.astype(dtype) if a.dtype.kind == "f" else a.copy()
                p = _placeholder(arr, i in batched)
                self.feeds[p] = arr
                if arr.dtype.kind == "f" and i not in sample.no_grad:
                    self.diff.append(p)
                args.append(p)
            kwargs = {}
            for k, v in sample.kwargs.items():
                if isinstance(v, np.ndarray):
                    arr = v.astype(dtype) if v.dtype.kind == "f" else v.copy()
                    p = _placeholder(arr, False)
                    self.feeds[p] = arr
                    kwargs[k] = p
                else:
                    kwargs[k] = v
            self.outputs = flat_outputs(info.fn(MINIDL, *args, **kwargs))
        for o in self.outputs:
            assert isinstance(o, G.SymbolicTensor), f"{info.name}: output {o!r} is not symbolic"

    def grad_placeholders(self, indices: list[int], dtype: str) -> list:
        with self.graph.as_default():
            return [G.placeholder(self.outputs[i].shape, dtype=dtype) for i in indices]


def _torch_reference(info: OpInfo, sample: Sample, dtype: str) -> tuple[list, list, list[int]]:
    args, diff = make_args(sample, TORCH, dtype)
    outs = flat_outputs(info.fn(TORCH, *args, **make_kwargs(sample, TORCH, dtype)))
    idx = [i for i, o in enumerate(outs) if o.dtype.is_floating_point and o.requires_grad]
    return outs, diff, idx


def _zeros_if_none(value: Any, like: Any) -> np.ndarray:
    if value is None:
        return np.zeros(tuple(like.shape))
    if isinstance(value, torch.Tensor):
        return np.zeros(tuple(value.shape)) if value._is_zerotensor() else value.detach().numpy()
    return value


# ---- the checks ------------------------------------------------------------------------------------


def check_graph_backward(
    info: OpInfo,
    sample: Sample,
    dtype: str,
    shapes: str,
    rng: np.random.Generator,
    optimize: int = 1,
    create_graph: bool = True,
) -> None:
    """First derivatives: ``G.gradients`` in a Session (at optimization level ``optimize``) ==
    ``torch.autograd.grad``. ``create_graph=False`` builds the rules' eager form (what
    ``minimize`` uses), ``True`` their differentiable one."""
    rtol, atol = (x * info.tol_scale for x in TOLERANCES[dtype]["grad"])
    t_out, t_diff, idx = _torch_reference(info, sample, dtype)
    if not t_diff or not idx:
        return
    built = Built(info, sample, dtype, shapes)
    gouts = [rng.standard_normal(tuple(t_out[i].shape)).astype(dtype) for i in idx]
    gys = built.grad_placeholders(idx, dtype)
    with built.graph.as_default():
        grads = G.gradients([built.outputs[i] for i in idx], built.diff, grad_ys=gys, create_graph=create_graph)
    t_grads = torch.autograd.grad(
        [t_out[i] for i in idx], t_diff, [torch.from_numpy(g) for g in gouts], allow_unused=True
    )
    fetch = [g for g in grads if g is not None]
    feeds = {**built.feeds, **dict(zip(gys, gouts))}
    values = iter(G.Session(built.graph, optimize=optimize).run(fetch, feeds))
    for k, (g, tg) in enumerate(zip(grads, t_grads)):
        expected = _zeros_if_none(tg, t_diff[k])
        if g is None:
            assert not np.any(expected), f"{info.name}: no symbolic gradient for input {k}, torch's is nonzero"
            continue
        actual = next(values)
        assert actual.dtype == np.dtype(dtype), f"{info.name}: gradient {k} has dtype {actual.dtype}"
        assert_close(actual, expected, rtol, atol, f"{info.name} [{shapes}] gradient of input {k} {sample}")


def check_graph_second_order(info: OpInfo, sample: Sample, dtype: str, shapes: str, rng: np.random.Generator) -> None:
    """Gradients of gradients: d<dL/dx, v>/d(x, grad_ys) built by ``G.gradients`` twice."""
    rtol, atol = (x * info.tol_scale for x in TOLERANCES[dtype]["grad2"])
    t_out, t_diff, idx = _torch_reference(info, sample, dtype)
    if not t_diff or not idx:
        return
    gouts = [rng.standard_normal(tuple(t_out[i].shape)).astype(dtype) for i in idx]
    vs = [rng.standard_normal(tuple(d.shape)).astype(dtype) for d in t_diff]

    # torch: the same construction as harness.check_second_order
    t_gys = [torch.from_numpy(g).requires_grad_(True) for g in gouts]
    firsts = torch.autograd.grad([t_out[i] for i in idx], t_diff, t_gys, create_graph=True, allow_unused=True)
    terms = [(f * torch.from_numpy(v)).sum() for f, v in zip(firsts, vs) if f is not None and f.requires_grad]
    if not terms:
        return
    t_seconds = torch.autograd.grad(sum(terms), t_diff + t_gys, allow_unused=True)

    built = Built(info, sample, dtype, shapes)
    gys = built.grad_placeholders(idx, dtype)
    with built.graph.as_default():
        m_firsts = G.gradients([built.outputs[i] for i in idx], built.diff, grad_ys=gys)
        vph = [G.placeholder(v.shape, dtype=dtype) for v in vs]
        m_terms = [(f * v).sum() for f, v in zip(m_firsts, vph) if f is not None]
        total = m_terms[0]
        for t in m_terms[1:]:
            total = total + t
        seconds = G.gradients(total, built.diff + gys)
    fetch = [s for s in seconds if s is not None]
    feeds = {**built.feeds, **dict(zip(gys, gouts)), **dict(zip(vph, vs))}
    values = iter(G.Session(built.graph).run(fetch, feeds))
    for k, (s, ts) in enumerate(zip(seconds, t_seconds)):
        expected = _zeros_if_none(ts, (t_diff + t_gys)[k])
        actual = next(values) if s is not None else np.zeros(expected.shape)
        assert_close(actual, expected, rtol, atol, f"{info.name} [{shapes}] second derivative {k} {sample}")


# ---- the table -------------------------------------------------------------------------------------

# More graphs than single ops: values with several consumers (gradients accumulate), chains
# through layers, dropout with p = 0, a batch-sized concatenation.
EXTRA = [
    OpInfo("dropout_p0", lambda lib, a: lib.F.dropout(a * 2.0, p=0.0).tanh(), unary_samples()),
    OpInfo("dropout_eval", lambda lib, a: lib.F.dropout(a, p=0.5, training=False) * a, unary_samples()),
    OpInfo(
        "shared_values",
        lambda lib, a, b: (a * b + lib.sigmoid(a) * a).sum(1) + (a @ b.T).mean() * a[:, 0],
        lambda rng: [Sample((U(rng, 3, 4), U(rng, 3, 4)))],
    ),
    OpInfo(
        "mlp_cross_entropy",
        lambda lib, x, w1, b1, w2, b2, t: lib.F.cross_entropy(
            lib.F.linear(lib.F.gelu(lib.F.linear(x, w1, b1)), w2, b2), t
        ),
        lambda rng: [Sample((U(rng, 5, 4), U(rng, 6, 4), U(rng, 6), U(rng, 3, 6), U(rng, 3), rng.integers(0, 3, 5)))],
    ),
    OpInfo(
        "conv_pool_linear",
        lambda lib, x, w, b, v: lib.F.linear(
            lib.F.max_pool2d(lib.F.relu(lib.F.conv2d(x, w, b, padding=1)), 2).flatten(1), v
        ).tanh(),
        lambda rng: [Sample((U(rng, 2, 3, 4, 4), U(rng, 4, 3, 3, 3), U(rng, 4), U(rng, 5, 16)))],
        second_order=False,
        tol_scale=3.0,
    ),
    OpInfo(
        "attention",
        lambda lib, q, k, v: lib.F.softmax(q @ k.transpose(-2, -1) / 2.0, -1) @ v,
        lambda rng: [Sample((U(rng, 2, 3, 4), U(rng, 2, 5, 4), U(rng, 2, 5, 4)))],
    ),
    OpInfo(
        "slices_of_one_value",
        lambda lib, a: a[:, 1:] * a[:, :-1] + lib.stack([a[:, 0], a[:, -1]], 1).sum(1, keepdim=True),
        lambda rng: [Sample((U(rng, 3, 4),))],
    ),
    OpInfo(
        "cat_batches",
        lambda lib, a, b: lib.cat([a, b * b], 0).exp(),
        lambda rng: [Sample((U(rng, 3, 4), U(rng, 3, 4)))],
    ),
]

TABLE = OPS + EXTRA


def _bare_product_dims(sample: Sample) -> bool:
    return sample.kwargs.get("dim") in (None, 0)


#: What a static graph cannot do (yet), with the error it raises instead: (op, shapes) ->
#: (which samples, error type, message pattern). The message must name the op and the fix.
UNSUPPORTED = {
    # prod's zero-safe gradient multiplies out an n x n matrix per slice: it needs n.
    ("prod", "batch"): (_bare_product_dims, ShapeError, r"prod: the gradient of a product .* give the placeholder"),
}


def _unsupported(info: OpInfo, sample: Sample, shapes: str) -> tuple | None:
    rule = UNSUPPORTED.get((info.name, shapes))
    if rule is not None and rule[0](sample):
        return rule[1:]
    return None


def _run(check, info: OpInfo, dtype: str, shapes: str, rng: np.random.Generator) -> None:
    for sample in info.samples(np.random.default_rng(0)):
        expected = _unsupported(info, sample, shapes)
        if expected is None:
            check(info, sample, dtype, shapes, rng)
        else:
            with pytest.raises(expected[0], match=expected[1]):
                check(info, sample, dtype, shapes, rng)


def _cases(filter_fn=lambda info: True, dtypes=DTYPES, shapes=SHAPES):
    for info in TABLE:
        if not info.differentiable or not filter_fn(info):
            continue
        for dtype in dtypes:
            if dtype not in info.dtypes:
                continue
            for shape in shapes:
                yield pytest.param(info, dtype, shape, id=f"{info.name}-{dtype}-{shape}")


@pytest.mark.parametrize("info,dtype,shapes", list(_cases()))
def test_gradients(info, dtype, shapes):
    _run(check_graph_backward, info, dtype, shapes, np.random.default_rng(7))


@pytest.mark.parametrize("info,dtype,shapes", list(_cases(shapes=("batch",))))
def test_gradients_in_the_form_minimize_builds(info, dtype, shapes):
    """``create_graph=False``: the rules' eager form, the one a train op runs."""
    _run(functools.partial(check_graph_backward, create_graph=False), info, dtype, shapes, np.random.default_rng(7))


@pytest.mark.parametrize("optimize", [0, 2])
@pytest.mark.parametrize("info", [i for i in TABLE if i.differentiable], ids=lambda i: i.name)
def test_gradients_at_other_optimization_levels(info, optimize):
    """Level 0 runs the graph as built; level 2 fuses elementwise chains (the default, 1, is
    what the tests above use)."""
    _run(functools.partial(check_graph_backward, optimize=optimize), info, "float64", "batch", np.random.default_rng(7))


@pytest.mark.parametrize("info,dtype,shapes", list(_cases(lambda i: i.second_order)))
def test_second_order(info, dtype, shapes):
    _run(check_graph_second_order, info, dtype, shapes, np.random.default_rng(11))
