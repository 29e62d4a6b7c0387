"""The compiler's passes: each takes a ``Subgraph`` and returns an equivalent, smaller or faster one.

``optimize(sub, level)`` runs the pipeline for a level and returns the result with a report of
what each pass changed:

=====  ==========================================================================================
level  pipeline
=====  ==========================================================================================
0      nothing (``Session`` has already pruned the graph to what the fetches need)
1      ``dce``; then ``cse``, ``fold``, ``simplify`` repeated until a round changes nothing (at
       most ``MAX_ROUNDS``); then ``dce``. Every rewrite is exact: results are bitwise those
       of level 0, and of eager code.
2      level 1, then ``fusion`` of elementwise chains into compiled kernels, then ``dce``.
       Fused kernels may round differently (results match within float tolerance).
=====  ==========================================================================================

The passes repeat because each can expose work for the others: CSE makes two nodes' inputs
identical (so their readers merge next round), folding turns a node's inputs into constants,
simplification removes an op between two that then merge or fold. One file per pass:
``dce.py``, ``cse.py``, ``fold.py``, ``simplify.py``, ``fusion.py``; ``rewrite.py`` holds the
bookkeeping they share.

``protected`` is the set of values fed at run time: no pass folds, replaces or removes the
nodes producing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..program import Subgraph
from .cse import cse
from .dce import dce
from .fold import fold
from .simplify import simplify

__all__ = ["optimize", "PassReport", "MAX_ROUNDS"]

#: Level 1 stops repeating its passes after this many rounds even if they still find work.
MAX_ROUNDS = 4


class PassReport:
    """What each pass did: ``(pass name, nodes before, nodes after, note)`` rows, in order."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int, str]] = []

    def add(self, name: str, before: int, after: int, note: str = "") -> None:
        self.rows.append((name, before, after, note))

    @property
    def nodes_before(self) -> int | None:
        return self.rows[0][1] if self.rows else None

    @property
    def nodes_after(self) -> int | None:
        return self.rows[-1][2] if self.rows else None

    def __str__(self) -> str:
        if not self.rows:
            return "no passes ran (optimization level 0)"
        lines = [f"{'pass':<16}{'nodes before':>14}{'nodes after':>13}  note"]
        lines += [f"{n:<16}{b:>14}{a:>13}  {note}" for n, b, a, note in self.rows]
        before, after = self.nodes_before, self.nodes_after
        lines.append(f"{'total':<16}{before:>14}{after:>13}  {after - before:+d} nodes")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<PassReport: {len(self.rows)} passes, {self.nodes_before} -> {self.nodes_after} nodes>"


Pass = Callable[[Subgraph, Any], tuple[Subgraph, str]]


def _run(report: PassReport, name: str, fn: Pass, sub: Subgraph, protected: Any) -> tuple[Subgraph, bool]:
    """Run one pass, add its report row; also say whether it changed anything."""
    new, note = fn(sub, protected)
    report.add(name, len(sub.nodes), len(new.nodes), note)
    return new, bool(note)


def optimize(sub: Subgraph, level: int = 1, protected: Any = ()) -> tuple[Subgraph, PassReport]:
    """Run the passes of ``level`` (0, 1 or 2) on ``sub``; return the new subgraph and the report."""
    if level not in (0, 1, 2):
        raise ValueError(f"optimize: level must be 0, 1 or 2, got {level!r}")
    protected = set(protected or ())
    report = PassReport()
    if level == 0:
        return sub, report
    sub, _ = _run(report, "dce", dce, sub, protected)
    for _ in range(MAX_ROUNDS):
        changed = False
        for name, fn in (("cse", cse), ("fold", fold), ("simplify", simplify)):
            sub, did = _run(report, name, fn, sub, protected)
            changed |= did
        if not changed:
            break
    sub, _ = _run(report, "dce", dce, sub, protected)
    if level >= 2:
        from .fusion import fuse

        sub, did = _run(report, "fusion", fuse, sub, protected)
        if did:
            sub, _ = _run(report, "dce", dce, sub, protected)
    return sub, report
