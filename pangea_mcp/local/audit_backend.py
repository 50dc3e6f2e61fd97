"""The local audit log as an AuditBackend: the store's answers in Pangea's result models, roots checked.

Search supports an honest subset of Pangea's query language: space-separated terms, all required,
each `field:value` (value found in that field) or plain text (found in `message`), case-sensitive,
with double quotes around phrases. Anything else (OR, parentheses, negation, unknown fields, stray
quotes) is refused with a clear error instead of being answered differently from Pangea.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pangea_mcp.audit_verify import Root as VerifiedRoot
from pangea_mcp.audit_verify import SignatureStatus
from pangea_mcp.client import PangeaResponse, ProgressFn
from pangea_mcp.config import Settings
from pangea_mcp.local.audit_keys import store_paths
from pangea_mcp.local.audit_store import AuditStore
from pangea_mcp.local.audit_types import (
    LocalAuditError,
    NewEvent,
    Query,
    SignedRoot,
    StoredRecord,
    received_at,
)
from pangea_mcp.services.audit_root import (
    LogRequest,
    LogResult,
    RootAnswer,
    RootSet,
    SearchPage,
    SearchRequest,
)
from pangea_mcp.services.audit_search import TOOL, instant, invalid

#: Pangea's default search window (pangea-api.md 5.4), kept so the same call means the same thing.
DEFAULT_WINDOW = timedelta(days=14)
#: Fields a query term may name: Pangea's searchable standard fields (all stored as store.FIELDS).
QUERY_FIELDS = ("action", "actor", "message", "new", "old", "source", "status", "target")
_TERM = re.compile(r'(?:(?P<field>[A-Za-z_]+):)?(?:"(?P<phrase>[^"]*)"|(?P<word>[^\s"()]+))(?=\s|$)')
_FORGED = "carries no valid signature by the local key (PANGEA_LOCAL_SIGNING_KEY): the log file was altered"


def parse_query(query: str) -> tuple[tuple[str, str], ...]:
    """(column, text) pairs, every one required; raises ValueError naming what is not supported."""
    terms: list[tuple[str, str]] = []
    position = 0
    text = query.strip()
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _TERM.match(text, position)
        if match is None:
            rest = text[position : position + 40]
            raise ValueError(
                f"the local audit log cannot read the query at {rest!r}: it supports field:value terms "
                'and free text, with double quotes around phrases (actor:"Jane Doe"), all of them '
                "required; parentheses, negation and unbalanced quotes are not supported"
            )
        name, value = match.group("field"), match.group("phrase") or match.group("word") or ""
        position = match.end()
        if name is None and value in ("OR", "NOT"):
            raise ValueError(
                f"the local audit log does not support {value} in queries: every term is required "
                "(run one search per alternative)"
            )
        if name is None and value == "AND":
            continue  # every term is required anyway
        if value.startswith("-") and name is None:
            raise ValueError("the local audit log does not support negated terms (-field:value)")
        if name is not None and name not in QUERY_FIELDS:
            raise ValueError(
                f"the local audit log cannot search field {name!r}; use one of {', '.join(QUERY_FIELDS)}"
            )
        terms.append((name or "message", value))
    return tuple(terms)


def _root_fields(root: SignedRoot) -> dict[str, Any]:
    return root.signed_fields()


def _record(record: StoredRecord, verbose: bool) -> dict[str, Any]:
    try:
        envelope: Any = json.loads(record.envelope)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        # The stored bytes are no longer a JSON envelope: shown as they are, so that the hash check
        # (over what is stored) fails rather than being skipped.
        envelope = {"unreadable_stored_envelope": record.envelope.decode("utf-8", errors="replace")}
    raw: dict[str, Any] = {
        "envelope": envelope,
        "hash": record.hash,
        # Every committed buffer has a signed root at once: the local counterpart of "published".
        "published": True,
        "imported": False,
        "leaf_index": record.leaf_index,
    }
    if verbose and record.membership_proof is not None:
        raw["membership_proof"] = record.membership_proof
    return raw


class LocalAudit:
    """AuditBackend over an AuditStore, opened on first use and closed at server shutdown."""

    roots_note = (
        "Roots are signed with this machine's local key (PANGEA_LOCAL_SIGNING_KEY), not published: "
        "this proves the log file was not altered without that key, not that no later events were "
        "removed together with their roots."
    )
    open_world = False

    def __init__(self, db: Path, key: Path) -> None:
        self.db, self.key = db, key
        self._store: AuditStore | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalAudit:
        return cls(*store_paths(settings))

    async def store(self) -> AuditStore:
        async with self._lock:
            if self._store is None:
                self._store = await AuditStore.open(self.db, self.key)
            return self._store

    async def close(self) -> None:
        async with self._lock:
            store, self._store = self._store, None
        if store is not None:
            await store.close()

    # -- AuditBackend ------------------------------------------------------------------------------

    async def log(self, body: LogRequest) -> PangeaResponse[LogResult]:
        store = await self.store()
        done = await store.append(NewEvent(body.event, body.signature, body.public_key), body.prev_root)
        result = LogResult(
            hash=done.hash,
            envelope=done.envelope,
            unpublished_root=done.root.root_hash,
            membership_proof=done.membership_proof,
            consistency_proof=list(done.consistency_proof) if done.consistency_proof else None,
        )
        return PangeaResponse(result=result, request_id=None)

    async def search(
        self, body: SearchRequest, wanted: int, progress: ProgressFn
    ) -> tuple[list[SearchPage], str | None]:
        try:
            terms = parse_query(body.query)
        except ValueError as exc:
            raise invalid(TOOL, "query", str(exc)) from None
        if body.order not in ("asc", "desc"):
            raise invalid(TOOL, "order", "must be asc or desc")
        order: Literal["asc", "desc"] = "asc" if body.order == "asc" else "desc"
        now = datetime.now(UTC)
        start = instant(body.start, now) if body.start else now - DEFAULT_WINDOW
        end = instant(body.end, now) if body.end else None
        query = Query(
            terms=terms,
            start=received_at(start),
            end=received_at(end) if end else None,
            order=order,
            order_by=body.order_by,
            limit=wanted,
            max_results=body.max_results,
        )
        found = await (await self.store()).search(query)
        page = SearchPage(
            count=found.count,
            events=[_record(record, body.verbose) for record in found.records],
            root=_root_fields(found.root) if body.verbose and found.root is not None else None,
        )
        return [page], None

    async def root(self, size: int | None) -> RootAnswer:
        store = await self.store()
        if size is None:
            latest = await store.latest_root()
            if latest is None:
                raise LocalAuditError("the local audit log is empty: it has no root yet (log an event first)")
            root = latest
        else:
            found = await store.roots([size])
            if size not in found:
                latest = await store.latest_root()
                have = f"its latest root has size {latest.size}" if latest else "it is empty"
                raise LocalAuditError(f"the local audit log has no root of size {size}; {have}")
            root = found[size]
        signature: SignatureStatus = "verified" if store.verify_root(root) else "failed"
        raw = _root_fields(root)
        return RootAnswer(
            VerifiedRoot(root.root_hash, root.size, root.consistency_proof), raw, None, signature
        )

    async def roots(self, sizes: Sequence[int], progress: Callable[[int], Awaitable[None]]) -> RootSet:
        store = await self.store()
        stored = await store.roots(sizes)
        answer = RootSet()
        for size, root in stored.items():
            if store.verify_root(root):
                answer.found[size] = VerifiedRoot(root.root_hash, size, root.consistency_proof)
            else:
                answer.forged[size] = _FORGED
        missing = sorted(set(sizes) - set(stored))
        if missing:
            listed = ", ".join(str(size) for size in missing[:10])
            answer.notes.append(f"{len(missing)} roots are missing from the local log: {listed}")
        await progress(len(sizes))
        return answer

    async def trusted_root(self) -> str | None:
        store = await self.store()
        latest = await store.latest_root()
        if latest is None or store.damage is not None or not store.verify_root(latest):
            return None
        return latest.root_hash
