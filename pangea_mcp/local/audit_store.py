"""Local Secure Audit Log store: SQLite (WAL, durable commits), Pangea's hashes and proofs, signed roots.

Layout, as Pangea's (pangea-api.md 6.4): the events of one transaction form a buffer whose own ("hot")
tree root is one leaf of the big ("cold") tree; `leaf_index` is the buffer's position and every
committed buffer gets a root of the cold tree, signed with the local Ed25519 key. Perfect Merkle nodes
are stored, so roots and proofs take O(log n) reads (see merkle.py).

All SQLite work runs on one dedicated thread. Appends waiting when it becomes free are committed in
one transaction (group commit) and each caller is answered only after that commit reached the disk
(WAL with synchronous=FULL). The tree state is re-read inside every write transaction when another
connection changed it, so several processes may share a file. Nothing here touches the network.

The key is handled in audit_keys.py, the SQLite file in audit_db.py, the reads in audit_queries.py, and
the values handed out are in audit_types.py; their public names are importable from here too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pangea_mcp import audit_verify as av
from pangea_mcp.local import audit_db as db
from pangea_mcp.local import audit_queries as queries
from pangea_mcp.local import merkle
from pangea_mcp.local.audit_keys import load_signing_key
from pangea_mcp.local.audit_types import (
    Appended,
    Found,
    LocalAuditError,
    NewEvent,
    Query,
    SignedRoot,
    received_at,
)

log = logging.getLogger(__name__)

#: Most events committed in one transaction (one buffer).
MAX_BATCH = 1000
#: Longest wait (seconds) for more concurrent callers to join a transaction (group commit).
GATHER_WAIT = 0.002
T = TypeVar("T")


# -- jobs for the SQLite thread -----------------------------------------------------------------


@dataclass
class _Write:
    events: list[NewEvent]
    prev_root: str | None
    # An asyncio future, answered from the thread in one loop callback per transaction (not one
    # wake-up per caller): that is what lets many concurrent callers share a transaction cheaply.
    future: asyncio.Future[list[Appended]]


def _deliver(answers: list[tuple[asyncio.Future[list[Appended]], list[Appended] | BaseException]]) -> None:
    for future, answer in answers:
        if future.done():  # the caller was cancelled meanwhile
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


@dataclass
class _Read(Generic[T]):
    work: Callable[[sqlite3.Connection], T]
    future: Future[T] = field(default_factory=Future)


class AuditStore:
    """One SQLite file of the local audit log; use `await AuditStore.open(...)`, then `close()`."""

    def __init__(self, path: Path, key: Ed25519PrivateKey) -> None:
        self.path = path
        self._key = key
        self.public_key = av.public_key_field(key)
        self.tree_name = ""
        #: Why appends are refused (the stored tree no longer matches its signed root), if they are.
        self.damage: str | None = None
        self._jobs: queue.SimpleQueue[_Write | _Read[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._frontier = merkle.Frontier()
        self._frontier_root: str | None = None
        self._last_callers = 1

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, key_path: Path) -> AuditStore:
        """Open (or create) the log; refuses a damaged file or a key that did not sign its roots."""
        opened: Future[AuditStore] = Future()
        thread = threading.Thread(
            target=cls._run_thread, args=(path, key_path, opened), name="pangea-mcp audit store", daemon=True
        )
        thread.start()
        return await asyncio.wrap_future(opened)

    @classmethod
    def _run_thread(cls, path: Path, key_path: Path, opened: Future[AuditStore]) -> None:
        try:
            store = cls._open_sync(path, key_path)
        except BaseException as exc:
            opened.set_exception(exc)
            return
        store._thread = threading.current_thread()
        opened.set_result(store)
        store._serve()

    @classmethod
    def _open_sync(cls, path: Path, key_path: Path) -> AuditStore:
        conn = db.connect(path)
        try:
            db.check(conn, path)
            public_key = db.stored_public_key(conn, path)
            key = load_signing_key(key_path, create=public_key is None)
            store = cls(path, key)
            if public_key is not None and public_key != store.public_key:
                raise LocalAuditError(
                    f"the local audit log {path} was signed with another key than {key_path}; restore "
                    "that key, or set PANGEA_LOCAL_AUDIT_DB to a new file for the new key"
                )
            if public_key is None:
                db.create_schema(conn, path, store.public_key)
                if (known := db.stored_public_key(conn, path)) != store.public_key:
                    raise LocalAuditError(f"{path} was created meanwhile with another key ({known})")
            store.tree_name = conn.execute("SELECT value FROM meta WHERE name='tree_name'").fetchone()[0]
            store._conn = conn
            try:
                store._state(conn)
            except LocalAuditError as exc:
                store.damage = str(exc)
                log.error("%s", exc)
            return store
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise LocalAuditError(
                f"the local audit log {path} is damaged or not an audit log ({exc}); move it aside and "
                "restore a backup, or set PANGEA_LOCAL_AUDIT_DB to a new file"
            ) from None
        except BaseException:
            conn.close()
            raise

    async def close(self) -> None:
        """Finish the queued work, then close the file (SQLite checkpoints the WAL)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(thread.join)

    # -- the async API -------------------------------------------------------------------------------

    async def append(self, event: NewEvent, prev_root: str | None = None) -> Appended:
        """Store one event; answered once committed, with its proofs (and one from `prev_root`)."""
        return (await self._write_job([event], prev_root))[0]

    async def append_many(self, events: Sequence[NewEvent]) -> list[Appended]:
        """Store several events in one transaction: all of them are committed, or none."""
        if not events:
            return []
        return await self._write_job(list(events), None)

    async def search(self, query: Query) -> Found:
        return await self._read_job(lambda conn: queries.search(conn, self.tree_name, query))

    async def records(self, seqs: Sequence[int]) -> Found:
        """Events by position (0-based), each with its membership proof in the latest root."""
        return await self._read_job(lambda conn: queries.records(conn, self.tree_name, seqs))

    async def roots(self, sizes: Sequence[int]) -> dict[int, SignedRoot]:
        """Stored roots of the given sizes (absent sizes are left out), each with its consistency proof."""
        return await self._read_job(lambda conn: queries.roots(conn, self.tree_name, sizes))

    async def latest_root(self) -> SignedRoot | None:
        def latest(conn: sqlite3.Connection) -> SignedRoot | None:
            size = conn.execute("SELECT max(size) FROM roots").fetchone()[0]
            return None if size is None else queries.roots(conn, self.tree_name, [size]).get(size)

        return await self._read_job(latest)

    async def count(self) -> int:
        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])

        return await self._read_job(count)

    def verify_root(self, root: SignedRoot) -> bool:
        """Whether the local key signed exactly this root (checked before a root is trusted)."""
        return av.verify_signature(root.signed_fields(), root.signature, self.public_key)

    async def _write_job(self, events: list[NewEvent], prev_root: str | None) -> list[Appended]:
        job = _Write(events, prev_root, asyncio.get_running_loop().create_future())
        self._put(job)
        return await job.future

    async def _read_job(self, work: Callable[[sqlite3.Connection], T]) -> T:
        job = _Read(work)
        self._put(job)
        return await asyncio.wrap_future(job.future)

    def _put(self, job: _Write | _Read[Any]) -> None:
        if self._thread is None:
            raise LocalAuditError("the local audit log is closed")
        self._jobs.put(job)

    # -- the SQLite thread ---------------------------------------------------------------------------

    def _serve(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            job = self._jobs.get()
            while job is not None:
                if isinstance(job, _Read):
                    if job.future.set_running_or_notify_cancel():
                        db.settle(job.future, conn, job.work)
                    job = self._jobs.get()
                    continue
                writes, following = self._gather(job)
                self._commit(conn, writes)
                job = self._jobs.get() if following is False else following
        finally:
            conn.close()

    def _gather(self, first: _Write) -> tuple[list[_Write], _Write | _Read[Any] | Literal[False] | None]:
        """The writes for one transaction: those waiting, and while the previous transaction served
        several callers, those arriving within GATHER_WAIT until as many callers wait again (their
        answers were just delivered, so they are about to send their next event)."""
        writes, size = [first], len(first.events)
        deadline = time.monotonic() + GATHER_WAIT
        while size < MAX_BATCH:
            try:
                if len(writes) < self._last_callers:
                    nxt = self._jobs.get(timeout=max(deadline - time.monotonic(), 0.0))
                else:
                    nxt = self._jobs.get_nowait()
            except queue.Empty:
                break
            if not isinstance(nxt, _Write):
                self._last_callers = len(writes)
                return writes, nxt
            writes.append(nxt)
            size += len(nxt.events)
        self._last_callers = len(writes)
        return writes, False

    def _commit(self, conn: sqlite3.Connection, writes: list[_Write]) -> None:
        # A caller cancelled before its transaction started is skipped (its event is not written).
        live = [w for w in writes if not w.future.done()]
        if not live:
            return
        answers: list[list[Appended]] | BaseException
        try:
            answers = self._write(conn, live)
        except sqlite3.DatabaseError as exc:
            self._frontier_root = None  # re-read from the file next time
            answers = LocalAuditError(
                f"the local audit log {self.path} could not be written ({exc}); nothing of this call "
                "was stored"
            )
        except Exception as exc:  # answered to the callers; the thread must outlive it
            self._frontier_root = None
            answers = exc
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for i, w in enumerate(live):
            answer = answers if isinstance(answers, BaseException) else answers[i]
            by_loop.setdefault(w.future.get_loop(), []).append((w.future, answer))
        for loop, delivered in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, delivered)
            except RuntimeError:  # that event loop is closed: nobody is waiting any more
                log.debug("local audit log: %d answers for a closed event loop", len(delivered))

    def _state(self, conn: sqlite3.Connection) -> int:
        """The tree as committed (kept in memory, re-read if another connection moved it); next seq."""
        row = conn.execute(
            "SELECT size, root_hash, first_seq, count, published_at, signature FROM roots "
            "ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            self._frontier, self._frontier_root = merkle.Frontier(), None
            return 0
        size, root_hash, first_seq, count, published_at, signature = row
        if self._frontier_root != root_hash or self._frontier.size != size:
            altered = f"the local audit log {self.path} was altered outside pangea-mcp"
            try:
                digests = [db.node(conn, "cold", level, index) for level, index in merkle.peaks(size)]
            except LookupError as exc:
                raise LocalAuditError(f"{altered}: {exc}; refusing to append") from None
            frontier = merkle.Frontier(size, digests)
            root = SignedRoot(self.tree_name, size, root_hash, published_at, signature)
            if frontier.root().hex() != root_hash or not self.verify_root(root):
                raise LocalAuditError(
                    f"{altered}: its tree of size {size} does not match its signed root; refusing to "
                    "append (search_log shows which events fail verification)"
                )
            self._frontier, self._frontier_root = frontier, root_hash
        next_seq = int(first_seq) + int(count)
        last = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        if last != next_seq - 1:
            raise LocalAuditError(
                f"the local audit log {self.path} was altered outside pangea-mcp: its last event is "
                f"{last}, its last root covers up to {next_seq - 1}; refusing to append"
            )
        return next_seq

    def _write(self, conn: sqlite3.Connection, writes: list[_Write]) -> list[list[Appended]]:
        with db.transaction(conn, "BEGIN IMMEDIATE"):
            next_seq = self._state(conn)
            frontier = self._frontier.copy()
            batch = frontier.size
            rows, leaves, envelopes = [], [], []
            for seq, item in enumerate((e for w in writes for e in w.events), start=next_seq):
                envelope: dict[str, Any] = {
                    "event": item.event,
                    "received_at": received_at(datetime.now(UTC)),
                }
                if item.signature is not None:
                    envelope["signature"] = item.signature
                if item.public_key is not None:
                    envelope["public_key"] = item.public_key
                text = av.canonical_json(envelope)
                digest = hashlib.sha256(text).digest()
                leaves.append(digest)
                envelopes.append(envelope)
                columns = [item.event.get(name) for name in db.FIELDS]
                rows.append((seq, batch, digest, text.decode("utf-8"), envelope["received_at"], *columns))
            hot_root, hot_nodes = merkle.build(leaves)
            cold_nodes = frontier.append(hot_root)
            root = self._sign(frontier.size, frontier.root().hex())
            placeholders = ", ".join("?" * (5 + len(db.FIELDS)))
            names = ", ".join(f'"{name}"' for name in db.FIELDS)
            conn.executemany(
                f"INSERT INTO events (seq, batch, hash, envelope, received_at, {names}) "  # noqa: S608
                f"VALUES ({placeholders})",
                rows,
            )
            conn.executemany(
                "INSERT INTO hot (batch, level, idx, hash) VALUES (?, ?, ?, ?)",
                [(batch, lv, ix, h) for (lv, ix), h in hot_nodes.items() if lv > 0],
            )
            conn.executemany("INSERT INTO cold (level, idx, hash) VALUES (?, ?, ?)", cold_nodes)
            conn.execute(
                "INSERT INTO roots (size, root_hash, first_seq, count, published_at, signature) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (root.size, root.root_hash, next_seq, len(leaves), root.published_at, root.signature),
            )
        self._frontier, self._frontier_root = frontier, root.root_hash
        return self._answers(conn, writes, root, next_seq, leaves, hot_nodes, envelopes)

    def _answers(
        self,
        conn: sqlite3.Connection,
        writes: list[_Write],
        root: SignedRoot,
        first_seq: int,
        leaves: list[bytes],
        hot_nodes: dict[merkle.Node, bytes],
        envelopes: list[dict[str, Any]],
    ) -> list[list[Appended]]:
        batch = root.size - 1
        cold_path = merkle.path(lambda lv, ix: db.node(conn, "cold", lv, ix), root.size, 0, batch)
        proofs: dict[str, tuple[str, ...] | None] = {}
        answers = []
        position = 0
        for w in writes:
            if w.prev_root is not None and w.prev_root not in proofs:
                proofs[w.prev_root] = queries.consistency_from(conn, w.prev_root, root.size)
            answer = []
            for _ in w.events:
                hot = merkle.path(lambda lv, ix: hot_nodes[lv, ix], len(leaves), 0, position)
                answer.append(
                    Appended(
                        seq=first_seq + position,
                        hash=leaves[position].hex(),
                        envelope=envelopes[position],
                        leaf_index=batch,
                        root=root,
                        membership_proof=",".join(hot + cold_path),
                        consistency_proof=proofs.get(w.prev_root) if w.prev_root else None,
                    )
                )
                position += 1
            answers.append(answer)
        return answers

    def _sign(self, size: int, root_hash: str) -> SignedRoot:
        unsigned = SignedRoot(self.tree_name, size, root_hash, received_at(datetime.now(UTC)), "")
        signature = av.sign_event(unsigned.signed_fields(), self._key)
        return SignedRoot(self.tree_name, size, root_hash, unsigned.published_at, signature)
