"""Local audit log: append rate with durable commits, proof times, search latency and file size.

Run from the repository root:

    uv run python -m bench.bench_local_audit [--events 100000] [--callers 64] [--proofs 2000]

It fills a new log in a temporary directory with `--events` events through the store's concurrent API
as the server uses it (`--callers` tasks, each awaiting one `append` after another, so transactions
group the callers that wait together; every answer comes after its commit reached the disk: WAL with
synchronous=FULL). Then it times membership-proof generation (in one read and one read per proof),
their verification with `pangea_mcp.audit_verify` (target < 1 ms each), searches through the store
and through the `search_log` tool (in-memory MCP client, every event verified), reopening (SQLite
quick_check plus the tree checked against its signed root), and reports the file size.

It is a report, not a test: it exits 0 whether or not a target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from fastmcp import Client

from pangea_mcp import audit_verify as av
from pangea_mcp.local.audit_store import AuditStore
from pangea_mcp.local.audit_types import NewEvent, Query
from pangea_mcp.server import build_server
from tests.conftest import make_settings

APPEND_TARGET = 2_000  # events/s
VERIFY_TARGET_MS = 1.0
ACTORS = 50


def event(i: int) -> NewEvent:
    return NewEvent(
        {
            "message": f"user {i % 997} read document {i}",
            "actor": f"bench-{i % ACTORS}",
            "action": "read",
            "target": f"doc-{i}",
            "status": "success",
            "source": "bench",
        }
    )


async def fill(store: AuditStore, events: int, callers: int) -> float:
    counter = iter(range(events))

    async def caller() -> None:
        for i in counter:
            await store.append(event(i))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return events / (time.perf_counter() - started)


async def trail_rate(store: AuditStore, batches: int, size: int) -> float:
    started = time.perf_counter()
    for b in range(batches):
        await store.append_many([event(b * size + i) for i in range(size)])
    return batches * size / (time.perf_counter() - started)


async def proofs(store: AuditStore, events: int, count: int, rng: random.Random) -> dict[str, float]:
    picks = [rng.randrange(events) for _ in range(count)]
    started = time.perf_counter()
    found = await store.records(picks)
    batch_ms = (time.perf_counter() - started) * 1000 / count
    single = []
    for seq in picks[:200]:
        t = time.perf_counter()
        await store.records([seq])
        single.append((time.perf_counter() - t) * 1000)
    assert found.root is not None
    root = found.root.root_hash
    samples = [(r.hash, r.membership_proof or "") for r in found.records]
    times = []
    for _ in range(5):
        t = time.perf_counter()
        ok = all(av.verify_membership(h, root, p) for h, p in samples)
        times.append((time.perf_counter() - t) * 1000 / len(samples))
        if not ok:
            raise SystemExit("a proof from the store failed to verify: the benchmark is broken")
    depth = statistics.mean(p.count(",") + 1 for _, p in samples)
    return {
        "generate_batch_ms": batch_ms,
        "generate_single_ms": statistics.median(single),
        "verify_ms": statistics.median(times),
        "depth": depth,
    }


def files_size(directory: Path) -> int:
    """The database with its -wal and -shm files."""
    return sum(f.stat().st_size for f in directory.glob("audit.sqlite3*"))


async def timed(work: Callable[[], Awaitable[object]], rounds: int = 5) -> float:
    """Median milliseconds of awaiting `work()`."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        await work()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--proofs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-local-audit-") as tmp:
        db, key = Path(tmp) / "audit.sqlite3", Path(tmp) / "key.pem"
        store = await AuditStore.open(db, key)
        rate = await fill(store, args.events, args.callers)
        roots = await store.latest_root()
        buffers = roots.size if roots else 0
        print(
            f"append: {args.events:,} events from {args.callers} concurrent callers, durable commits: "
            f"{rate:,.0f} events/s in {buffers:,} transactions (target >= {APPEND_TARGET:,}/s: "
            f"{'met' if rate >= APPEND_TARGET else 'MISSED'})"
        )
        one_ms = await timed(lambda: store.append(event(0)), rounds=200)
        seq_rate = 1000 / one_ms
        print(f"append, one caller at a time (one transaction each): {seq_rate:,.0f} events/s")
        print(f"append_many (audit trail, batches of 100): {await trail_rate(store, 20, 100):,.0f} events/s")

        p = await proofs(store, args.events, args.proofs, rng)
        print(
            f"membership proof ({p['depth']:.1f} items): generate {p['generate_batch_ms'] * 1000:,.0f} µs "
            f"each in one read of {args.proofs:,}, {p['generate_single_ms'] * 1000:,.0f} µs as a single "
            f"read; verify {p['verify_ms'] * 1000:,.1f} µs (target < {VERIFY_TARGET_MS:g} ms: "
            f"{'met' if p['verify_ms'] < VERIFY_TARGET_MS else 'MISSED'})"
        )
        term = await timed(lambda: store.search(Query(terms=(("actor", "bench-7"),), limit=10)))
        latest = await timed(lambda: store.search(Query(limit=10)))
        rare = await timed(lambda: store.search(Query(terms=(("target", "doc-99999"),), limit=10)))
        print(
            f"store search, 10 results with proofs: latest {latest:,.1f} ms; actor:bench-7 "
            f"({args.events // ACTORS:,} matches) {term:,.1f} ms; target:doc-99999 (scan) {rare:,.1f} ms"
        )
        await store.close()

        settings = make_settings(
            token=None, backend="local", services=("audit",), local_audit_db=db, local_signing_key=key
        )
        async with Client(build_server(settings)) as client:
            for limit in (10, 100):
                args_ = {"query": "actor:bench-7", "limit": limit, "maxResults": limit}
                result = await client.call_tool("search_log", args_)
                summary = (result.structured_content or {}).get("verification") or {}
                if summary.get("verified") != limit:
                    raise SystemExit(f"search_log did not verify every event: {summary}")
                ms = await timed(partial(client.call_tool, "search_log", args_))
                print(f"search_log tool, {limit} events, all verified: {ms:,.1f} ms")

        t = time.perf_counter()
        store = await AuditStore.open(db, key)
        reopen = (time.perf_counter() - t) * 1000
        await store.close()
        size = files_size(Path(tmp))
        total = args.events + 200 + 2000
        print(f"reopen (quick_check + tree against its signed root): {reopen:,.0f} ms")
        print(f"file: {size / 1e6:,.1f} MB for {total:,} events ({size / total:,.0f} bytes/event)")


if __name__ == "__main__":
    asyncio.run(main())
