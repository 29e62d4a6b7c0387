"""The graph compiler's passes (``minidl/graph/passes``): what each one removes, and that it changes nothing.

For every pass: a small graph before and after (node counts, which ops remain), and the
Session's results compared across optimization levels -- bitwise (same dtype, shape and
bytes) for level 1 against level 0, within float32 rounding for level 2 (fusion). The
gradient graphs of a small MLP and CNN go through the whole pipeline, checked against
PyTorch as well. Fusion is also checked kernel by kernel against the ops it replaces.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minidl
import minidl.nn.functional as F
from minidl import graph as G
from minidl import nn
from minidl.graph.passes import MAX_ROUNDS, PassReport, cse, dce, fusion, kernelgen, optimize
from minidl.graph.passes.rewrite import literal_key
from minidl.graph.program import prune
from minidl.ops.creation import Numel
from minidl.ops.op import Op, Spec, apply

# ---- building blocks ------------------------------------------------------------------------------


def bitwise_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a, b, equal_nan=True)
        and a.tobytes() == b.tobytes()
    )


def run(graph, fetches, feed=None, level=1):
    """The fetched values and the compiled program, at one optimization level."""
    with G.Session(graph, optimize=level) as sess:
        values = sess.run(fetches, feed_dict=feed)
        program = sess.program_for(fetches, feed)
    return values, program


def ops_of(program) -> list[str]:
    return [n.op_label() for n in program.subgraph.nodes if n.kind == "op"]


def check_levels(graph, fetches, feed=None, fused=False):
    """Run at levels 0, 1 (and 2); assert level 1 is bitwise level 0 (and 2 close); return programs."""
    fetches = fetches if isinstance(fetches, list) else [fetches]
    v0, p0 = run(graph, fetches, feed, 0)
    v1, p1 = run(graph, fetches, feed, 1)
    for a, b in zip(v0, v1):
        assert bitwise_equal(a, b)
    programs = [p0, p1]
    if fused:
        v2, p2 = run(graph, fetches, feed, 2)
        for a, b in zip(v0, v2):
            np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)
        programs.append(p2)
    return programs


def sub_of(*fetches):
    """A pruned subgraph for symbolic ``fetches`` (what Session hands to the passes)."""
    graph = fetches[0]._graph
    return prune(graph.nodes, [f._ref for f in fetches], [])


@pytest.fixture
def xv(rng):
    return rng.standard_normal((4, 3)).astype(np.float32)


# ---- the pipeline ------------------------------------------------------------------------------------


def test_level_0_changes_nothing_and_levels_are_checked():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((2,), name="x")
        y = x * 1.0
    sub = sub_of(y)
    same, report = optimize(sub, 0)
    assert same is sub and report.rows == []
    assert "level 0" in str(report)
    with pytest.raises(ValueError, match="level must be 0, 1 or 2"):
        optimize(sub, 3)


def test_report_lists_every_pass_with_node_counts(xv):
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 3), name="x")
        y = (x * 2.0) + (x * 2.0)
    _, program = run(g, y, {x: xv})
    report = program.report
    assert isinstance(report, PassReport)
    names = [row[0] for row in report.rows]
    assert names[0] == "dce" and names[-1] == "dce"
    assert names[1:4] == ["cse", "fold", "simplify"]
    assert len(names) <= 2 + 3 * MAX_ROUNDS
    assert report.nodes_before == 4 and report.nodes_after == 3
    text = str(report)
    assert "merged 1 duplicate node" in text and "-1 nodes" in text


# ---- dead-code elimination ---------------------------------------------------------------------------


def test_dce_drops_unread_nodes_and_keeps_effects():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((3,), name="x")
        b = minidl.exp(x)
        c = b * 2.0
        d = -c
        e = b + 1.0
        v = G.Variable(np.zeros(3, np.float32), name="v")
        up = G.assign(v, x)
    nodes = g.nodes
    sub = prune(nodes, [e._ref], [up.node])
    assert {"mul", "neg"}.isdisjoint(n.op_label() for n in sub.nodes)  # the Session's own pruning
    full = type(sub)(list(nodes), [e._ref], [up.node])  # as if a pass had left c and d unread
    out, note = dce(full)
    # the variable read goes too: the assignment writes x, it does not read v
    assert [n.op_label() for n in out.nodes] == ["placeholder", "exp", "add", "assign"]
    assert note == "removed 3 dead nodes" and d.node not in out.nodes  # mul, neg, the variable


def test_dce_keeps_fed_values_but_not_their_inputs():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((3,), name="x")
        h = minidl.exp(x)  # fed below: exp is never computed
        y = h * 3.0
        z = y + x
    out, _ = dce(prune(g.nodes, [y._ref], []), {h._ref})
    # exp stays (the program reads its value from the feeds); x, only its input, goes
    assert [n.op_label() for n in out.nodes] == ["exp", "mul"]
    fed, xv = np.array([1.0, 2.0, 3.0], np.float32), np.array([0.5, 0.25, -1.0], np.float32)
    for level in (0, 1, 2):
        values, _ = run(g, z, {h: fed, x: xv}, level)
        assert bitwise_equal(values, fed * np.float32(3.0) + xv)


# ---- common-subexpression elimination ----------------------------------------------------------------


def test_cse_merges_duplicates_and_cascades(xv):
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 3), name="x")
        w = G.Variable(np.arange(3, dtype=np.float32), name="w")
        a1, a2 = x * w, x * w
        s1, s2 = minidl.exp(a1), minidl.exp(a2)  # equal only once a1 and a2 merge
        y = s1 + s2
    p0, p1 = check_levels(g, y, {x: xv})
    assert ops_of(p0).count("mul") == 2 and ops_of(p0).count("exp") == 2
    assert ops_of(p1) == ["mul", "exp", "add"]
    assert "merged 2 duplicate nodes" in p1.report.rows[1][3]


def test_cse_compares_literals_and_attributes_by_value_and_type():
    assert literal_key(0.0) != literal_key(-0.0)
    assert literal_key(1) != literal_key(1.0) != literal_key(True)
    assert literal_key(float("nan")) == literal_key(float("nan"))
    assert literal_key(np.float32(1)) != literal_key(np.float64(1))
    assert literal_key(np.array([1, 2], np.int32)) != literal_key(np.array([1, 2], np.int64))
    assert literal_key(np.array([1, 2])) == literal_key(np.array([1, 2]))
    assert literal_key((1, slice(0, 2))) == literal_key((1, slice(0, 2)))
    assert literal_key({"a": [1]}) != literal_key({"a": [1.0]})


def test_cse_keeps_signed_zeros_apart():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((3,), name="x")
        y = (x + 0.0) * (x + -0.0)  # x + 0.0 turns -0.0 into +0.0; x + -0.0 does not
    xv = np.array([-0.0, 1.5, -2.0], np.float32)
    _, p1 = check_levels(g, y, {x: xv})
    assert ops_of(p1) == ["add", "add", "mul"]  # the two adds are different expressions
    (value,), _ = run(g, [y], {x: xv})
    assert np.signbit(value[0])  # (+0.0) * (-0.0) = -0.0


def test_cse_merges_equal_constants_only():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((2,), name="x")
        c1 = G.constant(np.array([1.0, 2.0], np.float32))
        c2 = G.constant(np.array([1.0, 2.0], np.float32))
        c3 = G.constant(np.array([1.0, 2.0], np.float64))
        y = (x * c1) + (x * c2) + (x.double() * c3).float()
    sub, note = cse(sub_of(y))
    constants = [n for n in sub.nodes if n.kind == "constant"]
    assert len(constants) == 2 and note == "merged 2 duplicate nodes"  # c2 into c1, then x * c2 into x * c1
    check_levels(g, y, {x: np.array([3.0, -1.0], np.float32)})


class _Draw(Op):
    """A random draw: stateful, so two calls are two different numbers."""

    name = "Draw"
    differentiable = False
    stateful = True

    @staticmethod
    def forward(x):
        return minidl.ops.creation.generator().random(x.shape).astype(x.dtype)

    @classmethod
    def infer(cls, x: Spec) -> Spec:
        return x


def test_cse_never_merges_stateful_ops():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((5,), name="x")
        y = apply(_Draw, x) - apply(_Draw, x)
    _, p1 = run(g, y, {x: np.zeros(5, np.float32)}, 1)
    assert ops_of(p1).count("draw") == 2
    minidl.manual_seed(3)
    v0, _ = run(g, y, {x: np.zeros(5, np.float32)}, 0)
    minidl.manual_seed(3)
    v1, _ = run(g, y, {x: np.zeros(5, np.float32)}, 1)
    assert bitwise_equal(v0, v1) and np.all(v1 != 0)


def test_cse_does_not_merge_reads_across_an_assignment():
    g = G.Graph()
    with g.as_default():
        w = G.Variable(np.array([1.0, 2.0], np.float32), name="w")
        before = w * 2.0
        up = G.assign(w, w + 10.0)
        after = w * 2.0  # reads the storage after the assignment wrote it
    for level in (0, 1):
        w.node.payload.storage._data[:] = [1.0, 2.0]
        b, _, a = run(g, [before, up, after], level=level)[0]
        assert bitwise_equal(b, np.array([2.0, 4.0], np.float32))
        assert bitwise_equal(a, np.array([22.0, 24.0], np.float32))


def test_cse_fetched_duplicates_stay_separate_arrays(xv):
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 3), name="x")
        y1, y2 = x * 3.0, x * 3.0
    (a, b), program = run(g, [y1, y2], {x: xv})
    assert a is not b and bitwise_equal(a, b)
    assert ops_of(program) == ["mul", "mul"]


# ---- constant folding --------------------------------------------------------------------------------


def test_fold_evaluates_constant_subexpressions(xv):
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 3), name="x")
        c = G.constant(np.array([1.0, 2.0, 3.0], np.float32))
        k = (c * 3.0 + 1.0) / 7.0  # all known at compile time
        y = x * k
    p0, p1 = check_levels(g, y, {x: xv})
    assert ops_of(p0) == ["mul", "add", "div", "mul"]
    assert ops_of(p1) == ["mul"]
    folded = [n for n in p1.subgraph.nodes if n.kind == "constant"]
    assert len(folded) == 1 and not folded[0].payload.flags.writeable
    assert "folded 3 nodes" in p1.report.rows[2][3]


def test_fold_leaves_fetched_large_and_failing_nodes():
    g = G.Graph()
    with g.as_default():
        c = G.constant(np.float32(2.0))
        fetched = c * 4.0  # fetched: the caller gets a fresh array each run
        big = minidl.ops.reduce.broadcast_to(c, (1024, 512))  # 2 MiB: cheaper to compute than to keep
        bad = G.constant(np.array([2, 3])) ** -1  # integers to a negative power: raises at run time
    values, program = run(g, [fetched, big.sum()])
    assert bitwise_equal(values[0], np.float32(8.0)) and values[0].flags.writeable
    assert "broadcast_to" in ops_of(program) and "mul" in ops_of(program)
    _, program = run(g, big.sum() * 1.0)
    assert "broadcast_to" in ops_of(program)
    with pytest.raises(ValueError, match="negative integer powers"):
        run(g, bad, level=1)


def test_fold_ops_with_saved_outputs_and_shape_only_ops():
    image = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((1, 1, 2, 2), name="x")
        pooled = F.max_pool2d(G.constant(image), 2)  # MaxPool2d saves its argmax: two outputs
        count = apply(Numel, x, dims=(0, 2, 3))  # depends on x's shape only, which is known
        y = (x + pooled).sum() / count
    p0, p1 = check_levels(g, y, {x: np.ones((1, 1, 2, 2), np.float32)})
    assert {"max_pool2d", "numel"} <= set(ops_of(p0))
    assert ops_of(p1) == ["add", "sum", "div"]
    assert "folded 2 nodes" in p1.report.rows[2][3]


def test_fold_never_uses_a_fed_constant(xv):
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 3), name="x")
        c = G.constant(np.float32(2.0))
        k = c * 5.0
        y = x * k + c
    fed = np.float32(-1.0)
    for level in (0, 1, 2):
        values, _ = run(g, y, {x: xv, c: fed}, level)
        assert bitwise_equal(values, xv * (fed * np.float32(5.0)) + fed)
        values, _ = run(g, y, {x: xv, k: np.asarray(fed)}, level)
        assert bitwise_equal(values, xv * fed + np.float32(2.0))


# ---- algebraic simplification ------------------------------------------------------------------------


def test_simplify_removes_exact_identities():
    xv = np.array([[-0.0, 0.0, np.inf], [-np.inf, np.nan, -1.5e-40]], np.float32)  # the hard cases
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((2, 3), name="x")
        h = -x  # a freshly computed array: removing a copy of it cannot change a layout
        ones = G.constant(np.ones(3, np.float32))
        ys = [
            h * 1.0,
            1.0 * h,
            h * ones,
            h / 1.0,
            h**1.0,
            h - 0.0,
            h + -0.0,
            minidl.neg(minidl.neg(h)),
            h.double().float(),
            x.reshape(2, 3),  # the view rules apply to any value
            x.permute(0, 1),
            x.permute(1, 0).permute(1, 0),
            G.stop_gradient(x),
            minidl.ops.reduce.broadcast_to(x + 2.0, (2, 3)),
        ]
        y = sum(ys[1:], ys[0])
        kept = [h + 0.0, h - -0.0, h * -1.0, h * 0.0]  # not exact: -0.0, the sign of NaN, inf * 0
    p0, p1 = check_levels(g, [y] + kept, {x: xv})
    # left: h, the sum's adds, x + 2 (under the broadcast), and the four inexact rewrites
    assert sorted(ops_of(p1)) == sorted(["neg"] + ["add"] * (len(ys) - 1) + ["add", "add", "sub", "mul", "mul"])
    notes = p1.report.rows[3][3]
    assert notes == "add x1, cast x1, detach x1, div x1, mul x3, neg x1, permute x2, pow x1, reshape x1, sub x1"


def test_simplify_keeps_copies_of_arrays_it_did_not_allocate():
    """``v * 1`` of a sliced view is a dense copy, and a sum over it pairs elements differently
    from a sum over the view; ``w * 1`` of a variable is a copy the caller may write into."""
    xv = np.random.default_rng(5).standard_normal((64, 301)).astype(np.float32)
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((64, 301), name="x")
        w = G.Variable(np.array([1.0, 2.0], np.float32), name="w")
        gapped = x[:, ::2] * 1.0
        total = gapped.sum()
        copied = w * 1.0
    check_levels(g, [total, copied], {x: xv})
    (_, c), program = run(g, [total, copied], {x: xv})
    assert ops_of(program).count("mul") == 2
    assert not np.shares_memory(c, w.node.payload.storage._data)


def test_simplify_respects_broadcasting_and_promotion():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((3,), name="x")
        i = G.placeholder((3,), dtype=minidl.int32, name="i")
        wide = x * G.constant(np.ones((2, 3), np.float32))  # the result is (2, 3), not x
        promoted = i * 1.0  # float32: the graph casts i explicitly, and cast(i) * 1.0 is cast(i)
        narrowing = (-x).double().float().double()  # float32 -> float64 -> float32 is exact: one cast stays
        d = G.placeholder((3,), dtype=minidl.float64, name="d")
        lossy = d.float().double()  # float64 -> float32 rounds: both casts stay
    xv = np.array([1.0, -0.0, 3.1], np.float32)
    iv = np.array([1, 2, 3], np.int32)
    dv = np.array([0.1, -0.0, 1e300], np.float64)
    p0, p1 = check_levels(g, [wide, promoted, narrowing, lossy], {x: xv, i: iv, d: dv})
    assert ops_of(p1).count("mul") == 1
    assert ops_of(p1).count("cast") == 4  # i -> float32, x -> float64, d -> float32 -> float64


def test_simplify_composes_permutes_and_reshapes():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((2, 3, 4), name="x")
        y = x.permute(1, 2, 0).permute(2, 0, 1).permute(0, 2, 1)  # = x.permute(0, 2, 1)
        z = (x * 2.0).reshape(6, 4).reshape(24)  # of a dense array: one reshape
        kept = x.permute(2, 1, 0).reshape(6, 4).reshape(24)  # of a transposed view: the first copies, so both stay
    xv = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    _, p1 = check_levels(g, [y, z, kept], {x: xv})
    perms = [n for n in p1.subgraph.nodes if n.op_label() == "permute"]
    assert len(perms) == 2 and perms[0].attrs["dims"] == (0, 2, 1)
    assert ops_of(p1).count("reshape") == 3


# ---- gradient graphs of an MLP and a CNN -------------------------------------------------------------


def _mlp_graph(batch):
    minidl.manual_seed(0)
    g = G.Graph()
    with g.as_default():
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5))
        x = G.placeholder((batch, 12), name="x")
        y = G.placeholder((batch,), dtype=minidl.int64, name="y")
        loss = F.cross_entropy(model(x), y)
        grads = G.gradients(loss, list(model.parameters()))
    return g, x, y, loss, grads, model


def _cnn_graph(batch):
    minidl.manual_seed(0)
    g = G.Graph()
    with g.as_default():
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(6 * 2 * 2, 5),
        )
        x = G.placeholder((batch, 1, 8, 8), name="x")
        y = G.placeholder((batch,), dtype=minidl.int64, name="y")
        loss = F.cross_entropy(model(x), y)
        grads = G.gradients(loss, list(model.parameters()))
    return g, x, y, loss, grads, model


@pytest.mark.parametrize("make,shape", [(_mlp_graph, (6, 12)), (_cnn_graph, (3, 1, 8, 8))])
def test_training_graphs_unchanged_by_the_passes(make, shape, rng):
    g, x, y, loss, grads, model = make(shape[0])
    xv = rng.standard_normal(shape).astype(np.float32)
    yv = rng.integers(0, 5, shape[0])
    p0, p1, p2 = check_levels(g, [loss] + grads, {x: xv, y: yv}, fused=True)
    assert len(p1.subgraph.nodes) <= len(p0.subgraph.nodes)
    assert len(p2.subgraph.nodes) <= len(p1.subgraph.nodes)
    # and the numbers are torch's
    values, _ = run(g, [loss] + grads, {x: xv, y: yv}, 2)
    tparams = [torch.tensor(p._data.copy(), requires_grad=True) for p in model.parameters()]
    tx = torch.tensor(xv)
    it = iter(tparams)
    h = tx
    for layer in model:
        name = type(layer).__name__
        if name == "Linear":
            h = torch.nn.functional.linear(h, next(it), next(it))
        elif name == "Conv2d":
            h = torch.nn.functional.conv2d(h, next(it), next(it), padding=1)
        elif name == "ReLU":
            h = torch.relu(h)
        elif name == "MaxPool2d":
            h = torch.nn.functional.max_pool2d(h, 2)
        elif name == "Flatten":
            h = h.flatten(1)
    tloss = torch.nn.functional.cross_entropy(h, torch.tensor(yv))
    tgrads = torch.autograd.grad(tloss, tparams)
    np.testing.assert_allclose(values[0], tloss.detach().numpy(), rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(values[1:], tgrads):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_training_steps_with_an_optimizer_are_unchanged(rng):
    """A train op (gradients, then an SGD step writing the parameters) run three times from
    the same weights: level 1 ends with bitwise the weights of level 0, level 2 close to them."""
    xv = rng.standard_normal((6, 12)).astype(np.float32)
    yv = rng.integers(0, 5, 6)
    finals = {}
    for level in (0, 1, 2):
        g, x, y, loss, _, model = _mlp_graph(None)
        with g.as_default():
            train = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).minimize(loss)
        with G.Session(g, optimize=level) as sess:
            losses = [sess.run([loss, train], {x: xv, y: yv})[0] for _ in range(3)]
        finals[level] = ([p._data.copy() for p in model.parameters()], losses)
    for a, b in zip(finals[0][0] + finals[0][1], finals[1][0] + finals[1][1]):
        assert bitwise_equal(a, b)
    for a, b in zip(finals[0][0] + finals[0][1], finals[2][0] + finals[2][1]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def _norm_gelu_graph(batch, features=16):
    minidl.manual_seed(0)
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((batch, features), name="x")
        w = G.Variable(minidl.randn(features, features), name="w")
        b = G.Variable(minidl.zeros(features), name="b")
        h = F.gelu(F.layer_norm(x @ w + b, (features,)))
        loss = (h**2).mean() + 0.1 * (w * w).sum()
        grads = G.gradients(loss, [w, b])
    return g, x, loss, grads


def test_passes_shrink_a_composite_gradient_graph(rng):
    g, x, loss, grads = _norm_gelu_graph(None)
    xv = rng.standard_normal((8, 16)).astype(np.float32)
    p0, p1, p2 = check_levels(g, [loss] + grads, {x: xv}, fused=True)
    notes = " ".join(row[3] for row in p1.report.rows)
    assert "merged" in notes and "folded" in notes and "pow x1" in notes  # w * w's rule; the seed; x ** 1
    assert len(p1.subgraph.nodes) < len(p0.subgraph.nodes)
    assert len(p2.subgraph.nodes) < len(p1.subgraph.nodes) - 10


# ---- fusion ------------------------------------------------------------------------------------------


def test_layer_norm_gelu_chain_becomes_one_node(rng):
    n, c = 32, 64
    xv = rng.standard_normal((n, c)).astype(np.float32)
    wv, bv = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, c), name="x")
        w, b = G.Variable(wv, name="w"), G.Variable(bv, name="b")
        y = F.gelu(F.layer_norm(x, (c,), w, b))
    values, program = run(g, y, {x: xv}, 2)
    fused = [n for n in program.subgraph.nodes if isinstance(n.op, type) and issubclass(n.op, fusion.FusedOp)]
    big = [n for n in fused if "gelu" in n.op.name]
    assert len(big) == 1
    assert big[0].op.name == "fused(mul,mul,add,gelu)"  # (x - mean) is read twice: it stays a node
    assert big[0].op.label.isidentifier() and big[0].output(0) == program.subgraph.outputs[0]
    assert "gelu" not in ops_of(program) and "add" not in ops_of(program)
    with minidl.no_grad():
        eager = F.gelu(F.layer_norm(minidl.tensor(xv), (c,), minidl.tensor(wv), minidl.tensor(bv)))
    np.testing.assert_allclose(values, eager.numpy(), rtol=2e-5, atol=1e-6)
    expected = torch.nn.functional.gelu(
        torch.nn.functional.layer_norm(torch.tensor(xv), (c,), torch.tensor(wv), torch.tensor(bv))
    )
    np.testing.assert_allclose(values, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_a_kernel_compiles_once_per_signature(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_CACHE_DIR", str(tmp_path))
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 8), name="x")
        y = F.relu(x * 3.25 + 0.125) * x  # an expression no other test builds
    xv = rng.standard_normal((16, 8)).astype(np.float32)
    before = fusion.kernel_cache_info()
    first, program = run(g, y, {x: xv}, 2)
    after_first = fusion.kernel_cache_info()
    assert after_first["kernels"] == before["kernels"] + 1
    assert after_first["compiled"] == before["compiled"] + 1
    assert len(list((tmp_path / "fused").glob("minidl_fused_*.py"))) == 1  # the source, for Numba's disk cache
    second, program2 = run(g, y, {x: xv[:5]}, 2)  # a new Session, another batch size: same kernel
    assert fusion.kernel_cache_info() == after_first
    assert program2.subgraph.nodes[-1].op is not program.subgraph.nodes[-1].op
    np.testing.assert_allclose(first, np.maximum(xv * np.float32(3.25) + np.float32(0.125), 0) * xv, rtol=1e-6)
    assert bitwise_equal(second, first[:5])


def _kernel(steps, leaf_dtypes=None, dtype=minidl.float32, n=None):
    n = n if n is not None else 1 + max(v for _, ops, _ in steps for k, v in ops if k == "leaf")
    return kernelgen.FusedKernel(steps, leaf_dtypes or [np.dtype(np.float32)] * n, dtype)


@pytest.mark.parametrize(
    "shapes",
    [
        [(6, 5), (6, 5), (6, 5)],  # full
        [(6, 5), (), (1, 1)],  # scalars
        [(6, 5), (5,), (1, 5)],  # column blocks (a bias)
        [(6, 5), (6, 1), (6, 1)],  # row blocks (a row statistic)
        [(2, 3, 4, 5), (1, 3, 1, 1), (3, 1, 1)],  # a channel bias of NCHW
        [(3, 1, 4), (3, 5, 4), (1, 5, 1)],  # nothing the four kinds express: the reference path
        [(4,), (3, 4), (3, 1)],  # the output is bigger than every input
    ],
)
def test_fused_kernel_broadcasts_like_numpy(shapes, rng):
    from minidl.ops import activation, arith

    steps = [
        (arith.Sub, (("leaf", 0), ("leaf", 1)), {}),
        (arith.Mul, (("step", 0), ("leaf", 2)), {}),
        (arith.Add, (("step", 1), ("literal", 0.5)), {}),
        (activation.Gelu, (("step", 2),), {"approximate": "none"}),
    ]
    kernel = _kernel(steps)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    out = kernel(*arrays)
    ref = kernel.reference(*arrays)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)


def test_fused_kernel_reads_broadcast_views_without_copying(rng):
    from minidl.ops import arith

    kernel = _kernel([(arith.Mul, (("leaf", 0), ("leaf", 1)), {}), (arith.Add, (("step", 0), ("leaf", 0)), {})])
    a = np.broadcast_to(rng.standard_normal((7, 1)).astype(np.float32), (7, 9))  # stride 0
    b = rng.standard_normal((9, 7)).astype(np.float32).T  # transposed: copied to C order
    np.testing.assert_allclose(kernel(a, b), a * b + a, rtol=1e-6)
    (fn, shape, rows, cols, moduli, narrow) = next(iter(kernel._plans.values()))
    assert narrow[0] is not None and (rows, cols, moduli) == (7, 9, (7,))


def test_fused_kernel_matches_each_op_on_edge_values():
    from minidl.ops import activation, arith, unary

    x = np.array([-np.inf, -3.0, -1.0, -0.0, 0.0, 0.5, 2.0, np.inf, np.nan], np.float32)
    y = np.array([1.0, np.nan, -2.0, 0.0, -0.0, 0.5, 3.0, 1.0, 0.0], np.float32)
    cond = x > 0
    cases = [
        (arith.Maximum, ("leaf", 1), {}),
        (arith.Minimum, ("leaf", 1), {}),
        (arith.Div, ("leaf", 1), {}),
        (arith.Pow, ("literal", 2.0), {}),
        (arith.Pow, ("literal", 0.5), {}),
        (arith.Pow, ("literal", -1.0), {}),
        (arith.Clamp, None, {"min": -1.0, "max": 1.5}),
        (arith.Clamp, None, {"min": 0.25}),
        (activation.Relu, None, {}),
        (activation.ReluBackward, ("leaf", 1), {}),
        (activation.LeakyRelu, None, {"negative_slope": 0.2}),
        (activation.Elu, None, {"alpha": 1.5}),
        (activation.Gelu, None, {"approximate": "none"}),
        (activation.Gelu, None, {"approximate": "tanh"}),
        (activation.Silu, None, {}),
        (activation.Softplus, None, {"beta": 2.0, "threshold": 3.0}),
        (unary.Neg, None, {}),
        (unary.Abs, None, {}),
        (unary.Sign, None, {}),
        (unary.Sqrt, None, {}),
        (unary.Rsqrt, None, {}),
        (unary.Reciprocal, None, {}),
        (unary.Exp, None, {}),
        (unary.Log, None, {}),
        (unary.Log1p, None, {}),
        (unary.Expm1, None, {}),
        (unary.Sin, None, {}),
        (unary.Cos, None, {}),
        (unary.Tanh, None, {}),
        (unary.Sigmoid, None, {}),
        (unary.Erf, None, {}),
        (unary.Floor, None, {}),
        (unary.Ceil, None, {}),
        (unary.Trunc, None, {}),
    ]
    with np.errstate(all="ignore"):
        for op, second, attrs in cases:
            operands = (("leaf", 0),) if second is None else (("leaf", 0), second)
            # "+ y" makes every case a two-op expression over the same two inputs
            steps = [(op, operands, attrs), (arith.Add, (("step", 0), ("leaf", 1)), {})]
            kernel = _kernel(steps, n=2)
            out, ref = kernel(x, y), kernel.reference(x, y)
            np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-7, equal_nan=True, err_msg=op.label)
        where = kernelgen.FusedKernel(
            [
                (arith.Where, (("leaf", 0), ("leaf", 1), ("literal", 0.0)), {}),
                (arith.Mul, (("step", 0), ("leaf", 1)), {}),
            ],
            [np.dtype(bool), np.dtype(np.float32)],
            minidl.float32,
        )
        np.testing.assert_array_equal(where(cond, y), where.reference(cond, y))


def test_fused_kernel_float64_and_fallbacks(rng):
    from minidl.ops import arith, unary

    steps = [(arith.Mul, (("leaf", 0), ("leaf", 0)), {}), (unary.Sqrt, (("step", 0),), {})]
    k64 = _kernel(steps, [np.dtype(np.float64)], minidl.float64)
    a = rng.standard_normal(50)
    assert k64(a).dtype == np.float64
    np.testing.assert_allclose(k64(a), np.abs(a), rtol=1e-15)
    k32 = _kernel(steps)
    assert k32(a).dtype == np.float64  # an unexpected dtype: the ops one by one
    assert k32(np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_parallel_variant(rng, monkeypatch):
    from minidl.ops import activation, arith

    monkeypatch.setattr(kernelgen, "PARALLEL_MIN", 1)
    steps = [(arith.Mul, (("leaf", 0), ("leaf", 1)), {}), (activation.Gelu, (("step", 0),), {"approximate": "none"})]
    kernel = _kernel(steps)
    a, b = rng.standard_normal((300, 70)).astype(np.float32), rng.standard_normal(70).astype(np.float32)
    out = kernel(a, b)
    assert next(iter(kernel._plans.values()))[0].py_func.__name__ == "parallel"
    np.testing.assert_allclose(out, kernel.reference(a, b), rtol=1e-6, atol=1e-7)


def test_fusion_leaves_library_calls_multi_use_values_and_fetches(rng):
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 32), name="x")
        h = x * 2.0 + 1.0  # read twice below: its own group
        e = minidl.exp(h)  # a C-library call: NumPy's SIMD exp is faster
        mid = h * 3.0  # fetched: must come back as a value
        y = (e - h) * mid
    xv = rng.standard_normal((4, 32)).astype(np.float32)
    v0, _ = run(g, [y, mid], {x: xv}, 0)
    v2, program = run(g, [y, mid], {x: xv}, 2)
    for a, b in zip(v0, v2):
        np.testing.assert_allclose(b, a, rtol=2e-6)
    labels = ops_of(program)
    if not fusion._svml():
        assert "exp" in labels
    assert "fused_mul_add" in labels  # h
    assert "mul" in labels  # mid, fetched, stays its own node...
    assert "fused_sub_mul" in labels  # ...and y reads it


def test_fused_op_is_a_well_formed_op(rng):
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 16), name="x")
        y = F.gelu(x * 0.5 + 1.0)
    _, program = run(g, y, {x: rng.standard_normal((3, 16)).astype(np.float32)}, 2)
    node = program.subgraph.nodes[-1]
    op = node.op
    assert issubclass(op, fusion.FusedOp) and op.stateful is False and op.differentiable is False
    assert op.name == "fused(mul,add,gelu)" and op.label == "fused_mul_add_gelu"
    assert op.infer(Spec((None, 16), minidl.float32)) == Spec((None, 16), minidl.float32)
    assert "fused_mul_add_gelu" in program.source
    with pytest.raises(RuntimeError, match="no gradient rule"):
        op.vjp(None, None)
    assert "fused(mul,add,gelu)" in str(program.report)


def test_fused_graphs_skip_tiny_values():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((3,), name="x")
        y = (x * 2.0 + 1.0).sum() * 3.0 + 1.0
    _, program = run(g, y, {x: np.ones(3, np.float32)}, 2)
    assert not any("fused" in label for label in ops_of(program))
