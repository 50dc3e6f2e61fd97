"""Crash-test child: appends to a local audit log for ever, printing each event's hash once committed.

    python -m tests.local_audit_writer DB KEY

Appends run 16 at a time (so transactions hold several callers' events, as in the server); a line is
printed and flushed only after `append` returned, i.e. after the commit reached the disk.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pangea_mcp.local.audit_store import AuditStore
from pangea_mcp.local.audit_types import NewEvent


async def main(db: Path, key: Path) -> None:
    store = await AuditStore.open(db, key)
    n = 0

    async def one(i: int) -> None:
        done = await store.append(NewEvent({"message": f"crash test {i}", "new": "x" * (i % 300)}))
        sys.stdout.write(f"{done.hash}\n")
        sys.stdout.flush()

    while True:
        await asyncio.gather(*(one(n + i) for i in range(16)))
        n += 16


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
