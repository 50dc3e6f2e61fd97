"""File Intel: reputation of files by hash (MD5, SHA-1, SHA-256)."""

from __future__ import annotations

from typing import Annotated

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from pangea_mcp.backends import Backends
from pangea_mcp.cache import CACHED, REQUEST_ID, Fetch, cache_scope
from pangea_mcp.client import PangeaClient
from pangea_mcp.errors import invalid_arguments, tool_errors
from pangea_mcp.models import (
    HASH_TYPE_BY_LENGTH,
    FileHashList,
    HashType,
    PangeaRequest,
    PangeaResult,
    Reputation,
    ReputationMap,
    dedupe,
)

SERVICE = "file-intel"
TOOL = "lookup_file_reputation"
_LOOKUP = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
_NAMES: dict[HashType, str] = {"md5": "MD5", "sha": "SHA-1", "sha256": "SHA-256"}


class _HashesRequest(PangeaRequest):
    # /v2/reputation: one call per batch, and Pangea takes one hash_type for the whole batch.
    hashes: list[str]
    hash_type: HashType


class FileReputation(Reputation):
    hash: str = Field(description="The digest as looked up (lower-case hex)")
    note: str | None = Field(default=None, description="Why data is missing, when it is")
    cached: bool = Field(default=False, description=CACHED)


class FileReputationReport(PangeaResult):
    hash_type: HashType = Field(description="Digest type looked up: sha256, sha (SHA-1) or md5")
    results: list[FileReputation] = Field(description="One entry per distinct hash, in the order given")
    request_id: str | None = Field(default=None, description=REQUEST_ID)


def _hash_type(hashes: list[str], declared: HashType | None) -> HashType:
    """The one digest type of the batch: declared and checked, or inferred from the lengths."""
    kinds = [HASH_TYPE_BY_LENGTH[len(h)] for h in hashes]
    if declared is not None:
        wrong: dict[tuple[str | int, ...], str] = {
            ("hashes", i): f"is a {_NAMES[kind]} digest ({len(h)} hex digits), not {_NAMES[declared]}"
            for i, (h, kind) in enumerate(zip(hashes, kinds, strict=True))
            if kind != declared
        }
        if wrong:
            raise invalid_arguments(TOOL, wrong)
        return declared
    if len(set(kinds)) > 1:
        counts = ", ".join(f"{kinds.count(k)} {_NAMES[k]}" for k in dict.fromkeys(kinds))
        raise invalid_arguments(
            TOOL, {("hashes",): f"mixes digest types ({counts}); look up one type per call"}
        )
    return kinds[0]


def _reputation_fetch(pangea: PangeaClient, ctx: Context, hash_type: HashType) -> Fetch[Reputation]:
    async def fetch(hashes: list[str]) -> tuple[dict[str, Reputation], str | None]:
        body = _HashesRequest(hashes=hashes, hash_type=hash_type)
        response = await pangea.call(
            SERVICE, "v2/reputation", body, ReputationMap, progress=ctx.report_progress
        )
        return {key.lower(): value for key, value in response.result.data.items()}, response.request_id

    return fetch


def register(mcp: FastMCP, backends: Backends) -> None:
    pangea = backends.pangea

    @mcp.tool(name=TOOL, title="File reputation", annotations=_LOOKUP, tags={SERVICE})
    async def lookup_file_reputation(
        hashes: FileHashList,
        ctx: Context,
        # argument name kept from Pangea's official server, so existing prompts keep working
        hashType: Annotated[
            HashType | None,
            Field(description="sha256, sha (SHA-1) or md5; optional, inferred from the digest length"),
        ] = None,
    ) -> FileReputationReport:
        """Return a verdict (malicious, suspicious, unknown, benign), a 0-100 score and categories per hash.

        Use it to triage a file (attachment, download, process image) by its digest without uploading it:
        pass hex MD5, SHA-1 or SHA-256 digests, all of one type per call. Nothing on disk is read. An
        `unknown` verdict means the provider has not seen the file, not that it is safe. Recent answers
        come from this server's cache (`cached` true).
        """
        unique = dedupe(hashes)
        hash_type = _hash_type(hashes, hashType)
        scope = cache_scope(backends.settings, SERVICE, "v2/reputation", hash_type=hash_type)
        with tool_errors():
            answer = await backends.cache.lookup(scope, unique, _reputation_fetch(pangea, ctx, hash_type))
        results = [
            FileReputation(hash=h, cached=h in answer.cached, **answer.found[h].model_dump())
            if h in answer.found
            else FileReputation(hash=h, note="Pangea returned no data for this hash")
            for h in unique
        ]
        return FileReputationReport(hash_type=hash_type, results=results, request_id=answer.request_id)
