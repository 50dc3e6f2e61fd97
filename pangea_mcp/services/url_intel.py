"""URL Intel: reputation of web addresses."""

from __future__ import annotations

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from pangea_mcp.backends import Backends
from pangea_mcp.cache import CACHED, REQUEST_ID, Fetch, cache_scope
from pangea_mcp.client import PangeaClient
from pangea_mcp.errors import tool_errors
from pangea_mcp.models import (
    PangeaRequest,
    PangeaResult,
    Reputation,
    ReputationMap,
    UrlList,
    dedupe,
    normalise_url,
)

SERVICE = "url-intel"
_LOOKUP = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


class _UrlsRequest(PangeaRequest):
    # /v2/reputation: one call for the whole batch (more than one URL may answer 202).
    urls: list[str]


class UrlReputation(Reputation):
    url: str = Field(description="The URL as looked up (scheme and host lower-cased, no #fragment)")
    note: str | None = Field(default=None, description="Why data is missing, when it is")
    cached: bool = Field(default=False, description=CACHED)


class UrlReputationReport(PangeaResult):
    results: list[UrlReputation] = Field(description="One entry per distinct URL, in the order given")
    request_id: str | None = Field(default=None, description=REQUEST_ID)


def _key(text: str) -> str:
    try:
        return normalise_url(text)
    except ValueError:
        return text


def _reputation_fetch(pangea: PangeaClient, ctx: Context) -> Fetch[Reputation]:
    async def fetch(urls: list[str]) -> tuple[dict[str, Reputation], str | None]:
        response = await pangea.call(
            SERVICE, "v2/reputation", _UrlsRequest(urls=urls), ReputationMap, progress=ctx.report_progress
        )
        # The map is keyed by the URL as sent; normalise anyway in case Pangea rewrites it.
        return {_key(raw): value for raw, value in response.result.data.items()}, response.request_id

    return fetch


def register(mcp: FastMCP, backends: Backends) -> None:
    pangea = backends.pangea

    @mcp.tool(name="lookup_url_reputation", title="URL reputation", annotations=_LOOKUP, tags={SERVICE})
    async def lookup_url_reputation(urls: UrlList, ctx: Context) -> UrlReputationReport:
        """Return a verdict (malicious, suspicious, unknown, benign), a 0-100 score and categories per URL.

        Use it before opening, following or sharing a link, or to triage links found in mail, chat or
        logs. Pass full http(s) URLs; for a bare domain use lookup_domain_reputation. The URL is only
        looked up, never visited. `unknown` means the provider has no opinion, not that the URL is safe.
        Recent answers come from this server's cache (`cached` true).
        """
        unique = dedupe(urls)
        scope = cache_scope(backends.settings, SERVICE, "v2/reputation")
        with tool_errors():
            answer = await backends.cache.lookup(scope, unique, _reputation_fetch(pangea, ctx))
        results = [
            UrlReputation(url=url, cached=url in answer.cached, **answer.found[url].model_dump())
            if url in answer.found
            else UrlReputation(url=url, note="Pangea returned no data for this URL")
            for url in unique
        ]
        return UrlReputationReport(results=results, request_id=answer.request_id)
