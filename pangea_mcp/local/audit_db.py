"""The local audit log's SQLite file: schema, opening checks, transactions and Merkle node reads.

Durability: WAL with synchronous=FULL, so a commit has reached the disk when it returns. The file (and
SQLite's -wal/-shm, which copy its mode) is private to the user.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pangea_mcp.local import merkle
from pangea_mcp.local.audit_types import LocalAuditError, received_at

SCHEMA_VERSION = 1
#: Seconds a write waits for another connection's transaction before failing.
BUSY_TIMEOUT = 10.0
#: Standard-schema event fields kept in columns for search and sorting (the envelope is the data).
FIELDS = ("message", "actor", "action", "target", "status", "source", "old", "new", "tenant_id", "timestamp")
ORDER_COLUMNS = ("received_at", *FIELDS)
T = TypeVar("T")

_SCHEMA = f"""
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    batch INTEGER NOT NULL,
    hash BLOB NOT NULL,
    envelope TEXT NOT NULL,
    received_at TEXT NOT NULL,
    {", ".join(f'"{name}" TEXT' for name in FIELDS)}
);
CREATE INDEX events_received_at ON events (received_at);
CREATE TABLE roots (
    size INTEGER PRIMARY KEY,
    root_hash TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    published_at TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX roots_root_hash ON roots (root_hash);
CREATE TABLE cold (level INTEGER, idx INTEGER, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE hot (
    batch INTEGER, level INTEGER, idx INTEGER, hash BLOB NOT NULL, PRIMARY KEY (batch, level, idx)
) WITHOUT ROWID;
"""


# -- opening the file ---------------------------------------------------------------------------


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the file, created (mode 0600, directory 0700) when missing."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    if not path.exists():
        # Audit events can be sensitive: the file (and SQLite's -wal/-shm, which copy its mode)
        # is private to the user.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    try:
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
    except sqlite3.Error as exc:
        raise LocalAuditError(f"the local audit log {path} cannot be opened ({exc})") from None


def check(conn: sqlite3.Connection, path: Path) -> None:
    """Durable WAL mode, and an undamaged file (SQLite quick_check)."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise LocalAuditError(f"the local audit log {path} cannot use WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous=FULL")
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise LocalAuditError(
            f"the local audit log {path} is damaged (SQLite quick_check: {'; '.join(problems)}); "
            "move it aside and restore a backup, or set PANGEA_LOCAL_AUDIT_DB to a new file"
        )


def schema_version(conn: sqlite3.Connection, path: Path) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise LocalAuditError(f"{path} is an SQLite file but not a pangea-mcp audit log")
    if version not in (0, SCHEMA_VERSION):
        raise LocalAuditError(
            f"the local audit log {path} has schema version {version}; this pangea-mcp reads "
            f"version {SCHEMA_VERSION}"
        )
    return version


def stored_public_key(conn: sqlite3.Connection, path: Path) -> str | None:
    """The public key that signed an existing log; None for a new file (schema not created yet)."""
    if schema_version(conn, path) == 0:
        return None
    row = conn.execute("SELECT value FROM meta WHERE name='public_key'").fetchone()
    if row is None:
        raise LocalAuditError(f"the local audit log {path} has no signing key record; it was altered")
    return str(row[0])


def create_schema(conn: sqlite3.Connection, path: Path, public_key: str) -> None:
    """The tables and a new tree name, for roots signed by `public_key` (unless created meanwhile)."""
    with transaction(conn, "BEGIN IMMEDIATE"):
        if schema_version(conn, path) != 0:
            return  # another process created it meanwhile
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany(
            "INSERT INTO meta (name, value) VALUES (?, ?)",
            [
                ("tree_name", secrets.token_hex(32)),
                ("public_key", public_key),
                ("created_at", received_at(datetime.now(UTC))),
            ],
        )
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


# -- transactions -------------------------------------------------------------------------------


class transaction:  # noqa: N801 - used like a function: `with transaction(conn):`
    def __init__(self, conn: sqlite3.Connection, begin: str = "BEGIN") -> None:
        self._conn, self._begin = conn, begin

    def __enter__(self) -> None:
        self._conn.execute(self._begin)

    def __exit__(self, kind: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if kind is not None else "COMMIT")


def read(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    # One read transaction: a consistent snapshot even while another process writes.
    try:
        with transaction(conn):
            return work(conn)
    except sqlite3.DatabaseError as exc:
        raise LocalAuditError(
            f"the local audit log cannot be read ({exc}); if it is damaged, move it aside and restore "
            "a backup"
        ) from None


def settle(future: Future[T], conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> None:
    """Run `work` in a read transaction and answer `future` with its result or error."""
    try:
        result = read(conn, work)
    except BaseException as exc:  # answered to the caller; the thread must outlive it
        future.set_exception(exc)
    else:
        future.set_result(result)


# -- Merkle nodes -------------------------------------------------------------------------------


def node(conn: sqlite3.Connection, table: str, level: int, index: int, batch: int | None = None) -> bytes:
    if table == "cold":
        row = conn.execute("SELECT hash FROM cold WHERE level = ? AND idx = ?", (level, index)).fetchone()
    else:
        row = conn.execute(
            "SELECT hash FROM hot WHERE batch = ? AND level = ? AND idx = ?", (batch, level, index)
        ).fetchone()
    if row is None or not isinstance(row[0], bytes) or len(row[0]) != 32:
        raise LookupError(f"Merkle node ({level}, {index}) of the {table} tree is missing or malformed")
    return row[0]


def reader(conn: sqlite3.Connection, table: str) -> merkle.NodeReader:
    return lambda level, index: node(conn, table, level, index)


class HotReader:
    """Nodes of one buffer's tree: level 0 is the events' hashes, higher levels the hot table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def path(self, batch: int, seq: int) -> list[str]:
        row = self._conn.execute("SELECT first_seq, count FROM roots WHERE size = ?", (batch + 1,)).fetchone()
        if row is None:
            raise LookupError(f"no root of size {batch + 1}")
        first, count = row

        def read(level: int, index: int) -> bytes:
            if level == 0:
                found = self._conn.execute(
                    "SELECT hash FROM events WHERE seq = ?", (first + index,)
                ).fetchone()
                if found is None:
                    raise LookupError(f"event {first + index} is missing")
                return bytes(found[0])
            return node(self._conn, "hot", level, index, batch)

        return merkle.path(read, count, 0, seq - first)
