"""Domain Intel: domain reputation and WHOIS registration data."""

from __future__ import annotations

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from pangea_mcp.backends import Backends
from pangea_mcp.cache import CACHED, REQUEST_ID, Fetch, cache_scope
from pangea_mcp.client import PangeaClient
from pangea_mcp.errors import tool_errors
from pangea_mcp.local.rdap import RdapWhois
from pangea_mcp.local.rdap_mapping import WhoisData
from pangea_mcp.models import (
    Domain,
    DomainList,
    PangeaRequest,
    PangeaResult,
    Reputation,
    ReputationMap,
    StrList,
    dedupe,
)

SERVICE = "domain-intel"
_LOOKUP = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


class _DomainsRequest(PangeaRequest):
    # /v2/reputation: one call for the whole batch (more than one domain may answer 202).
    domains: list[str]


class _WhoisRequest(PangeaRequest):
    domain: str


class DomainReputation(Reputation):
    domain: str = Field(description="The domain as looked up (lower-case ASCII; IDNs in punycode)")
    note: str | None = Field(default=None, description="Why data is missing, when it is")
    cached: bool = Field(default=False, description=CACHED)


class DomainReputationReport(PangeaResult):
    results: list[DomainReputation] = Field(description="One entry per distinct domain, in the order given")
    request_id: str | None = Field(default=None, description=REQUEST_ID)


class WhoisResult(PangeaResult):
    domain_name: str | None = None
    domain_availability: str | None = Field(default=None, description="e.g. UNAVAILABLE (registered)")
    created_date: str | None = None
    updated_date: str | None = None
    expires_date: str | None = None
    host_names: StrList = Field(default_factory=list, description="Name servers")
    ips: StrList = Field(default_factory=list)
    registrar_name: str | None = None
    contact_email: str | None = None
    estimated_domain_age: int | None = Field(
        default=None, description="Age in days, as the provider estimates"
    )
    registrant_organization: str | None = None
    registrant_country: str | None = None


class _WhoisEnvelope(PangeaResult):
    data: WhoisResult = Field(default_factory=WhoisResult)


class WhoisReport(WhoisResult):
    domain: str = Field(description="The domain as looked up (lower-case ASCII; IDNs in punycode)")
    status: StrList = Field(
        default_factory=list, description="EPP status codes from RDAP (local backend only)"
    )
    rdap_url: str | None = Field(
        default=None, description="The registry RDAP URL that answered (local backend only)"
    )
    note: str | None = Field(default=None, description="Why data is missing, when it is")
    cached: bool = Field(default=False, description=CACHED)
    request_id: str | None = Field(default=None, description=REQUEST_ID)


def _reputation_fetch(pangea: PangeaClient, ctx: Context) -> Fetch[Reputation]:
    async def fetch(domains: list[str]) -> tuple[dict[str, Reputation], str | None]:
        response = await pangea.call(
            SERVICE,
            "v2/reputation",
            _DomainsRequest(domains=domains),
            ReputationMap,
            progress=ctx.report_progress,
        )
        data = {key.rstrip(".").lower(): value for key, value in response.result.data.items()}
        return data, response.request_id

    return fetch


def _whois_fetch(pangea: PangeaClient, ctx: Context) -> Fetch[WhoisResult]:
    async def fetch(domains: list[str]) -> tuple[dict[str, WhoisResult], str | None]:
        (domain,) = domains  # /v1/whois takes one domain
        response = await pangea.call(
            SERVICE, "v1/whois", _WhoisRequest(domain=domain), _WhoisEnvelope, progress=ctx.report_progress
        )
        record = response.result.data
        # An empty record (no field at all) is not kept: it is asked again next time.
        return ({domain: record} if record.model_fields_set else {}), response.request_id

    return fetch


def _rdap_fetch(rdap: RdapWhois) -> Fetch[WhoisData]:
    """The registration record from the registry's RDAP server (the local backend's WHOIS)."""

    async def fetch(domains: list[str]) -> tuple[dict[str, WhoisData], str | None]:
        (domain,) = domains
        record = await rdap.whois(domain)
        # A registry's "no such domain" is kept too: it is the registry's answer, not a failure.
        return {domain: record}, None

    return fetch


_WHOIS_LOCAL = """Return the registration record of a domain, asked of its registry over RDAP.

RDAP is the successor of WHOIS. The record has the registrar, creation/update/expiry dates, name
servers, EPP status and, where not redacted, the registrant.

Use it to see who owns a domain and how old it is (a very young domain is a common phishing signal).
Pass the registered domain (example.com, not www.example.com). Fields the registry withholds come back
null; `rdap_url` says which server answered. A domain the registry does not know comes back with a
`note` and null fields. Recent answers come from this server's cache (`cached` true).
"""


def _register_local(mcp: FastMCP, backends: Backends) -> None:
    """On the local backend only WHOIS can be answered (RDAP asks the registry itself); reputation needs
    Pangea's data and is not offered."""
    rdap = RdapWhois(backends.settings)
    backends.on_shutdown(rdap.aclose)
    fetch = _rdap_fetch(rdap)
    fields = set(WhoisResult.model_fields)

    @mcp.tool(
        name="whois", title="WHOIS (RDAP)", description=_WHOIS_LOCAL, annotations=_LOOKUP, tags={SERVICE}
    )
    async def whois(domain: Domain) -> WhoisReport:
        scope = cache_scope(backends.settings, SERVICE, "rdap/domain")
        with tool_errors():
            answer = await backends.cache.lookup(scope, [domain], fetch)
        record = answer.found[domain]
        return WhoisReport(
            domain=domain,
            cached=domain in answer.cached,
            status=record.status,
            rdap_url=record.rdap_url,
            note=record.note,
            **record.model_dump(include=fields),
        )


def register(mcp: FastMCP, backends: Backends) -> None:
    if backends.is_local("domain_intel"):
        _register_local(mcp, backends)
        return
    pangea = backends.pangea

    @mcp.tool(name="lookup_domain_reputation", title="Domain reputation", annotations=_LOOKUP, tags={SERVICE})
    async def lookup_domain_reputation(domains: DomainList, ctx: Context) -> DomainReputationReport:
        """Return a verdict (malicious, suspicious, unknown, benign), a 0-100 score and categories per domain.

        Use it before visiting, trusting or allow-listing a domain, or to triage one seen in logs or mail.
        Pass bare domain names, not URLs. `unknown` means the provider has no opinion, not that the domain
        is safe. Recent answers come from this server's cache (`cached` true).
        """
        unique = dedupe(domains)
        scope = cache_scope(backends.settings, SERVICE, "v2/reputation")
        with tool_errors():
            answer = await backends.cache.lookup(scope, unique, _reputation_fetch(pangea, ctx))
        results = [
            DomainReputation(domain=d, cached=d in answer.cached, **answer.found[d].model_dump())
            if d in answer.found
            else DomainReputation(domain=d, note="Pangea returned no data for this domain")
            for d in unique
        ]
        return DomainReputationReport(results=results, request_id=answer.request_id)

    @mcp.tool(name="whois", title="WHOIS", annotations=_LOOKUP, tags={SERVICE})
    async def whois(domain: Domain, ctx: Context) -> WhoisReport:
        """Return the WHOIS registration record of a domain: registrar, dates, name servers, registrant.

        Use it to see who owns a domain and how old it is (a very young domain is a common phishing
        signal). Fields the registry withholds (privacy redaction) come back null. Recent answers come
        from this server's cache (`cached` true).
        """
        scope = cache_scope(backends.settings, SERVICE, "v1/whois")
        with tool_errors():
            answer = await backends.cache.lookup(scope, [domain], _whois_fetch(pangea, ctx))
        record = answer.found.get(domain, WhoisResult())
        return WhoisReport(
            domain=domain,
            cached=domain in answer.cached,
            request_id=answer.request_id,
            **record.model_dump(),
        )
