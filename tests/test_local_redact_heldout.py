"""Local redaction on a blind held-out set (tests/data/redaction_heldout.jsonl).

The set was written without reading the recognisers or the tuned set, and its labels were not changed
after the engine was run on it. It is therefore scored with weaker thresholds than
tests/test_local_redact.py uses on the tuned set (precision >= 0.90, recall >= 0.85 instead of
0.95 / 0.90). The scoring is the same: entity level, strict -- a hit counts only with the labelled
type and exactly the labelled span; every other hit, and any hit in a negative row, is a false positive.

Rebuild the data with ``uv run python tests/data/redaction_heldout_generate.py``. Run with ``-s`` to see
the per-type table and every miss and false positive.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pangea_mcp.local.redaction import find

HELDOUT = Path(__file__).parent / "data" / "redaction_heldout.jsonl"


def _short(value: str, limit: int = 80) -> str:
    value = value.replace("\n", "\\n")
    return value if len(value) <= limit else value[: limit - 3] + "..."


def test_precision_and_recall_on_the_blind_heldout_set() -> None:
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    positives = [r for r in rows if r["kind"] == "positive"]
    negatives = [r for r in rows if r["kind"] == "negative"]
    assert len(positives) >= 150 and len(negatives) >= 150
    assert all(r["entities"] for r in positives) and not any(r["entities"] for r in negatives)
    assert len({r["id"] for r in rows}) == len(rows)

    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    misses: list[str] = []
    false_positives: list[str] = []
    for row in rows:
        text = row["text"]
        gold = {(e["type"], e["start"], e["end"]) for e in row["entities"]}
        found = {(h.field_type, h.start, h.end) for h in find(text)}
        for kind, _start, _end in gold & found:
            tp[kind] += 1
        for kind, start, end in sorted(gold - found):
            fn[kind] += 1
            misses.append(f"  {row['id']} {kind} [{start}:{end}] {_short(text[start:end])!r}")
        for kind, start, end in sorted(found - gold):
            fp[kind] += 1
            false_positives.append(f"  {row['id']} {kind} [{start}:{end}] {_short(text[start:end])!r}")

    true_pos, false_pos, false_neg = sum(tp.values()), sum(fp.values()), sum(fn.values())
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / (true_pos + false_neg)

    lines = [
        "",
        f"held-out set: {len(positives)} positive, {len(negatives)} negative rows, {true_pos + false_neg} entities",
        f"local redaction (blind): precision {precision:.3f}, recall {recall:.3f} "
        f"({true_pos} TP, {false_pos} FP, {false_neg} FN)",
        f"  {'type':<34}{'TP':>5}{'FP':>5}{'FN':>5}{'prec':>8}{'recall':>8}",
    ]
    for kind in sorted(set(tp) | set(fp) | set(fn)):
        t, f, n = tp[kind], fp[kind], fn[kind]
        p = f"{t / (t + f):.3f}" if t + f else "-"
        r = f"{t / (t + n):.3f}" if t + n else "-"
        lines.append(f"  {kind:<34}{t:>5}{f:>5}{n:>5}{p:>8}{r:>8}")
    lines.append(f"misses ({false_neg}):")
    lines.extend(misses or ["  none"])
    lines.append(f"false positives ({false_pos}):")
    lines.extend(false_positives or ["  none"])
    print("\n".join(lines))

    assert precision >= 0.90
    assert recall >= 0.85
