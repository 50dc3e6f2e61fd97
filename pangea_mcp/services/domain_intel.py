"""Domain Intel: domain reputation and WHOIS registration data."""

from __future__ import annotations

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from pangea_mcp.backends import Backends
from pangea_mcp.errors import tool_errors
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


class DomainReputationReport(PangeaResult):
    results: list[DomainReputation] = Field(description="One entry per distinct domain, in the order given")
    request_id: str | None = Field(default=None, description="Pangea request id")


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
    request_id: str | None = Field(default=None, description="Pangea request id")


def register(mcp: FastMCP, backends: Backends) -> None:
    pangea = backends.pangea

    @mcp.tool(name="lookup_domain_reputation", title="Domain reputation", annotations=_LOOKUP, tags={SERVICE})
    async def lookup_domain_reputation(domains: DomainList, ctx: Context) -> DomainReputationReport:
        """Return a verdict (malicious, suspicious, unknown, benign), a 0-100 score and categories per domain.

        Use it before visiting, trusting or allow-listing a domain, or to triage one seen in logs or mail.
        Pass bare domain names, not URLs. `unknown` means the provider has no opinion, not that the domain
        is safe.
        """
        unique = dedupe(domains)
        with tool_errors():
            response = await pangea.call(
                SERVICE,
                "v2/reputation",
                _DomainsRequest(domains=unique),
                ReputationMap,
                progress=ctx.report_progress,
            )
        data = {key.rstrip(".").lower(): value for key, value in response.result.data.items()}
        results = [
            DomainReputation(domain=d, **data[d].model_dump())
            if d in data
            else DomainReputation(domain=d, note="Pangea returned no data for this domain")
            for d in unique
        ]
        return DomainReputationReport(results=results, request_id=response.request_id)

    @mcp.tool(name="whois", title="WHOIS", annotations=_LOOKUP, tags={SERVICE})
    async def whois(domain: Domain, ctx: Context) -> WhoisReport:
        """Return the WHOIS registration record of a domain: registrar, dates, name servers, registrant.

        Use it to see who owns a domain and how old it is (a very young domain is a common phishing
        signal). Fields the registry withholds (privacy redaction) come back null.
        """
        with tool_errors():
            response = await pangea.call(
                SERVICE,
                "v1/whois",
                _WhoisRequest(domain=domain),
                _WhoisEnvelope,
                progress=ctx.report_progress,
            )
        return WhoisReport(domain=domain, request_id=response.request_id, **response.result.data.model_dump())
