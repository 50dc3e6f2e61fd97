"""Secure Audit Log roots: /v1/root, kept per tree size, and the get_audit_root tool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastmcp import FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from pangea_mcp import audit_verify as av
from pangea_mcp.client import PangeaClient
from pangea_mcp.errors import PangeaError, tool_errors
from pangea_mcp.models import PangeaRequest, PangeaResult

SERVICE = "audit"
READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
_ROOT_FETCHES = 8  # at once


class RootInfo(PangeaResult):
    tree_name: str | None = None
    size: int | None = Field(default=None, description="Number of leaves (buffers) in the tree")
    root_hash: str | None = None
    published_at: str | None = None
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


class Roots:
    """Published roots by tree size, fetched from /v1/root and kept (a published root never changes)."""

    def __init__(self, pangea: PangeaClient, config_id: str | None, cache_size: int = 4096) -> None:
        self._pangea = pangea
        self._config_id = config_id
        self._cache: dict[int, tuple[av.Root, dict[str, Any]]] = {}
        self._cache_size = cache_size

    async def fetch(self, size: int | None) -> tuple[av.Root, dict[str, Any], str | None]:
        """One root (the latest when size is None), with its raw fields and the request id."""
        if size is not None and size in self._cache:
            return *self._cache[size], None
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
        return root, raw, response.request_id

    async def many(
        self, sizes: Sequence[int], progress: Callable[[int], Awaitable[None]]
    ) -> tuple[dict[int, av.Root], list[str]]:
        """Roots of the given sizes; failures become notes (one event's trouble never fails the call)."""
        found: dict[int, av.Root] = {}
        failed: dict[int, str] = {}
        gate = asyncio.Semaphore(_ROOT_FETCHES)
        done = 0

        async def one(size: int) -> None:
            nonlocal done
            async with gate:
                try:
                    found[size] = (await self.fetch(size))[0]
                except PangeaError as exc:
                    failed[size] = type(exc).__name__
            done += 1
            await progress(done)

        await asyncio.gather(*(one(size) for size in sizes))
        notes = []
        if failed:
            listed = ", ".join(f"{size} ({why})" for size, why in sorted(failed.items())[:10])
            notes.append(f"{len(failed)} roots could not be fetched: {listed}")
        return found, notes


class RootReport(RootInfo):
    consistency_proof: list[str] = Field(default_factory=list)
    consistency: av.Status = Field(description="This root extends the root one size smaller")
    notes: list[str] = Field(default_factory=list)
    request_id: str | None = None


def register_root(mcp: FastMCP, roots: Roots) -> None:
    @mcp.tool(name="get_audit_root", title="Audit log root", annotations=READ, tags={SERVICE})
    async def get_audit_root(
        treeSize: Annotated[
            int | None, Field(ge=1, description="Tree size of the root wanted; omit for the latest")
        ] = None,
    ) -> RootReport:
        """Return a published Merkle root of the audit log (the latest, or the one of a given size).

        The root is checked against the root one size smaller: `consistency` says whether this root
        extends it (nothing was rewritten). Compare `root_hash` with the copy published at `url` to
        check it independently of Pangea.
        """
        with tool_errors():
            root, raw, request_id = await roots.fetch(treeSize)
        notes: list[str] = []
        consistency: av.Status = "not_available"
        if root.size is None or root.size <= 1:
            notes.append("the first root of the tree; there is no earlier root to compare with")
        elif not root.consistency_proof:
            notes.append("Pangea sent no consistency proof with this root")
        else:
            try:
                previous = (await roots.fetch(root.size - 1))[0]
            except PangeaError as exc:
                notes.append(f"the root of size {root.size - 1} could not be fetched ({type(exc).__name__})")
            else:
                ok = av.verify_consistency(previous.root_hash, root.root_hash, root.consistency_proof)
                consistency = "verified" if ok else "failed"
                if not ok:
                    notes.append(f"this root does not extend the root of size {root.size - 1}")
        return RootReport(
            **RootInfo.model_validate(raw).model_dump(),
            consistency_proof=list(root.consistency_proof or ()),
            consistency=consistency,
            notes=notes,
            request_id=request_id,
        )
