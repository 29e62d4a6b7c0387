"""Reading graphs and programs: the IR listing, DOT output and its rendering
(minidl/graph/inspect.py), and the step-through executor (minidl/graph/stepper.py)."""

from __future__ import annotations

import os
import re
import shutil
import stat

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import graph as G
from minidl import nn
from minidl.graph import inspect as graph_inspect
from minidl.graph.inspect import GraphvizNotFoundError, format_nodes, to_dot

HERE = os.path.basename(__file__)


def _graph():
    """x (?, 3) -> matmul with w -> + b -> pow 2 -> mean, and its gradient for w."""
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 3), name="x")
        w = G.Variable(np.arange(3, dtype=np.float32).reshape(3, 1), name="w")
        b = G.constant(np.array([0.5], np.float32), name="b")
        loss = ((x @ w + b) ** 2).mean()
        (gw,) = G.gradients(loss, [w])
    return g, x, w, loss, gw


# ---- the listing ---------------------------------------------------------------------------------


def test_listing_shows_every_node_with_inputs_attributes_types_and_source():
    g, *_ = _graph()
    text = g.listing()
    lines = text.splitlines()
    assert len(lines) == len(g.nodes)
    for node, line in zip(g.nodes, lines):
        assert line.startswith(f"%{node.name} ")
        assert f"# {HERE}:" in line  # built here, in this file
    by_name = {line.split()[0]: line for line in lines}
    assert re.search(r"= placeholder\(\)\s+: \(\?, 3\) float32", by_name["%x"])
    assert re.search(r"= variable\(w, trainable\)\s+: \(3, 1\) float32", by_name["%w"])
    assert "= constant([0.5])" in by_name["%b"]
    assert re.search(r"= matmul\(%x, %w\)\s+: \(\?, 1\) float32", by_name["%matmul"])
    assert re.search(r"= add\(%matmul, %b\)", by_name["%add"])
    assert re.search(r"= pow\(%add, 2\)", by_name["%pow"])
    assert "permute(%x, dims=(1, 0))" in text
    assert re.search(r"= sum\(%pow\)\s+: \(\) float32", by_name["%sum"])
    # aligned: every '=' and every ':' in one column
    assert len({line.index(" = ") for line in lines}) == 1
    assert len({line.index(" : ") for line in lines}) == 1


def test_listing_of_saved_outputs_assignments_calls_and_big_constants():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 4), name="logits")
        y = G.placeholder(minidl.int64, (None,), name="labels")
        loss = F.cross_entropy(x, y)
        v = G.Variable(np.zeros((2, 2), np.float32), name="acc")
        G.assign(v, v + 1.0)
        G.constant(np.ones((10, 10), np.float64), name="table")
        G.global_variables_initializer()
    text = format_nodes(g.nodes)
    assert f"%{loss._ref.node.name} " in text and "+ saves logp" in text
    assert re.search(r"%assign_acc\s+= assign\(acc, %add\)\s+: \(2, 2\) float32", text)
    assert "= constant(<(10, 10) float64>)" in text
    assert re.search(r"%init\s+= initialize_variables\(.*\)\s+: \(effect\)", text)
    assert format_nodes([]) == "(empty graph)"


def test_graph_print_writes_the_listing(capsys):
    g, *_ = _graph()
    g.print()
    assert capsys.readouterr().out == g.listing() + "\n"


# ---- DOT --------------------------------------------------------------------------------------------


def test_dot_has_a_styled_node_per_node_and_an_edge_per_input():
    g, x, w, loss, gw = _graph()
    text = g.to_dot()
    assert text.startswith("digraph minidl {") and text.rstrip().endswith("}")
    for node in g.nodes:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"n{node.id} ["))
        assert node.op_label() in line or node.kind in line
        if node.specs:
            shape = node.specs[0].shape
            assert "(" + ", ".join("?" if d is None else str(d) for d in shape) in line
        for v in node.input_outputs:
            assert f"n{v.node.id} -> n{node.id}" in text
    n_edges = sum(len(n.input_outputs) for n in g.nodes)
    assert text.count(" -> ") == n_edges
    assert re.search(rf"n{x._ref.node.id} \[.*shape=ellipse", text)  # placeholders
    assert re.search(rf"n{w._ref.node.id} \[.*fillcolor=\"#fef3c7\"", text)  # variables
    assert '"placeholder\\n%x\\n(?, 3) float32"' in text  # labels escape newlines for DOT


def test_dot_labels_edges_from_saved_outputs_and_draws_outside_inputs():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((2, 1, 4, 4), name="x")
        y = F.max_pool2d(x, 2)
        (gx,) = G.gradients(y.sum(), [x])
    text = to_dot(g.nodes)
    assert '[label=".indices"]' in text
    last = g.nodes[-1]
    partial = to_dot([last])  # its inputs are not listed: drawn as plain names
    for v in last.input_outputs:
        assert f'n{v.node.id} [label="%{v.node.name}", shape=plaintext]' in partial


def test_dot_file_is_written(tmp_path):
    g, *_ = _graph()
    path = tmp_path / "g.dot"
    text = g.to_dot(str(path))
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"]  # no temporary left behind
    with pytest.raises(ValueError, match=r"\.svg"):
        g.to_dot(str(tmp_path / "g.jpeg"))


def test_render_without_graphviz_raises_a_clear_error_after_writing_the_dot_text(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_inspect.shutil, "which", lambda name: None)
    g, *_ = _graph()
    with pytest.raises(GraphvizNotFoundError, match=r"'dot' program is not on PATH.*g\.dot"):
        g.to_dot(str(tmp_path / "g.svg"))
    assert (tmp_path / "g.dot").read_text() == g.to_dot()
    assert not (tmp_path / "g.svg").exists()


def _fake_dot(tmp_path, body):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "dot"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bin_dir


@pytest.mark.skipif(os.name != "posix", reason="the stand-in for Graphviz is a shell script")
def test_render_calls_dot_and_replaces_the_file_atomically(tmp_path, monkeypatch):
    """A stand-in ``dot`` that records its arguments: the format comes from the suffix, the
    output lands under a temporary name and is renamed into place."""
    bin_dir = _fake_dot(tmp_path, 'echo "$@" > "$0.args"; shift 2; printf "<svg/>" > "$2"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    g, *_ = _graph()
    out = tmp_path / "g.svg"
    g.to_dot(str(out))
    assert out.read_text() == "<svg/>"
    args = (bin_dir / "dot.args").read_text().split()
    assert args[0] == "-Tsvg" and args[1] == str(tmp_path / "g.dot") and args[2] == "-o"
    assert args[3] != str(out)  # written under another name first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "g.dot", "g.svg"]


@pytest.mark.skipif(os.name != "posix", reason="the stand-in for Graphviz is a shell script")
def test_render_failure_reports_graphviz_message_and_leaves_nothing(tmp_path, monkeypatch):
    bin_dir = _fake_dot(tmp_path, 'echo "syntax error in line 1" >&2; exit 3\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    g, *_ = _graph()
    with pytest.raises(RuntimeError, match="exit code 3.*syntax error in line 1"):
        g.to_dot(str(tmp_path / "g.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "g.dot"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_render_with_real_graphviz(tmp_path):
    g, *_ = _graph()
    g.to_dot(str(tmp_path / "g.svg"))
    assert "<svg" in (tmp_path / "g.svg").read_text()


# ---- the step-through executor -------------------------------------------------------------------


def _assert_bitwise(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def test_step_through_a_training_step_gives_bitwise_the_program_results(rng):
    """An MLP's loss and gradients, with in-place steps in the plan: one record per node, in
    order, and final results bitwise equal to ``program.run``."""
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    xv = rng.standard_normal((6, 5)).astype(np.float32)
    yv = rng.integers(0, 3, 6)
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 5), name="x")
        y = G.placeholder(minidl.int64, (None,), name="y")
        out = model(x)
        loss = F.cross_entropy(out, y) + (out * 0.5 - 0.1).abs().mean()
        fetches = [loss, *G.gradients(loss, list(model.parameters()))]
    with G.Session(g) as sess:
        feed = {x: xv, y: yv}
        expected = sess.run(fetches, feed)
        program = sess._last
        stepper = sess.step(fetches, feed)
        records = list(stepper)
    assert [r.name for r in records] == [n.name for n in program.subgraph.nodes]
    assert [r.step for r in records] == list(range(len(records)))
    assert program.plan.n_in_place >= 1 and any(r.in_place for r in records)
    _assert_bitwise(stepper.results, expected)
    _assert_bitwise(stepper.results, program.run([xv, yv]))


def test_step_records_show_what_each_step_read_and_the_memory_held():
    """``x @ w + b`` then ``* 2``: the add and the mul are written in place into the matmul's
    buffer, yet each record shows the values of its own step; the bytes the program holds
    after each step are measured, and equal the plan's count."""
    xv = np.arange(12, dtype=np.float32).reshape(4, 3)
    wv = np.ones((3, 2), np.float32)
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((None, 3), name="x")
        w = G.Variable(wv, name="w")
        b = G.Variable(np.array([1.0, 2.0], np.float32), name="b")
        y = (x @ w + b) * 2.0
        s = y.sum()
    with G.Session(g, optimize=0) as sess:
        records = {r.name: r for r in sess.step([s, y], {x: xv})}
    add = records["add"]
    assert add.in_place and "(in place)" in add.buffer
    # the value read, not the one written; the value made, not the one the next step wrote over it
    np.testing.assert_array_equal(add.inputs[0], xv @ wv)
    np.testing.assert_array_equal(add.outputs[0], xv @ wv + [1.0, 2.0])
    np.testing.assert_array_equal(records["matmul"].outputs[0], xv @ wv)
    np.testing.assert_array_equal(records["mul"].outputs[0], (xv @ wv + [1.0, 2.0]) * 2)
    assert add.freed == ("b", "matmul")
    assert records["x"].buffer == "b0 (feed)" and records["x"].live_bytes == 0
    assert records["matmul"].live_bytes == 4 * 2 * 4
    for r in records.values():
        assert r.live_bytes == r.planned_bytes
    assert records["sum"].live_bytes == 4 * 2 * 4 + 4  # both fetched: held to the end
    text = str(add)
    assert "%add = add(%matmul, %b)" in text and "(4, 2) float32" in text and "live 32 B" in text


def test_step_runs_side_effects_like_the_program_and_records_keep_their_values():
    """The assignment happens (the variable holds 2 afterwards), and the record of the
    variable's read still shows the 1 it read, though the storage it showed was overwritten."""
    g = G.Graph()
    with g.as_default():
        v = G.Variable(np.zeros(3, np.float32), name="v")
        update = G.assign(v, v + 1.0)
    with G.Session(g) as sess:
        sess.run(update)
        stepper = sess.step(update)
        records = {r.name: r for r in stepper}
        np.testing.assert_array_equal(stepper.results[0], [2.0, 2.0, 2.0])
        np.testing.assert_array_equal(sess.run(v), [2.0, 2.0, 2.0])
        np.testing.assert_array_equal(records["v"].outputs[0], [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(records["assign_v"].outputs[0], [2.0, 2.0, 2.0])
        assert stepper.run_to_end() is stepper.results


def test_step_requires_every_placeholder_fed():
    g = G.Graph()
    with g.as_default():
        x = G.placeholder((2,), name="x")
        y = x * 2.0
    with G.Session(g) as sess, pytest.raises(G.GraphError, match="'x'"):
        list(sess.step(y))
