"""Local redaction on a blind held-out set (tests/data/redaction_heldout.jsonl).

The set was written without reading the recognisers or the tuned set, and its labels were not changed
after the engine was run on it. It is therefore scored with weaker thresholds than
tests/test_local_redact.py uses on the tuned set (precision >= 0.90, recall >= 0.85 instead of
0.95 / 0.90). The scoring is the same (tests/redaction_scoring.py): entity level, strict -- a hit counts
only with the labelled type and exactly the labelled span; every other hit, and any hit in a negative row,
is a false positive.

Rebuild the data with ``uv run python tests/data/redaction_heldout_generate.py``. Run with ``-s`` to see
the per-type table and every miss and false positive.
"""

from __future__ import annotations

from pathlib import Path

from tests import redaction_scoring

HELDOUT = Path(__file__).parent / "data" / "redaction_heldout.jsonl"


def test_precision_and_recall_on_the_blind_heldout_set() -> None:
    heldout = redaction_scoring.load(HELDOUT)
    positives, negatives = heldout.positives, heldout.negatives
    assert len(positives) >= 150 and len(negatives) >= 150
    assert len({r["id"] for r in heldout.rows}) == len(heldout.rows)

    score = redaction_scoring.score(heldout.rows)
    entities = score.true_pos + score.false_neg
    lines = [
        "",
        f"held-out set: {len(positives)} positive, {len(negatives)} negative rows, {entities} entities",
        f"local redaction (blind): {score.summary()}",
        *score.breakdown(),
    ]
    print("\n".join(lines))

    assert score.precision >= 0.90
    assert score.recall >= 0.85
