"""Reading a graph: the IR listing (``graph.print()``) and Graphviz DOT (``graph.to_dot()``).

The listing shows one node per line, in execution order, as single-assignment code::

    %x       = placeholder()                : (?, 3) float32   # train.py:8
    %w       = variable(w, trainable)       : (3, 1) float32   # train.py:9
    %matmul  = matmul(%x, %w)               : (?, 1) float32   # train.py:10
    %pow     = pow(%matmul, 2)              : (?, 1) float32   # train.py:10

``%name`` is a value; anything else in the parentheses is a literal baked into the node
(a number, a tuple, a dtype) or, after ``=``, an attribute. ``?`` is a size known only at
run time. Ops that save arrays for their backward rule list them (``+ saves logp, safe``);
side effects that must run after others say so (``after %assign_w``).

DOT output is plain text for Graphviz: one box per node, labeled with its op, name and
shape, an edge from each input; placeholders, variables, constants and side effects each
have their own look. With a ``.svg``/``.png``/``.pdf`` path it is also rendered by the
``dot`` program when that is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import dtypes
from .ir import Node, Output

__all__ = ["format_nodes", "to_dot", "GraphvizNotFoundError"]

_PREVIEW_SIZE = 6  # constants with at most this many elements show their values
_MAX_EXPR = 72  # expressions longer than this are not padded (they would push every type column out)


class GraphvizNotFoundError(RuntimeError):
    """Rendering was asked for, but Graphviz's ``dot`` program is not installed."""


# ---- the listing -----------------------------------------------------------------------------------


def format_nodes(nodes: list[Node]) -> str:
    """The IR listing: ``%name = op(%in, literal, attr=value) : (shape) dtype   # file:line``."""
    rows = [(f"%{n.name}", _expression(n), _type(n), _source(n)) for n in nodes]
    if not rows:
        return "(empty graph)"
    w_name = max(len(r[0]) for r in rows)
    w_expr = min(max(len(r[1]) for r in rows), _MAX_EXPR)
    w_type = max(len(r[2]) for r in rows)
    lines = []
    for name, expr, typ, src in rows:
        line = f"{name:<{w_name}} = {expr:<{w_expr}} : {typ:<{w_type}}"
        if src:
            line += f"   # {src}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def _expression(node: Node) -> str:
    kind = node.kind
    if kind == "placeholder":
        return "placeholder()"
    if kind == "variable":
        state = node.payload
        return f"variable({state.name}{', trainable' if state.trainable else ''})"
    if kind == "constant":
        return f"constant({_preview(node.payload)})"
    if kind == "assign":
        expr = f"assign({node.payload.name}, {_literal(node.inputs[0])})"
    else:
        args = [_literal(v) for v in node.inputs]
        args += [f"{k}={_literal(v)}" for k, v in node.attrs.items()]
        expr = f"{node.op_label()}({', '.join(args)})"
    if node.saved_keys:
        expr += " + saves " + ", ".join(node.saved_keys)
    if node.control:
        expr += " after " + ", ".join(f"%{c.name}" for c in node.control)
    return expr


def _type(node: Node) -> str:
    if not node.specs:
        return "(effect)"
    spec = node.specs[0]
    return f"{_fmt_shape(spec.shape)} {spec.dtype.name}"


def _source(node: Node) -> str:
    src = node.source or ""
    path, sep, line = src.rpartition(":")
    if not sep or not path:
        return src
    return f"{os.path.basename(path)}:{line}"


def _literal(v: Any) -> str:
    """A short, readable form of an input or attribute."""
    if type(v) is Output:
        return f"%{v.name}"
    if isinstance(v, dtypes.DType):
        return v.name
    if isinstance(v, np.ndarray):
        return _preview(v)
    if isinstance(v, tuple):
        inner = ", ".join(_literal(x) for x in v)
        return f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, list):
        return "[" + ", ".join(_literal(x) for x in v) + "]"
    if isinstance(v, (bool, int, float, str)) or v is None:
        return repr(v)
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _preview(a: Any) -> str:
    """Tiny arrays by value; larger ones by shape and dtype."""
    a = np.asarray(a)
    if a.size <= _PREVIEW_SIZE:
        if a.ndim == 0:
            return repr(a.item())
        return np.array2string(a, separator=", ", precision=4, max_line_width=10_000).replace("\n", "")
    return f"<{_fmt_shape(a.shape)} {a.dtype.name}>"


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# ---- DOT ------------------------------------------------------------------------------------------

_STYLE = {
    "placeholder": 'shape=ellipse, style=filled, fillcolor="#dbeafe"',
    "variable": 'shape=box, style=filled, fillcolor="#fef3c7", peripheries=2',
    "constant": 'shape=note, style=filled, fillcolor="#f3f4f6"',
    "op": 'shape=box, style="rounded,filled", fillcolor="#ffffff"',
    "assign": 'shape=box, style=filled, fillcolor="#fde2e2"',
    "call": 'shape=hexagon, style=filled, fillcolor="#fde2e2"',
}
_RENDERED = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def to_dot(nodes: list[Node], path: str | os.PathLike | None = None) -> str:
    """The graph as Graphviz DOT text.

    With ``path``: a ``.dot``/``.gv`` path gets the text; a ``.svg``/``.png``/``.pdf`` path is
    rendered by Graphviz's ``dot`` program (the text is also written next to it, with the
    suffix ``.dot``). Files are written atomically. If ``dot`` is not installed, rendering
    raises ``GraphvizNotFoundError`` -- after writing the ``.dot`` file.
    """
    text = _dot_text(nodes)
    if path is None:
        return text
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dot", ".gv"):
        _write_atomic(path, text.encode())
        return text
    if suffix not in _RENDERED:
        raise ValueError(
            f"to_dot: cannot tell the format of {str(path)!r} from its suffix; use .dot or .gv for DOT text, "
            f"or {', '.join(_RENDERED)} to render it with Graphviz"
        )
    dot_path = path.with_suffix(".dot")
    _write_atomic(dot_path, text.encode())
    _render(dot_path, path, _RENDERED[suffix])
    return text


def _dot_text(nodes: list[Node]) -> str:
    present = {n.id for n in nodes}
    lines = [
        "digraph minidl {",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
    ]
    missing: dict[int, Node] = {}
    edges = []
    for node in nodes:
        lines.append(f"  n{node.id} [label={_quote(_label(node))}, {_STYLE.get(node.kind, _STYLE['op'])}];")
        for v in node.inputs:
            if type(v) is not Output:
                continue
            if v.node.id not in present:
                missing[v.node.id] = v.node
            attrs = f" [label={_quote('.' + v.node.saved_keys[v.index - 1])}]" if v.index else ""
            edges.append(f"  n{v.node.id} -> n{node.id}{attrs};")
        for c in node.control:
            if c.id not in present:
                missing[c.id] = c
            edges.append(f"  n{c.id} -> n{node.id} [style=dashed];")
    for node in missing.values():  # inputs from outside the listed nodes
        lines.append(f"  n{node.id} [label={_quote('%' + node.name)}, shape=plaintext];")
    return "\n".join(lines + edges + ["}"]) + "\n"


def _label(node: Node) -> str:
    op = node.op_label()
    lines = [op] if node.kind in ("op", "call") else [node.kind]
    if node.name != op:
        lines.append(f"%{node.name}")
    if node.kind == "constant" and np.asarray(node.payload).size <= _PREVIEW_SIZE:
        lines.append(_preview(node.payload))
    if node.specs:
        spec = node.specs[0]
        lines.append(f"{_fmt_shape(spec.shape)} {spec.dtype.name}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _render(dot_path: Path, path: Path, fmt: str) -> None:
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFoundError(
            f"to_dot: cannot render {str(path)!r}: Graphviz's 'dot' program is not on PATH. The DOT text was "
            f"written to {str(dot_path)!r} (and is what to_dot returns); install Graphviz and run "
            f"`dot -T{fmt} {dot_path} -o {path}`, or ask for a .dot path"
        )
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        done = subprocess.run([exe, f"-T{fmt}", str(dot_path), "-o", tmp], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"to_dot: Graphviz failed to render {str(path)!r} (exit code {done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}"
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
