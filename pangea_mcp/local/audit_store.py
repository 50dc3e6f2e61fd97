"""Local Secure Audit Log store: SQLite (WAL, durable commits), Pangea's hashes and proofs, signed roots.

Layout, as Pangea's (pangea-api.md 6.4): the events of one transaction form a buffer whose own ("hot")
tree root is one leaf of the big ("cold") tree; `leaf_index` is the buffer's position and every
committed buffer gets a root of the cold tree, signed with the local Ed25519 key. Perfect Merkle nodes
are stored, so roots and proofs take O(log n) reads (see merkle.py).

All SQLite work runs on one dedicated thread. Appends waiting when it becomes free are committed in
one transaction (group commit) and each caller is answered only after that commit reached the disk
(WAL with synchronous=FULL). The tree state is re-read inside every write transaction when another
connection changed it, so several processes may share a file. Nothing here touches the network.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import queue
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import platformdirs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pangea_mcp import audit_verify as av
from pangea_mcp.config import Settings
from pangea_mcp.errors import PangeaError
from pangea_mcp.local import merkle

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: Most events committed in one transaction (one buffer).
MAX_BATCH = 1000
#: Longest wait (seconds) for more concurrent callers to join a transaction (group commit).
GATHER_WAIT = 0.002
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


class LocalAuditError(PangeaError):
    """The local audit log cannot be used as asked; the message says what to do."""


def store_paths(settings: Settings) -> tuple[Path, Path]:
    """The SQLite file and the root-signing key: the settings, else the user's data and config dirs."""
    app = "pangea-mcp"
    db = settings.local_audit_db or platformdirs.user_data_path(app, appauthor=False) / "audit.sqlite3"
    key = settings.local_signing_key or (
        platformdirs.user_config_path(app, appauthor=False) / "audit-signing-key.pem"
    )
    return db.expanduser(), key.expanduser()


# -- the root-signing key -----------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_key(path: Path) -> Ed25519PrivateKey:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return load_signing_key(path, create=False)
    with os.fdopen(fd, "wb") as file:
        if os.name == "posix":
            os.fchmod(file.fileno(), 0o600)
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    _fsync_dir(path.parent)
    log.info("created the local audit root-signing key %s", path)
    return key


def load_signing_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 key that signs local roots; created (mode 0600, directory 0700) when missing.

    An existing key that group or others may access is refused rather than trusted.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        if not create:
            raise LocalAuditError(f"the local audit signing key {path} does not exist") from None
        return _create_key(path)
    if os.name == "posix" and stat.S_IMODE(info.st_mode) & 0o077:
        raise LocalAuditError(
            f"the local audit signing key {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}` and start again"
        )
    try:
        text = path.read_text(encoding="utf-8")
        return av.load_private_key(text)
    except (OSError, UnicodeDecodeError, av.ProofError) as exc:
        raise LocalAuditError(
            f"the local audit signing key {path} is not usable ({exc}); it must be an unencrypted "
            "Ed25519 PKCS#8 PEM key (BEGIN PRIVATE KEY)"
        ) from None


# -- what the store hands out -------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    event: dict[str, str]
    signature: str | None = None
    public_key: str | None = None


@dataclass(frozen=True)
class SignedRoot:
    """A root of the cold tree as stored: Pangea's root fields plus the local key's signature."""

    tree_name: str
    size: int
    root_hash: str
    published_at: str
    signature: str
    #: From the root one size smaller (Pangea's /v1/root format); None for size 1 or when not asked.
    consistency_proof: tuple[str, ...] | None = None

    def signed_fields(self) -> dict[str, Any]:
        """What the signature covers (canonical JSON, as for events)."""
        return {
            "tree_name": self.tree_name,
            "size": self.size,
            "root_hash": self.root_hash,
            "published_at": self.published_at,
        }


@dataclass(frozen=True)
class Appended:
    """One committed event, with what Pangea's verbose /v1/log answers."""

    seq: int
    hash: str
    envelope: dict[str, Any]
    leaf_index: int
    root: SignedRoot
    membership_proof: str
    consistency_proof: tuple[str, ...] | None


@dataclass(frozen=True)
class StoredRecord:
    seq: int
    leaf_index: int
    hash: str
    #: The envelope bytes exactly as stored (what was hashed, unless someone changed them).
    envelope: bytes
    membership_proof: str | None


@dataclass(frozen=True)
class Query:
    """A search the store can answer: every term must occur (case-sensitive) in its column."""

    terms: tuple[tuple[str, str], ...] = ()
    start: str | None = None  # received_at bounds, inclusive, in the stored format
    end: str | None = None
    order: Literal["asc", "desc"] = "desc"
    order_by: str = "received_at"
    limit: int = 10
    max_results: int = 10_000


@dataclass(frozen=True)
class Found:
    count: int
    records: list[StoredRecord]
    root: SignedRoot | None


def received_at(moment: datetime) -> str:
    """The SDKs' envelope time format (always 6 fractional digits, Z): sortable as text."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        if not path.exists():
            # Audit events can be sensitive: the file (and SQLite's -wal/-shm, which copy its mode)
            # is private to the user.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
        except sqlite3.Error as exc:
            raise LocalAuditError(f"the local audit log {path} cannot be opened ({exc})") from None
        try:
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
            public_key = cls._schema(conn, path)
            key = load_signing_key(key_path, create=public_key is None)
            store = cls(path, key)
            if public_key is not None and public_key != store.public_key:
                raise LocalAuditError(
                    f"the local audit log {path} was signed with another key than {key_path}; restore "
                    "that key, or set PANGEA_LOCAL_AUDIT_DB to a new file for the new key"
                )
            if public_key is None:
                store._create(conn)
                if (known := cls._schema(conn, path)) != store.public_key:
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

    @staticmethod
    def _version(conn: sqlite3.Connection, path: Path) -> int:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise LocalAuditError(f"{path} is an SQLite file but not a pangea-mcp audit log")
        if version not in (0, SCHEMA_VERSION):
            raise LocalAuditError(
                f"the local audit log {path} has schema version {version}; this pangea-mcp reads "
                f"version {SCHEMA_VERSION}"
            )
        return version

    @classmethod
    def _schema(cls, conn: sqlite3.Connection, path: Path) -> str | None:
        """The public key that signed an existing log; None for a new file (schema not created yet)."""
        if cls._version(conn, path) == 0:
            return None
        row = conn.execute("SELECT value FROM meta WHERE name='public_key'").fetchone()
        if row is None:
            raise LocalAuditError(f"the local audit log {path} has no signing key record; it was altered")
        return str(row[0])

    def _create(self, conn: sqlite3.Connection) -> None:
        with _transaction(conn, "BEGIN IMMEDIATE"):
            if self._version(conn, self.path) != 0:
                return  # another process created it meanwhile
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [
                    ("tree_name", secrets.token_hex(32)),
                    ("public_key", self.public_key),
                    ("created_at", received_at(datetime.now(UTC))),
                ],
            )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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
        return await self._read_job(lambda conn: self._search(conn, query))

    async def records(self, seqs: Sequence[int]) -> Found:
        """Events by position (0-based), each with its membership proof in the latest root."""
        return await self._read_job(lambda conn: self._records(conn, seqs))

    async def roots(self, sizes: Sequence[int]) -> dict[int, SignedRoot]:
        """Stored roots of the given sizes (absent sizes are left out), each with its consistency proof."""
        return await self._read_job(lambda conn: self._roots(conn, sizes))

    async def latest_root(self) -> SignedRoot | None:
        def latest(conn: sqlite3.Connection) -> SignedRoot | None:
            size = conn.execute("SELECT max(size) FROM roots").fetchone()[0]
            return None if size is None else self._roots(conn, [size]).get(size)

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
                        _settle(job.future, conn, job.work)
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
                digests = [_node(conn, "cold", level, index) for level, index in merkle.peaks(size)]
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
        with _transaction(conn, "BEGIN IMMEDIATE"):
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
                columns = [item.event.get(name) for name in FIELDS]
                rows.append((seq, batch, digest, text.decode("utf-8"), envelope["received_at"], *columns))
            hot_root, hot_nodes = merkle.build(leaves)
            cold_nodes = frontier.append(hot_root)
            root = self._sign(frontier.size, frontier.root().hex())
            placeholders = ", ".join("?" * (5 + len(FIELDS)))
            names = ", ".join(f'"{name}"' for name in FIELDS)
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
        cold_path = merkle.path(lambda lv, ix: _node(conn, "cold", lv, ix), root.size, 0, batch)
        proofs: dict[str, tuple[str, ...] | None] = {}
        answers = []
        position = 0
        for w in writes:
            if w.prev_root is not None and w.prev_root not in proofs:
                proofs[w.prev_root] = self._proof_from(conn, w.prev_root, root.size)
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

    def _proof_from(self, conn: sqlite3.Connection, prev_root: str, size: int) -> tuple[str, ...] | None:
        row = conn.execute("SELECT min(size) FROM roots WHERE root_hash = ?", (prev_root,)).fetchone()
        old = row[0] if row else None
        if old is None or old >= size:
            return None  # not a root of this log (Pangea also sends no proof then)
        return tuple(merkle.consistency_proof(lambda lv, ix: _node(conn, "cold", lv, ix), old, size))

    def _sign(self, size: int, root_hash: str) -> SignedRoot:
        unsigned = SignedRoot(self.tree_name, size, root_hash, received_at(datetime.now(UTC)), "")
        signature = av.sign_event(unsigned.signed_fields(), self._key)
        return SignedRoot(self.tree_name, size, root_hash, unsigned.published_at, signature)

    def _roots(self, conn: sqlite3.Connection, sizes: Sequence[int]) -> dict[int, SignedRoot]:
        found = {}
        cold = _reader(conn, "cold")
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
            found[size] = SignedRoot(self.tree_name, size, row[0], row[1], row[2], proof)
        return found

    def _search(self, conn: sqlite3.Connection, query: Query) -> Found:
        if query.order_by not in ORDER_COLUMNS or query.order not in ("asc", "desc"):
            raise ValueError(f"cannot sort by {query.order_by} {query.order}")
        where, params = ["1"], []
        for column, text in query.terms:
            if column not in FIELDS:
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
        return self._proven(conn, count, rows)

    def _records(self, conn: sqlite3.Connection, seqs: Sequence[int]) -> Found:
        rows = []
        for seq in seqs:
            row = conn.execute(
                "SELECT seq, batch, hash, CAST(envelope AS BLOB) FROM events WHERE seq = ?", (seq,)
            ).fetchone()
            if row is not None:
                rows.append(row)
        return self._proven(conn, len(rows), rows)

    def _proven(self, conn: sqlite3.Connection, count: int, rows: list[Any]) -> Found:
        """The rows as records, each with its membership proof in the latest root."""
        size: int | None = conn.execute("SELECT max(size) FROM roots").fetchone()[0]
        root = self._roots(conn, [size]).get(size) if size is not None else None
        cold, hot = _reader(conn, "cold"), _HotReader(conn)
        records = []
        for seq, batch, digest, envelope in rows:
            proof: str | None
            try:
                items = hot.path(batch, seq) + merkle.path(cold, size or 0, 0, batch)
                proof = ",".join(items)
            except (LookupError, ValueError, TypeError):
                proof = None  # a node or root row is missing: membership cannot be checked
            records.append(StoredRecord(seq, batch, bytes(digest).hex(), bytes(envelope), proof))
        return Found(count, records, root)


class _HotReader:
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
            return _node(self._conn, "hot", level, index, batch)

        return merkle.path(read, count, 0, seq - first)


def _node(conn: sqlite3.Connection, table: str, level: int, index: int, batch: int | None = None) -> bytes:
    if table == "cold":
        row = conn.execute("SELECT hash FROM cold WHERE level = ? AND idx = ?", (level, index)).fetchone()
    else:
        row = conn.execute(
            "SELECT hash FROM hot WHERE batch = ? AND level = ? AND idx = ?", (batch, level, index)
        ).fetchone()
    if row is None or not isinstance(row[0], bytes) or len(row[0]) != 32:
        raise LookupError(f"Merkle node ({level}, {index}) of the {table} tree is missing or malformed")
    return row[0]


def _reader(conn: sqlite3.Connection, table: str) -> merkle.NodeReader:
    return lambda level, index: _node(conn, table, level, index)


class _transaction:  # noqa: N801 - used like a function: `with _transaction(conn):`
    def __init__(self, conn: sqlite3.Connection, begin: str = "BEGIN") -> None:
        self._conn, self._begin = conn, begin

    def __enter__(self) -> None:
        self._conn.execute(self._begin)

    def __exit__(self, kind: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if kind is not None else "COMMIT")


def _read(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    # One read transaction: a consistent snapshot even while another process writes.
    try:
        with _transaction(conn):
            return work(conn)
    except sqlite3.DatabaseError as exc:
        raise LocalAuditError(
            f"the local audit log cannot be read ({exc}); if it is damaged, move it aside and restore "
            "a backup"
        ) from None


def _settle(future: Future[T], conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> None:
    try:
        result = _read(conn, work)
    except BaseException as exc:  # answered to the caller; the thread must outlive it
        future.set_exception(exc)
    else:
        future.set_result(result)
