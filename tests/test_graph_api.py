"""The static-graph API (TensorFlow 1 style): ``placeholder``, ``Variable``, ``Session.run``,
``gradients``, ``optimizer.minimize``, ``finalize``.

What is checked, and against what:

* feeds -- values flow through, an unknown batch size takes any size in one session, and bad
  feeds (missing, wrong shape, wrong dtype) fail with errors that name the placeholder;
* fetches -- every structure ``run`` accepts comes back in the same structure;
* pruning -- a run executes only what its fetches need (an op that would fail, or count its
  calls, proves it);
* variables -- lazy initialization, ``global_variables_initializer`` as a reset, initial
  values computed from other variables, ``assign``;
* training -- a small MLP trained in a Session gives, step by step, *bitwise* the losses and
  weights of the same training in eager minidl, and torch's within rounding; modules share
  their parameters and buffers with the graph (BatchNorm's running statistics included);
* errors at build time name the op and the line of this file that built it.
"""

from __future__ import annotations

import sys
from collections import namedtuple

import numpy as np
import pytest
import torch

import minidl
import minidl.nn.functional as F
from minidl import graph as G
from minidl import nn, optim
from minidl.errors import ShapeError
from minidl.ops.op import Op, apply


def _next_line() -> str:
    """``file:line`` of the line after the caller's: where the statement under test is."""
    frame = sys._getframe(1)
    return f"{frame.f_code.co_filename}:{frame.f_lineno + 1}"


def _f32(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def graph():
    g = G.Graph()
    with g.as_default():
        yield g


# ---- feeds ----------------------------------------------------------------------------------------


def test_feed_computes_what_torch_computes(graph):
    x = G.placeholder((None, 3), name="x")
    w = G.Variable(_f32(3, 2, seed=1), name="w")
    out = (x @ w).tanh().sum(1)
    xv = _f32(4, 3)
    expected = (torch.from_numpy(xv) @ torch.from_numpy(_f32(3, 2, seed=1))).tanh().sum(1).numpy()
    np.testing.assert_allclose(G.Session(graph).run(out, {x: xv}), expected, rtol=1e-6)


def test_unknown_batch_size_takes_any_size_in_one_session(graph):
    x = G.placeholder((None, 3), name="x")
    out = (x * 2.0).sum(1) / x.shape[1]
    mean = x.mean()
    sess = G.Session(graph)
    programs = set()
    for n in (1, 4, 7, 0):
        xv = _f32(n, 3, seed=n)
        y, m = sess.run([out, mean], {x: xv})
        np.testing.assert_allclose(y, (xv * 2.0).sum(1) / 3, rtol=1e-6)
        if n:
            np.testing.assert_allclose(m, xv.mean(), rtol=1e-6)
        programs.add(id(sess.program_for([out, mean], {x: xv})))
    assert len(programs) == 1, "one program serves every batch size"


def test_missing_feeds_are_listed_by_name(graph):
    images = G.placeholder((None, 4), name="images")
    labels = G.placeholder((None,), dtype=minidl.int64, name="labels")
    scale = G.placeholder((), name="scale")
    loss = F.cross_entropy(images * scale, labels)
    with pytest.raises(G.GraphError, match="not fed") as info:
        G.Session(graph).run(loss, {scale: np.float32(2.0)})
    message = str(info.value)
    assert "'images'" in message and "'labels'" in message and "'scale'" not in message


def test_wrong_feed_shape_is_a_clear_error(graph):
    x = G.placeholder((None, 3), name="x")
    sess = G.Session(graph)
    with pytest.raises(ValueError, match=r"shape \(2, 4\) for 'x', which has shape \(\?, 3\)"):
        sess.run(x * 2.0, {x: np.zeros((2, 4), np.float32)})
    with pytest.raises(ValueError, match=r"shape \(3,\) for 'x'"):
        sess.run(x * 2.0, {x: np.zeros(3, np.float32)})


def test_wrong_feed_dtype_is_a_clear_error(graph):
    x = G.placeholder((None, 3), name="x")
    with pytest.raises(TypeError, match=r"'x' has dtype float64, but the placeholder is float32.*astype"):
        G.Session(graph).run(x * 2.0, {x: np.zeros((2, 3), np.float64)})


def test_lists_are_fed_in_the_placeholder_dtype(graph):
    x = G.placeholder((None, 2), name="x")
    y = G.Session(graph).run(x * 1.5, {x: [[1, 2], [3, 4]]})
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.array([[1.5, 3.0], [4.5, 6.0]], np.float32))


def test_feeding_an_intermediate_value_replaces_it(graph):
    x = G.placeholder((None, 3), name="x")
    h = x.exp()
    y = h * 2.0
    hv = _f32(2, 3)
    np.testing.assert_array_equal(G.Session(graph).run(y, {h: hv}), hv * 2.0)


def test_feeding_a_placeholder_of_another_graph_is_an_error(graph):
    x = G.placeholder((2,), name="x")
    with G.Graph().as_default():
        other = G.placeholder((2,), name="other")
    with pytest.raises(G.GraphError, match="another graph"):
        G.Session(graph).run(x * 2.0, {x: np.zeros(2, np.float32), other: np.zeros(2, np.float32)})


# ---- fetches --------------------------------------------------------------------------------------


def test_fetch_structures_come_back_alike(graph):
    x = G.placeholder((2,), name="x")
    a, b, c = x + 1.0, x * 2.0, x.sum()
    Pair = namedtuple("Pair", "first second")
    sess = G.Session(graph)
    xv = np.array([1.0, 2.0], np.float32)
    feed = {x: xv}
    ea, eb, ec = xv + 1.0, xv * 2.0, xv.sum()

    single = sess.run(a, feed)
    assert isinstance(single, np.ndarray)
    np.testing.assert_array_equal(single, ea)
    as_list = sess.run([a, b], feed)
    assert isinstance(as_list, list) and len(as_list) == 2
    as_tuple = sess.run((a, b), feed)
    assert type(as_tuple) is tuple
    pair = sess.run(Pair(a, c), feed)
    assert type(pair) is Pair
    np.testing.assert_array_equal(pair.first, ea)
    assert pair.second.shape == () and pair.second == ec
    nested = sess.run({"sums": [c, (a, {"deep": b})], "same": a}, feed)
    assert set(nested) == {"sums", "same"}
    np.testing.assert_array_equal(nested["sums"][1][1]["deep"], eb)
    np.testing.assert_array_equal(nested["same"], ea)
    assert nested["sums"][0] == ec
    np.testing.assert_array_equal(sess.run([], feed), [])


def test_fetch_by_name(graph):
    x = G.placeholder((2,), name="x")
    y = G.Variable(np.array([3.0, 4.0], np.float32), name="weights") * x
    sess = G.Session(graph)
    feed = {"x:0": np.array([1.0, 2.0], np.float32)}
    np.testing.assert_array_equal(sess.run(y.name, feed), [3.0, 8.0])
    np.testing.assert_array_equal(sess.run("weights:0"), [3.0, 4.0])
    np.testing.assert_array_equal(sess.run("weights"), [3.0, 4.0])
    with pytest.raises(KeyError, match="no node named 'nothing'"):
        sess.run("nothing")


def test_fetching_an_op_returns_none(graph):
    v = G.Variable(np.zeros(2, np.float32), name="v")
    step = G.assign(v, v + 1.0).op
    sess = G.Session(graph)
    assert sess.run(G.global_variables_initializer()) is None
    assert sess.run([step, step]) == [None, None]
    np.testing.assert_array_equal(sess.run(v), [1.0, 1.0])


def test_fetching_from_another_graph_is_an_error(graph):
    with G.Graph().as_default():
        foreign = G.placeholder((2,), name="foreign") * 2.0
    with pytest.raises(G.GraphError, match="belongs to another graph"):
        G.Session(graph).run(foreign)
    with pytest.raises(TypeError, match="cannot fetch an eager tensor"):
        G.Session(graph).run(minidl.ones(2))


def test_a_fetched_variable_is_a_copy(graph):
    v = G.Variable(np.array([1.0, 2.0], np.float32), name="v")
    sess = G.Session(graph)
    value = sess.run(v)
    value[:] = 0.0
    np.testing.assert_array_equal(sess.run(v), [1.0, 2.0])


def test_a_closed_session_refuses_to_run(graph):
    x = G.placeholder((1,), name="x")
    with G.Session(graph) as sess:
        assert G.get_default_graph() is graph
        sess.run(x, {x: np.zeros(1, np.float32)})
    with pytest.raises(G.GraphError, match="closed"):
        sess.run(x, {x: np.zeros(1, np.float32)})


# ---- only the needed subgraph runs ----------------------------------------------------------------


class Explode(Op):
    """An op that fails whenever it runs: a node that must never be executed."""

    name = "Explode"
    differentiable = False
    calls = 0

    @staticmethod
    def forward(x):
        Explode.calls += 1
        raise RuntimeError("Explode ran")

    @classmethod
    def infer(cls, x):
        return x


def test_only_the_needed_subgraph_runs(graph):
    Explode.calls = 0
    x = G.placeholder((None, 2), name="x")
    unfed = G.placeholder((3,), name="unfed")
    bomb = apply(Explode, x * 3.0)
    unused = (bomb + unfed.sum()).sum()
    wanted = (x * 2.0).sum()
    sess = G.Session(graph)
    assert sess.run(wanted, {x: np.ones((2, 2), np.float32)}) == 8.0
    assert Explode.calls == 0
    constant_only = G.constant(np.array([1.0, 2.0], np.float32)) * 4.0
    np.testing.assert_array_equal(sess.run(constant_only), [4.0, 8.0])  # needs no feed at all
    with pytest.raises(RuntimeError, match="Explode ran"):
        sess.run(unused, {x: np.ones((2, 2), np.float32), unfed: np.ones(3, np.float32)})
    assert Explode.calls == 1


def test_a_train_op_runs_only_when_fetched(graph):
    w = G.Variable(np.array([1.0, -2.0], np.float32), name="w")
    loss = (w * w).sum()
    train = optim.SGD([w], lr=0.25).minimize(loss)
    sess = G.Session(graph)
    for _ in range(3):
        assert sess.run(loss) == 5.0
    sess.run(train)
    np.testing.assert_array_equal(sess.run(w), [0.5, -1.0])  # w - 0.25 * 2w


# ---- variables ------------------------------------------------------------------------------------


def test_variables_initialize_lazily_on_first_use(graph):
    v = G.Variable(np.array([1.0, 2.0], np.float32), name="v")
    c = G.Variable(lambda: np.full(2, 5.0, np.float32), name="c")
    assert c.dtype is minidl.float32
    np.testing.assert_array_equal(G.Session(graph).run(v + c), [6.0, 7.0])


def test_global_variables_initializer_resets(graph):
    v = G.Variable(np.array([1.0, 2.0], np.float32), name="v")
    bump = G.assign(v, v * 10.0)
    init = G.global_variables_initializer()
    sess = G.Session(graph)
    sess.run(bump)
    sess.run(bump)
    np.testing.assert_array_equal(sess.run(v), [100.0, 200.0])
    sess.run(init)
    np.testing.assert_array_equal(sess.run(v), [1.0, 2.0])


def test_initial_value_from_another_variable_and_an_expression(graph):
    a = G.Variable(np.array([1.0, 2.0], np.float32), name="a")
    b = G.Variable(a * 3.0 + 1.0, name="b")
    c = G.Variable(b.exp().log() - a, name="c")  # through b: a chain of initial values
    train_a = G.assign(a, a + 100.0)
    init = G.global_variables_initializer()
    sess = G.Session(graph)
    np.testing.assert_allclose(sess.run([a, b, c]), [[1.0, 2.0], [4.0, 7.0], [3.0, 5.0]], rtol=1e-6)
    sess.run(train_a)
    sess.run(init)
    # The reset starts from a's *initial* value, not from the changed one (TensorFlow's
    # initialized_value): b = 3 * 1 + 1, not 3 * 101 + 1.
    np.testing.assert_allclose(sess.run([a, b, c]), [[1.0, 2.0], [4.0, 7.0], [3.0, 5.0]], rtol=1e-6)


def test_initial_value_from_a_placeholder_needs_the_feed(graph):
    x = G.placeholder((2,), name="seed_values")
    v = G.Variable(x * 2.0, name="v")
    sess = G.Session(graph)
    with pytest.raises(G.GraphError, match=r"Variable 'v' is used before initialization.*'seed_values'"):
        sess.run(v + 1.0)
    sess.run(G.global_variables_initializer(), {x: np.array([1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(sess.run(v + 1.0), [3.0, 5.0])


def test_assign(graph):
    v = G.Variable(np.array([1.0, 2.0], np.float32), name="v")
    x = G.placeholder((2,), name="x")
    add = G.assign(v, v + x)
    set_to = G.assign(v, np.array([7.0, 8.0]))
    sess = G.Session(graph)
    for k in range(1, 4):
        np.testing.assert_array_equal(sess.run(add, {x: np.ones(2, np.float32)}), [1.0 + k, 2.0 + k])
    np.testing.assert_array_equal(sess.run(v), [4.0, 5.0])
    sess.run(set_to)
    np.testing.assert_array_equal(sess.run(v), [7.0, 8.0])
    with pytest.raises(ValueError, match=r"assign: value of shape \(3,\) for variable 'v' of shape \(2,\)"):
        G.assign(v, np.zeros(3, np.float32))


def test_variable_kinds(graph):
    step = G.Variable(0, name="step", trainable=False)
    w = G.Variable(np.zeros(2, np.float32), name="w")
    assert step.dtype is minidl.int64
    assert [t.name for t in G.trainable_variables(graph)] == ["w"]
    with pytest.raises(TypeError, match="trainable variable must be floating point"):
        G.Variable(np.arange(3), name="bad")
    sess = G.Session(graph)
    increment = G.assign(step, step + 1)
    for _ in range(3):
        sess.run(increment)
    assert sess.run(step) == 3
    assert w.requires_grad and not step.requires_grad


# ---- finalize -------------------------------------------------------------------------------------


def test_finalize_makes_building_raise(graph):
    x = G.placeholder((2,), name="x")
    y = x * 2.0
    graph.finalize()
    with pytest.raises(G.GraphError, match="finalized") as info:
        where = _next_line()
        x + 1.0
    assert where in str(info.value)
    with pytest.raises(G.GraphError, match="finalized"):
        G.placeholder((3,))
    with pytest.raises(G.GraphError, match="finalized"):
        G.Variable(np.zeros(2, np.float32))
    np.testing.assert_array_equal(G.Session(graph).run(y, {x: np.ones(2, np.float32)}), [2.0, 2.0])


# ---- errors at build time -------------------------------------------------------------------------


def test_shape_errors_name_the_op_and_the_line(graph):
    x = G.placeholder((None, 3), name="x")
    w = G.placeholder((4, 2), name="w")
    cases = []
    where = _next_line()
    cases.append((where, "matmul", lambda: x @ w))
    where = _next_line()
    cases.append((where, "add", lambda: x + G.placeholder((4,))))
    where = _next_line()
    cases.append((where, "reshape", lambda: G.placeholder((2, 3)).reshape(7, 2)))
    where = _next_line()
    cases.append((where, "sum", lambda: x.sum(5)))
    where = _next_line()
    cases.append((where, "cross_entropy", lambda: minidl.ops.loss.cross_entropy(x, G.placeholder((4, 2)))))
    for where, op, build in cases:
        with pytest.raises((ShapeError, IndexError, TypeError)) as info:
            build()
        message = str(info.value)
        assert message.startswith(f"{op}:") or f"[building {op} " in message, message
        assert where in message, message


def test_ops_on_two_graphs_are_an_error(graph):
    x = G.placeholder((2,), name="x")
    with G.Graph().as_default():
        y = G.placeholder((2,), name="y")
    with pytest.raises(G.GraphError, match="add: its inputs come from two different graphs"):
        x + y


def test_values_do_not_exist_while_building(graph):
    x = G.placeholder((2,), name="x")
    with pytest.raises(G.TracingError, match="Python control flow") as info:
        where = _next_line()
        if x.sum() > 0:
            pass
    assert where in str(info.value)
    with pytest.raises(G.TracingError, match=r"\.numpy\(\)"):
        x.numpy()


# ---- symbolic gradients: the API ------------------------------------------------------------------


def test_gradient_for_an_unrelated_variable_is_none(graph):
    x = G.placeholder((None, 2), name="x")
    w = G.Variable(np.ones(2, np.float32), name="w")
    unrelated = G.Variable(np.ones(2, np.float32), name="unrelated")
    labels = G.placeholder((None,), dtype=minidl.int64, name="labels")
    loss = (x * w).sum()
    gw, gu, gl = G.gradients(loss, [w, unrelated, labels])
    assert gu is None and gl is None
    np.testing.assert_array_equal(G.Session(graph).run(gw, {x: np.ones((3, 2), np.float32)}), [3.0, 3.0])


def test_stop_gradient_and_detach(graph):
    a = G.Variable(np.array([1.0, 2.0], np.float32), name="a")
    b = G.Variable(np.array([3.0, 5.0], np.float32), name="b")
    blocked = (G.stop_gradient(a) * b).sum()
    ga, gb = G.gradients(blocked, [a, b])
    assert ga is None
    (half,) = G.gradients([(a.detach() * a).sum()], [a])  # d/da (c * a) with c = a held fixed
    sess = G.Session(graph)
    np.testing.assert_array_equal(sess.run(gb), [1.0, 2.0])
    np.testing.assert_array_equal(sess.run(half), [1.0, 2.0])
    np.testing.assert_array_equal(sess.run(G.stop_gradient(a) * 2.0), [2.0, 4.0])


def test_gradients_at_intermediate_values_and_of_several_ys(graph):
    """``G.gradients([y1, y2], [h, x, h])``: the gradient of y1 + y2, at an intermediate value
    too (torch: ``retain_grad``), the same tensor asked for twice."""
    xv = _f32(3, 4)
    x = G.placeholder((None, 4), name="x")
    h = (x * 2.0).tanh()
    y1 = (h * h).sum()
    y2 = h.mean() * 3.0
    gh, gx, gh_again = G.gradients([y1, y2], [h, x, h])
    single = G.gradients(y1, x)
    assert isinstance(single, G.SymbolicTensor)
    values = G.Session(graph).run([gh, gx, gh_again, single], {x: xv})

    tx = torch.from_numpy(xv).requires_grad_(True)
    th = (tx * 2.0).tanh()
    th.retain_grad()
    ((th * th).sum() + th.mean() * 3.0).backward()
    tx1 = torch.from_numpy(xv).requires_grad_(True)
    (t_single,) = torch.autograd.grad(((tx1 * 2.0).tanh() ** 2).sum(), [tx1])
    np.testing.assert_allclose(values[0], th.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(values[1], tx.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(values[0], values[2])
    np.testing.assert_allclose(values[3], t_single.numpy(), rtol=1e-5, atol=1e-7)


def test_grad_ys_weight_each_y(graph):
    x = G.placeholder((3,), name="x")
    y = x * x
    z = x.sum()
    (g,) = G.gradients([y, z], [x], grad_ys=[np.array([1.0, 2.0, 3.0], np.float32), np.float32(10.0)])
    xv = np.array([1.0, -1.0, 2.0], np.float32)
    np.testing.assert_array_equal(G.Session(graph).run(g, {x: xv}), 2 * xv * [1.0, 2.0, 3.0] + 10.0)
    with pytest.raises(ValueError, match=r"grad_ys has shape \(2,\) but y has shape \(3,\)"):
        G.gradients(y, x, grad_ys=np.ones(2, np.float32))


def test_gradients_need_graph_tensors(graph):
    x = G.placeholder((2,), name="x")
    with pytest.raises(TypeError, match="ys must be symbolic tensors"):
        G.gradients(minidl.ones(2).sum(), [x])
    with G.Graph().as_default():
        other = G.placeholder((2,), name="other")
    with pytest.raises(G.GraphError, match="belongs to another graph"):
        G.gradients(x.sum(), [other])


def test_dropout_gradient_follows_its_mask(graph):
    """Dropout's mask is random, so torch cannot draw the same one; the gradient must be the
    incoming one through the very mask the forward pass drew (run together, in one run)."""
    x = G.placeholder((None, 50), name="x")
    gy = G.placeholder((None, 50), name="gy")
    y = F.dropout(x, p=0.4, training=True)
    (gx,) = G.gradients(y, [x], grad_ys=gy)
    xv = np.random.default_rng(0).uniform(0.5, 1.5, (8, 50)).astype(np.float32)
    gv = _f32(8, 50)
    yv, gxv = G.Session(graph).run([y, gx], {x: xv, gy: gv})
    kept = yv != 0
    assert 0.3 < 1 - kept.mean() < 0.5
    np.testing.assert_allclose(yv[kept], xv[kept] / 0.6, rtol=1e-6)
    np.testing.assert_allclose(gxv, np.where(kept, gv / 0.6, 0.0), rtol=1e-6)


# ---- training: minimize, against eager minidl (bitwise) and torch --------------------------------

OPTIMIZERS = {
    "sgd_momentum": (optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}),
    "adam": (optim.Adam, torch.optim.Adam, {"lr": 0.01}),
}


def _batches(steps: int = 6, features: int = 4, classes: int = 3):
    rng = np.random.default_rng(42)
    sizes = [5, 8, 3, 8, 6, 4][:steps]
    return [(rng.standard_normal((n, features)).astype(np.float32), rng.integers(0, classes, n)) for n in sizes]


def _initial_weights() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in ((8, 4), (8,), (3, 8), (3,))]


def _mlp(lib, x, w1, b1, w2, b2):
    return lib.nn.functional.linear(lib.tanh(lib.nn.functional.linear(x, w1, b1)), w2, b2)


def _train_eager(opt_name, batches):
    cls, _, kw = OPTIMIZERS[opt_name]
    params = [minidl.tensor(w, requires_grad=True) for w in _initial_weights()]
    opt = cls(params, **kw)
    losses = []
    for xv, tv in batches:
        opt.zero_grad()
        loss = F.cross_entropy(_mlp(minidl, minidl.tensor(xv), *params), minidl.tensor(tv))
        loss.backward()
        opt.step()
        losses.append(loss.detach().numpy())
    return losses, [p.detach().numpy() for p in params]


def _train_torch(opt_name, batches):
    _, cls, kw = OPTIMIZERS[opt_name]
    params = [torch.tensor(w, requires_grad=True) for w in _initial_weights()]
    opt = cls(params, **kw)
    losses = []
    for xv, tv in batches:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(_mlp(torch, torch.from_numpy(xv), *params), torch.from_numpy(tv))
        loss.backward()
        opt.step()
        losses.append(loss.detach().numpy())
    return losses, [p.detach().numpy() for p in params]


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_minimize_trains_as_eager_and_as_torch(graph, opt_name):
    cls, _, kw = OPTIMIZERS[opt_name]
    batches = _batches()
    weights = [G.Variable(w, name=name) for w, name in zip(_initial_weights(), ("w1", "b1", "w2", "b2"))]
    x = G.placeholder((None, 4), name="x")
    labels = G.placeholder((None,), dtype=minidl.int64, name="labels")
    loss = F.cross_entropy(_mlp(minidl, x, *weights), labels)
    opt = cls(weights, **kw)
    train = opt.minimize(loss)
    graph.finalize()  # the loop below must build nothing
    sess = G.Session(graph)
    losses = [sess.run([loss, train], {x: xv, labels: tv})[0] for xv, tv in batches]
    final = sess.run(weights)

    eager_losses, eager_final = _train_eager(opt_name, batches)
    for step, (a, b) in enumerate(zip(losses, eager_losses)):
        assert np.array_equal(a, b), f"step {step}: graph loss {a!r} != eager {b!r}"
    for a, b in zip(final, eager_final):
        assert np.array_equal(a, b), "final weights differ from eager training"

    torch_losses, torch_final = _train_torch(opt_name, batches)
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(final, torch_final):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_minimize_with_var_list_trains_only_those(graph):
    w = G.Variable(np.array([1.0, 2.0], np.float32), name="w")
    frozen = G.Variable(np.array([3.0, 4.0], np.float32), name="frozen")
    loss = (w * frozen).sum()
    opt = optim.SGD([w, frozen], lr=0.5)
    train = opt.minimize(loss, var_list=[w])
    sess = G.Session(graph)
    sess.run(train)
    np.testing.assert_array_equal(sess.run([w, frozen]), [[-0.5, 0.0], [3.0, 4.0]])
    stranger = G.Variable(np.zeros(2, np.float32), name="stranger")
    with pytest.raises(ValueError, match="not one of the optimizer's parameters"):
        opt.minimize(loss, var_list=[stranger])
    with pytest.raises(ValueError, match="no parameter of the optimizer influences the loss"):
        optim.SGD([stranger], lr=0.1).minimize(loss)


def _seeded_module(seed: int, batch_norm: bool = False) -> nn.Module:
    minidl.manual_seed(seed)
    if batch_norm:
        # (no bias before the batch norm: its gradient is zero up to rounding, which Adam would
        # amplify into steps of full size in whatever direction the rounding points)
        return nn.Sequential(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def _torch_copy(module: nn.Module, batch_norm: bool) -> torch.nn.Module:
    if batch_norm:
        t = torch.nn.Sequential(
            torch.nn.Linear(4, 8, bias=False), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
        )
    else:
        t = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in module.state_dict().items()})
    return t


@pytest.mark.parametrize("batch_norm", [False, True], ids=["tanh", "batchnorm"])
def test_a_module_trained_in_a_session_is_the_eager_module(graph, batch_norm):
    """A module's parameters (and BatchNorm's running statistics) *are* the graph's variables:
    a Session's training changes the module, exactly as eager training would; the running
    statistics update because ``minimize`` makes the train op depend on the update ops."""
    batches = _batches()
    model = _seeded_module(0, batch_norm)
    torch_model = _torch_copy(model, batch_norm)
    x = G.placeholder((None, 4), name="x")
    labels = G.placeholder((None,), dtype=minidl.int64, name="labels")
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    train = optim.Adam(model.parameters(), lr=0.01).minimize(loss)
    sess = G.Session(graph)
    losses = [sess.run([loss, train], {x: xv, labels: tv})[0] for xv, tv in batches]

    eager = _seeded_module(0, batch_norm)
    opt = optim.Adam(eager.parameters(), lr=0.01)
    t_opt = torch.optim.Adam(torch_model.parameters(), lr=0.01)
    for step, (xv, tv) in enumerate(batches):
        opt.zero_grad()
        eager_loss = F.cross_entropy(eager(minidl.tensor(xv)), minidl.tensor(tv))
        eager_loss.backward()
        opt.step()
        assert np.array_equal(losses[step], eager_loss.detach().numpy()), f"step {step}"
        t_opt.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(torch_model(torch.from_numpy(xv)), torch.from_numpy(tv))
        t_loss.backward()
        t_opt.step()
        np.testing.assert_allclose(losses[step], t_loss.item(), rtol=1e-5)
    state, eager_state, torch_state = model.state_dict(), eager.state_dict(), torch_model.state_dict()
    for key in state:
        assert np.array_equal(state[key].numpy(), eager_state[key].numpy()), key
        np.testing.assert_allclose(state[key].numpy(), torch_state[key].numpy(), rtol=1e-4, atol=1e-5, err_msg=key)
    if batch_norm:
        assert int(state["1.num_batches_tracked"].numpy()) == len(batches)
        assert not np.allclose(state["1.running_mean"].numpy(), 0.0)

    # The trained module, called eagerly, computes what the graph computes.
    xv = _batches(1)[0][0]
    model.eval()
    np.testing.assert_allclose(
        model(minidl.tensor(xv)).detach().numpy(),
        torch_model.eval()(torch.from_numpy(xv)).detach().numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    model.train()
    if not batch_norm:
        np.testing.assert_array_equal(sess.run(logits, {x: xv}), model(minidl.tensor(xv)).detach().numpy())


def test_eager_changes_to_a_module_reach_the_graph(graph):
    model = _seeded_module(1)
    x = G.placeholder((None, 4), name="x")
    out = model(x)
    sess = G.Session(graph)
    xv = _f32(2, 4)
    before = sess.run(out, {x: xv})
    np.testing.assert_array_equal(before, model(minidl.tensor(xv)).detach().numpy())
    with minidl.no_grad():
        model[2].weight.mul_(0.5)
        model[2].bias.zero_()
    after = sess.run(out, {x: xv})
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, model(minidl.tensor(xv)).detach().numpy())


def test_batch_norm_statistics_update_through_the_train_op(graph):
    """Running the forward pass alone leaves BatchNorm's running statistics alone (their
    updates are side effects nothing fetched depends on); the train op depends on them."""
    model = _seeded_module(2, batch_norm=True)
    bn = model[1]
    x = G.placeholder((None, 4), name="x")
    labels = G.placeholder((None,), dtype=minidl.int64, name="labels")
    loss = F.cross_entropy(model(x), labels)
    train = optim.SGD(model.parameters(), lr=0.1).minimize(loss)
    sess = G.Session(graph)
    xv, tv = _batches(1)[0]
    sess.run(loss, {x: xv, labels: tv})
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(8, np.float32))
    assert int(bn.num_batches_tracked.numpy()) == 0
    features = torch.from_numpy(xv) @ torch.from_numpy(model[0].weight.detach().numpy()).T  # before the step
    sess.run(train, {x: xv, labels: tv})
    assert int(bn.num_batches_tracked.numpy()) == 1
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * features.mean(0).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        bn.running_var.numpy(), 0.9 + 0.1 * features.var(0, unbiased=True).numpy(), rtol=1e-5, atol=1e-7
    )


def test_feeding_an_intermediate_value_replaces_what_computes_it():
    """TensorFlow lets any tensor be fed: its producer (and what only it needs) does not run."""
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((3,), name="x")
        y = x.exp()
        z = y * 2
    with G.Session(g) as sess:
        np.testing.assert_array_equal(sess.run(z, feed_dict={y: np.ones(3, np.float32)}), [2, 2, 2])
        z_value, y_value = sess.run([z, y], feed_dict={x: np.zeros(3, np.float32)})
        np.testing.assert_array_equal(y_value, [1, 1, 1])
        np.testing.assert_array_equal(z_value, [2, 2, 2])
        with pytest.raises(G.GraphError, match="'x'"):
            sess.run(z)


def test_checks_inside_functional_calls_name_the_building_line():
    """A shape check that runs before any node exists (inside ``F.linear``, ``F.conv2d``) still
    says which line of the user's code was building the graph; eager messages are unchanged."""
    import inspect

    w = minidl.randn(3, 4)
    with G.Graph().as_default():
        x = G.placeholder((None, 5))
        line = inspect.currentframe().f_lineno + 2
        with pytest.raises(minidl.ShapeError, match=rf"expects 4 .*\[building at .*test_graph_api.py:{line}\]"):
            F.linear(x, w)
    with pytest.raises(minidl.ShapeError) as eager:
        F.linear(minidl.randn(2, 5), w)
    assert "[building" not in str(eager.value)
