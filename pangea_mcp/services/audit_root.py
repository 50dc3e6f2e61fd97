"""Secure Audit Log backends (Pangea's API, or the local store) and the get_audit_root tool.

The audit tools depend on `AuditBackend` only: both backends answer with Pangea's result models, so
every proof is checked by `audit_verify` the same way whoever keeps the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from pangea_mcp import audit_verify as av
from pangea_mcp.client import PangeaClient, PangeaResponse, ProgressFn
from pangea_mcp.errors import PangeaError, tool_errors
from pangea_mcp.models import PangeaRequest, PangeaResult

SERVICE = "audit"
READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
#: Events asked for per /v1/search or /v1/results call.
PAGE = 100
_ROOT_FETCHES = 8  # at once


# -- Pangea's request and result models, shared by both backends ----------------------------------


class LogRequest(PangeaRequest):
    event: dict[str, str]
    verbose: bool
    prev_root: str | None = None
    signature: str | None = None
    public_key: str | None = None
    config_id: str | None = None


class LogResult(PangeaResult):
    hash: str | None = None
    # Kept as received: the hash is computed over exactly these values.
    envelope: dict[str, Any] | None = None
    unpublished_root: str | None = None
    membership_proof: str | None = None
    consistency_proof: list[str] | None = None


class SearchRequest(PangeaRequest):
    query: str
    start: str | None = None
    end: str | None = None
    max_results: int
    limit: int
    order: str
    order_by: str
    verbose: bool
    config_id: str | None = None


class _Results(PangeaRequest):
    id: str
    limit: int
    offset: int
    config_id: str | None = None


class SearchPage(PangeaResult):
    id: str | None = None
    expires_at: str | None = None
    count: int = 0
    # Kept as received: hashes are computed over exactly these bytes.
    events: list[dict[str, Any]] = Field(default_factory=list)
    root: dict[str, Any] | None = None
    unpublished_root: dict[str, Any] | None = None


class RootInfo(PangeaResult):
    tree_name: str | None = None
    size: int | None = Field(default=None, description="Number of leaves (buffers) in the tree")
    root_hash: str | None = None
    published_at: str | None = Field(
        default=None, description="When Pangea published the root (local log: when it was signed)"
    )
    url: str | None = Field(default=None, description="Where the root was published (Arweave)")


class _RootRequest(PangeaRequest):
    tree_size: int | None = None
    config_id: str | None = None


class _RootResult(PangeaResult):
    # The SDKs read result.data; the spec shows the root as the result itself (pangea-api.md 5.4).
    data: dict[str, Any] | None = None
    tree_name: str | None = None
    size: int | None = None
    root_hash: str | None = None
    published_at: str | None = None
    url: str | None = None
    consistency_proof: list[str] | str | None = None

    def raw(self) -> dict[str, Any]:
        return self.data if self.data is not None else self.model_dump(exclude={"data"}, exclude_none=True)


def parse_root(raw: object) -> av.Root | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("root_hash"), str):
        return None
    size = raw.get("size")
    proof = raw.get("consistency_proof")
    items = tuple(proof) if isinstance(proof, list) and all(isinstance(p, str) for p in proof) else None
    return av.Root(raw["root_hash"], size if isinstance(size, int) else None, items)


# -- the interface --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootAnswer:
    root: av.Root
    raw: dict[str, Any]
    request_id: str | None
    #: Local roots are signed by the local key: whether that signature verifies. None for Pangea.
    signature: av.SignatureStatus | None = None


@dataclass
class RootSet:
    """Roots by tree size, for search verification; one root's trouble never fails the call."""

    found: dict[int, av.Root] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Sizes whose root is proven false (a local root whose signature does not verify), with why.
    forged: dict[int, str] = field(default_factory=dict)


class AuditBackend(Protocol):
    """What the audit tools need from whoever keeps the log."""

    #: Said with every verified search: where the roots used as trust anchors come from.
    roots_note: str
    #: Whether the tools reach outside this machine (the annotations' open_world_hint).
    open_world: bool

    async def log(self, body: LogRequest) -> PangeaResponse[LogResult]:
        """Append one event (verbose /v1/log semantics)."""
        ...

    async def search(
        self, body: SearchRequest, wanted: int, progress: ProgressFn
    ) -> tuple[list[SearchPage], str | None]:
        """The pages of a search holding up to `wanted` events, and the first call's request id."""
        ...

    async def root(self, size: int | None) -> RootAnswer:
        """One root (the latest when size is None)."""
        ...

    async def roots(self, sizes: Sequence[int], progress: Callable[[int], Awaitable[None]]) -> RootSet:
        """Roots of the given sizes, checked as far as the backend can (fetch failures become notes)."""
        ...

    async def trusted_root(self) -> str | None:
        """A root this server can trust before its first write (none for Pangea: nothing seen yet)."""
        ...


class PangeaAudit:
    """The Secure Audit Log API; published roots are kept per tree size (they never change)."""

    roots_note = (
        "Roots were fetched from Pangea (/v1/root), not from the Arweave ledger: this proves the log is "
        "consistent with what Pangea serves, not with what it published."
    )
    open_world = True

    def __init__(self, pangea: PangeaClient, config_id: str | None, cache_size: int = 4096) -> None:
        self._pangea = pangea
        self._config_id = config_id
        self._cache: dict[int, tuple[av.Root, dict[str, Any]]] = {}
        self._cache_size = cache_size

    async def log(self, body: LogRequest) -> PangeaResponse[LogResult]:
        body.config_id = self._config_id
        # Never retried on an ambiguous failure: the event might be written twice.
        return await self._pangea.call(SERVICE, "v1/log", body, LogResult, idempotent=False)

    async def search(
        self, body: SearchRequest, wanted: int, progress: ProgressFn
    ) -> tuple[list[SearchPage], str | None]:
        body.config_id, body.limit = self._config_id, min(wanted, PAGE)
        response = await self._pangea.call(SERVICE, "v1/search", body, SearchPage, progress=progress)
        first = response.result
        pages = [first]
        fetched = len(first.events)
        target = min(wanted, first.count)
        while first.id and fetched < target and pages[-1].events:
            await progress(fetched, target, f"fetched {fetched} of {target} events")
            more = _Results(
                id=first.id, limit=min(PAGE, target - fetched), offset=fetched, config_id=self._config_id
            )
            page = (await self._pangea.call(SERVICE, "v1/results", more, SearchPage)).result
            pages.append(page)
            fetched += len(page.events)
        return pages, response.request_id

    async def root(self, size: int | None) -> RootAnswer:
        if size is not None and size in self._cache:
            return RootAnswer(*self._cache[size], None)
        response = await self._pangea.call(
            SERVICE, "v1/root", _RootRequest(tree_size=size, config_id=self._config_id), _RootResult
        )
        raw = response.result.raw()
        root = parse_root(raw)
        if root is None or (size is not None and root.size != size):
            raise PangeaError(f"Pangea's /v1/root answer for size {size} holds no usable root")
        if root.size is not None:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[root.size] = (root, raw)
        return RootAnswer(root, raw, response.request_id)

    async def roots(self, sizes: Sequence[int], progress: Callable[[int], Awaitable[None]]) -> RootSet:
        found = RootSet()
        failed: dict[int, str] = {}
        gate = asyncio.Semaphore(_ROOT_FETCHES)
        done = 0

        async def one(size: int) -> None:
            nonlocal done
            async with gate:
                try:
                    found.found[size] = (await self.root(size)).root
                except PangeaError as exc:
                    failed[size] = type(exc).__name__
            done += 1
            await progress(done)

        await asyncio.gather(*(one(size) for size in sizes))
        if failed:
            listed = ", ".join(f"{size} ({why})" for size, why in sorted(failed.items())[:10])
            found.notes.append(f"{len(failed)} roots could not be fetched: {listed}")
        return found

    async def trusted_root(self) -> str | None:
        return None


# -- get_audit_root -------------------------------------------------------------------------------


class RootReport(RootInfo):
    consistency_proof: list[str] = Field(default_factory=list)
    consistency: av.Status = Field(description="This root extends the root one size smaller")
    signature: av.SignatureStatus | None = Field(
        default=None,
        description="Local log only: whether the local key's signature over this root verifies "
        "(failed means the log file was altered); null for Pangea's published roots",
    )
    notes: list[str] = Field(default_factory=list)
    request_id: str | None = None


def read_hints(backend: AuditBackend) -> ToolAnnotations:
    return READ.model_copy(update={"open_world_hint": backend.open_world})


def register_root(mcp: FastMCP, backend: AuditBackend) -> None:
    @mcp.tool(name="get_audit_root", title="Audit log root", annotations=read_hints(backend), tags={SERVICE})
    async def get_audit_root(
        treeSize: Annotated[
            int | None, Field(ge=1, description="Tree size of the root wanted; omit for the latest")
        ] = None,
    ) -> RootReport:
        """Return a published Merkle root of the audit log (the latest, or the one of a given size).

        The root is checked against the root one size smaller: `consistency` says whether this root
        extends it (nothing was rewritten). Compare `root_hash` with the copy published at `url` to
        check it independently of Pangea. On the local log, roots are signed with the local key
        instead of being published, and `signature` says whether that signature verifies.
        """
        with tool_errors():
            answer = await backend.root(treeSize)
        root = answer.root
        notes: list[str] = []
        if answer.signature == "failed":
            notes.append("the local key's signature over this root does not verify: the log was altered")
        consistency: av.Status = "not_available"
        if root.size is None or root.size <= 1:
            notes.append("the first root of the tree; there is no earlier root to compare with")
        elif not root.consistency_proof:
            notes.append("no consistency proof came with this root")
        else:
            try:
                previous = await backend.root(root.size - 1)
            except PangeaError as exc:
                notes.append(f"the root of size {root.size - 1} could not be fetched ({type(exc).__name__})")
            else:
                ok = av.verify_consistency(previous.root.root_hash, root.root_hash, root.consistency_proof)
                consistency = "verified" if ok and previous.signature != "failed" else "failed"
                if not ok:
                    notes.append(f"this root does not extend the root of size {root.size - 1}")
                elif previous.signature == "failed":
                    notes.append(
                        f"the root of size {root.size - 1} carries no valid signature by the local key"
                    )
        return RootReport(
            **RootInfo.model_validate(answer.raw).model_dump(),
            consistency_proof=list(root.consistency_proof or ()),
            consistency=consistency,
            signature=answer.signature,
            notes=notes,
            request_id=answer.request_id,
        )
