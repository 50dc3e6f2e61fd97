"""Killing a process that is writing the local audit log loses no committed event and corrupts nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pangea_mcp import audit_verify as av
from pangea_mcp.local.audit_store import AuditStore
from pangea_mcp.local.audit_types import NewEvent, Query

ROOT = Path(__file__).resolve().parent.parent
#: Committed events to see printed before each kill.
EVENTS_PER_ROUND = 400
TIMEOUT = 60.0


def run_and_kill(db: Path, key: Path) -> set[str]:
    """Start the writer, let it commit at least EVENTS_PER_ROUND events, SIGKILL it mid-stream."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.local_audit_writer", str(db), str(key)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    printed: set[str] = set()
    deadline = time.monotonic() + TIMEOUT
    try:
        assert child.stdout is not None
        while len(printed) < EVENTS_PER_ROUND:
            line = child.stdout.readline()
            if not line or time.monotonic() > deadline:
                stderr = child.stderr.read().decode() if child.stderr else ""
                pytest.fail(f"the writer stopped after {len(printed)} events: {stderr[-2000:]}")
            printed.add(line.decode().strip())
        child.send_signal(signal.SIGKILL)  # while it is still appending
        rest, _ = child.communicate(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    # A line cut off by the kill is not a claim that its event was committed.
    lines = rest.decode(errors="replace").split("\n")
    printed.update(line for line in lines[:-1] if line)
    return printed


async def check_log(db: Path, key: Path, committed: set[str]) -> int:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    store = await AuditStore.open(db, key)  # quick_check and the tree against its signed root
    try:
        assert store.damage is None
        found = await store.search(Query(limit=10**9, max_results=10**9, start=None))
        stored = {record.hash for record in found.records}
        assert committed <= stored, f"{len(committed - stored)} committed events were lost"
        assert found.root is not None and store.verify_root(found.root)
        for record in found.records:
            assert record.membership_proof is not None
            assert av.verify_membership(record.hash, found.root.root_hash, record.membership_proof)
            assert av.envelope_hash(json.loads(record.envelope)) == record.hash
        roots = await store.roots(range(1, found.root.size + 1))
        assert sorted(roots) == list(range(1, found.root.size + 1))
        for size in range(2, found.root.size + 1):
            proof = roots[size].consistency_proof
            assert proof is not None and store.verify_root(roots[size])
            assert av.verify_consistency(roots[size - 1].root_hash, roots[size].root_hash, proof)
        # Appending continues on top of what survived.
        after = await store.append(NewEvent({"message": "after the crash"}), prev_root=found.root.root_hash)
        assert after.consistency_proof is not None
        assert av.verify_consistency(
            found.root.root_hash, after.root.root_hash, list(after.consistency_proof)
        )
        return found.count + 1
    finally:
        await store.close()


async def test_sigkill_mid_write_loses_no_committed_event_and_corrupts_nothing(tmp_path: Path) -> None:
    db, key = tmp_path / "audit.sqlite3", tmp_path / "config" / "key.pem"
    committed: set[str] = set()
    for _ in range(3):
        committed |= run_and_kill(db, key)
        total = await check_log(db, key, committed)
        assert total > len(committed)
