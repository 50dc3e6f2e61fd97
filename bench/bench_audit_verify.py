"""Audit verification throughput: membership proofs verified per second (target >= 5,000/s).

Run from the repository root:

    uv run python -m bench.bench_audit_verify [--leaves 100000] [--proofs 20000] [--rounds 5]

It builds a Merkle tree the way Pangea does (pangea-api.md 6.4, with the fake audit log's tree), takes
`--proofs` random records with their membership proofs (about log2(leaves) items each, like a real
published tree), and times `pangea_mcp.audit_verify.verify_membership` over all of them, `--rounds`
times; the best and median rounds are reported. For context it also times the full per-record check
of a search (`check_record`: envelope hash, membership, consistency, Ed25519 signature) on the
official test vector.

It is a report, not a test: it exits 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from pangea_mcp import audit_verify as av
from tests.fake_audit import Tree
from tests.spec import SPEC_DIR

TARGET = 5_000


def build(leaves: int, proofs: int, seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    tree = Tree([rng.randbytes(32) for _ in range(leaves)])
    root = tree.root(0, leaves).hex()
    picks = [rng.randrange(leaves) for _ in range(proofs)]
    return [(tree.leaves[i].hex(), root, ",".join(tree.path(0, leaves, i, i + 1))) for i in picks]


def rate(samples: list[tuple[str, str, str]]) -> float:
    started = time.perf_counter()
    ok = all(av.verify_membership(leaf, root, proof) for leaf, root, proof in samples)
    elapsed = time.perf_counter() - started
    if not ok:
        raise SystemExit("a valid proof failed to verify: the benchmark is broken")
    return len(samples) / elapsed


def record_rate(rounds: int) -> float:
    record = json.loads((SPEC_DIR / "log_artifact.json").read_text())
    root = record["root"]
    published = av.Root(root["root_hash"], root["size"])
    roots = {
        112: av.Root(root["root_hash"], 112, tuple(root["consistency_proof"])),
        111: av.Root("44796fcb138da1cf756c17b24a74ab82e1b3b9c0d8e6eadbbdb5f067e3c9bc27", 111),
    }
    n = 2000 * rounds
    started = time.perf_counter()
    for _ in range(n):
        checks = av.check_record(record, root=published, unpublished_root=None, roots=roots)
    elapsed = time.perf_counter() - started
    if checks.outcome != "verified":
        raise SystemExit("the test vector failed to verify: the benchmark is broken")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--proofs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    samples = build(args.leaves, args.proofs, args.seed)
    depth = statistics.mean(proof.count(",") + 1 for _, _, proof in samples)
    rates = [rate(samples) for _ in range(args.rounds)]
    best, median = max(rates), statistics.median(rates)
    print(f"tree: {args.leaves:,} leaves; {args.proofs:,} proofs of {depth:.1f} items on average")
    print(f"membership proofs: median {median:,.0f}/s, best {best:,.0f}/s (target >= {TARGET:,}/s)")
    print(
        f"full record checks (hash + membership + consistency + signature): {record_rate(args.rounds):,.0f}/s"
    )
    print("target met" if median >= TARGET else "TARGET MISSED")


if __name__ == "__main__":
    main()
