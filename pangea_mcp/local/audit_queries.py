"""Reads of the local audit log: search, events with membership proofs, roots with consistency proofs.

Each function runs inside one read transaction on the store's SQLite thread (see audit_db.read).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from pangea_mcp.local import audit_db as db
from pangea_mcp.local import merkle
from pangea_mcp.local.audit_types import Found, Query, SignedRoot, StoredRecord


def consistency_from(conn: sqlite3.Connection, prev_root: str, size: int) -> tuple[str, ...] | None:
    """The consistency proof from the root `prev_root` to the tree of `size` (None: no such root)."""
    row = conn.execute("SELECT min(size) FROM roots WHERE root_hash = ?", (prev_root,)).fetchone()
    old = row[0] if row else None
    if old is None or old >= size:
        return None  # not a root of this log (Pangea also sends no proof then)
    return tuple(merkle.consistency_proof(lambda lv, ix: db.node(conn, "cold", lv, ix), old, size))


def roots(conn: sqlite3.Connection, tree_name: str, sizes: Sequence[int]) -> dict[int, SignedRoot]:
    """The stored roots of the given sizes (absent sizes left out), each with its consistency proof."""
    found = {}
    cold = db.reader(conn, "cold")
    for size in sorted(set(sizes)):
        row = conn.execute(
            "SELECT root_hash, published_at, signature FROM roots WHERE size = ?", (size,)
        ).fetchone()
        if row is None:
            continue
        proof = None
        if size > 1:
            try:
                proof = tuple(merkle.consistency_proof(cold, size - 1, size))
            except LookupError:
                proof = None  # a node was deleted: the consistency check says not available
        found[size] = SignedRoot(tree_name, size, row[0], row[1], row[2], proof)
    return found


def search(conn: sqlite3.Connection, tree_name: str, query: Query) -> Found:
    """The events matching `query` (count up to query.max_results), with membership proofs."""
    if query.order_by not in db.ORDER_COLUMNS or query.order not in ("asc", "desc"):
        raise ValueError(f"cannot sort by {query.order_by} {query.order}")
    where, params = ["1"], []
    for column, text in query.terms:
        if column not in db.FIELDS:
            raise ValueError(f"cannot search column {column}")
        where.append(f'instr("{column}", ?) > 0')
        params.append(text)
    if query.start is not None:
        where.append("received_at >= ?")
        params.append(query.start)
    if query.end is not None:
        where.append("received_at <= ?")
        params.append(query.end)
    condition = " AND ".join(where)
    count = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM events WHERE {condition} LIMIT ?)",  # noqa: S608
        (*params, query.max_results),
    ).fetchone()[0]
    rows = conn.execute(
        f"SELECT seq, batch, hash, CAST(envelope AS BLOB) FROM events WHERE {condition} "  # noqa: S608
        f'ORDER BY "{query.order_by}" {query.order}, seq {query.order} LIMIT ?',
        (*params, min(query.limit, count)),
    ).fetchall()
    return _proven(conn, tree_name, count, rows)


def records(conn: sqlite3.Connection, tree_name: str, seqs: Sequence[int]) -> Found:
    """The events at the given positions (absent ones left out), with membership proofs."""
    rows = []
    for seq in seqs:
        row = conn.execute(
            "SELECT seq, batch, hash, CAST(envelope AS BLOB) FROM events WHERE seq = ?", (seq,)
        ).fetchone()
        if row is not None:
            rows.append(row)
    return _proven(conn, tree_name, len(rows), rows)


def _proven(conn: sqlite3.Connection, tree_name: str, count: int, rows: list[Any]) -> Found:
    """The rows as records, each with its membership proof in the latest root."""
    size: int | None = conn.execute("SELECT max(size) FROM roots").fetchone()[0]
    root = roots(conn, tree_name, [size]).get(size) if size is not None else None
    cold, hot = db.reader(conn, "cold"), db.HotReader(conn)
    stored = []
    for seq, batch, digest, envelope in rows:
        proof: str | None
        try:
            items = hot.path(batch, seq) + merkle.path(cold, size or 0, 0, batch)
            proof = ",".join(items)
        except (LookupError, ValueError, TypeError):
            proof = None  # a node or root row is missing: membership cannot be checked
        stored.append(StoredRecord(seq, batch, bytes(digest).hex(), bytes(envelope), proof))
    return Found(count, stored, root)
