"""Entity-level scoring of local redaction on a labelled set (tests/data/redaction_*.jsonl).

Strict: a hit counts only with the labelled type and exactly the labelled span; every other hit, and any
hit in a negative row, is a false positive.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pangea_mcp.local.redaction import find


@dataclass
class LabelledSet:
    rows: list[dict[str, Any]]
    positives: list[dict[str, Any]]
    negatives: list[dict[str, Any]]


def load(path: Path) -> LabelledSet:
    """The rows of a labelled set; positive rows carry entities, negative rows none."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    positives = [r for r in rows if r["kind"] == "positive"]
    negatives = [r for r in rows if r["kind"] == "negative"]
    assert all(r["entities"] for r in positives) and not any(r["entities"] for r in negatives)
    return LabelledSet(rows, positives, negatives)


def _short(value: str, limit: int = 80) -> str:
    value = value.replace("\n", "\\n")
    return value if len(value) <= limit else value[: limit - 3] + "..."


@dataclass
class Score:
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    @property
    def true_pos(self) -> int:
        return sum(self.tp.values())

    @property
    def false_pos(self) -> int:
        return sum(self.fp.values())

    @property
    def false_neg(self) -> int:
        return sum(self.fn.values())

    @property
    def precision(self) -> float:
        return self.true_pos / (self.true_pos + self.false_pos)

    @property
    def recall(self) -> float:
        return self.true_pos / (self.true_pos + self.false_neg)

    def summary(self) -> str:
        """precision P, recall R (n TP, n FP, n FN)"""
        return (
            f"precision {self.precision:.3f}, recall {self.recall:.3f} "
            f"({self.true_pos} TP, {self.false_pos} FP, {self.false_neg} FN)"
        )

    def breakdown(self) -> list[str]:
        """The per-type table, then every miss and every false positive."""
        lines = [f"  {'type':<34}{'TP':>5}{'FP':>5}{'FN':>5}{'prec':>8}{'recall':>8}"]
        for kind in sorted(set(self.tp) | set(self.fp) | set(self.fn)):
            t, f, n = self.tp[kind], self.fp[kind], self.fn[kind]
            p = f"{t / (t + f):.3f}" if t + f else "-"
            r = f"{t / (t + n):.3f}" if t + n else "-"
            lines.append(f"  {kind:<34}{t:>5}{f:>5}{n:>5}{p:>8}{r:>8}")
        lines.append(f"misses ({self.false_neg}):")
        lines.extend(self.misses or ["  none"])
        lines.append(f"false positives ({self.false_pos}):")
        lines.extend(self.false_positives or ["  none"])
        return lines


def score(rows: list[dict[str, Any]]) -> Score:
    """Run the local recognisers (all entity types) on every row and compare with its labels."""
    result = Score()
    for row in rows:
        text = row["text"]
        gold = {(e["type"], e["start"], e["end"]) for e in row["entities"]}
        found = {(h.field_type, h.start, h.end) for h in find(text)}
        for kind, _start, _end in gold & found:
            result.tp[kind] += 1
        for kind, start, end in sorted(gold - found):
            result.fn[kind] += 1
            result.misses.append(f"  {row['id']} {kind} [{start}:{end}] {_short(text[start:end])!r}")
        for kind, start, end in sorted(found - gold):
            result.fp[kind] += 1
            result.false_positives.append(f"  {row['id']} {kind} [{start}:{end}] {_short(text[start:end])!r}")
    return result
